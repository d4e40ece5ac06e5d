"""The SSE relay server: a FastAPI app that streams an LLM answer and never loses a token (lesson 9).

Introduced in lesson 9 (09_sse_server). The protocol::

    POST   /api/streams               {"provider", "messages", ...}  -> 201 {"stream_id", "token", "events_url"}
    GET    /api/streams/{id}/events   Authorization: Bearer <token>  [Last-Event-ID: <id>]
                                      -> text/event-stream: events with an ``id:`` each, ``: ping`` comments
    DELETE /api/streams/{id}          Authorization: Bearer <token>  -> cancels the upstream request
    GET    /                          the web client (static/index.html + static/client.js)

Events (``data:`` is JSON): ``status`` {"state": "retrying"|"streaming", ...}, ``delta`` {"text"},
then exactly one terminal event: ``done`` {"finish_reason", "usage", "chars"}, ``error`` {"kind",
"message", "partial_text", "retrying": false} or ``cancelled`` {}.

A producer task per stream reads the upstream and appends every event to an :class:`EventBuffer`; each
``GET`` only reads that buffer, from just after ``Last-Event-ID``. A client that drops and reconnects
therefore gets the rest of the answer with no gap and no duplicate, and the upstream request is never
tied to one browser connection. Before the first token a failed upstream is retried (backoff from
``llmkit.resilience``), and readers see ``status: retrying``; after it, a failure ends the stream with
an ``error`` event carrying the text produced so far.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves the handlers' annotations (``Request``,
# imported lazily inside create_app) at runtime.
import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BufferFailed as _BufferFailed
from ..errors import ConfigError
from ..retry import BackoffPolicy
from .buffers import BufferFull, EventBuffer, InProcessBuffer
from .models import ChatRequest, describe_errors

if TYPE_CHECKING:
    from ..kit import Kit

STATIC_DIR = Path(__file__).resolve().parent / "static"

Upstream = Callable[[ChatRequest], AsyncIterator[Any]]

#: The relay's retries of its upstream, before the first text only (``create_app(retry_policy=)``).
DEFAULT_RETRY_POLICY = BackoffPolicy(base=0.25, cap=4.0, max_attempts=3, deadline=20.0)
#: Hosts the relay answers by default (``create_app(allowed_hosts=)``): loopback only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The ``Retry-After`` (s) of a 429 when every stream slot of this process is busy.
STREAM_SLOT_RETRY_S = 5.0
#: How many events a producer may send to a batching buffer (Redis) before the first is confirmed stored.
MAX_UNCONFIRMED_EVENTS = 32


def kit_upstream(kit: "Kit", via: str = "wire") -> Upstream:
    """An upstream that asks ``kit``'s provider through ``llmkit.chat.astream``.

    ``via="wire"`` (the default) posts the SDK's own request body with httpx2 and parses the bytes with
    ``llmkit.wire``; ``via="sdk"`` streams through the official async SDKs. Both yield the same events;
    the wire path skips the SDK's typed object per chunk, which is what limits a busy relay (lesson 9
    measures it; ``benchmarks/bench_relay_upstream.py`` compares the two per chunk).
    """
    from .. import chat

    if via not in chat.VIAS:
        raise ConfigError(f"via={via!r}: choose 'wire' (raw HTTP, the default) or 'sdk' (the official SDKs).")

    def open_stream(request: ChatRequest) -> AsyncIterator[Any]:
        return chat.astream(kit, request.provider, request.neutral_messages(), system=request.system,
                            max_tokens=request.max_tokens, via=via)

    async def aclose() -> None:
        # The async clients were built on the relay's event loop: close them there, and drop them so
        # that a later loop (the next server, a notebook cell) builds fresh ones.
        await kit.aclose_async_clients()

    open_stream.aclose = aclose  # type: ignore[attr-defined]
    return open_stream


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _too_many(message: str, retry_after: float) -> Any:
    return _error(429, "too_many_streams", message, {"Retry-After": str(max(1, math.ceil(retry_after)))})


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return content_type.partition(";")[0].strip().lower()


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes | bytearray) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it (strings skipped).

    ``json.loads`` recurses once per level, so a body of 100,000 ``[`` raises RecursionError; checked
    first, such a body is a clear 400 instead.
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


class Relay:
    """The state behind the app: the buffer, the upstream and the producer tasks of this process."""

    def __init__(self, upstream: Upstream, buffer: EventBuffer, *, retry_policy: Any, cancel_grace_s: float,
                 max_streams: int):
        self.upstream = upstream
        self.buffer = buffer
        self.retry_policy = retry_policy
        self.cancel_grace_s = cancel_grace_s
        self.max_streams = max_streams
        self.tasks: dict[str, asyncio.Task] = {}
        #: Streams whose terminal event the buffer refused (e.g. Redis down): told to this process's readers.
        self.lost: dict[str, dict[str, Any]] = {}
        self._watching = False
        self._watch_lock = asyncio.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, request: ChatRequest) -> dict[str, Any]:
        if not self._watching:
            async with self._watch_lock:  # the first requests arrive together: subscribe once
                if not self._watching:
                    self.loop = asyncio.get_running_loop()
                    await self.buffer.watch_cancels(self._cancel_local)
                    self._watching = True
        stream_id = secrets.token_urlsafe(16)  # 128 random bits: not guessable, not enumerable
        token = secrets.token_urlsafe(32)
        await self.buffer.create(stream_id, {"token_sha256": _hash(token), "provider": request.provider,
                                             "created": f"{time.time():.3f}"})
        self.tasks[stream_id] = asyncio.create_task(self._produce(stream_id, request), name=f"sse-{stream_id}")
        return {"stream_id": stream_id, "token": token, "events_url": f"/api/streams/{stream_id}/events",
                "expires_in": self.buffer.ttl_s}

    def _cancel_local(self, stream_id: str) -> None:
        task = self.tasks.get(stream_id)
        if task is not None and not task.done():
            task.cancel()

    async def cancel(self, stream_id: str) -> bool:
        """Cancel the stream's producer here or, through the buffer, in the process that runs it."""
        task = self.tasks.get(stream_id)
        if task is None:
            await self.buffer.publish_cancel(stream_id)
            return False
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), 2.0)
        except (asyncio.CancelledError, TimeoutError):
            pass
        return True

    async def _produce(self, sid: str, request: ChatRequest) -> None:
        """Read the upstream through ``aresilient_stream`` (retries before the first text only) into the buffer."""
        from ..events import Finish, TextDelta, Usage
        from ..resilience import CallFailed, StreamInterrupted, aresilient_stream, classify

        policy = self.retry_policy or DEFAULT_RETRY_POLICY

        queued: collections.deque[asyncio.Future] = collections.deque()  # sent to the buffer, not yet confirmed

        async def append(stream_id: str, event: str, data: dict, *, settle: bool = False) -> None:
            # A batching buffer (Redis) confirms events later: the producer reads on meanwhile, up to
            # MAX_UNCONFIRMED_EVENTS ahead. A terminal event (settle) waits for every event before it, so a
            # failed one is noticed - and reported as an error event - before the stream is declared ended.
            try:
                pending = self.buffer.append_soon(stream_id, event, data)
                if not isinstance(pending, asyncio.Future):
                    await pending
                    return
                queued.append(pending)
                while queued and (settle or queued[0].done() or len(queued) > MAX_UNCONFIRMED_EVENTS):
                    await queued.popleft()
            except Exception as exc:  # told apart from the upstream's failures below
                raise _BufferFailed(str(exc)) from exc

        parts: list[str] = []
        usage: Any = None
        finish: Any = None
        attempts = 1

        async def on_attempt(attempt: Any) -> None:
            nonlocal attempts
            if attempt.wait is not None:
                attempts = attempt.number + 1
                await append(sid, "status", {"state": "retrying", "attempt": attempts,
                                             "wait_s": round(attempt.wait, 3), "reason": attempt.error.kind.value,
                                             "message": attempt.error.message[:300]})

        try:
            error: Any = None
            try:
                events = aresilient_stream(lambda: self.upstream(request), policy=policy, on_attempt=on_attempt)
                async with contextlib.aclosing(events):  # however this ends, the upstream request ends now
                    async for event in events:
                        text = event if isinstance(event, str) else event.text if isinstance(event, TextDelta) else None
                        if text:
                            if not parts:
                                await append(sid, "status", {"state": "streaming", "attempt": attempts})
                            await append(sid, "delta", {"text": text})
                            parts.append(text)
                        elif isinstance(event, Usage):
                            usage = event
                        elif isinstance(event, Finish):
                            finish = event
            except _BufferFailed:
                raise
            except CallFailed as exc:
                error, attempts = exc.error, exc.attempts
            except StreamInterrupted as exc:
                error = exc.cause
            except Exception as exc:  # an upstream bug (not a provider fault) still ends the stream visibly
                error = classify(exc)
            if error is not None:
                await append(sid, "error", {"kind": error.kind.value, "message": error.message[:500],
                                            "partial_text": "".join(parts), "retrying": False, "attempts": attempts},
                             settle=True)
                return
            await append(sid, "done", {
                "finish_reason": finish.reason if finish else "stop", "chars": sum(len(p) for p in parts),
                "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens} if usage else None},
                settle=True)
        except asyncio.CancelledError:
            try:
                await append(sid, "cancelled", {"partial_chars": sum(len(p) for p in parts)}, settle=True)
                await self.buffer.expire(sid, self.cancel_grace_s)
            except Exception as exc:
                self._lost(sid, exc, parts)
            raise
        except _BufferFailed as exc:  # e.g. Redis unreachable: the readers must not wait for the TTL
            await self._report_buffer_failure(sid, exc.__cause__ or exc, parts)
        finally:
            self.tasks.pop(sid, None)
            for pending in queued:  # left behind by a failure: their errors are known, do not log them again
                pending.add_done_callback(_retrieve)

    async def _report_buffer_failure(self, sid: str, exc: BaseException, parts: list[str]) -> None:
        for pause in (0.1, 0.5, 2.0):
            await asyncio.sleep(pause)
            try:
                await self.buffer.append(sid, "error", _buffer_error(exc, parts))
                return
            except Exception as again:
                exc = again
        self._lost(sid, exc, parts)

    def _lost(self, sid: str, exc: BaseException, parts: list[str]) -> None:
        if len(self.lost) >= 10_000:  # bounded: forget the oldest
            self.lost.pop(next(iter(self.lost)))
        self.lost[sid] = _buffer_error(exc, parts)

    async def aclose(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.buffer.aclose()
        if hasattr(self.upstream, "aclose"):
            await self.upstream.aclose()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel this process's streams and close the buffer, from any thread (before stopping the server)."""
        if self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.aclose(), self.loop).result(timeout)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _buffer_error(exc: BaseException, parts: list[str]) -> dict[str, Any]:
    return {"kind": "buffer_unavailable", "message": f"the relay could not store this stream's events "
            f"({type(exc).__name__}: {str(exc)[:200]}); start a new stream when the buffer is back.",
            "partial_text": "".join(parts), "retrying": False}


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def create_app(kit_or_upstream: "Kit | Upstream", *, buffer: EventBuffer | None = None,
               allowed_origins: list[str] | tuple = (),
               allowed_hosts: list[str] | tuple | None = None, ping_s: float = 15.0, max_body_bytes: int = 256_000,
               max_json_depth: int = 32, retry_policy: Any = None, cancel_grace_s: float = 30.0,
               max_streams: int = 1000, static: bool = True, upstream_via: str = "wire") -> Any:
    """The relay as a FastAPI app. Introduced in lesson 9 (09_sse_server).

    ``kit_or_upstream`` is a :class:`llmkit.Kit` (answers come from ``llmkit.chat.astream``, over raw
    HTTP or, with ``upstream_via="sdk"``, the official SDKs) or any ``upstream(ChatRequest) -> async
    iterator`` of ``llmkit.events`` values or plain strings.
    ``buffer`` defaults to :class:`InProcessBuffer`; pass :class:`RedisStreamBuffer` to run several
    processes. ``allowed_origins`` lists the exact origins (``https://chat.example.com``) whose pages may
    call the API from a browser; ``"*"`` is refused. ``allowed_hosts`` lists the ``Host`` names the relay
    answers (default :data:`LOOPBACK_HOSTS`; add your public name, ``*.example.com`` works), so a page on
    another site cannot reach it through DNS rebinding. ``ping_s`` is the heartbeat interval;
    ``max_streams`` caps the streams this process runs at once (more get 429 with ``Retry-After``);
    ``retry_policy`` (a :class:`llmkit.retry.BackoffPolicy`) governs retries before the first text.
    """
    from fastapi import FastAPI, Request
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import ValidationError
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    if "*" in allowed_origins:
        raise ConfigError('allowed_origins=["*"] would let any web page spend your API budget through this '
                          'relay; list the exact origins of your front end, e.g. ["https://chat.example.com"].')
    hosts = list(LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts)
    if "*" in hosts:
        raise ConfigError('allowed_hosts=["*"] lets any site reach this relay by DNS rebinding; list the host '
                          'names it is served under, e.g. ["127.0.0.1", "chat.example.com"].')
    upstream = kit_upstream(kit_or_upstream, upstream_via) if hasattr(kit_or_upstream, "models") else kit_or_upstream
    relay = Relay(upstream, buffer if buffer is not None else InProcessBuffer(), retry_policy=retry_policy,
                  cancel_grace_s=cancel_grace_s, max_streams=max_streams)
    app = FastAPI(title="llmkit SSE relay", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.relay = relay
    app.add_middleware(CORSMiddleware, allow_origins=list(allowed_origins), allow_methods=["GET", "POST", "DELETE"],
                       allow_headers=["Authorization", "Content-Type", "Last-Event-ID"], max_age=600)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)  # added last: checked first

    async def authorize(stream_id: str, request: Request) -> Any:
        meta = await relay.buffer.meta(stream_id)
        if meta is None:
            return _error(404, "not_found", f"no stream {stream_id!r}: it never existed or has expired "
                          f"(streams are kept {relay.buffer.ttl_s:g} s); start a new one with POST /api/streams.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "unauthorized", "send the stream's token as 'Authorization: Bearer <token>' "
                          "(the token came with the stream id from POST /api/streams).")
        if not hmac.compare_digest(_hash(token), meta["token_sha256"]):
            return _error(403, "forbidden", "this token does not belong to this stream.")
        return None

    @app.post("/api/streams", status_code=201)
    async def start_stream(request: Request) -> Any:
        # Only a parsed application/json starts a stream: browsers send text/plain (even "text/plain;
        # charset=json") cross-origin without a CORS preflight, so accepting it would bypass allowed_origins.
        if media_type(request.headers.get("content-type", "")) != "application/json":
            return _error(415, "unsupported_media_type", "send the chat request as JSON "
                          "(Content-Type: application/json).")
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, "too_large", f"the request body is {declared} bytes; the limit is {max_body_bytes}.")
        body = bytearray()
        async for chunk in request.stream():  # counted as it arrives: never more than the limit in memory
            body += chunk
            if len(body) > max_body_bytes:
                return _error(413, "too_large", f"the request body is over the limit of {max_body_bytes} bytes.")
        if json_depth(body) > max_json_depth:
            return _error(400, "too_deep", f"the JSON body nests deeper than {max_json_depth} levels; a chat "
                          "request needs 3 (object, messages list, message).")
        try:
            data = json.loads(body)
        except ValueError as e:
            return _error(400, "invalid_json", f"the body is not valid JSON ({e}).")
        try:
            chat_request = ChatRequest.model_validate(data)
        except ValidationError as e:
            return _error(422, "invalid_request", describe_errors(e))
        if len(relay.tasks) >= relay.max_streams:
            return _too_many(f"this server runs at most {relay.max_streams} streams at once; retry in a few "
                             "seconds.", STREAM_SLOT_RETRY_S)
        try:
            return JSONResponse(await relay.start(chat_request), status_code=201)
        except BufferFull as e:
            return _too_many(str(e), e.retry_after)

    @app.get("/api/streams/{stream_id}/events")
    async def stream_events(stream_id: str, request: Request) -> Any:
        if (refused := await authorize(stream_id, request)) is not None:
            return refused
        last = request.headers.get("last-event-id") or None
        if last is not None and not relay.buffer.valid_id(last):
            return _error(400, "invalid_last_event_id", f"Last-Event-ID {last[:40]!r} is not an event id this "
                          "server sent; reconnect without it to read the stream from the start.")

        async def events() -> AsyncIterator[Any]:
            after = last
            while True:
                batch = await relay.buffer.read(stream_id, after, wait=min(ping_s, 5.0))
                if not batch:
                    if (lost := relay.lost.get(stream_id)) is not None:  # its producer could not store the end
                        yield ServerSentEvent(data=json.dumps(lost), event="error").encode()
                        return
                    if await relay.buffer.meta(stream_id) is None:
                        return  # expired while we waited
                    continue
                # One write per batch: a reader that fell behind catches up in one send, not one per event.
                ended = next((i for i, e in enumerate(batch) if e.terminal), None)
                batch = batch if ended is None else batch[:ended + 1]
                yield b"".join(ServerSentEvent(data=json.dumps(e.data), event=e.event, id=e.id).encode()
                               for e in batch)
                after = batch[-1].id
                if ended is not None:
                    return

        return EventSourceResponse(events(), ping=ping_s, headers={"Cache-Control": "no-store",
                                                                   "X-Accel-Buffering": "no"})

    @app.delete("/api/streams/{stream_id}")
    async def cancel_stream(stream_id: str, request: Request) -> Any:
        if (refused := await authorize(stream_id, request)) is not None:
            return refused
        here = await relay.cancel(stream_id)
        return {"stream_id": stream_id, "cancelled": True, "where": "this process" if here else "published"}

    @app.get("/api/health")
    async def health() -> Any:
        return {"ok": True, "streams_running_here": len(relay.tasks)}

    if static:
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> Any:
            # The page loads only our own script: a CSP like this is a second wall behind safe rendering.
            return FileResponse(STATIC_DIR / "index.html", headers={
                "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                                           "'unsafe-inline'; img-src 'self'; object-src 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff"})

    return app
