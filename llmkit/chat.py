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
What differs per provider (message format, SDK call, stream mapping) lives in ``llmkit.providers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import providers
from .errors import ConfigError
from .events import Collected, Event, ToolCallComplete, Usage, collect
from .providers import anthropic as _anthropic
from .providers import gemini as _gemini
from .providers import openai as _openai

if TYPE_CHECKING:
    from .kit import Kit

__all__ = ["PROVIDERS", "VIAS", "ChatResult", "aclose_wire_client", "acomplete", "assistant", "astream", "complete",
           "gemini_contents", "render_tools", "stream", "tool_result", "user", "wire_client", "wire_request"]

PROVIDERS = providers.names()
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


# --- each provider's formats (kept here under the names lessons use) -----------------------------------
def render_tools(provider: str, tools: Iterable[Any]) -> Any:
    """Tools in ``provider``'s current format (OpenAI chat ``tools``, Anthropic ``input_schema``,
    Gemini ``function_declarations``). Introduced in lesson 3 (03_function_calling)."""
    return providers.get(provider).render_tools(tools)


openai_messages = _openai.messages
anthropic_messages = _anthropic.messages
gemini_contents = _gemini.contents


# --- the calls ---------------------------------------------------------------------------------------
def _request(kit: Kit, provider: str, messages: list[dict], system: str | None, model: str | None,
             tools: Any, max_tokens: int, temperature: float | None) -> tuple[str, dict]:
    p = providers.get(provider)
    model = model or kit.models[provider]
    return model, p.request(model, messages, system, tools, max_tokens, temperature)


def complete(kit: Kit, provider: str, messages: list[dict], *, system: str | None = None, model: str | None = None,
             tools: Any = None, max_tokens: int = 1024, temperature: float | None = None) -> ChatResult:
    """Ask ``provider`` and wait for the whole answer (lesson 3)."""
    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    return ChatResult.from_collected(provider, model, collect(providers.get(provider).complete(kit, kw)))


def stream(kit: Kit, provider: str, messages: list[dict], *, system: str | None = None, model: str | None = None,
           tools: Any = None, max_tokens: int = 1024, temperature: float | None = None) -> Iterator[Event]:
    """Ask ``provider`` and yield ``llmkit.events`` as they arrive (lesson 3). Closing the iterator
    closes the HTTP response, which cancels the request upstream."""
    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    yield from providers.get(provider).stream(kit, kw)


async def acomplete(kit: Kit, provider: str, messages: list[dict], *, system: str | None = None,
                    model: str | None = None, tools: Any = None, max_tokens: int = 1024,
                    temperature: float | None = None) -> ChatResult:
    """The async twin of :func:`complete` (lesson 9's relay server uses it)."""
    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    events = await providers.get(provider).acomplete(kit, kw)
    return ChatResult.from_collected(provider, model, collect(events))


async def astream(kit: Kit, provider: str, messages: list[dict], *, system: str | None = None,
                  model: str | None = None, tools: Any = None, max_tokens: int = 1024,
                  temperature: float | None = None, via: str = "sdk") -> AsyncIterator[Event]:
    """The async twin of :func:`stream`; cancelling the consumer closes the upstream response.

    ``via="sdk"`` (the default) streams through the official async SDKs; ``via="wire"`` posts the very
    body the SDK would send with one shared ``httpx2.AsyncClient`` (per kit and event loop) and feeds the
    bytes to the ``llmkit.wire`` stream parsers - the same events, without building an SDK object per
    chunk (lesson 9's relay server uses it; see ``llmkit.wire.transport``).
    """
    if via not in VIAS:
        raise ConfigError(f"via={via!r}: choose 'sdk' (the official SDKs) or 'wire' (raw HTTP with httpx2).")
    model, kw = _request(kit, provider, messages, system, model, tools, max_tokens, temperature)
    if via == "wire":
        from .wire.transport import astream_events

        events = astream_events(wire_client(kit), provider, wire_request(provider, kw), kit.base_url(provider),
                                headers=kit.headers(provider))
    else:
        events = providers.get(provider).astream(kit, kw)
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()  # closing this generator must close the HTTP response now, not at GC


# --- the raw-HTTP path (lesson 9) ------------------------------------------------------------------------
def wire_request(provider: str, kw: dict) -> Any:
    """The streaming ``WireRequest`` whose body is what the provider's SDK sends for ``kw`` (the keyword
    arguments :func:`_request` builds). Introduced in lesson 9 (09_sse_server)."""
    return providers.get(provider).wire_request(kw)


def wire_client(kit: Kit) -> Any:
    """The ``httpx2.AsyncClient`` :func:`astream` uses with ``via="wire"``: ``kit.http_client(is_async=True)``,
    one per kit and event loop (a client's connections belong to the loop that opened them). In live mode it
    reports to the usage ledger, so these calls are counted too. Introduced in lesson 9 (09_sse_server)."""
    return kit.http_client(is_async=True)


async def aclose_wire_client(kit: Kit) -> None:
    """Close the kit's wire client of the running event loop (if any), on that loop."""
    await kit.aclose_http_client()

