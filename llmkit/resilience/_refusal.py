"""Is a completed answer a refusal? One check for every provider's way of saying no.

Introduced in lesson 8 (08_errors_and_fallbacks). A refusal is not an HTTP error: the
request succeeds and the answer says no - OpenAI ``finish_reason: content_filter`` or a
``message.refusal``, Anthropic ``stop_reason: refusal``, Gemini ``finishReason: SAFETY``
(and relatives) or ``promptFeedback.blockReason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from typing import Any

from ._errors import ContentRefused
from ._taxonomy import ClassifiedError, ErrorKind


@cache
def _refusal_reasons() -> frozenset[str]:
    """OpenAI finish_reason, Anthropic stop_reason and Gemini's block reasons (defined once, in llmkit.providers)."""
    # Imported on first use, not with this module: importing llmkit.resilience must not import llmkit.wire.
    from ..providers._gemini_wire import BLOCKED_FINISH_REASONS

    return frozenset({"content_filter", "refusal"}) | BLOCKED_FINISH_REASONS


def refusal(response: object, *, provider: str | None = None) -> ClassifiedError | None:
    """A ``CONTENT_REFUSED`` classification if a *completed* answer is a refusal, else None.

    Accepts a finish/stop reason (``"content_filter"``, ``"refusal"``, ``"SAFETY"``, ...),
    an SDK response object (OpenAI chat completion or Responses, Anthropic message,
    Gemini ``GenerateContentResponse``), its JSON as a dict, or ``llmkit.events.Finish``.
    """
    found = _refusal_reason(response)
    if found is None:
        return None
    reason, message, guessed = found
    text = f"{reason}: {message}" if message else reason
    return ClassifiedError(
        ErrorKind.CONTENT_REFUSED,
        False,
        provider=provider or guessed,
        message=text,
        original=response,
    )


def raise_if_refused(response: Any, *, provider: str | None = None) -> Any:
    """Return ``response`` unchanged, or raise ``ContentRefused`` if it is a refusal.

    Handy inside a fallback route: a refusal then hops to the next provider.
    """
    error = refusal(response, provider=provider)
    if error is not None:
        raise ContentRefused(error, response)
    return response


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _reason_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))  # enums: google-genai's FinishReason


_Found = tuple[str, str, str | None] | None  # (reason, message, provider)


def _refusal_reason(obj: Any) -> _Found:
    if isinstance(obj, str | StrEnum) or type(obj).__name__ == "FinishReason":
        reason = _reason_str(obj)
        if reason in _refusal_reasons():
            return reason, "", _PROVIDER_OF_REASON.get(reason, "gemini")
        return None
    if type(obj).__name__ == "Finish":  # llmkit.events.Finish
        raw = _reason_str(obj.raw_reason)
        if obj.reason == "content_filter" or raw in _refusal_reasons():
            return raw or obj.reason, "", _PROVIDER_OF_REASON.get(raw or "", None)
        return None
    choices = _get(obj, "choices")
    if choices:  # OpenAI chat completion
        for choice in choices:
            msg = _get(choice, "message")
            if msg is not None and _get(msg, "refusal"):
                return "refusal", str(_get(msg, "refusal")), "openai"
            if _reason_str(_get(choice, "finish_reason")) == "content_filter":
                return "content_filter", "", "openai"
        return None
    output = _get(obj, "output")
    if isinstance(output, list):  # OpenAI Responses API
        for item in output:
            for part in _get(item, "content") or ():
                if _get(part, "type") == "refusal":
                    return "refusal", str(_get(part, "refusal") or ""), "openai"
        return None
    stop = _reason_str(_get(obj, "stop_reason"))
    if stop is not None:  # Anthropic message
        return ("refusal", "", "anthropic") if stop == "refusal" else None
    feedback = _get(obj, "prompt_feedback", "promptFeedback")
    block = _reason_str(_get(feedback, "block_reason", "blockReason")) if feedback else None
    if block and block != "BLOCKED_REASON_UNSPECIFIED":
        message = _get(feedback, "block_reason_message", "blockReasonMessage") or ""
        return f"prompt blocked ({block})", str(message), "gemini"
    for candidate in _get(obj, "candidates") or ():
        reason = _reason_str(_get(candidate, "finish_reason", "finishReason"))
        if reason in _refusal_reasons():
            return reason, "", "gemini"
    return None


_PROVIDER_OF_REASON = {"content_filter": "openai", "refusal": None}
