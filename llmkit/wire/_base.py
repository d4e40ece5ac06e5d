"""What the provider modules share: the request value and the stream-parser skeleton.

Introduced in lesson 1 (01_sdk_vs_http) and lesson 2 (02_streaming).

A streamed response body is not always a stream. A provider that rejects a
``stream=true`` request answers with a plain JSON error (OpenAI, Anthropic) -
Gemini even labels it ``text/event-stream`` - and a server may ignore
``stream`` and send the whole response as JSON. ``StreamParser`` therefore
looks at the first non-blank byte before choosing how to decode:

    "{"          → one JSON body: an error, or a complete response
    "["          → a JSON array of chunks (legacy Gemini stream)
    anything else → Server-Sent Events

and any status >= 400 is read as an error body.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from llmkit.events import (
    Event,
    Finish,
    ProviderError,
    ToolCallComplete,
    ToolCallDelta,
    ToolCallStart,
)
from llmkit.wire._sse import JSONArrayDecoder, ServerSentEvent, SSEDecoder

__all__ = [
    "StreamParser",
    "ToolCallTracker",
    "WireRequest",
    "compact_json",
    "http_error",
    "json_or_text",
    "load_json",
]


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One HTTP request, ready for any HTTP client.

    ``path`` starts at the host root (``/v1/chat/completions``); ``url(base)``
    joins it to a base URL with or without the version segment.
    """

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def url(self, base_url: str) -> str:
        """``base_url`` + ``path``, not repeating a version segment the base already ends with."""
        base = base_url.rstrip("/")
        base_path = urlsplit(base).path
        first = "/" + self.path.lstrip("/").split("/", 1)[0]
        if base_path.endswith(first):
            base = base[: -len(first)]
        return base + self.path

    def content(self) -> bytes:
        """The body as compact UTF-8 JSON bytes."""
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


def load_json(body: bytes | str | dict[str, Any] | list[Any]) -> Any:
    """Accept a parsed body or its bytes/text."""
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        return json.loads(body)
    return body


def json_or_text(body: bytes) -> tuple[Any, str]:
    """(parsed JSON or None, text) of a body that may not be JSON at all (an HTML 502 page)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


def http_error(status: int | None, text: str) -> ProviderError:
    """The error for a body that is not the provider's JSON error shape."""
    snippet = " ".join(text.split())[:200] or "(empty body)"
    return ProviderError(status=status, type="http_error", message=snippet)


def error_field(status: int | None, body: bytes, to_error: Any) -> ProviderError:
    """``to_error(status, body["error"])`` for a JSON body with an ``error`` object, else :func:`http_error`."""
    obj, text = json_or_text(body)
    err = obj.get("error") if isinstance(obj, dict) else None
    return to_error(status, err) if isinstance(err, dict) else http_error(status, text)


class StreamParser(ABC):
    """bytes of one streamed response → events. A subclass handles one API's payloads.

    ``feed(chunk)`` as the bytes arrive, ``close()`` once at end of body.
    ``feed_payload(obj)`` is the entry for already-decoded JSON payloads (the
    SDK mapping in ``sdk_events`` uses it), so both paths share one state machine.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        # None until the first non-blank byte; then "body" | "array" | "sse" | "done"
        self._mode: str | None = "body" if status >= 400 else None
        self._head = b""  # bytes seen before the mode was known (blank so far)
        self._body = bytearray()
        self._sse = SSEDecoder()
        self._array = JSONArrayDecoder()
        self._finished = False  # the final Usage/Finish were emitted
        self._failed = False  # a ProviderError was emitted

    # -- bytes in ---------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[Event]:
        """Events completed by this chunk of the body."""
        if self._mode is None:
            self._head += chunk
            stripped = self._head.lstrip(b" \t\r\n")
            if not stripped:
                return []
            self._mode = {ord("{"): "body", ord("["): "array"}.get(stripped[0], "sse")
            chunk, self._head = self._head, b""
        if self._mode == "body":
            self._body += chunk
            return []
        if self._mode == "array":
            try:
                return self._payloads(self._array.feed(chunk))
            except ValueError as exc:
                self._mode = "done"  # nothing after broken JSON can be trusted
                return self._fail("invalid_stream", str(exc))
        if self._mode == "sse":
            return self._sse_events(self._sse.feed(chunk))
        return []

    def close(self) -> list[Event]:
        """Flush the decoders and emit what the end of the body means. Idempotent."""
        mode, self._mode = self._mode, "done"
        if mode == "body":
            self._finished = True
            return self._note(self.parse_body(self.status, bytes(self._body)))
        out: list[Event] = []
        if mode == "array":
            try:
                out += self._payloads(self._array.close())
            except ValueError as exc:
                out += self._fail("incomplete_stream", str(exc))
        elif mode == "sse":
            out += self._sse_events(self._sse.close(), at_close=True)
        return out + self.finalize(at_close=True)

    # -- decoded payloads in ------------------------------------------------------

    def feed_payload(self, obj: Any, event: str | None = None) -> list[Event]:
        """Events for one decoded JSON payload (SSE data, array element, SDK object dict)."""
        if self._finished:
            return []
        return self._note(self.on_payload(obj, event))

    def finalize(self, at_close: bool = False) -> list[Event]:
        """Pending tool calls, then Usage, then Finish - once; later calls return []."""
        if self._finished:
            return []
        self._finished = True
        out = self._note(self.on_end())
        if any(isinstance(e, Finish) for e in out):
            return out
        # No finish: a call still open was cut short, so it is not reported complete.
        out = [e for e in out if not isinstance(e, ToolCallComplete)]
        if at_close and not self._failed:
            out += self._fail(
                "incomplete_stream",
                "the stream ended before the provider said it was finished "
                "(connection dropped?); the answer may be cut short",
            )
        return out

    # -- what a subclass provides -----------------------------------------------------

    @abstractmethod
    def on_payload(self, obj: Any, event: str | None) -> list[Event]:
        """Events for one payload; call ``self.finalize()`` where the API marks the end."""

    @abstractmethod
    def on_end(self) -> list[Event]:
        """Pending ToolCallComplete values, then Usage and Finish when known."""

    @abstractmethod
    def parse_body(self, status: int, body: bytes) -> list[Event]:
        """Events for a whole JSON body: an error (status >= 400) or a complete response."""

    # -- helpers -------------------------------------------------------------------------

    def _sse_events(self, sses: list[ServerSentEvent], at_close: bool = False) -> list[Event]:
        out: list[Event] = []
        for sse in sses:
            if self._finished:
                break
            if sse.data == "[DONE]":  # OpenAI chat's terminator
                out += self.finalize()
                continue
            try:
                obj = json.loads(sse.data)
            except ValueError:
                # at close, the unterminated last event: the body was cut mid-event
                kind = "incomplete_stream" if at_close else "invalid_stream"
                out += self._fail(kind, f"SSE data is not JSON: {sse.data[:80]!r}")
                continue
            out += self.feed_payload(obj, sse.event)
        return out

    def _payloads(self, objs: list[Any]) -> list[Event]:
        out: list[Event] = []
        for obj in objs:
            out += self.feed_payload(obj)
        return out

    def _fail(self, type_: str, message: str) -> list[Event]:
        self._failed = True
        return [ProviderError(None, type_, message)]

    def _note(self, events: list[Event]) -> list[Event]:
        if any(isinstance(e, ProviderError) for e in events):
            self._failed = True
        return events


class ToolCallTracker:
    """Numbers tool calls 0, 1, 2... and accumulates their argument fragments.

    Providers key calls differently (OpenAI chat ``index``, Anthropic content
    block index, Responses ``output_index``); the tracker maps each key to the
    neutral ``index`` and emits Start / Delta / Complete.
    """

    def __init__(self) -> None:
        self._calls: dict[Any, _Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, key: Any) -> bool:
        return key in self._calls

    def has_fragments(self, key: Any) -> bool:
        call = self._calls.get(key)
        return bool(call and call.parts)

    def start(self, key: Any, id: str | None, name: str) -> list[Event]:
        call = _Call(len(self._calls), id, name)
        self._calls[key] = call
        return [ToolCallStart(call.index, id, name)]

    def delta(self, key: Any, fragment: str) -> list[Event]:
        call = self._calls.get(key)
        if call is None or call.done or not fragment:
            return []
        call.parts.append(fragment)
        return [ToolCallDelta(call.index, fragment)]

    def complete(
        self, key: Any, arguments: str | None = None, signature: str | None = None
    ) -> list[Event]:
        """Complete one call; ``arguments`` (the full JSON) wins over the fragments."""
        call = self._calls.get(key)
        if call is None or call.done:
            return []
        call.done = True
        text = arguments if arguments is not None else "".join(call.parts)
        return [ToolCallComplete(call.index, call.id, call.name, text or "{}", signature)]

    def complete_all(self) -> list[Event]:
        out: list[Event] = []
        for key in list(self._calls):
            out += self.complete(key)
        return out


@dataclass(slots=True)
class _Call:
    index: int
    id: str | None
    name: str
    parts: list[str] = field(default_factory=list)
    done: bool = False


def compact_json(value: Any) -> str:
    """JSON text for arguments that arrive as an object (Gemini, non-streamed Anthropic)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
