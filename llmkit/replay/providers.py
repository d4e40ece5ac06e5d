"""What the replay server knows about each provider's HTTP surface (lesson 0).

Which provider a path belongs to, whether a request asks for a stream, and how each provider shapes an
error body, a mid-stream error event and its rate-limit headers. Each answer comes from the provider's
module in ``llmkit.providers``; these functions keep the replay package's names for them. A fault
injected by the replay server looks like the real thing, so the official SDKs raise the same exception
classes they would raise against the provider.
"""

from __future__ import annotations

from typing import Any

from .. import providers


def provider_for_path(path: str) -> str | None:
    """Return "openai", "anthropic", "gemini" or None for an API path (without query string)."""
    provider = providers.for_path(path)
    return provider.name if provider else None


def wants_stream(provider: str, path: str, query: dict[str, str], body: Any) -> bool:
    """Does this request ask for a streamed response?"""
    return providers.get(provider).wants_stream(path, query, body)


def stream_kind(provider: str, path: str, query: dict[str, str]) -> str:
    """``sse`` for every stream except legacy Gemini without ``alt=sse`` (a JSON array body)."""
    return providers.get(provider).stream_kind(path, query)


def error_body(provider: str, status: int, message: str | None = None, *, code: str | None = None) -> dict:
    """The JSON error body ``provider`` sends with ``status`` (shape taken from real recordings)."""
    return providers.get(provider).error_body(status, message, code=code)


def error_headers(provider: str, status: int, retry_after: float | None = None,
                  retry_after_ms: float | None = None) -> dict[str, str]:
    """Headers of an error response, including the retry hints the SDKs honour."""
    return providers.get(provider).error_headers(status, retry_after, retry_after_ms)


def error_event(provider: str, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
    """A provider error delivered *inside* a stream, framed the way that provider frames it."""
    return providers.get(provider).error_event(path, message, status, kind=kind)


def stream_media_type(kind: str) -> str:
    return "text/event-stream" if kind == "sse" else "application/json; charset=UTF-8"


def localize(provider: str, body: bytes, here: str) -> bytes:
    """``body`` with ``provider``'s absolute URLs pointed at ``here``, the local server (lesson 11)."""
    return providers.get(provider).localize(body, here)
