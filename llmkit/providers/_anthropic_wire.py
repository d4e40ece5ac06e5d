"""Anthropic Messages over raw HTTP, without the SDK.

Introduced in lesson 1 (01_sdk_vs_http); the stream parser in lesson 2 (02_streaming).

The stream is named SSE events: ``message_start`` (input usage),
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per
content block (``text_delta``, ``input_json_delta`` for tool arguments,
``thinking_delta``), ``ping`` at any time, ``message_delta`` (stop reason and
output usage), ``message_stop``; or an ``error`` event mid-stream.
"""

from __future__ import annotations

from typing import Any

from llmkit.events import Event, Finish, ProviderError, TextDelta, ThinkingDelta, Usage
from llmkit.wire._base import (
    StreamParser,
    ToolCallTracker,
    WireRequest,
    compact_json,
    error_field,
    http_error,
    json_or_text,
    load_json,
)

__all__ = [
    "API_VERSION",
    "MessagesStreamParser",
    "messages_request",
    "parse_error_body",
    "parse_response",
]

#: The ``anthropic-version`` header value: the API's wire format version, not a model.
API_VERSION = "2023-06-01"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def messages_request(
    model: str,
    messages: str | list[dict[str, Any]],
    *,
    max_tokens: int = 1024,
    stream: bool = False,
    api_key: str | None = None,
    version: str = API_VERSION,
    **params: Any,
) -> WireRequest:
    """``POST /v1/messages``. Introduced in lesson 1 (01_sdk_vs_http).

    ``max_tokens`` is required by the API. ``system``, ``tools`` and other body
    fields pass through ``params``. The key goes in ``x-api-key`` (the
    documented header; anthropic SDK 2.x sends ``authorization: Bearer``).
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    body.update(params)
    if stream:
        body["stream"] = True
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": version,
    }
    if api_key:
        headers["x-api-key"] = api_key
    return WireRequest("POST", "/v1/messages", headers, body)


def parse_error_body(status: int | None, body: bytes) -> ProviderError:
    """``{"type": "error", "error": {"type", "message"}}`` → ``ProviderError``.

    Introduced in lesson 8 (08_errors).
    """
    return error_field(status, body, _error)


def _error(status: int | None, err: dict[str, Any]) -> ProviderError:
    return ProviderError(status, str(err.get("type") or "error"), str(err.get("message") or ""))


def _usage(usage: dict[str, Any]) -> Usage:
    # input_tokens excludes cache reads/writes; the neutral figure counts the whole prompt.
    inp = sum(
        usage.get(k) or 0
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    out = usage.get("output_tokens") or 0
    return Usage(inp, out, inp + out)


def _finish(raw: str) -> Finish:
    return Finish(_FINISH.get(raw, raw), raw)


class MessagesStreamParser(StreamParser):
    """Messages stream bytes → events. Introduced in lesson 2 (02_streaming)."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(status)
        self._tools = ToolCallTracker()
        self._start_input: dict[Any, Any] = {}
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None

    def on_payload(self, obj: Any, event: str | None) -> list[Event]:
        if not isinstance(obj, dict):
            return []
        index = obj.get("index")
        match obj.get("type") or event:
            case "message_start":
                message = obj.get("message") or {}
                self._usage.update(message.get("usage") or {})
                return []
            case "content_block_start":
                return self._block_start(index, obj.get("content_block") or {})
            case "content_block_delta":
                return self._block_delta(index, obj.get("delta") or {})
            case "content_block_stop" if index in self._tools:
                arguments = None
                start = self._start_input.get(index)
                if start and not self._tools.has_fragments(index):
                    arguments = compact_json(start)
                return self._tools.complete(index, arguments)
            case "message_delta":
                delta = obj.get("delta") or {}
                self._stop_reason = delta.get("stop_reason") or self._stop_reason
                # message_delta repeats the counts, final values; None means "unchanged"
                usage = obj.get("usage") or {}
                self._usage.update({k: v for k, v in usage.items() if v is not None})
                return []
            case "message_stop":
                return self.finalize()
            case "error":
                return [_error(None, obj.get("error") or {})]
        return []  # ping, and event types added after this was written

    def _block_start(self, index: Any, block: dict[str, Any]) -> list[Event]:
        match block.get("type"):
            case "tool_use":
                self._start_input[index] = block.get("input")
                return self._tools.start(index, block.get("id"), block.get("name") or "")
            case "text" if block.get("text"):
                return [TextDelta(block["text"])]
            case "thinking" if block.get("thinking"):
                return [ThinkingDelta(block["thinking"])]
        return []

    def _block_delta(self, index: Any, delta: dict[str, Any]) -> list[Event]:
        match delta.get("type"):
            case "text_delta" if delta.get("text"):
                return [TextDelta(delta["text"])]
            case "input_json_delta":  # the first one is often ""
                return self._tools.delta(index, delta.get("partial_json") or "")
            case "thinking_delta" if delta.get("thinking"):
                return [ThinkingDelta(delta["thinking"])]
        return []

    def on_end(self) -> list[Event]:
        out = self._tools.complete_all()
        if self._usage:
            out.append(_usage(self._usage))
        if self._stop_reason:
            out.append(_finish(self._stop_reason))
        return out

    def parse_body(self, status: int, body: bytes) -> list[Event]:
        obj, text = json_or_text(body)
        if status >= 400 or (isinstance(obj, dict) and obj.get("type") == "error"):
            return [parse_error_body(status, body)]
        if not isinstance(obj, dict):
            return [http_error(status, text)]
        return parse_response(obj)


def parse_response(body: bytes | str | dict[str, Any]) -> list[Event]:
    """A non-streamed ``message`` → the same events a stream gives.

    Introduced in lesson 1 (01_sdk_vs_http).
    """
    obj = load_json(body)
    if obj.get("type") == "error":
        return [_error(None, obj.get("error") or {})]
    tools = ToolCallTracker()
    out: list[Event] = []
    for i, block in enumerate(obj.get("content") or []):
        match block.get("type"):
            case "text" if block.get("text"):
                out.append(TextDelta(block["text"]))
            case "thinking" if block.get("thinking"):
                out.append(ThinkingDelta(block["thinking"]))
            case "tool_use":
                out += tools.start(i, block.get("id"), block.get("name") or "")
                out += tools.complete(i, compact_json(block.get("input") or {}))
    if obj.get("usage"):
        out.append(_usage(obj["usage"]))
    if obj.get("stop_reason"):
        out.append(_finish(obj["stop_reason"]))
    return out
