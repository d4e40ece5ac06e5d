"""Google Gemini, in one place: ``generateContent`` through google-genai.

Introduced in lesson 3 (03_function_calling). The model is part of the path, streaming is a different
method (``:streamGenerateContent``; SSE with ``alt=sse``, else one JSON array), the key travels in
``x-goog-api-key``, function calls arrive whole and a turn that called tools still ends with ``STOP``.
Raw HTTP lives in ``_gemini_wire`` (``llmkit.wire.gemini`` to the lessons), scripted answers in
``_gemini_scripted``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llmkit.events import Event, collect
from llmkit.providers import _gemini_batch as _batch
from llmkit.providers import _gemini_wire as wire
from llmkit.providers._base import (
    DEFAULT_MESSAGES,
    Provider,
    arun_parser,
    parts,
    run_parser,
    safe_args,
    tool_fields,
    tool_response,
)

if TYPE_CHECKING:
    from ..kit import Kit

PATH = re.compile(r"^/(v1|v1beta|v1alpha)/(models|tunedModels)/[^/:]+:(\w+)$")
# The explicit-cache resource (lesson 6): the collection, and one cache by id (get, patch, delete).
CACHE_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/cachedContents(/[^/:]+)?$")

_STATUS = {
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

# Fault value (``llmkit.resilience.Fault``) → (status, gRPC status, message), from real responses.
_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."),
    "500": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                             "https://developers.generativeai.google/guide/troubleshooting"),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "400": (400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"),
    "401": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
}
_API_KEY_INVALID = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}


def method_of(path: str) -> str | None:
    """The Gemini RPC name in a path (``generateContent``, ``streamGenerateContent``, ...).

    Introduced in lesson 0 (00_setup_and_replay): the replay server routes on it.
    """
    m = PATH.match(path)
    return m.group(3) if m else None


# --- SDK objects → events (``llmkit.wire.sdk_events`` re-exports these) -------------------------------
def payload(obj: Any) -> Any:
    """google-genai model → its camelCase JSON payload. Introduced in lesson 2 (02_streaming).

    pydantic writes ``bytes`` as URL-safe base64; the wire (and what must be sent
    back) uses the standard alphabet, so ``thoughtSignature`` is re-encoded.
    """
    if isinstance(obj, dict):
        return obj
    out = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    for cand_obj, cand in zip(obj.candidates or [], out.get("candidates") or [], strict=False):
        parts_obj = (cand_obj.content.parts or []) if cand_obj.content else []
        wire_parts = (cand.get("content") or {}).get("parts") or []
        for part_obj, part in zip(parts_obj, wire_parts, strict=False):
            if part_obj.thought_signature:
                part["thoughtSignature"] = base64.b64encode(part_obj.thought_signature).decode()
    return out


def stream_events(responses: Iterable[Any]) -> Iterator[Event]:
    """``GenerateContentResponse`` chunks (``models.generate_content_stream``) → events.

    Introduced in lesson 2 (02_streaming).
    """
    return run_parser(wire.GeminiStreamParser(), responses, payload)


def stream_events_async(responses: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``stream_events`` (``aio.models.generate_content_stream``)."""
    return arun_parser(wire.GeminiStreamParser(), responses, payload)


def response_events(response: Any) -> list[Event]:
    """A non-streamed ``GenerateContentResponse`` → events. Introduced in lesson 1 (01_sdk_vs_http)."""
    return wire.parse_response(payload(response))


def contents(messages: list[dict]) -> list[dict]:
    """Neutral messages → google-genai ``contents``. Introduced in lesson 3 (03_function_calling)."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            part = {"function_response": {"name": m["name"], "response": tool_response(m)}}
            if out and out[-1]["role"] == "user" and all("function_response" in p for p in out[-1]["parts"]):
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
        elif role == "assistant":
            model_parts: list[dict] = [{"text": m["content"]}] if m.get("content") else []
            for c in m.get("tool_calls") or []:
                part = {"function_call": {"name": c.name, "args": safe_args(c)}}
                if c.signature:
                    part["thought_signature"] = base64.b64decode(c.signature)
                model_parts.append(part)
            out.append({"role": "model", "parts": model_parts})
        else:
            user_parts = []
            for p in parts(m["content"]):
                if p["type"] == "image":
                    user_parts.append({"inline_data": {"mime_type": p["media_type"], "data": p["data"]}})
                else:
                    user_parts.append({"text": p["text"]})
            out.append({"role": "user", "parts": user_parts})
    return out


class Gemini(Provider):
    name = "gemini"
    api_labels = {"generate": "generateContent", "batches": "batch mode", "embeddings": "the embeddings API",
                  "count_gemini": "countTokens",
                  "caches": "the context-cache API"}
    upstream = "https://generativelanguage.googleapis.com"
    key_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    wire = wire
    batch = _batch
    chat_api = "generate"
    tool_call_ids = False
    refuses_by_blocking = True
    # Google answers a request without any key 403 PERMISSION_DENIED
    no_key = (403, "Method doesn't allow unregistered callers (callers without established identity). Please use "
                   "API Key or other form of API consumer identity to call this API.")

    # --- as llmkit simulate answers ------------------------------------------------------------------
    def has_key(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        return bool(headers.get("x-goog-api-key") or query.get("key"))

    def cacheable_prefix(self, body: dict) -> str:
        """The system instruction (Gemini 2.5 caches implicitly from 1024 tokens)."""
        return json.dumps(body.get("systemInstruction")) if body.get("systemInstruction") else ""

    # --- HTTP surface ------------------------------------------------------------------------------
    def owns_path(self, path: str) -> bool:
        return PATH.match(path) is not None or CACHE_PATH.match(path) is not None or _batch.owns(path)

    def api_of(self, path: str) -> str:
        if CACHE_PATH.match(path):
            return "caches"
        if _batch.owns(path):
            return "batches"
        return {"countTokens": "count_gemini", "embedContent": "embeddings",
                "batchEmbedContents": "embeddings"}.get(method_of(path) or "", "generate")

    def wants_stream(self, path: str, query: dict[str, str], body: Any) -> bool:
        return method_of(path) == "streamGenerateContent"

    def stream_kind(self, path: str, query: dict[str, str]) -> str:
        # Without alt=sse (the legacy google-generativeai client) the stream is one JSON array.
        return "sse" if query.get("alt") == "sse" else "json-array"

    def model_of(self, path: str, body: Any) -> str:
        if CACHE_PATH.match(path):  # a cache names its model in the body ("models/gemini-2.5-flash")
            return str((body or {}).get("model", "") if isinstance(body, dict) else "").removeprefix("models/")
        return path.split("/models/")[1].split(":")[0] if "/models/" in path else ""

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key, "content-type": "application/json"}

    def prompt_of(self, body: Any) -> str:
        try:
            return "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
        except (KeyError, IndexError, TypeError):
            return ""

    # --- errors ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str | None = None, *, code: str | None = None) -> dict:
        msg = message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")
        return {"error": {"code": status, "message": msg, "status": code or _STATUS.get(status, "UNKNOWN")}}

    def error_event(self, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
        data = self.error_body(status, message)
        if kind == "json-array":
            return "," + json.dumps(data)
        return f"data: {json.dumps(data)}\r\n\r\n"

    def fault_response(self, fault: str, *, retry_after: float = 2.0) -> tuple[int, dict[str, str], dict]:
        with_delay = fault == "429+retry-after"
        fault = {"429+retry-after": "429", "529": "503"}.get(fault, fault)
        if fault == "quota":
            raise ValueError("Gemini has no quota error apart from 429 RESOURCE_EXHAUSTED: use RATE_LIMITED")
        status, grpc_status, message = _FAULTS[fault]
        body = self.error_body(status, message, code=grpc_status)
        if fault == "401":
            body["error"]["details"] = [_API_KEY_INVALID]
        if with_delay:
            body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                         "retryDelay": f"{retry_after:g}s"}]
        headers = self.error_headers(status)
        headers["content-type"] = "application/json; charset=UTF-8"  # as Google sends it
        return status, headers, body

    # --- parsing -----------------------------------------------------------------------------------
    def stream_parser(self, api: str | None = None, status: int = 200) -> Any:
        return wire.GeminiStreamParser(status)

    def usage_of(self, payloads: list[dict], model: str) -> tuple[str, int, int] | None:
        found, inp, out = False, 0, 0
        for ev in payloads:
            model = ev.get("modelVersion") or model
            use = ev.get("usageMetadata")
            if isinstance(use, dict) and not str(ev.get("name", "")).startswith("cachedContents/"):
                found = True  # (a CachedContent resource reports its size, not a call's usage)
                inp = use.get("promptTokenCount", 0) or 0
                out = (use.get("candidatesTokenCount", 0) or 0) + (use.get("thoughtsTokenCount", 0) or 0)
        return (model, int(inp), int(out)) if found else None

    def cache_usage_of(self, payloads: list[dict]) -> tuple[int, int]:
        """``usageMetadata.cachedContentTokenCount``: prompt tokens served from an implicit or explicit
        (``client.caches.create``) cache (lesson 6, 06_conversations); the API reports no write count."""
        cached = 0
        for ev in payloads:
            use = ev.get("usageMetadata")
            if isinstance(use, dict):
                cached = int(use.get("cachedContentTokenCount") or 0)
        return cached, 0

    # --- scripted replies --------------------------------------------------------------------------
    def render_scripted(self, req: Any, reply: Any, seed: str, query: dict[str, str]) -> Any:
        from llmkit.providers import _gemini_scripted as scripted
        from llmkit.providers._scripted import response, usage_of

        if req.api == "count_gemini":
            return response(200, {"content-type": "application/json"},
                            body={"totalTokens": usage_of(req, reply)[0]}, t_ms=90.0)
        if req.api == "generate":
            return scripted.generate(req, reply, seed, self.stream_kind(req.path, query))[0]
        if req.api == "caches":
            return scripted.cached_content(req, reply, seed)
        return None

    def scripted_frames(self, req: Any, reply: Any, seed: str) -> Any:
        from llmkit.providers import _gemini_scripted as scripted

        return scripted.generate(req, reply, seed, "sse")[1]

    # --- requests ------------------------------------------------------------------------------------
    def render_tools(self, tools: Iterable[Any]) -> Any:
        return [{"function_declarations": [{"name": n, "description": d, "parameters_json_schema": p}
                                           for n, d, p in map(tool_fields, tools)]}]

    def messages(self, messages_: list[dict], system: str | None = None) -> list[dict]:
        return contents(messages_)

    def request(self, model: str, messages_: list[dict], system: str | None, tools: Any, max_tokens: int,
                temperature: float | None) -> dict:
        config: dict[str, Any] = {"max_output_tokens": max_tokens}
        if system:
            config["system_instruction"] = system
        if tools:
            config["tools"] = self.render_tools(tools)
            config["automatic_function_calling"] = {"disable": True}
        if temperature is not None:
            config["temperature"] = temperature
        return {"model": model, "contents": contents(messages_), "config": config}

    def wire_request(self, kw: dict) -> Any:
        body = wire.genai_body(kw["contents"], kw["config"])
        return wire.generate_content_request(kw["model"], body.pop("contents"), stream=True, **body)

    def raw_request(self, model: str, text: str, *, stream: bool = False, api_key: str | None = None) -> Any:
        return wire.generate_content_request(model, text, stream=stream, api_key=api_key)

    # --- SDK -----------------------------------------------------------------------------------------
    def sdk_client(self, api_key: str, base_url: str, http: tuple[Any, Any] | None, *, is_async: bool) -> Any:
        from google import genai
        from google.genai import types

        opts: dict[str, Any] = {"base_url": base_url}
        if http:
            opts["httpx_client"], opts["httpx_async_client"] = http
        client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**opts))
        return client.aio if is_async else client

    def sdk_create(self, client: Any, kw: dict, *, stream: bool) -> Any:
        return client.models.generate_content_stream(**kw) if stream else client.models.generate_content(**kw)

    sdk_events = staticmethod(response_events)
    sdk_stream_events = staticmethod(stream_events)
    sdk_stream_events_async = staticmethod(stream_events_async)

    def structured(self, kit: Kit, schema: type, messages_: list[dict], system: str | None, model: str,
                   max_tokens: int) -> tuple[str, Any, Any]:
        from llmkit.structured import json_schema

        config: dict[str, Any] = {"response_mime_type": "application/json",
                                  "response_json_schema": json_schema(schema), "max_output_tokens": max_tokens}
        if system:
            config["system_instruction"] = system
        response = self.client(kit).models.generate_content(model=model, contents=contents(messages_),
                                                            config=config)
        c = collect(response_events(response))
        return c.text, None, c

    def count_tokens(self, kit: Kit, model: str, system: str | None, messages_: list[dict]) -> int | None:
        # The Gemini API's countTokens takes contents only (system_instruction is a Vertex AI option),
        # so the system prompt is sent as a leading user turn for counting: the same text, counted.
        turns = ([{"role": "user", "content": system}] if system else []) + messages_
        return self.client(kit).models.count_tokens(model=model, contents=contents(turns)).total_tokens

    def ping(self, kit: Kit, model: str, text: str) -> str:
        return self.client(kit).models.generate_content(model=model, contents=text).text

    def stream_texts(self, kit: Kit, model: str, text: str) -> Iterator[str]:
        for chunk in self.client(kit).models.generate_content_stream(model=model, contents=text):
            if chunk.text:
                yield chunk.text

    # --- images --------------------------------------------------------------------------------------
    @property
    def image_limits(self) -> Any:
        # ai.google.dev/gemini-api/docs/image-understanding: PNG, JPEG, WEBP, HEIC, HEIF (no GIF); inline data
        # must keep the whole request under 20 MB; larger images are tiled into 768x768 crops (258 tokens each).
        from llmkit.multimodal import JPEG, MB, PNG, WEBP, ImageLimits

        return ImageLimits(frozenset({PNG, JPEG, WEBP}), max_bytes=20 * MB * 3 // 4, max_edge=None,
                           fit_box=None, short_side=None, long_edge=None)

    def image_tokens(self, width: int, height: int, model: str = "") -> int:
        """Gemini 2.x: 258 tokens if both sides ≤ 384 px, else 258 per 768×768 tile."""
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)


PROVIDER = Gemini()
