"""Anthropic, in one place: the Messages API through the ``anthropic`` SDK.

Introduced in lesson 3 (03_function_calling). The system prompt is a top-level field, ``max_tokens`` is
required, tool results go back in a user turn, overload is HTTP 529 (or an ``event: error`` inside a
stream that already started) and ``x-should-retry`` tells the SDK whether to retry. Raw HTTP lives in
``_anthropic_wire`` (``llmkit.wire.anthropic`` to the lessons), scripted answers in ``_anthropic_scripted``.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llmkit.errors import ConfigError
from llmkit.events import Event, collect
from llmkit.providers import _anthropic_batch as _batch
from llmkit.providers import _anthropic_wire as wire
from llmkit.providers._base import (
    DEFAULT_MESSAGES,
    Provider,
    _bearer,
    arun_parser,
    b64,
    parts,
    run_parser,
    safe_args,
    sdk_dict,
    tool_fields,
)

if TYPE_CHECKING:
    from ..kit import Kit

PATHS = ("/v1/messages", "/v1/messages/count_tokens")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}

# Fault value (``llmkit.resilience.Fault``) → (status, type, message), from real responses.
_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."),
    "500": (500, "api_error", "Internal server error"),
    "503": (529, "overloaded_error", "Overloaded"),
    "529": (529, "overloaded_error", "Overloaded"),
    "400": (400, "invalid_request_error", "messages: at least one message is required"),
    "401": (401, "authentication_error", "invalid x-api-key"),
    "quota": (402, "billing_error", "Your credit balance is too low to access the API."),
}


# --- SDK objects → events (``llmkit.wire.sdk_events`` re-exports these) -------------------------------
def stream_events(events: Iterable[Any]) -> Iterator[Event]:
    """``MessageStreamEvent`` values (``messages.create(stream=True)`` or ``messages.stream()``) → events.

    Introduced in lesson 2 (02_streaming). The helper events that ``messages.stream()`` adds
    (``text``, ``input_json``, ``thinking`` ...) repeat what the raw events carry and are skipped.
    """
    return run_parser(wire.MessagesStreamParser(), events, sdk_dict)


def stream_events_async(events: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``stream_events``."""
    return arun_parser(wire.MessagesStreamParser(), events, sdk_dict)


def message_events(message: Any) -> list[Event]:
    """A non-streamed anthropic ``Message`` → events. Introduced in lesson 1 (01_sdk_vs_http)."""
    return wire.parse_response(sdk_dict(message))


def messages(messages: list[dict]) -> list[dict]:
    """Neutral messages → Messages API ``messages``. Introduced in lesson 3 (03_function_calling)."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            if m.get("is_error"):
                block["is_error"] = True
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list) and all(
                    b.get("type") == "tool_result" for b in out[-1]["content"]):
                out[-1]["content"].append(block)  # parallel results go back in one user turn
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant":
            blocks: list[dict] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": safe_args(c)}
                       for c in m.get("tool_calls") or []]
            out.append({"role": "assistant", "content": blocks if m.get("tool_calls") else m.get("content", "")})
        elif isinstance(m["content"], str):
            out.append({"role": "user", "content": m["content"]})
        else:
            blocks = []
            for p in parts(m["content"]):
                if p["type"] == "image":
                    blocks.append({"type": "image", "source": {"type": "base64", "media_type": p["media_type"],
                                                               "data": b64(p["data"])}})
                else:
                    blocks.append({"type": "text", "text": p["text"]})
            out.append({"role": "user", "content": blocks})
    return out


class Anthropic(Provider):
    name = "anthropic"
    api_labels = {"messages": "the Messages API", "count_tokens": "the token-counting API",
                  "batches": "Message Batches"}
    upstream = "https://api.anthropic.com"
    key_vars = ("ANTHROPIC_API_KEY",)
    wire = wire
    batch = _batch
    chat_api = "messages"
    tool_call_prefix = "toolu_01"
    talks_before_tools = True
    no_key = (401, "x-api-key header is required")

    # --- as llmkit simulate answers ------------------------------------------------------------------
    def has_key(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        return bool(headers.get("x-api-key") or _bearer(headers))

    def cache_minimum(self, model: str) -> int:
        """4096 tokens for Claude Haiku 4.5 and Opus 4.5, 1024 for the other current models."""
        return 4096 if any(m in model for m in ("haiku-4-5", "opus-4-5")) else 1024

    def cacheable_prefix(self, body: dict) -> str:
        """The system blocks up to the last one marked ``cache_control``."""
        blocks = body.get("system") if isinstance(body.get("system"), list) else []
        marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
        return "".join(str(b.get("text", "")) for b in blocks[:marked[-1] + 1]) if marked else ""

    def cache_usage(self, tokens: int, seen: bool) -> tuple[int, int]:
        return (tokens, 0) if seen else (0, tokens)  # the first request writes the cache, the next ones read it

    # --- HTTP surface ------------------------------------------------------------------------------
    def owns_path(self, path: str) -> bool:
        return path in PATHS or _batch.owns(path)

    def api_of(self, path: str) -> str:
        if _batch.owns(path):
            return "batches"
        return "count_tokens" if path.endswith("count_tokens") else "messages"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": wire.API_VERSION, "content-type": "application/json"}

    # --- errors ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str | None = None, *, code: str | None = None) -> dict:
        msg = message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")
        etype = code or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": msg}, "request_id": "req_llmkit_replay"}

    def error_headers(self, status: int, retry_after: float | None = None,
                      retry_after_ms: float | None = None) -> dict[str, str]:
        headers = {"content-type": "application/json",
                   "x-should-retry": "true" if status in (408, 409, 429) or status >= 500 else "false"}
        return headers | super().error_headers(status, retry_after, retry_after_ms)

    def error_event(self, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
        data = {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
        return f"event: error\ndata: {json.dumps(data)}\n\n"

    def fault_response(self, fault: str, *, retry_after: float = 2.0) -> tuple[int, dict[str, str], dict]:
        with_delay = fault == "429+retry-after"
        status, type_, message = _FAULTS["429" if with_delay else fault]
        body = self.error_body(status, message, code=type_)
        headers = self.error_headers(status, retry_after if with_delay else None)
        headers["request-id"] = body["request_id"]
        return status, headers, body

    def fault_event(self, fault: str) -> str:
        """The in-stream ``event: error`` frame carrying ``fault``'s error."""
        status, _, message = _FAULTS[fault]
        return self.error_event(PATHS[0], message, status)

    def stream_fault_event(self, fault: str) -> str | None:
        # Anthropic reports overload and server errors inside the stream (HTTP 200 already sent).
        return self.fault_event(fault) if fault in ("529", "500") else None

    # --- parsing -----------------------------------------------------------------------------------
    def stream_parser(self, api: str | None = None, status: int = 200) -> Any:
        return wire.MessagesStreamParser(status)

    def usage_of(self, payloads: list[dict], model: str) -> tuple[str, int, int] | None:
        found, inp, out = False, 0, 0
        for ev in payloads:
            msg = ev.get("message") if isinstance(ev.get("message"), dict) else ev
            model = msg.get("model") or model
            use = msg.get("usage") or ev.get("usage")
            if isinstance(use, dict):
                found = True
                if "input_tokens" in use:
                    inp = (use.get("input_tokens") or 0) + (use.get("cache_read_input_tokens") or 0) + (
                        use.get("cache_creation_input_tokens") or 0)
                out = use.get("output_tokens", out) or out
        return (model, int(inp), int(out)) if found else None

    def cache_usage_of(self, payloads: list[dict]) -> tuple[int, int]:
        """``usage.cache_read_input_tokens`` and ``usage.cache_creation_input_tokens`` (in ``message_start``
        when streamed): reads and writes of blocks marked with ``cache_control`` (lesson 6, 06_conversations)."""
        read = written = 0
        for ev in payloads:
            msg = ev.get("message") if isinstance(ev.get("message"), dict) else ev
            use = msg.get("usage") or ev.get("usage")
            if isinstance(use, dict) and "input_tokens" in use:
                read = int(use.get("cache_read_input_tokens") or 0)
                written = int(use.get("cache_creation_input_tokens") or 0)
        return read, written

    # --- scripted replies --------------------------------------------------------------------------
    def render_scripted(self, req: Any, reply: Any, seed: str, query: dict[str, str]) -> Any:
        from llmkit.providers import _anthropic_scripted as scripted
        from llmkit.providers._scripted import response, usage_of

        if req.api == "count_tokens":
            return response(200, {"content-type": "application/json"},
                            body={"input_tokens": usage_of(req, reply)[0]}, t_ms=90.0)
        if req.api == "messages":
            return scripted.messages(req, reply, seed)[0]
        return None

    def scripted_frames(self, req: Any, reply: Any, seed: str) -> Any:
        from llmkit.providers import _anthropic_scripted as scripted

        return scripted.messages(req, reply, seed)[1]

    # --- requests ------------------------------------------------------------------------------------
    def render_tools(self, tools: Iterable[Any]) -> Any:
        return [{"name": n, "description": d, "input_schema": p} for n, d, p in map(tool_fields, tools)]

    def messages(self, messages_: list[dict], system: str | None = None) -> list[dict]:
        return messages(messages_)

    def request(self, model: str, messages_: list[dict], system: str | None, tools: Any, max_tokens: int,
                temperature: float | None) -> dict:
        if temperature is not None:
            raise ConfigError("the anthropic SDK pinned here (2.14) has no `temperature` parameter on "
                              "messages.create; leave temperature=None for anthropic.")
        kw: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages(messages_)}
        if system:
            kw["system"] = system
        if tools:
            kw["tools"] = self.render_tools(tools)
        return kw

    def wire_request(self, kw: dict) -> Any:
        return wire.messages_request(stream=True, **kw)

    def raw_request(self, model: str, text: str, *, stream: bool = False, api_key: str | None = None) -> Any:
        return wire.messages_request(model, text, max_tokens=64, stream=stream, api_key=api_key)

    # --- SDK -----------------------------------------------------------------------------------------
    def sdk_client(self, api_key: str, base_url: str, http: tuple[Any, Any] | None, *, is_async: bool) -> Any:
        import anthropic

        cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        extra = {"http_client": http[int(is_async)]} if http else {}
        return cls(api_key=api_key, base_url=base_url, **extra)

    def sdk_create(self, client: Any, kw: dict, *, stream: bool) -> Any:
        return client.messages.create(**kw, stream=True) if stream else client.messages.create(**kw)

    sdk_events = staticmethod(message_events)
    sdk_stream_events = staticmethod(stream_events)
    sdk_stream_events_async = staticmethod(stream_events_async)

    def structured(self, kit: Kit, schema: type, messages_: list[dict], system: str | None, model: str,
                   max_tokens: int) -> tuple[str, Any, Any]:
        from llmkit.structured import json_schema

        # No JSON mode in the pinned SDK: a forced tool call whose input is the answer.
        name = schema.__name__
        tool = {"name": name, "description": f"Record the result as a {name}.", "input_schema": json_schema(schema)}
        kw: dict[str, Any] = {"system": system} if system else {}
        message = self.client(kit).messages.create(
            model=model, max_tokens=max_tokens, messages=messages(messages_), tools=[tool],
            tool_choice={"type": "tool", "name": name}, **kw)
        c = collect(message_events(message))
        call = next((t for t in c.tool_calls if t.name == name), None)
        return (call.arguments if call else c.text), call, c

    def count_tokens(self, kit: Kit, model: str, system: str | None, messages_: list[dict]) -> int | None:
        kw: dict[str, Any] = {"model": model, "messages": messages(messages_)}
        if system:
            kw["system"] = system
        return self.client(kit).messages.count_tokens(**kw).input_tokens

    def ping(self, kit: Kit, model: str, text: str) -> str:
        return self.client(kit).messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": text}]).content[0].text

    def stream_texts(self, kit: Kit, model: str, text: str) -> Iterator[str]:
        with self.client(kit).messages.stream(model=model, max_tokens=64,
                                              messages=[{"role": "user", "content": text}]) as stream:
            yield from stream.text_stream

    # --- images --------------------------------------------------------------------------------------
    @property
    def image_limits(self) -> Any:
        # docs.anthropic.com/en/docs/build-with-claude/vision: JPEG, PNG, GIF, WebP; 5 MB per image (API; the
        # API measures the base64 text, hence 3/4 of it in raw bytes); images larger than 8000x8000 px are
        # rejected; a long edge over 1568 px is scaled down by the API anyway (it only adds latency), so 1568
        # is the recommended size.
        from llmkit.multimodal import GIF, JPEG, MB, PNG, WEBP, ImageLimits

        return ImageLimits(frozenset({PNG, JPEG, GIF, WEBP}), max_bytes=5 * MB * 3 // 4, max_edge=8000,
                           fit_box=None, short_side=None, long_edge=1568)

    def image_tokens(self, width: int, height: int, model: str = "") -> int:
        """tokens ≈ width × height / 750 after scaling the long edge to 1568 px."""
        from llmkit.multimodal import target_size

        w, h = target_size(width, height, self.name)
        return max(1, math.ceil(w * h / 750))


PROVIDER = Anthropic()
