"""What every provider module provides, and the small helpers they share.

Introduced in lesson 3 (03_function_calling): ``llmkit.chat`` and the replay server ask a
:class:`Provider` instead of branching on the provider's name, so adding a provider is one module.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llmkit.events import Event, ToolCallComplete
from llmkit.wire._base import StreamParser, WireRequest

if TYPE_CHECKING:
    from ..kit import Kit


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


class Provider(ABC):
    """One provider's HTTP surface, wire formats, SDK and quirks. Introduced in lesson 3 (03_function_calling).

    Subclasses set ``name`` and implement the abstract methods; the defaults below are what most
    providers do (a JSON body with ``"stream": true`` asks for an SSE stream).
    """

    name: str
    #: The provider's raw-HTTP module (request builders, parsers): ``llmkit.wire.<name>``.
    wire: ModuleType
    #: The API ``llmkit.chat`` and scripted answers use (``chat``, ``messages``, ``generate``).
    chat_api: str
    #: Where the provider lives (live mode, and record mode's upstream by default).
    upstream: str
    #: The environment variables that may hold the API key, in the order they are looked up.
    key_vars: tuple[str, ...]
    #: Prefix of the tool-call ids this provider makes up (``call_``, ``toolu_01``).
    tool_call_prefix: str = "call_"
    #: Whether a tool call's arguments go back into the history as the text the model sent
    #: (OpenAI) rather than as a parsed object (which malformed JSON cannot be).
    keeps_raw_tool_arguments: bool = False
    #: Whether tool calls carry ids (Gemini's function calls have none).
    tool_call_ids: bool = True
    #: Whether a refusal arrives as a blocked answer (finish reason ``SAFETY``, no text) rather than as text.
    refuses_by_blocking: bool = False
    #: Whether the model often says a sentence before its tool calls (Claude does): the simulator imitates it.
    talks_before_tools: bool = False
    #: Status and message of the provider's answer to a request that carries no key (``llmkit simulate``).
    no_key: tuple[int, str] = (401, "No API key was provided.")
    #: The shortest prefix, in tokens, that the provider's prompt cache keeps (lesson 6, 06_conversations).
    cache_min_tokens: int = 1024

    # --- what llmkit simulate needs to answer as the provider would -----------------------------------
    def has_key(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        """Whether a request carries a key where this provider reads it (``Authorization: Bearer``)."""
        return bool(_bearer(headers))

    def cache_minimum(self, model: str) -> int:
        """The shortest cacheable prefix for ``model``, in tokens."""
        return self.cache_min_tokens

    def cacheable_prefix(self, body: dict) -> str:
        """The stable text of a request that the provider's prompt cache may keep; empty when none qualifies."""
        return ""

    def cache_usage(self, tokens: int, seen: bool) -> tuple[int, int]:
        """(tokens read from the cache, tokens written to it) for a cacheable prefix of ``tokens``."""
        return (tokens if seen else 0), 0

    def __repr__(self) -> str:
        return f"<provider {self.name}>"

    # --- HTTP surface ------------------------------------------------------------------------------
    @abstractmethod
    def owns_path(self, path: str) -> bool:
        """Is ``path`` (without query string) one of this provider's API endpoints?"""

    @abstractmethod
    def api_of(self, path: str) -> str:
        """Which API of the provider ``path`` calls (``chat``, ``messages``, ``generate`` ...)."""

    #: A reader's name for each API of :meth:`api_of`, for messages (``the Responses API``).
    api_labels: dict[str, str] = {}

    def describe_api(self, path: str) -> str:
        """The API ``path`` calls, named for a reader (lesson 0's live-mode messages)."""
        api = self.api_of(path)
        return self.api_labels.get(api, f"the {api} API")

    def wants_stream(self, path: str, query: dict[str, str], body: Any) -> bool:
        """Does this request ask for a streamed response?"""
        return isinstance(body, dict) and bool(body.get("stream"))

    def stream_kind(self, path: str, query: dict[str, str]) -> str:
        """``sse`` or ``json-array`` (the framing of this request's stream)."""
        return "sse"

    def model_of(self, path: str, body: Any) -> str:
        """The model a request asks for."""
        return (body or {}).get("model", "") if isinstance(body, dict) else ""

    def base_url(self, root: str) -> str:
        """The SDK/raw-HTTP base URL for a server at ``root``."""
        return root

    @abstractmethod
    def auth_headers(self, key: str) -> dict[str, str]:
        """Auth and version headers for raw HTTP calls."""

    def prompt_of(self, body: Any) -> str:
        """The text of the last user message in a request body."""
        try:
            content = body["messages"][-1]["content"]
        except (KeyError, IndexError, TypeError):
            return ""
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))

    # --- batch APIs (lesson 11, 11_cost_and_latency) -------------------------------------------------
    #: The provider's batch module (``_<name>_batch``: its ``Desk`` and the functions below), or None.
    batch: ModuleType | None = None

    def batch_desk(self, answer: Any, *, clock: Any = None, seed: str = "") -> Any:
        """A fresh :class:`~llmkit.providers._batch.BatchDesk` answering this provider's batch API, whose
        inner requests ``answer(api_path, body)`` answers; None when the provider has no batch API."""
        return None if self.batch is None else self.batch.Desk(answer, clock=clock, seed=seed, upstream=self.upstream)

    def batch_created(self, method: str, path: str, body: Any) -> str | None:
        """The id of the batch a response ``body`` to ``method path`` has just created, else None."""
        return None if self.batch is None else self.batch.batch_created(method, path, body)

    def batch_polled(self, method: str, path: str) -> str | None:
        """The id of the batch ``method path`` asks the state of (a poll), else None."""
        return None if self.batch is None else self.batch.batch_polled(method, path)

    def batch_seconds(self, body: Any) -> float | None:
        """For a poll's answer that shows the batch ended: seconds from its creation to its end."""
        return None if self.batch is None else self.batch.batch_seconds(body)

    def batch_results(self, path: str, body: bytes) -> tuple[str, list[dict]] | None:
        """For a download of an ended batch's results: (the batch or file it belongs to, the response body
        of each request that succeeded), which the usage ledger prices at the batch rate; else None."""
        return None if self.batch is None else self.batch.batch_results(path, body)

    def localize(self, body: bytes, here: str) -> bytes:
        """A response body with the provider's own absolute URLs pointed at ``here`` (the local server),
        so an SDK that follows one (Anthropic's ``results_url``) stays on loopback."""
        localize = getattr(self.batch, "localize", None)
        return body if localize is None else localize(body, here)

    # --- errors ----------------------------------------------------------------------------------
    @abstractmethod
    def error_body(self, status: int, message: str | None = None, *, code: str | None = None) -> dict:
        """The JSON error body sent with ``status`` (shape taken from real recordings)."""

    def error_headers(self, status: int, retry_after: float | None = None,
                      retry_after_ms: float | None = None) -> dict[str, str]:
        """Headers of an error response, including the retry hints the SDKs honour."""
        headers = {"content-type": "application/json"}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = f"{retry_after_ms:g}"
        return headers

    @abstractmethod
    def error_event(self, path: str, message: str, status: int = 500, *, kind: str = "sse") -> str:
        """An error delivered *inside* a stream, framed the way this provider frames it."""

    @abstractmethod
    def fault_response(self, fault: str, *, retry_after: float = 2.0) -> tuple[int, dict[str, str], dict]:
        """(status, headers, body) this provider sends for a ``llmkit.resilience.Fault``."""

    def stream_fault_event(self, fault: str) -> str | None:
        """The in-stream error frame this provider sends for a mid-stream ``fault``; None: the
        connection just drops (what OpenAI and Gemini do)."""
        return None

    def parse_error_body(self, status: int | None, body: bytes) -> Any:
        """An error body → ``ProviderError``."""
        return self.wire.parse_error_body(status, body)

    # --- parsing -----------------------------------------------------------------------------------
    @abstractmethod
    def stream_parser(self, api: str | None = None, status: int = 200) -> StreamParser:
        """A fresh stream parser (``api`` picks among the provider's APIs)."""

    def parse_response(self, body: Any) -> list[Event]:
        """A non-streamed body → events."""
        return self.wire.parse_response(body)

    @abstractmethod
    def usage_of(self, payloads: list[dict], model: str) -> tuple[str, int, int] | None:
        """(model, input tokens, output tokens) from a response's JSON payloads, or None."""

    def cache_usage_of(self, payloads: list[dict]) -> tuple[int, int]:
        """(input tokens read from the prompt cache, input tokens written to it), both part of the input
        tokens ``usage_of`` reports (lesson 6, 06_conversations). Providers without a cache report (0, 0)."""
        return 0, 0

    # --- scripted replies --------------------------------------------------------------------------
    @abstractmethod
    def render_scripted(self, req: Any, reply: Any, seed: str, query: dict[str, str]) -> Any:
        """A ``llmkit.replay.scripted.Reply`` as this provider's exact ``RecordedResponse``."""

    def scripted_answer(self, text: str, model: str) -> Any:
        """A non-streamed answer ``text`` (the fault injector's: 8 input tokens, one per word out)."""
        from llmkit.providers._scripted import FaultReply, FaultRequest

        request = FaultRequest(model, False, api=self.chat_api)
        return self.render_scripted(request, FaultReply([text]), f"{self.name}:{text}", {})

    def scripted_stream(self, chunks: list[str], model: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """A streamed answer of ``chunks``: the frames before the text, one per chunk, the frames after."""
        from llmkit.providers._scripted import FaultReply, FaultRequest

        reply = FaultReply(chunks)
        request = FaultRequest(model, True, api=self.chat_api)
        return self.scripted_frames(request, reply, f"{self.name}:{reply.text}").parts()

    @abstractmethod
    def scripted_frames(self, req: Any, reply: Any, seed: str) -> Any:
        """The ``_scripted.Frames`` of a streamed ``chat_api`` answer (SSE)."""

    # --- requests ------------------------------------------------------------------------------------
    @abstractmethod
    def render_tools(self, tools: Iterable[Any]) -> Any:
        """Tools in this provider's format."""

    @abstractmethod
    def messages(self, messages: list[dict], system: str | None = None) -> list[dict]:
        """Provider-neutral messages in this provider's format (what the SDK call receives)."""

    @abstractmethod
    def request(self, model: str, messages: list[dict], system: str | None, tools: Any, max_tokens: int,
                temperature: float | None) -> dict:
        """The SDK keyword arguments of one chat turn."""

    @abstractmethod
    def wire_request(self, kw: dict) -> WireRequest:
        """The streaming raw-HTTP request whose body is what the SDK sends for ``kw``."""

    @abstractmethod
    def raw_request(self, model: str, text: str, *, stream: bool = False, api_key: str | None = None) -> WireRequest:
        """The smallest raw-HTTP request asking ``text`` (lesson 1's side-by-side, lesson 10's bench)."""

    # --- SDK -----------------------------------------------------------------------------------------
    @abstractmethod
    def sdk_client(self, api_key: str, base_url: str, http: tuple[Any, Any] | None, *, is_async: bool) -> Any:
        """The official SDK client; ``http`` is a (sync, async) pair of httpx clients to use, if any."""

    def client(self, kit: Kit, *, is_async: bool = False) -> Any:
        """The kit's SDK client for this provider (``kit.openai``, ``kit.anthropic_async`` ...)."""
        return getattr(kit, self.name + ("_async" if is_async else ""))

    @abstractmethod
    def sdk_create(self, client: Any, kw: dict, *, stream: bool) -> Any:
        """The SDK call of one chat turn (``kw`` from :meth:`request`); awaitable on an async client."""

    @abstractmethod
    def sdk_events(self, response: Any) -> list[Event]:
        """A non-streamed SDK response → events."""

    @abstractmethod
    def sdk_stream_events(self, response: Iterable[Any]) -> Iterator[Event]:
        """A streamed SDK response → events."""

    @abstractmethod
    def sdk_stream_events_async(self, response: AsyncIterable[Any]) -> AsyncIterator[Event]:
        """The async twin of :meth:`sdk_stream_events`."""

    def complete(self, kit: Kit, kw: dict) -> list[Event]:
        """One non-streamed SDK call → events."""
        return self.sdk_events(self.sdk_create(self.client(kit), kw, stream=False))

    def stream(self, kit: Kit, kw: dict) -> Iterator[Event]:
        """One streamed SDK call → events; closing the iterator closes the response."""
        response = self.sdk_create(self.client(kit), kw, stream=True)
        try:
            yield from self.sdk_stream_events(response)
        finally:
            response.close()

    async def acomplete(self, kit: Kit, kw: dict) -> list[Event]:
        """The async twin of :meth:`complete`."""
        return self.sdk_events(await self.sdk_create(self.client(kit, is_async=True), kw, stream=False))

    async def astream(self, kit: Kit, kw: dict) -> AsyncIterator[Event]:
        """The async twin of :meth:`stream`."""
        response = await self.sdk_create(self.client(kit, is_async=True), kw, stream=True)
        try:
            async for event in self.sdk_stream_events_async(response):
                yield event
        finally:
            # SDK streams close with close(); google-genai's async stream is an async generator
            await (getattr(response, "aclose", None) or response.close)()

    @abstractmethod
    def structured(self, kit: Kit, schema: type, messages: list[dict], system: str | None, model: str,
                   max_tokens: int) -> tuple[str, ToolCallComplete | None, Any]:
        """Ask for JSON matching the pydantic model ``schema`` (lesson 4, 04_structured_output):
        (raw JSON text, the forcing tool call if any, collected events)."""

    def count_tokens(self, kit: Kit, model: str, system: str | None, messages: list[dict]) -> int | None:
        """The provider's own token count of a request, or None where it has none."""
        return None

    @abstractmethod
    def ping(self, kit: Kit, model: str, text: str) -> str:
        """A tiny non-streamed SDK call, as a lesson writes it; returns the answer text."""

    @abstractmethod
    def stream_texts(self, kit: Kit, model: str, text: str) -> Iterator[str]:
        """A streamed SDK call, as a lesson writes it; yields the text pieces."""

    # --- images --------------------------------------------------------------------------------------
    image_limits: Any = None

    def image_limits_for(self, model: str) -> Any:
        """The image rule for ``model`` (lesson 5); one rule for every model unless a provider overrides."""
        return self.image_limits

    @abstractmethod
    def image_tokens(self, width: int, height: int, model: str = "") -> int:
        """The provider's documented image-token formula."""


# --- shared helpers -----------------------------------------------------------------------------------
#: The message of an error body when none is given, by HTTP status.
DEFAULT_MESSAGES = {
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


def tool_fields(tool: Any) -> tuple[str, str, dict]:
    """(name, description, JSON schema) of a tool dict or ``llmkit.tools.Tool``."""
    if isinstance(tool, dict):
        return tool["name"], tool.get("description", ""), tool.get("parameters") or {"type": "object",
                                                                                      "properties": {}}
    return tool.name, tool.description, tool.parameters


def parts(content: Any) -> list[dict]:
    """A message's content as a list of parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def safe_args(call: ToolCallComplete) -> Any:
    """A call's arguments as an object; malformed JSON (a model mistake) is sent back as ``{}`` — the
    tool result that answers the call carries the error that explains it."""
    try:
        value = call.args()
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def tool_response(m: dict) -> dict:
    """A tool result message's content as the object Gemini-style APIs take back."""
    try:
        value = json.loads(m["content"])
    except (TypeError, json.JSONDecodeError):
        value = m["content"]
    if m.get("is_error"):
        return value if isinstance(value, dict) and "error" in value else {"error": value}
    return value if isinstance(value, dict) else {"result": value}


def sdk_dict(obj: Any) -> Any:
    """openai / anthropic model → its JSON payload (API field names, unset fields left out)."""
    return obj if isinstance(obj, dict) else obj.to_dict(mode="json", warnings=False)


def run_parser(parser: StreamParser, items: Iterable[Any], to_payload: Any) -> Iterator[Event]:
    """Feed SDK stream objects (as their JSON payloads) to the raw-HTTP stream parser."""
    for item in items:
        yield from parser.feed_payload(to_payload(item), getattr(item, "type", None))
    yield from parser.finalize(at_close=True)


async def arun_parser(parser: StreamParser, items: AsyncIterable[Any], to_payload: Any) -> AsyncIterator[Event]:
    """The async twin of :func:`run_parser`."""
    async for item in items:
        for event in parser.feed_payload(to_payload(item), getattr(item, "type", None)):
            yield event
    for event in parser.finalize(at_close=True):
        yield event


def sse(data: Any, event: str | None = None, *, compact: bool = True, eol: str = "\n") -> str:
    """One server-sent event frame."""
    text = json.dumps(data, separators=(",", ":")) if compact else json.dumps(data)
    head = f"event: {event}{eol}" if event else ""
    return f"{head}data: {text}{eol}{eol}"
