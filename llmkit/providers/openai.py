"""OpenAI, in one place: Chat Completions (what ``llmkit.chat`` uses) and the Responses API.

Introduced in lesson 3 (03_function_calling). OpenAI puts ``/v1`` in the base URL, authenticates with
``Authorization: Bearer``, streams ``data:`` chunks ending in ``[DONE]`` (usage only when asked for with
``stream_options``) and takes a tool call's arguments back as the text the model sent. Raw HTTP lives in
``_openai_wire`` (``llmkit.wire.openai`` to the lessons), scripted answers in ``_openai_scripted``.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llmkit.events import Event, collect
from llmkit.providers import _base
from llmkit.providers import _openai_batch as _batch
from llmkit.providers import _openai_wire as wire
from llmkit.providers._base import DEFAULT_MESSAGES, Provider, arun_parser, run_parser, sdk_dict, tool_fields

if TYPE_CHECKING:
    from ..kit import Kit

PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
#: ``client.responses.input_tokens.count`` (lesson 6): the request's input tokens, nothing generated.
COUNT_PATH = "/v1/responses/input_tokens"

_ERROR_TYPES = {
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

# Fault value (``llmkit.resilience.Fault``) → (status, message, type, code, param), from real responses.
_FAULTS: dict[str, tuple[int, str, str, str | None, str | None]] = {
    "429": (
        429,
        "Rate limit reached for gpt-4o-mini in organization org-llmkit on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests", "rate_limit_exceeded", None,
    ),
    "500": (500, "The server had an error while processing your request. Sorry about that!",
            "server_error", None, None),
    "503": (503, "The engine is currently overloaded, please try again later.", "server_error", None, None),
    "400": (400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                 "but got an empty array instead.", "invalid_request_error", "empty_array", "messages"),
    "401": (401, "Incorrect API key provided: sk-test. You can find your API key at "
                 "https://platform.openai.com/account/api-keys.", "invalid_request_error",
            "invalid_api_key", None),
    "quota": (429, "You exceeded your current quota, please check your plan and billing details. "
                   "For more information on this error, read the docs: "
                   "https://platform.openai.com/docs/guides/error-codes/api-errors.",
              "insufficient_quota", "insufficient_quota", None),
}


# --- SDK objects → events (``llmkit.wire.sdk_events`` re-exports these) -------------------------------
def chat_events(chunks: Iterable[Any]) -> Iterator[Event]:
    """``ChatCompletionChunk`` values (``chat.completions.create(stream=True)``) → events.

    Introduced in lesson 2 (02_streaming).
    """
    return run_parser(wire.ChatStreamParser(), chunks, sdk_dict)


def chat_events_async(chunks: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``chat_events``."""
    return arun_parser(wire.ChatStreamParser(), chunks, sdk_dict)


def responses_events(events: Iterable[Any]) -> Iterator[Event]:
    """Responses stream events (``responses.create(stream=True)`` or ``responses.stream()``) → events.

    Introduced in lesson 2 (02_streaming).
    """
    return run_parser(wire.ResponsesStreamParser(), events, sdk_dict)


def responses_events_async(events: AsyncIterable[Any]) -> AsyncIterator[Event]:
    """The async twin of ``responses_events``."""
    return arun_parser(wire.ResponsesStreamParser(), events, sdk_dict)


def response_events(obj: Any) -> list[Event]:
    """A non-streamed ``ChatCompletion`` or Responses ``Response`` → events.

    Introduced in lesson 1 (01_sdk_vs_http).
    """
    return wire.parse_response(sdk_dict(obj))


def messages(messages: list[dict], system: str | None = None) -> list[dict]:
    """Neutral messages → Chat Completions ``messages``. Introduced in lesson 3 (03_function_calling)."""
    out: list[dict] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        role = m["role"]
        if role == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
        elif role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
            if m.get("tool_calls"):
                msg["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}} for c in m["tool_calls"]]
            out.append(msg)
        elif isinstance(m["content"], str):
            out.append({"role": role, "content": m["content"]})
        else:
            content = _content(m["content"], lambda url: {"type": "image_url", "image_url": {"url": url}},
                               lambda text: {"type": "text", "text": text})
            out.append({"role": role, "content": content})
    return out


def _content(content: Any, image: Callable[[str], dict], text: Callable[[str], dict]) -> list[dict]:
    """A message's parts in one of OpenAI's two part formats (images as data URLs)."""
    return [image(f"data:{p['media_type']};base64,{_base.b64(p['data'])}") if p["type"] == "image"
            else text(p["text"]) for p in _base.parts(content)]


def responses_input(messages: list[dict]) -> list[dict]:
    """Neutral messages → Responses API ``input`` items (lesson 6, 06_conversations): text as is, images as
    ``input_image`` beside ``input_text``, tool calls and their results as their own items."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            out.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
        elif role == "assistant":
            if m.get("content"):
                out.append({"role": "assistant", "content": m["content"]})
            out += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                    for c in m.get("tool_calls") or []]
        elif isinstance(m["content"], str):
            out.append({"role": role, "content": m["content"]})
        else:
            content = _content(m["content"], lambda url: {"type": "input_image", "image_url": url, "detail": "auto"},
                               lambda text: {"type": "input_text", "text": text})
            out.append({"role": role, "content": content})
    return out


class OpenAI(Provider):
    name = "openai"
    api_labels = {"chat": "Chat Completions", "responses": "the Responses API", "embeddings": "the embeddings API",
                  "count_tokens": "the Responses token counter", "batches": "the Batch API",
                  "files": "the Files API"}
    upstream = "https://api.openai.com"
    key_vars = ("OPENAI_API_KEY",)
    wire = wire
    batch = _batch
    chat_api = "chat"
    tool_call_prefix = "call_"
    keeps_raw_tool_arguments = True
    no_key = (401, "You didn't provide an API key. You need to provide your API key in an Authorization header "
                   "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")

    # --- as llmkit simulate answers ------------------------------------------------------------------
    def cacheable_prefix(self, body: dict) -> str:
        """``instructions``, or a leading system/developer message (cached automatically from 1024 tokens)."""
        if body.get("instructions"):
            return str(body["instructions"])
        first = (body.get("messages") or [{}])[0]
        if isinstance(first, dict) and first.get("role") in ("system", "developer"):
            content = first.get("content")
            return content if isinstance(content, str) else json.dumps(content)
        return ""

    def cache_usage(self, tokens: int, seen: bool) -> tuple[int, int]:
        return (tokens // 128 * 128 if seen else 0), 0  # hits are reported in steps of 128 tokens

    # --- HTTP surface ------------------------------------------------------------------------------
    def owns_path(self, path: str) -> bool:
        return path in PATHS or path.startswith("/v1/responses/") or _batch.owns(path)

    def api_of(self, path: str) -> str:
        if _batch.owns(path):
            return "files" if path.startswith("/v1/files") else "batches"
        return {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings",
                COUNT_PATH: "count_tokens"}.get(path, "responses")

    def base_url(self, root: str) -> str:
        return f"{root}/v1"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}", "content-type": "application/json"}

    # --- errors ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str | None = None, *, code: str | None = None) -> dict:
        msg = message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")
        etype, ecode = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {"error": {"message": msg, "type": etype, "param": None, "code": code or ecode}}

    def error_event(self, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
        if path.startswith("/v1/responses"):
            data = {"type": "error", "code": "server_error", "message": message, "param": None,
                    "sequence_number": 0}
            return f"event: error\ndata: {json.dumps(data)}\n\n"
        return f"data: {json.dumps({'error': self.error_body(status, message)['error']})}\n\n"

    def fault_response(self, fault: str, *, retry_after: float = 2.0) -> tuple[int, dict[str, str], dict]:
        with_delay = fault == "429+retry-after"
        fault = {"429+retry-after": "429", "529": "503"}.get(fault, fault)  # OpenAI says 503 when overloaded
        status, message, type_, code, param = _FAULTS[fault]
        body = self.error_body(status, message, code=code)
        body["error"].update(type=type_, param=param)
        headers = self.error_headers(status, retry_after=max(1, round(retry_after)) if with_delay else None,
                                     retry_after_ms=int(retry_after * 1000) if with_delay else None)
        headers["x-request-id"] = "req_llmkit"
        if status == 429:
            headers.update({"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"})
        return status, headers, body

    # --- parsing -----------------------------------------------------------------------------------
    def stream_parser(self, api: str | None = None, status: int = 200) -> Any:
        if api in (None, "chat", "chat.completions"):
            return wire.ChatStreamParser(status)
        if api == "responses":
            return wire.ResponsesStreamParser(status)
        raise ValueError(f"no stream parser for provider='openai' api={api!r}; use 'chat' or 'responses'.")

    def usage_of(self, payloads: list[dict], model: str) -> tuple[str, int, int] | None:
        found, inp, out = False, 0, 0
        for ev in payloads:
            resp = ev.get("response") if isinstance(ev.get("response"), dict) else ev
            use = resp.get("usage")
            model = resp.get("model") or model
            if isinstance(use, dict):
                found = True
                inp = use.get("prompt_tokens", use.get("input_tokens", 0)) or 0
                out = use.get("completion_tokens", use.get("output_tokens", 0)) or 0
        return (model, int(inp), int(out)) if found else None

    def cache_usage_of(self, payloads: list[dict]) -> tuple[int, int]:
        """(tokens read from the prompt cache, tokens written to it): Chat Completions
        ``usage.prompt_tokens_details.cached_tokens`` or Responses ``usage.input_tokens_details.cached_tokens``;
        OpenAI caches automatically and charges nothing for writing (lesson 6, 06_conversations)."""
        cached = 0
        for ev in payloads:
            resp = ev.get("response") if isinstance(ev.get("response"), dict) else ev
            use = resp.get("usage")
            if isinstance(use, dict):
                details = use.get("prompt_tokens_details") or use.get("input_tokens_details") or {}
                cached = int(details.get("cached_tokens") or 0)
        return cached, 0

    # --- scripted replies --------------------------------------------------------------------------
    def render_scripted(self, req: Any, reply: Any, seed: str, query: dict[str, str]) -> Any:
        from llmkit.providers import _openai_scripted as scripted

        if req.api == "count_tokens":
            from llmkit.providers._scripted import response, usage_of

            return response(200, {"content-type": "application/json"},
                            body={"object": "response.input_tokens", "input_tokens": usage_of(req, reply)[0]},
                            t_ms=90.0)
        if req.api == "chat":
            return scripted.chat(req, reply, seed)[0]
        if req.api == "responses":
            return scripted.responses(req, reply, seed)
        return None

    def scripted_frames(self, req: Any, reply: Any, seed: str) -> Any:
        from llmkit.providers import _openai_scripted as scripted

        return scripted.chat(req, reply, seed)[1]

    # --- requests ------------------------------------------------------------------------------------
    def render_tools(self, tools: Iterable[Any]) -> Any:
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": p}}
                for n, d, p in map(tool_fields, tools)]

    def messages(self, messages_: list[dict], system: str | None = None) -> list[dict]:
        return messages(messages_, system)

    def request(self, model: str, messages_: list[dict], system: str | None, tools: Any, max_tokens: int,
                temperature: float | None) -> dict:
        kw: dict[str, Any] = {"model": model, "messages": messages(messages_, system),
                              "max_completion_tokens": max_tokens}
        if tools:
            kw["tools"] = self.render_tools(tools)
        if temperature is not None:
            kw["temperature"] = temperature
        return kw

    def wire_request(self, kw: dict) -> Any:
        return wire.chat_request(stream=True, **kw)

    def raw_request(self, model: str, text: str, *, stream: bool = False, api_key: str | None = None) -> Any:
        return wire.chat_request(model, text, stream=stream, api_key=api_key)

    # --- SDK -----------------------------------------------------------------------------------------
    def sdk_client(self, api_key: str, base_url: str, http: tuple[Any, Any] | None, *, is_async: bool) -> Any:
        import openai

        cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        extra = {"http_client": http[int(is_async)]} if http else {}
        return cls(api_key=api_key, base_url=base_url, **extra)

    def sdk_create(self, client: Any, kw: dict, *, stream: bool) -> Any:
        if stream:
            return client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
        return client.chat.completions.create(**kw)

    sdk_events = staticmethod(response_events)
    sdk_stream_events = staticmethod(chat_events)
    sdk_stream_events_async = staticmethod(chat_events_async)

    def structured(self, kit: Kit, schema: type, messages_: list[dict], system: str | None, model: str,
                   max_tokens: int) -> tuple[str, Any, Any]:
        from llmkit.structured import strict_schema

        response_format = {"type": "json_schema",
                           "json_schema": {"name": schema.__name__, "schema": strict_schema(schema), "strict": True}}
        response = self.client(kit).chat.completions.create(
            model=model, messages=messages(messages_, system), max_completion_tokens=max_tokens,
            response_format=response_format)
        c = collect(response_events(response))
        return c.text, None, c

    def count_tokens(self, kit: Kit, model: str, system: str | None, messages_: list[dict]) -> int | None:
        """``client.responses.input_tokens.count`` (lesson 6, 06_conversations): OpenAI's counting endpoint,
        for the same conversation sent as Responses ``input`` items."""
        kw: dict[str, Any] = {"instructions": system} if system else {}
        return self.client(kit).responses.input_tokens.count(
            model=model, input=responses_input(messages_), **kw).input_tokens

    def ping(self, kit: Kit, model: str, text: str) -> str:
        return self.client(kit).chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]).choices[0].message.content

    def stream_texts(self, kit: Kit, model: str, text: str) -> Iterator[str]:
        for chunk in self.client(kit).chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    # --- images --------------------------------------------------------------------------------------
    # platform.openai.com/docs/guides/images-vision ("Calculating costs"): two image rules, by model family.
    # Patch models cut the image into 32x32 px patches; above 1536 patches the image is shrunk (aspect kept,
    # then to whole patches) until it fits, and the patch count is multiplied by a per-model factor. Tile
    # models fit the image in 2048x2048, scale its short side to 768 px, and bill 85 + 170 per 512 px tile.
    PATCH_MODELS: dict[str, float] = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72}

    def _patch_multiplier(self, model: str) -> float | None:
        if not model:
            from llmkit.models import MODELS

            model = MODELS[self.name]
        return next((m for name, m in self.PATCH_MODELS.items() if model.startswith(name)), None)

    @property
    def image_limits(self) -> Any:
        """The image rule of the kit's OpenAI model (``llmkit.models.OPENAI_MODEL``)."""
        return self.image_limits_for("")

    def image_limits_for(self, model: str) -> Any:
        """The image rule of ``model``'s family (lesson 5, 05_multimodal): patch or tile, see above.

        Both: PNG, JPEG, WEBP, non-animated GIF; up to 50 MB of image payload per request.
        """
        from llmkit.multimodal import GIF, JPEG, MB, PNG, WEBP, ImageLimits

        formats, max_bytes = frozenset({PNG, JPEG, GIF, WEBP}), 50 * MB * 3 // 4
        if self._patch_multiplier(model) is not None:
            return ImageLimits(formats, max_bytes=max_bytes, max_edge=None, fit_box=None, short_side=None,
                               long_edge=None, max_patches=1536, patch_px=32)
        return ImageLimits(formats, max_bytes=max_bytes, max_edge=None, fit_box=2048, short_side=768,
                           long_edge=None)

    def image_tokens(self, width: int, height: int, model: str = "") -> int:
        """Patch models (gpt-4.1-mini / gpt-4.1-nano / o4-mini): 32 px patches after the fit to 1536 patches,
        × 1.62 / 2.46 / 1.72; tile models (gpt-4o, gpt-4.1): 85 + 170 per 512 px tile after the 2048 / 768
        scaling. ``model=""`` means the kit's OpenAI model."""
        from llmkit.multimodal import target_size

        w, h = target_size(width, height, self.name, model or None)
        mult = self._patch_multiplier(model)
        if mult is not None:
            return math.ceil(math.ceil(w / 32) * math.ceil(h / 32) * mult)
        return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


PROVIDER = OpenAI()
