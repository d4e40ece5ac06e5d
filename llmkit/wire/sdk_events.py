"""The official SDKs' stream objects → the same ``llmkit.events`` as raw HTTP.

Introduced in lesson 2 (02_streaming).

Each SDK object is a typed view of one JSON payload the provider sent. It is
turned back into that payload (``to_dict()`` for openai/anthropic,
``model_dump(by_alias=True)`` for google-genai) and fed to the very stream
parser the raw-HTTP path uses, so SDK and raw streams share one state machine::

    for event in openai_chat_events(client.chat.completions.create(..., stream=True)):
        ...

No SDK is imported here: the objects are used by their methods only.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from llmkit.events import Event
from llmkit.wire import anthropic as _anthropic
from llmkit.wire import gemini as _gemini
from llmkit.wire import openai as _openai
from llmkit.wire._base import StreamParser

__all__ = [
    "anthropic_events",
    "anthropic_events_async",
    "anthropic_message_events",
    "gemini_events",
    "gemini_events_async",
    "gemini_response_events",
    "openai_chat_events",
    "openai_chat_events_async",
    "openai_response_events",
    "openai_responses_events",
    "openai_responses_events_async",
]


def _openai_like(obj: Any) -> Any:
    """openai / anthropic model → its JSON payload (API field names, unset fields left out)."""
    return obj if isinstance(obj, dict) else obj.to_dict(mode="json", warnings=False)


def _genai(obj: Any) -> Any:
    """google-genai model → its camelCase JSON payload.

    pydantic writes ``bytes`` as URL-safe base64; the wire (and what must be sent
    back) uses the standard alphabet, so ``thoughtSignature`` is re-encoded.
    """
    if isinstance(obj, dict):
        return obj
    payload = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    for cand_obj, cand in zip(obj.candidates or [], payload.get("candidates") or [], strict=False):
        parts_obj = (cand_obj.content.parts or []) if cand_obj.content else []
        parts = (cand.get("content") or {}).get("parts") or []
        for part_obj, part in zip(parts_obj, parts, strict=False):
            if part_obj.thought_signature:
                part["thoughtSignature"] = base64.b64encode(part_obj.thought_signature).decode()
    return payload


def _run(parser: StreamParser, items: Iterable[Any], to_payload: Any) -> Iterator[Event]:
    for item in items:
        yield from parser.feed_payload(to_payload(item), getattr(item, "type", None))
    yield from parser.finalize(at_close=True)


async def _arun(
    parser: StreamParser, items: AsyncIterable[Any], to_payload: Any
) -> AsyncIterator[Event]:
    async for item in items:
        for event in parser.feed_payload(to_payload(item), getattr(item, "type", None)):
            yield event
    for event in parser.finalize(at_close=True):
        yield event


def openai_chat_events(chunks: Iterable[Any]) -> Iterator[Event]:
    """``ChatCompletionChunk`` values (``chat.completions.create(stream=True)``) → events."""
    return _run(_openai.ChatStreamParser(), chunks, _openai_like)


def openai_chat_events_async(chunks: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``openai_chat_events``."""
    return _arun(_openai.ChatStreamParser(), chunks, _openai_like)


def openai_responses_events(events: Iterable[Any]) -> Iterator[Event]:
    """Responses stream events (``responses.create(stream=True)`` or ``responses.stream()``)."""
    return _run(_openai.ResponsesStreamParser(), events, _openai_like)


def openai_responses_events_async(events: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``openai_responses_events``."""
    return _arun(_openai.ResponsesStreamParser(), events, _openai_like)


def anthropic_events(events: Iterable[Any]) -> Iterator[Event]:
    """``MessageStreamEvent`` values (``messages.create(stream=True)`` or ``messages.stream()``).

    The helper events that ``messages.stream()`` adds (``text``, ``input_json``,
    ``thinking`` ...) repeat what the raw events carry and are skipped.
    """
    return _run(_anthropic.MessagesStreamParser(), events, _openai_like)


def anthropic_events_async(events: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``anthropic_events``."""
    return _arun(_anthropic.MessagesStreamParser(), events, _openai_like)


def gemini_events(responses: Iterable[Any]) -> Iterator[Event]:
    """``GenerateContentResponse`` chunks (``models.generate_content_stream``) → events."""
    return _run(_gemini.GeminiStreamParser(), responses, _genai)


def gemini_events_async(responses: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``gemini_events`` (``aio.models.generate_content_stream``)."""
    return _arun(_gemini.GeminiStreamParser(), responses, _genai)


def openai_response_events(obj: Any) -> list[Event]:
    """A non-streamed ``ChatCompletion`` or Responses ``Response`` → events.

    Introduced in lesson 1 (01_sdk_vs_http).
    """
    return _openai.parse_response(_openai_like(obj))


def anthropic_message_events(message: Any) -> list[Event]:
    """A non-streamed anthropic ``Message`` → events. Introduced in lesson 1 (01_sdk_vs_http)."""
    return _anthropic.parse_response(_openai_like(message))


def gemini_response_events(response: Any) -> list[Event]:
    """A non-streamed ``GenerateContentResponse`` → events. Introduced in lesson 1."""
    return _gemini.parse_response(_genai(response))
