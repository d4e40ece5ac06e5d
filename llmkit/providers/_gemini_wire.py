"""Google Gemini (``generateContent``) over raw HTTP, without the SDK.

Introduced in lesson 1 (01_sdk_vs_http); the stream parser in lesson 2 (02_streaming).

With ``alt=sse`` each ``data: `` line (CRLF-separated, no terminator) holds a
whole ``GenerateContentResponse``: new text parts, function calls that arrive
complete (never as argument fragments), and ``usageMetadata`` repeated on every
chunk with running totals. Parts marked ``"thought": true`` are reasoning
summaries, not answer text. Without ``alt=sse`` the same chunks come as one
JSON array (the legacy ``google-generativeai`` stream); the parser accepts both.
"""

from __future__ import annotations

from typing import Any

from llmkit.events import Event, Finish, ProviderError, TextDelta, ThinkingDelta, Usage
from llmkit.wire._base import (
    StreamParser,
    ToolCallTracker,
    WireRequest,
    compact_json,
    http_error,
    json_or_text,
    load_json,
)

__all__ = [
    "BLOCKED_FINISH_REASONS",
    "GeminiStreamParser",
    "generate_content_request",
    "genai_body",
    "parse_error_body",
    "parse_response",
]

#: google-genai's default; ``"v1beta"`` is selectable and has the newest features first.
DEFAULT_API_VERSION = "v1"

#: Gemini finish reasons that mean the answer was blocked (llmkit.resilience reads them as refusals).
BLOCKED_FINISH_REASONS = frozenset({
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
})
_FAILED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"}


def generate_content_request(
    model: str,
    contents: str | list[dict[str, Any]],
    *,
    stream: bool = False,
    api_version: str = DEFAULT_API_VERSION,
    api_key: str | None = None,
    **params: Any,
) -> WireRequest:
    """``POST /{v1|v1beta}/models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse``.

    Introduced in lesson 1 (01_sdk_vs_http). ``contents`` may be a plain string
    (one user turn). Other body fields pass through ``params`` under their wire
    (camelCase) names: ``systemInstruction``, ``generationConfig``, ``tools``.
    The key goes in the ``x-goog-api-key`` header rather than ``?key=``, so it
    stays out of URLs and logs.
    """
    if isinstance(contents, str):
        contents = [{"role": "user", "parts": [{"text": contents}]}]
    model = model.removeprefix("models/")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["x-goog-api-key"] = api_key
    body = {"contents": contents, **params}
    return WireRequest("POST", f"/{api_version}/models/{model}:{method}", headers, body)


def genai_body(contents: list[dict[str, Any]], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body google-genai sends for ``generate_content(contents=..., config=...)``, for the subset
    ``llmkit.chat`` uses. Introduced in lesson 9 (09_sse_server): the relay reads Gemini over raw HTTP.

    ``contents`` and ``config`` are the SDK's snake_case dicts (``function_call``, ``inline_data`` with
    ``bytes``, ``thought_signature``, ``max_output_tokens``, ``system_instruction``, ``tools`` with
    ``function_declarations``). Measured with google-genai 3.6: known fields become camelCase
    (``functionCall``, ``generationConfig.maxOutputTokens``, ``systemInstruction``), objects the SDK
    passes through keep snake_case (``inlineData.mime_type``, ``parameters_json_schema``), bytes are
    URL-safe base64, and ``automatic_function_calling`` never leaves the client. Anything else in
    ``config`` raises ``ValueError`` rather than guess a body the replay server would not match.
    """
    config = dict(config or {})
    config.pop("automatic_function_calling", None)
    body: dict[str, Any] = {"contents": [_genai_content(c) for c in contents]}
    if config.get("system_instruction") is not None:
        system = config.pop("system_instruction")
        if not isinstance(system, str):
            raise ValueError("genai_body: system_instruction must be a string")
        body["systemInstruction"] = {"parts": [{"text": system}], "role": "user"}
    if config.get("tools") is not None:
        tools = config.pop("tools")
        body["tools"] = [{"functionDeclarations": list(t["function_declarations"])} for t in tools]
    generation: dict[str, Any] = {}
    for key, wire in (("temperature", "temperature"), ("max_output_tokens", "maxOutputTokens")):
        if config.get(key) is not None:
            generation[wire] = config.pop(key)
    if generation:
        body["generationConfig"] = generation
    unknown = [k for k, v in config.items() if v is not None]
    if unknown:
        raise ValueError(f"genai_body: no wire mapping for config field(s) {', '.join(unknown)}; "
                         "use the SDK path for them")
    return body


def _genai_content(content: dict[str, Any]) -> dict[str, Any]:
    return {"parts": [_genai_part(p) for p in content["parts"]], "role": content["role"]}


def _genai_part(part: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in part.items():
        if value is None:
            continue
        if key == "function_call":
            out["functionCall"] = {k: value[k] for k in ("id", "args", "name") if value.get(k) is not None}
        elif key == "function_response":
            out["functionResponse"] = value
        elif key == "inline_data":
            out["inlineData"] = {"data": _b64url(value["data"]), "mime_type": value["mime_type"]}
        elif key == "thought_signature":
            out["thoughtSignature"] = _b64url(value)
        elif key in ("text", "thought"):
            out[key] = value
        else:
            raise ValueError(f"genai_body: no wire mapping for part field {key!r}; use the SDK path for it")
    return out


def _b64url(data: bytes | str) -> str:
    import base64

    return data if isinstance(data, str) else base64.urlsafe_b64encode(data).decode("ascii")


def parse_error_body(status: int | None, body: bytes) -> ProviderError:
    """``{"error": {"code", "message", "status", "details"}}`` → ``ProviderError``.

    Introduced in lesson 8 (08_errors). ``type`` is the gRPC status name
    (``INVALID_ARGUMENT``), ``code`` the ``ErrorInfo`` reason (``API_KEY_INVALID``).
    A JSON-array body (legacy stream) holding the error is accepted too.
    """
    obj, text = json_or_text(body)
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return http_error(status, text)
    return _error(status, err)


def _error(status: int | None, err: dict[str, Any]) -> ProviderError:
    reason = next(
        (d.get("reason") for d in err.get("details") or [] if isinstance(d, dict) and d.get("reason")),
        None,
    )
    return ProviderError(
        status, str(err.get("status") or "error"), str(err.get("message") or ""), reason
    )


def _usage(meta: dict[str, Any]) -> Usage:
    # candidatesTokenCount excludes thinking; both are billed as output.
    inp = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    out = (meta.get("candidatesTokenCount") or 0) + (meta.get("thoughtsTokenCount") or 0)
    return Usage(inp, out, meta.get("totalTokenCount"))


def _finish(raw: str, has_tools: bool, blocked_prompt: bool) -> Finish:
    if blocked_prompt or raw in BLOCKED_FINISH_REASONS:
        return Finish("content_filter", raw)
    if raw == "STOP":
        # Gemini has no "tool_calls" reason; a turn that called tools ends with STOP.
        return Finish("tool_calls" if has_tools else "stop", raw)
    if raw == "MAX_TOKENS":
        return Finish("length", raw)
    if raw in _FAILED:
        return Finish("error", raw)
    return Finish(raw, raw)


class GeminiStreamParser(StreamParser):
    """``streamGenerateContent`` bytes (SSE or JSON array) → events.

    Introduced in lesson 2 (02_streaming). Only candidate 0 is followed. The
    stream has no end marker, so ``Usage`` (the last running total, once) and
    ``Finish`` come from ``close()``.
    """

    def __init__(self, status: int = 200) -> None:
        super().__init__(status)
        self._tools = ToolCallTracker()
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._blocked = False

    def on_payload(self, obj: Any, event: str | None) -> list[Event]:
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):
            return [_error(None, obj["error"])]
        if obj.get("usageMetadata"):
            self._usage = _usage(obj["usageMetadata"])
        block = (obj.get("promptFeedback") or {}).get("blockReason")
        if block:
            self._finish, self._blocked = block, True
        candidates = [c for c in obj.get("candidates") or [] if c.get("index", 0) == 0]
        if not candidates:
            return []
        candidate = candidates[0]
        out: list[Event] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            out += self._part(part)
        if candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
        return out

    def _part(self, part: dict[str, Any]) -> list[Event]:
        call = part.get("functionCall")
        if isinstance(call, dict):
            key = len(self._tools)
            return self._tools.start(key, call.get("id"), call.get("name") or "") + (
                self._tools.complete(
                    key, compact_json(call.get("args") or {}), part.get("thoughtSignature")
                )
            )
        text = part.get("text")
        if not text:
            return []
        return [ThinkingDelta(text) if part.get("thought") else TextDelta(text)]

    def on_end(self) -> list[Event]:
        out: list[Event] = []
        if self._usage:
            out.append(self._usage)
        if self._finish:
            out.append(_finish(self._finish, len(self._tools) > 0, self._blocked))
        return out

    def parse_body(self, status: int, body: bytes) -> list[Event]:
        obj, text = json_or_text(body)
        if status >= 400 or (isinstance(obj, dict) and isinstance(obj.get("error"), dict)):
            return [parse_error_body(status, body)]
        if not isinstance(obj, dict):
            return [http_error(status, text)]
        return parse_response(obj)


def parse_response(body: bytes | str | dict[str, Any]) -> list[Event]:
    """A non-streamed ``GenerateContentResponse`` → the same events a stream gives.

    Introduced in lesson 1 (01_sdk_vs_http). It is exactly one stream chunk
    followed by the end of the stream, so it goes through the stream parser.
    """
    parser = GeminiStreamParser()
    return parser.feed_payload(load_json(body)) + parser.finalize()
