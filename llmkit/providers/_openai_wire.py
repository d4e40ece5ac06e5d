"""OpenAI over raw HTTP: Chat Completions and Responses, without the SDK.

Introduced in lesson 1 (01_sdk_vs_http); the stream parsers in lesson 2 (02_streaming).

Chat Completions streams ``data: {chunk}`` lines and ends with ``data: [DONE]``;
tool-call arguments arrive as fragments keyed by ``tool_calls[].index``; with
``stream_options.include_usage`` a last chunk has ``choices: []`` and the usage.
Responses streams named events (``event: response.output_text.delta`` ...)
with a ``sequence_number`` and ends with ``response.completed`` (or
``.incomplete`` / ``.failed``), whose response carries the usage.
"""

from __future__ import annotations

from typing import Any

from llmkit.events import (
    Event,
    Finish,
    ProviderError,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    Usage,
)
from llmkit.wire._base import (
    StreamParser,
    ToolCallTracker,
    WireRequest,
    error_field,
    http_error,
    json_or_text,
    load_json,
)

__all__ = [
    "ChatStreamParser",
    "ResponsesStreamParser",
    "chat_request",
    "parse_error_body",
    "parse_response",
    "responses_request",
]

_CHAT_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _headers(api_key: str | None, stream: bool) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def chat_request(
    model: str,
    messages: str | list[dict[str, Any]],
    *,
    stream: bool = False,
    include_usage: bool = True,
    api_key: str | None = None,
    **params: Any,
) -> WireRequest:
    """``POST /v1/chat/completions``. Introduced in lesson 1 (01_sdk_vs_http).

    ``messages`` may be a plain string (one user message). Other body fields
    (``tools``, ``tool_choice``, ``temperature`` ...) pass through ``params``.
    A stream asks for the usage chunk unless ``include_usage=False``.
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict[str, Any] = {"model": model, "messages": messages, **params}
    if stream:
        body["stream"] = True
        if include_usage:
            body.setdefault("stream_options", {"include_usage": True})
    return WireRequest("POST", "/v1/chat/completions", _headers(api_key, stream), body)


def responses_request(
    model: str,
    input: str | list[dict[str, Any]],
    *,
    stream: bool = False,
    api_key: str | None = None,
    **params: Any,
) -> WireRequest:
    """``POST /v1/responses`` (the Responses API). Introduced in lesson 1 (01_sdk_vs_http)."""
    body: dict[str, Any] = {"model": model, "input": input, **params}
    if stream:
        body["stream"] = True
    return WireRequest("POST", "/v1/responses", _headers(api_key, stream), body)


def parse_error_body(status: int | None, body: bytes) -> ProviderError:
    """``{"error": {"message", "type", "param", "code"}}`` → ``ProviderError``.

    Introduced in lesson 8 (08_errors); bodies that are not OpenAI's shape
    (a proxy's HTML page) become ``type="http_error"``.
    """
    return error_field(status, body, _error)


def _error(status: int | None, err: dict[str, Any]) -> ProviderError:
    return ProviderError(
        status=status,
        type=str(err.get("type") or err.get("code") or "error"),
        message=str(err.get("message") or ""),
        code=str(err["code"]) if err.get("code") is not None else None,
    )


def _chat_usage(usage: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        total_tokens=usage.get("total_tokens"),
    )


def _chat_finish(raw: str) -> Finish:
    return Finish(_CHAT_FINISH.get(raw, raw), raw)


def _reasoning(d: dict[str, Any]) -> list[Event]:
    # Not sent by OpenAI's chat API, but by OpenAI-compatible servers (DeepSeek, vLLM).
    text = d.get("reasoning_content") or d.get("reasoning")
    return [ThinkingDelta(text)] if isinstance(text, str) and text else []


def _message_events(m: dict[str, Any]) -> list[Event]:
    """Reasoning, text and refusal of a Chat Completions ``message`` or stream ``delta``."""
    out = _reasoning(m)
    if m.get("content"):
        out.append(TextDelta(m["content"]))
    if m.get("refusal"):
        out.append(RefusalDelta(m["refusal"]))
    return out


class ChatStreamParser(StreamParser):
    """Chat Completions stream bytes → events. Introduced in lesson 2 (02_streaming).

    Only choice 0 is followed (``n=1``, the default).
    """

    def __init__(self, status: int = 200) -> None:
        super().__init__(status)
        self._tools = ToolCallTracker()
        self._usage: Usage | None = None
        self._finish: str | None = None

    def on_payload(self, obj: Any, event: str | None) -> list[Event]:
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):  # an error sent inside a 200 stream
            return [_error(None, obj["error"])]
        if obj.get("usage"):
            self._usage = _chat_usage(obj["usage"])
        out: list[Event] = []
        for choice in obj.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            out += _message_events(delta)
            for call in delta.get("tool_calls") or []:
                key = call.get("index", 0)
                fn = call.get("function") or {}
                if key not in self._tools:
                    out += self._tools.start(key, call.get("id"), fn.get("name") or "")
                out += self._tools.delta(key, fn.get("arguments") or "")
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out += self._tools.complete_all()
        return out

    def on_end(self) -> list[Event]:
        out = self._tools.complete_all()
        if self._usage:
            out.append(self._usage)
        if self._finish:
            out.append(_chat_finish(self._finish))
        return out

    def parse_body(self, status: int, body: bytes) -> list[Event]:
        return _parse_body(status, body)


class ResponsesStreamParser(StreamParser):
    """Responses API stream bytes (``response.*`` events) → events.

    Introduced in lesson 2 (02_streaming).
    """

    def __init__(self, status: int = 200) -> None:
        super().__init__(status)
        self._tools = ToolCallTracker()
        self._response: dict[str, Any] | None = None

    def on_payload(self, obj: Any, event: str | None) -> list[Event]:
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type") or event
        key = obj.get("output_index")
        item = obj.get("item") or {}
        match kind:
            case "response.output_text.delta" if obj.get("delta"):
                return [TextDelta(obj["delta"])]
            case "response.refusal.delta" if obj.get("delta"):
                return [RefusalDelta(obj["delta"])]
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                return [ThinkingDelta(obj["delta"])] if obj.get("delta") else []
            case "response.output_item.added" if item.get("type") == "function_call":
                return self._tools.start(key, item.get("call_id"), item.get("name") or "")
            case "response.function_call_arguments.delta":
                return self._tools.delta(key, obj.get("delta") or "")
            case "response.function_call_arguments.done":
                return self._tools.complete(key, obj.get("arguments"))
            case "response.output_item.done" if item.get("type") == "function_call":
                out = []
                if key not in self._tools:  # no "added" event seen
                    out = self._tools.start(key, item.get("call_id"), item.get("name") or "")
                return out + self._tools.complete(key, item.get("arguments"))
            case "response.completed" | "response.incomplete" | "response.failed":
                self._response = obj.get("response") or {}
                return self.finalize()
            case "error":  # {"type": "error", "code", "message"} or with a nested "error"
                if isinstance(obj.get("error"), dict):
                    return [_error(None, obj["error"])]
                return [_error(None, {**obj, "type": obj.get("code") or "error"})]
        return []

    def on_end(self) -> list[Event]:
        out = self._tools.complete_all()
        if self._response is not None:
            out += _response_end(self._response, has_tools=len(self._tools) > 0)
        return out

    def parse_body(self, status: int, body: bytes) -> list[Event]:
        return _parse_body(status, body)


def _response_end(resp: dict[str, Any], has_tools: bool) -> list[Event]:
    """Usage and Finish (or the error) of a final Responses ``response`` object."""
    out: list[Event] = []
    status = resp.get("status") or "completed"
    if status == "failed":
        err = resp.get("error") or {}
        code = err.get("code")
        out.append(ProviderError(None, str(code or "failed"), str(err.get("message") or ""), code))
    usage = resp.get("usage")
    if usage:
        inp, outp = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
        out.append(Usage(inp, outp, usage.get("total_tokens")))
    if status == "completed":
        out.append(Finish("tool_calls" if has_tools else "stop", status))
    elif status == "incomplete":
        raw = (resp.get("incomplete_details") or {}).get("reason") or status
        out.append(Finish(_INCOMPLETE.get(raw, raw), raw))
    elif status == "failed":
        out.append(Finish("error", status))
    else:
        out.append(Finish(status, status))
    return out


def parse_chat_response(body: bytes | str | dict[str, Any]) -> list[Event]:
    """A non-streamed ``chat.completion`` → the same events a stream gives.

    Introduced in lesson 1 (01_sdk_vs_http).
    """
    obj = load_json(body)
    if isinstance(obj.get("error"), dict):
        return [_error(None, obj["error"])]
    tools = ToolCallTracker()
    out: list[Event] = []
    choices = [c for c in obj.get("choices") or [] if c.get("index", 0) == 0]
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    out += _message_events(message)
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        out += tools.start(i, call.get("id"), fn.get("name") or "")
        out += tools.complete(i, fn.get("arguments"))
    if obj.get("usage"):
        out.append(_chat_usage(obj["usage"]))
    if choice.get("finish_reason"):
        out.append(_chat_finish(choice["finish_reason"]))
    return out


def parse_responses_response(body: bytes | str | dict[str, Any]) -> list[Event]:
    """A non-streamed Responses ``response`` object → events.

    Introduced in lesson 1 (01_sdk_vs_http). Reasoning items give their summary
    text (if any) as ``ThinkingDelta``; encrypted reasoning stays opaque.
    """
    obj = load_json(body)
    if isinstance(obj.get("error"), dict) and obj.get("status") != "failed":
        return [_error(None, obj["error"])]
    tools = ToolCallTracker()
    out: list[Event] = []
    for key, item in enumerate(obj.get("output") or []):
        match item.get("type"):
            case "message":
                for part in item.get("content") or []:
                    if part.get("type") == "output_text" and part.get("text"):
                        out.append(TextDelta(part["text"]))
                    elif part.get("type") == "refusal" and part.get("refusal"):
                        out.append(RefusalDelta(part["refusal"]))
            case "reasoning":
                for part in item.get("summary") or []:
                    if part.get("text"):
                        out.append(ThinkingDelta(part["text"]))
            case "function_call":
                out += tools.start(key, item.get("call_id"), item.get("name") or "")
                out += tools.complete(key, item.get("arguments"))
    return out + _response_end(obj, has_tools=len(tools) > 0)


def parse_response(body: bytes | str | dict[str, Any]) -> list[Event]:
    """Any non-streamed OpenAI body (chat completion, Responses object, error) → events."""
    obj = load_json(body)
    if obj.get("object") == "response" or "output" in obj:
        return parse_responses_response(obj)
    return parse_chat_response(obj)


def _parse_body(status: int, body: bytes) -> list[Event]:
    obj, text = json_or_text(body)
    is_error = isinstance(obj, dict) and isinstance(obj.get("error"), dict) and "output" not in obj
    if status >= 400 or is_error:
        return [parse_error_body(status, body)]
    if not isinstance(obj, dict):
        return [http_error(status, text)]
    return parse_response(obj)
