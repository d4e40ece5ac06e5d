"""One way to talk to any of the three providers, over their official SDKs (lesson 3; later lessons use it).

The lessons show the SDK calls themselves; this module is what they build once those calls are
understood, so later lessons (memory, conversations, errors, the relay server) can say "ask a model"
without repeating three SDKs each time::

    result = chat.complete(kit, "anthropic", [user("What is SSE?")], system="Be brief.")
    for event in chat.stream(kit, "gemini", [user("Explain backoff.")]):
        ...

Messages are provider-neutral dicts:

    {"role": "user", "content": "text" | [{"type": "text", "text": ...},
                                          {"type": "image", "data": b"...", "media_type": "image/png"}]}
    {"role": "assistant", "content": "text", "tool_calls": [ToolCallComplete, ...]}
    {"role": "tool", "tool_call_id": "...", "name": "...", "content": "result text", "is_error": False}

Tools are dicts ``{"name", "description", "parameters"}`` (a JSON schema) or any object with those
attributes (``llmkit.tools.Tool``). Every result, streamed or not, is built from ``llmkit.events``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .events import Collected, Event, ToolCallComplete, Usage, collect

PROVIDERS = ("openai", "anthropic", "gemini")
VIAS = ("sdk", "wire")


def user(content: Any) -> dict:
    """A user message (text or a list of parts)."""
    return {"role": "user", "content": content}


def assistant(content: str, tool_calls: Iterable[ToolCallComplete] = ()) -> dict:
    return {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}


def tool_result(call: ToolCallComplete, content: str, *, is_error: bool = False) -> dict:
    """The answer to a tool call, to send back to the model."""
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content, "is_error": is_error}


@dataclass(frozen=True)
class ChatResult:
    """What a model answered: the same shape for every provider, streamed or not."""

    provider: str
    model: str
    text: str
    tool_calls: tuple[ToolCallComplete, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    thinking: str = ""
    refusal: str = ""
    errors: tuple[Any, ...] = field(default_factory=tuple)

    @classmethod
    def from_collected(cls, provider: str, model: str, c: Collected) -> ChatResult:
        return cls(provider, model, c.text, c.tool_calls, c.usage, c.finish_reason, c.thinking, c.refusal,
                   c.errors)

    def as_message(self) -> dict:
        """This answer as an assistant message for the history."""
        return assistant(self.text, self.tool_calls)


# --- tools -----------------------------------------------------------------------------------------
def _tool_fields(tool: Any) -> tuple[str, str, dict]:
    if isinstance(tool, dict):
        return tool["name"], tool.get("description", ""), tool.get("parameters") or {"type": "object",
                                                                                      "properties": {}}
    return tool.name, tool.description, tool.parameters


def render_tools(provider: str, tools: Iterable[Any]) -> Any:
    """Tools in ``provider``'s current format (OpenAI chat ``tools``, Anthropic ``input_schema``,
    Gemini ``function_declarations``)."""
    fields = [_tool_fields(t) for t in tools]
    if provider == "openai":
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": p}} for n, d, p in fields]
    if provider == "anthropic":
        return [{"name": n, "description": d, "input_schema": p} for n, d, p in fields]
    return [{"function_declarations": [{"name": n, "description": d, "parameters_json_schema": p}
                                       for n, d, p in fields]}]


# --- messages per provider -------------------------------------------------------------------------
def _parts(content: Any) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def openai_messages(messages: list[dict], system: str | None = None) -> list[dict]:
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
            parts = []
            for p in _parts(m["content"]):
                if p["type"] == "image":
                    url = f"data:{p['media_type']};base64,{_b64(p['data'])}"
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    parts.append({"type": "text", "text": p["text"]})
            out.append({"role": role, "content": parts})
    return out


def anthropic_messages(messages: list[dict]) -> list[dict]:
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
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _safe_args(c)}
                       for c in m.get("tool_calls") or []]
            out.append({"role": "assistant", "content": blocks if m.get("tool_calls") else m.get("content", "")})
        elif isinstance(m["content"], str):
            out.append({"role": "user", "content": m["content"]})
        else:
            blocks = []
            for p in _parts(m["content"]):
                if p["type"] == "image":
                    blocks.append({"type": "image", "source": {"type": "base64", "media_type": p["media_type"],
                                                               "data": _b64(p["data"])}})
                else:
                    blocks.append({"type": "text", "text": p["text"]})
            out.append({"role": "user", "content": blocks})
    return out


def gemini_contents(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            part = {"function_response": {"name": m["name"], "response": _tool_response(m)}}
            if out and out[-1]["role"] == "user" and all("function_response" in p for p in out[-1]["parts"]):
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
        elif role == "assistant":
            parts: list[dict] = [{"text": m["content"]}] if m.get("content") else []
            for c in m.get("tool_calls") or []:
                part = {"function_call": {"name": c.name, "args": _safe_args(c)}}
                if c.signature:
                    part["thought_signature"] = base64.b64decode(c.signature)
                parts.append(part)
            out.append({"role": "model", "parts": parts})
        else:
            parts = []
            for p in _parts(m["content"]):
                if p["type"] == "image":
                    parts.append({"inline_data": {"mime_type": p["media_type"], "data": p["data"]}})
                else:
                    parts.append({"text": p["text"]})
            out.append({"role": "user", "parts": parts})
    return out


def _safe_args(call: ToolCallComplete) -> Any:
    """A call's arguments as an object; malformed JSON (a model mistake) is sent back as ``{}`` — the
    tool result that answers the call carries the error that explains it."""
    try:
        value = call.args()
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _tool_response(m: dict) -> dict:
    try:
        value = json.loads(m["content"])
    except (TypeError, json.JSONDecodeError):
        value = m["content"]
    if m.get("is_error"):
        return value if isinstance(value, dict) and "error" in value else {"error": value}
    return value if isinstance(value, dict) else {"result": value}


# --- the calls ---------------------------------------------------------------------------------------
def _check(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}.")


def _request(kit: Any, provider: str, messages: list[dict], system: str | None, model: str | None,
             tools: Any, max_tokens: int, temperature: float | None) -> tuple[str, dict]:
    _check(provider)
    model = model or kit.models[provider]
    if provider == "openai":
        kw: dict[str, Any] = {"model": model, "messages": openai_messages(messages, system),
                              "max_completion_tokens": max_tokens}
        if tools:
            kw["tools"] = render_tools("openai", tools)
    elif provider == "anthropic":
        kw = {"model": model, "max_tokens": max_tokens, "messages": anthropic_messages(messages)}
        if system:
            kw["system"] = system
        if tools:
            kw["tools"] = render_tools("anthropic", tools)
    else:
        config: dict[str, Any] = {"max_output_tokens": max_tokens}
        if system:
            config["system_instruction"] = system
        if tools:
            config["tools"] = render_tools("gemini", tools)
            config["automatic_function_calling"] = {"disable": True}
        if temperature is not None:
            config["temperature"] = temperature
        return model, {"model": model, "contents": gemini_contents(messages), "config": config}
    if temperature is not None:
        if provider == "anthropic":
            raise ConfigError("the anthropic SDK pinned here (2.14) has no `temperature` parameter on "
                              "messages.create; leave temperature=None for anthropic.")
        kw["temperature"] = temperature
    return model, kw


def complete(kit: Any, provider: str, messages: list[dict], *, system: str | None = None, model: str | None = None,
             tools: Any = None, max_tokens: int = 1024, temperature: float | None = None) -> ChatResult:
    """Ask ``provider`` and wait for the whole answer (lesson 3)."""
    from .wire import sdk_events

    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    if provider == "openai":
        events = sdk_events.openai_response_events(kit.openai.chat.completions.create(**kw))
    elif provider == "anthropic":
        events = sdk_events.anthropic_message_events(kit.anthropic.messages.create(**kw))
    else:
        events = sdk_events.gemini_response_events(kit.gemini.models.generate_content(**kw))
    return ChatResult.from_collected(provider, model, collect(events))


def stream(kit: Any, provider: str, messages: list[dict], *, system: str | None = None, model: str | None = None,
           tools: Any = None, max_tokens: int = 1024, temperature: float | None = None) -> Iterator[Event]:
    """Ask ``provider`` and yield ``llmkit.events`` as they arrive (lesson 3). Closing the iterator
    closes the HTTP response, which cancels the request upstream."""
    from .wire import sdk_events

    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    if provider == "openai":
        response = kit.openai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
        try:
            yield from sdk_events.openai_chat_events(response)
        finally:
            response.close()
    elif provider == "anthropic":
        response = kit.anthropic.messages.create(**kw, stream=True)
        try:
            yield from sdk_events.anthropic_events(response)
        finally:
            response.close()
    else:
        chunks = kit.gemini.models.generate_content_stream(**kw)
        try:
            yield from sdk_events.gemini_events(chunks)
        finally:
            chunks.close()


async def acomplete(kit: Any, provider: str, messages: list[dict], *, system: str | None = None,
                    model: str | None = None, tools: Any = None, max_tokens: int = 1024,
                    temperature: float | None = None) -> ChatResult:
    """The async twin of :func:`complete` (lesson 9's relay server uses it)."""
    from .wire import sdk_events

    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    if provider == "openai":
        events = sdk_events.openai_response_events(await kit.openai_async.chat.completions.create(**kw))
    elif provider == "anthropic":
        events = sdk_events.anthropic_message_events(await kit.anthropic_async.messages.create(**kw))
    else:
        events = sdk_events.gemini_response_events(await kit.gemini.aio.models.generate_content(**kw))
    return ChatResult.from_collected(provider, model, collect(events))


async def astream(kit: Any, provider: str, messages: list[dict], *, system: str | None = None,
                  model: str | None = None, tools: Any = None, max_tokens: int = 1024,
                  temperature: float | None = None, via: str = "sdk") -> AsyncIterator[Event]:
    """The async twin of :func:`stream`; cancelling the consumer closes the upstream response.

    ``via="sdk"`` (the default) streams through the official async SDKs; ``via="wire"`` posts the very
    body the SDK would send with one shared ``httpx2.AsyncClient`` (per kit and event loop) and feeds the
    bytes to the ``llmkit.wire`` stream parsers - the same events, without building an SDK object per
    chunk (lesson 9's relay server uses it; see ``llmkit.wire.transport``).
    """
    from .wire import sdk_events

    if via not in VIAS:
        raise ConfigError(f"via={via!r}: choose 'sdk' (the official SDKs) or 'wire' (raw HTTP with httpx2).")
    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    if via == "wire":
        from .wire.transport import astream_events

        events = astream_events(wire_client(kit), provider, wire_request(provider, kw), kit.base_url(provider),
                                headers=kit.headers(provider))
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # closing this generator must close the HTTP response now, not at GC
        return
    if provider == "openai":
        response = await kit.openai_async.chat.completions.create(**kw, stream=True,
                                                                  stream_options={"include_usage": True})
        try:
            async for event in sdk_events.openai_chat_events_async(response):
                yield event
        finally:
            await response.close()
    elif provider == "anthropic":
        response = await kit.anthropic_async.messages.create(**kw, stream=True)
        try:
            async for event in sdk_events.anthropic_events_async(response):
                yield event
        finally:
            await response.close()
    else:
        chunks = await kit.gemini.aio.models.generate_content_stream(**kw)
        try:
            async for event in sdk_events.gemini_events_async(chunks):
                yield event
        finally:
            await chunks.aclose()


# --- the raw-HTTP path (lesson 9) ------------------------------------------------------------------------
def wire_request(provider: str, kw: dict) -> Any:
    """The streaming ``WireRequest`` whose body is what the provider's SDK sends for ``kw`` (the keyword
    arguments :func:`_request` builds). Introduced in lesson 9 (09_sse_server)."""
    from .wire import anthropic, gemini, openai

    if provider == "openai":
        return openai.chat_request(stream=True, **kw)
    if provider == "anthropic":
        return anthropic.messages_request(stream=True, **kw)
    body = gemini.genai_body(kw["contents"], kw["config"])
    return gemini.generate_content_request(kw["model"], body.pop("contents"), stream=True, **body)


def wire_client(kit: Any) -> Any:
    """The ``httpx2.AsyncClient`` :func:`astream` uses with ``via="wire"``: one per kit and event loop
    (a client's connections belong to the loop that opened them). In live mode it is the kit's observing
    client, so the usage ledger sees these calls too. Introduced in lesson 9 (09_sse_server)."""
    import asyncio
    import weakref

    from .wire.transport import new_async_client

    if kit.mode == "live":
        return kit._live_http[1]
    clients = kit.__dict__.setdefault("_wire_clients", weakref.WeakKeyDictionary())
    loop = asyncio.get_running_loop()
    client = clients.get(loop)
    if client is None:
        client = clients[loop] = new_async_client()
    return client


async def aclose_wire_client(kit: Any) -> None:
    """Close the kit's wire client of the running event loop (if any), on that loop."""
    import asyncio

    client = (kit.__dict__.get("_wire_clients") or {}).pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()

