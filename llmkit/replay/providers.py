"""What the replay server knows about each provider's HTTP surface (lesson 0).

Which provider a path belongs to, whether a request asks for a stream, and how each provider shapes an
error body, a mid-stream error event and its rate-limit headers. These shapes were taken from real
recordings (see ../shared/conformance); a fault injected by the replay server looks like the real thing,
so the official SDKs raise the same exception classes they would raise against the provider.
"""

from __future__ import annotations

import json
import re
from typing import Any

_GEMINI_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/(models|tunedModels)/[^/:]+:(\w+)$")

OPENAI_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def provider_for_path(path: str) -> str | None:
    """Return "openai", "anthropic", "gemini" or None for an API path (without query string)."""
    if path in OPENAI_PATHS or path.startswith("/v1/responses/"):
        return "openai"
    if path in ANTHROPIC_PATHS:
        return "anthropic"
    if _GEMINI_PATH.match(path):
        return "gemini"
    return None


def gemini_method(path: str) -> str | None:
    """The Gemini RPC name in a path (``generateContent``, ``streamGenerateContent``, ...)."""
    m = _GEMINI_PATH.match(path)
    return m.group(3) if m else None


def wants_stream(provider: str, path: str, query: dict[str, str], body: Any) -> bool:
    """Does this request ask for a streamed response?"""
    if provider == "gemini":
        return gemini_method(path) == "streamGenerateContent"
    return isinstance(body, dict) and bool(body.get("stream"))


def stream_kind(provider: str, path: str, query: dict[str, str]) -> str:
    """``sse`` for every stream except legacy Gemini without ``alt=sse`` (a JSON array body)."""
    if provider == "gemini" and query.get("alt") != "sse":
        return "json-array"
    return "sse"


# --- error bodies -------------------------------------------------------------------------------

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
    529: ("server_error", None),
}
_ANTHROPIC_TYPES = {
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
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}

_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "Permission denied.",
    404: "Not found.",
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    504: "Deadline exceeded.",
    529: "Overloaded",
}


def error_body(provider: str, status: int, message: str | None = None, *, code: str | None = None) -> dict:
    """The JSON error body ``provider`` sends with ``status`` (shape taken from real recordings)."""
    msg = message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}")
    if provider == "openai":
        etype, ecode = _OPENAI_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {"error": {"message": msg, "type": etype, "param": None, "code": code or ecode}}
    if provider == "anthropic":
        etype = code or _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": msg}, "request_id": "req_llmkit_replay"}
    return {"error": {"code": status, "message": msg, "status": code or _GEMINI_STATUS.get(status, "UNKNOWN")}}


def error_headers(provider: str, status: int, retry_after: float | None = None,
                  retry_after_ms: float | None = None) -> dict[str, str]:
    """Headers of an error response, including the retry hints the SDKs honour."""
    headers = {"content-type": "application/json"}
    if provider == "anthropic":
        headers["x-should-retry"] = "true" if status in (408, 409, 429) or status >= 500 else "false"
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = f"{retry_after_ms:g}"
    return headers


def error_event(provider: str, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
    """A provider error delivered *inside* a stream, framed the way that provider frames it."""
    if provider == "anthropic":
        etype = _ANTHROPIC_TYPES.get(status, "api_error")
        data = {"type": "error", "error": {"type": etype, "message": message}}
        return f"event: error\ndata: {json.dumps(data)}\n\n"
    if provider == "openai" and path.startswith("/v1/responses"):
        data = {"type": "error", "code": "server_error", "message": message, "param": None,
                "sequence_number": 0}
        return f"event: error\ndata: {json.dumps(data)}\n\n"
    if provider == "openai":
        return f"data: {json.dumps({'error': error_body('openai', status, message)['error']})}\n\n"
    data = error_body("gemini", status, message)
    if kind == "json-array":
        return "," + json.dumps(data)
    return f"data: {json.dumps(data)}\r\n\r\n"


def stream_media_type(kind: str) -> str:
    return "text/event-stream" if kind == "sse" else "application/json; charset=UTF-8"
