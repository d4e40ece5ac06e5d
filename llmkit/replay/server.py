"""The replay server: a small ASGI app on 127.0.0.1 that plays a cassette back (lesson 0).

It serves recorded responses byte for byte, stream frames one by one at the recorded pace scaled
by ``speed`` (0 = as fast as possible, 1 = as recorded, 2 = twice as fast), injects faults, and answers a request that
matches nothing with the provider's own error shape plus a message naming the closest recording.
In record mode the same app forwards to the real provider (see :mod:`llmkit.replay.recorder`).

``start()`` runs it in a background thread; ``llmkit serve --cassette FILE`` runs it standalone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .. import providers as registry
from ..errors import CassetteMiss, ConfigError
from ..errors import ClientGone as _ClientGone
from ..errors import DroppedConnection as _DroppedConnection
from . import providers
from .canonical import BLOB_MIN_CHARS, parse_body
from .cassette import Interaction, Player, RecordedRequest, RecordedResponse
from .faults import Fault, FaultPlan

__all__ = ["ReplayApp", "ServerThread", "serve_cassette", "serve_response"]

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]

#: Largest request body the server reads (default); room for the image uploads of lessons 5 and 6.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

# Hop-by-hop and encoding headers are recomputed by the server; never replay them.
_DROP_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection",
                           "keep-alive", "date", "server"})


@dataclass
class Exchange:
    """What the server saw and answered, handed to observers (the usage ledger, tests)."""

    provider: str
    path: str
    request_body: Any
    status: int
    body: bytes
    stream: bool
    interaction: int | None = None


class _DisconnectAwareSend:
    """Wraps ASGI ``send``: watches ``receive`` for ``http.disconnect`` and stops sending after it,
    so a client that closes a stream early does not make the server write into a dead socket."""

    def __init__(self, send: Send, receive: Receive):
        self._send = send
        self._gone = asyncio.Event()
        self._watcher = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone.set()

    async def __call__(self, message: dict) -> None:
        if self._gone.is_set():
            if message.get("type") == "http.response.body" and not message.get("body") \
                    and not message.get("more_body"):
                return  # only the end-of-body marker is left: the client has every byte (the exchange counts)
            raise _ClientGone()
        await self._send(message)

    def stop(self) -> None:
        self._watcher.cancel()


class ReplayApp:
    """ASGI app. Give it a :class:`Player` (replay) or a recorder (record); faults and speed are live."""

    def __init__(self, player: Player | None = None, *, recorder: Any = None,
                 faults: FaultPlan | None = None, speed: float = 0.0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        if player is None and recorder is None:
            raise ConfigError("ReplayApp needs a cassette player (replay) or a recorder (record).")
        self.player = player
        self.recorder = recorder
        self.faults = faults or FaultPlan()
        self.speed = speed
        self.max_body_bytes = max_body_bytes
        # Per interaction index: (response, its headers, its body bytes), computed once. A recorded
        # response is not changed while it is being served; a replaced one is noticed by identity.
        self._prepared: dict[int, tuple[RecordedResponse, list[tuple[bytes, bytes]], bytes]] = {}
        self._routes: dict[str, str | None] = {}  # path -> provider_for_path(path)
        self.misses: list[CassetteMiss] = []
        self.observers: list[Callable[[Exchange], None]] = []
        # Requests whose client hung up before the answer was complete (a Stop button, a timeout).
        self.disconnects: list[RecordedRequest] = []
        self._batches: dict[str, float] = {}  # batch id -> loop time its create was answered (lesson 11)
        self._here = ""  # this server's own URL, for Provider.localize

    # --- ASGI entry point ------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        t0 = asyncio.get_running_loop().time()
        path, method = scope["path"], scope["method"]
        if not self._here and scope.get("server"):
            host, port = scope["server"][:2]
            self._here = f"http://{host}:{port}"
        # Endpoints without a provider rule (a legacy one in an imported VCR cassette) are answered as
        # recorded, under the provider the recording names.
        known = self._routes.get(path, "?")
        if known == "?":
            known = providers.provider_for_path(path)
            if len(self._routes) < 4096:  # bounded: a client can send any number of distinct paths
                self._routes[path] = known
        provider = known or (self.player.provider_at(method, path) if self.player is not None else None)
        raw = await _read_body(receive, scope, self.max_body_bytes)
        if raw is None:
            await self._send_error(send, known, 413, f"llmkit replay server: the request body is larger than "
                                   f"{self.max_body_bytes} bytes, the limit; send a smaller body (shrink the "
                                   "image) or raise the limit (ReplayApp(max_body_bytes=...)).")
            return
        if path == "/__llmkit/health":
            await _send_json(send, 200, {"ok": True})
            return
        if provider is None and self.recorder is not None:
            await self._send_error(send, None, 404, f"llmkit replay server: {method} {path} is not a provider "
                                   "endpoint it can record (OpenAI, Anthropic and Gemini model endpoints).")
            return
        try:
            body = parse_body(raw, content_type=_header(scope, b"content-type"))
        except ValueError as e:
            await self._send_error(send, known, 400, f"llmkit replay server: {e}, deeper than any provider "
                                   "request; send the body flatter.")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        request = RecordedRequest(provider or "", method, path, query, body)
        fault = self.faults.take(provider or "", path)
        if self.recorder is None and fault is None:
            await self._replay(request, len(raw), known is not None, send, receive, t0)
            return
        send = _DisconnectAwareSend(send, receive)
        try:
            await self._answer(scope, request, raw, send, fault, t0)
        except _ClientGone:
            self.disconnects.append(request)  # the client hung up: stop sending, quietly, and note it
        finally:
            send.stop()

    async def _replay(self, request: RecordedRequest, size: int, known: bool, send: Send, receive: Receive,
                      t0: float) -> None:
        """The common case, kept lean: no fault, a player. Only a response that takes time (a stream, or
        a paced body) watches for the client hanging up."""
        assert self.player is not None
        try:
            index, interaction = self.player.match(request, request.key(may_hold_blobs=size >= BLOB_MIN_CHARS),
                                                   self._batch_gate(request))
        except CassetteMiss as miss:
            self.misses.append(miss)
            await self._send_miss(send, request, miss, known)
            self._observe(request, 400, b"", False, None)
            return
        resp = interaction.response
        if not resp.is_stream and (self.speed <= 0 or resp.t_ms <= 0):
            await self._serve(send, request, index, interaction, None, t0)
            return
        watched = _DisconnectAwareSend(send, receive)
        try:
            await self._serve(watched, request, index, interaction, None, t0)
        except _ClientGone:
            self.disconnects.append(request)
        finally:
            watched.stop()

    async def _answer(self, scope: dict, request: RecordedRequest, raw: bytes, send: Send,
                      fault: Fault | None, t0: float) -> None:
        provider = request.provider
        if fault is not None and fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault is not None and fault.status:
            await self._send_fault(send, provider, fault)
            return
        if self.recorder is not None:
            def observe(status: int, body: bytes, stream: bool) -> None:
                self._observe(request, status, body, stream, None)

            await self.recorder.forward(request, dict(_headers(scope)), raw, send, fault, observe)
            return
        assert self.player is not None
        try:
            index, interaction = self.player.match(request, ready=self._batch_gate(request))
        except CassetteMiss as miss:
            self.misses.append(miss)
            await self._send_miss(send, request, miss, providers.provider_for_path(request.path) is not None)
            self._observe(request, 400, b"", False, None)
            return
        await self._serve(send, request, index, interaction, fault, t0)

    # --- batches (lesson 11) ------------------------------------------------------------------------
    def _batch_gate(self, request: RecordedRequest) -> Callable[[Interaction], bool] | None:
        """For a poll of a batch this server saw created: whether a recorded answer may be served yet.
        One that shows the batch ended waits until its recorded run time, scaled by speed, has passed."""
        if request.method != "GET" or not request.provider or self.speed <= 0:
            return None
        provider = registry.get(request.provider)
        started = self._batches.get(provider.batch_polled(request.method, request.path) or "")
        if started is None:
            return None

        def ready(it: Interaction) -> bool:
            seconds = provider.batch_seconds(_json_of(it.response))
            return seconds is None or (asyncio.get_running_loop().time() - started) * self.speed >= seconds

        return ready

    def _note_batch(self, request: RecordedRequest, response: RecordedResponse) -> None:
        if request.method == "POST" and request.provider and response.status == 200 and not response.is_stream:
            batch_id = registry.get(request.provider).batch_created(request.method, request.path,
                                                                     _json_of(response))
            if batch_id is not None:
                self._batches[batch_id] = asyncio.get_running_loop().time()

    # --- answers ---------------------------------------------------------------------------------
    async def _serve(self, send: Send, request: RecordedRequest, index: int, it: Interaction,
                     fault: Fault | None, t0: float) -> None:
        def observe(body: bytes) -> None:
            self._observe(request, it.response.status, body, it.response.is_stream, index)

        prepared = None
        if not it.response.is_stream:
            cached = self._prepared.get(index)
            if cached is None or cached[0] is not it.response:
                body = it.response.body_bytes()
                if request.provider:
                    body = registry.get(request.provider).localize(body, self._here)
                cached = (it.response, _replay_headers(it.response, index), body)
                self._prepared[index] = cached
            prepared = cached[1], cached[2]
            self._note_batch(request, it.response)
        await serve_response(send, request, index, it.response, fault, self.speed, t0, before_end=observe,
                             prepared=prepared)

    async def _send_fault(self, send: Send, provider: str, fault: Fault) -> None:
        status = fault.status or 500
        if provider:
            body = providers.error_body(provider, status, fault.message)
            headers = providers.error_headers(provider, status, fault.retry_after, fault.retry_after_ms)
        else:  # an endpoint no provider owns and nothing was recorded at
            body, headers = _generic_error(status, fault.message or f"HTTP {status}", "fault"), {}
        headers["x-llmkit-fault"] = fault.describe()
        await _send_json(send, fault.status or 500, body, headers)

    async def _send_miss(self, send: Send, request: RecordedRequest, miss: CassetteMiss, known: bool) -> None:
        # One line for the provider-shaped message (SDKs print it); the full diff is in a header-free
        # field of the body and on the kit (kit.replay.misses). An endpoint no provider rule knows gets a
        # generic JSON error: 404 if nothing was recorded there at all.
        first = str(miss).splitlines()
        summary = first[0] + (" " + first[2].strip() if len(first) > 2 else "")
        if known:
            code = "cassette_miss" if request.provider == "openai" else None
            body = providers.error_body(request.provider, 400, "llmkit " + summary, code=code)
            status = 400
        else:
            assert self.player is not None
            status = 400 if self.player.provider_at(request.method, request.path) else 404
            where = "" if status == 400 else (f" {request.method} {request.path} is not a provider endpoint "
                                              "the server knows, and nothing was recorded there.")
            body = _generic_error(status, "llmkit " + summary + where, "cassette_miss")
        body["llmkit_miss"] = {"closest": miss.closest, "diff": miss.diff}
        await _send_json(send, status, body, {"x-llmkit-cassette-miss": "1"})

    async def _send_error(self, send: Send, provider: str | None, status: int, message: str) -> None:
        """An error the server itself raises (body too large or too deep), shaped like ``provider``'s."""
        if provider is None:
            await _send_json(send, status, _generic_error(status, message, "invalid_request"))
            return
        await _send_json(send, status, providers.error_body(provider, status, message),
                         providers.error_headers(provider, status))

    def _observe(self, request: RecordedRequest, status: int, body: bytes, stream: bool,
                 index: int | None) -> None:
        ex = Exchange(request.provider, request.path, request.body, status, body, stream, index)
        for fn in self.observers:
            fn(ex)


async def _pace(t0: float, t_ms: float, speed: float) -> None:
    if speed <= 0 or t_ms <= 0:
        return
    loop = asyncio.get_running_loop()
    delay = t0 + t_ms / speed / 1000 - loop.time()  # speed 2 = twice as fast: half the recorded time
    if delay > 0:
        await asyncio.sleep(delay)


def _planned_stream(request: RecordedRequest, resp: RecordedResponse,
                    fault: Fault | None) -> tuple[list[tuple[float, bytes]], bool]:
    """The (time, bytes) pieces a stream will be served as once ``fault`` is applied, and whether the
    connection is dropped after them instead of ending normally."""
    kind = providers.stream_kind(request.provider, request.path, _query(request.query))
    plan: list[tuple[float, bytes]] = []
    for n, frame in enumerate(resp.stream or []):
        if fault is not None and fault.drop_after is not None and n >= fault.drop_after:
            return plan, True
        if fault is not None and fault.error_after is not None and n >= fault.error_after:
            event = providers.error_event(request.provider, request.path, fault.message or "Overloaded",
                                          fault.event_status, kind=kind)
            if kind == "json-array":  # close the array (and open it, if nothing was sent yet)
                event = ("[" + event[1:] if n == 0 else event) + "]"
            plan.append((frame.t_ms, event.encode()))
            return plan, False
        plan.append((frame.t_ms, frame.raw.encode()))
    return plan, False


async def serve_response(send: Send, request: RecordedRequest, index: int | None, resp: RecordedResponse,
                         fault: Fault | None, speed: float, t0: float | None,
                         before_end: Callable[[bytes], None] | None = None,
                         prepared: tuple[list[tuple[bytes, bytes]], bytes] | None = None) -> bytes:
    """Send one recorded response: headers, then the body or the stream frames at the recorded pace
    scaled by ``speed``, with any stream fault applied. Returns the bytes sent.

    ``before_end(body)`` runs just before the last piece goes out, so whatever it records (the usage
    ledger) is in place before the client can see the response end. ``prepared`` is the (headers, body)
    of a non-streamed response computed earlier by the caller.
    """
    if t0 is None:
        t0 = asyncio.get_running_loop().time()
    if not resp.is_stream:
        await _pace(t0, resp.t_ms, speed)
        headers, body = prepared or (_replay_headers(resp, index), resp.body_bytes())
        if before_end:
            before_end(body)
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return body
    headers = _replay_headers(resp, index)
    plan, dropped = _planned_stream(request, resp, fault)
    body = b"".join(chunk for _, chunk in plan)
    await _pace(t0, resp.headers_ms, speed)
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    if not plan and before_end:
        before_end(body)
    for n, (t_ms, chunk) in enumerate(plan):
        await _pace(t0, t_ms, speed)
        if speed <= 0:
            await asyncio.sleep(0)  # let a client's disconnect be noticed between frames
        if n == len(plan) - 1 and before_end:
            before_end(body)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if dropped:
        raise _DroppedConnection(f"fault: connection dropped after {len(plan)} events", body)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return body


# --- small ASGI helpers ------------------------------------------------------------------------------
async def _read_body(receive: Receive, scope: dict, limit: int) -> bytes | None:
    """The request body, read chunk by chunk; None when it is larger than ``limit`` bytes. The rest of
    an oversized body is read and dropped (up to 4x the limit), so the client gets to see the 413."""
    message = await receive()
    chunk = message.get("body", b"")
    if not message.get("more_body"):  # the usual case: one piece
        return chunk if len(chunk) <= limit else None
    declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = [] if too_large else [chunk]
    size = len(chunk)
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_large = True
        elif not too_large:
            chunks.append(chunk)
        if not message.get("more_body") or size > 4 * limit:
            return None if too_large else b"".join(chunks)


def _json_of(resp: RecordedResponse) -> Any:
    """A recorded non-streamed body as JSON (None if it is not JSON)."""
    if resp.body is not None or resp.body_text is None:
        return resp.body
    try:
        return json.loads(resp.body_text)
    except ValueError:
        return None


def _header(scope: dict, name: bytes) -> str | None:
    """One request header's value (latin-1), or None."""
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name), None)


def _headers(scope: dict) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]


def _query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query))


def _replay_headers(resp: RecordedResponse, index: int | None) -> list[tuple[bytes, bytes]]:
    out = [(k.lower().encode(), str(v).encode()) for k, v in resp.headers.items()
           if k.lower() not in _DROP_HEADERS]
    if not any(k == b"content-type" for k, _ in out):
        out.append((b"content-type", b"text/event-stream" if resp.is_stream else b"application/json"))
    if index is not None:
        out.append((b"x-llmkit-replay", f"interaction {index}".encode()))
    return out


def _generic_error(status: int, message: str, code: str) -> dict:
    """An error body for an endpoint no provider rule covers: the common ``{"error": {...}}`` shape."""
    return {"error": {"message": message, "type": "not_found" if status == 404 else "invalid_request_error",
                      "param": None, "code": code}}


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items() if k != "content-type"]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": data})


# --- running it in a background thread -----------------------------------------------------------------
class _QuietClosedSocketWrites(logging.Filter):
    """asyncio warns "socket.send() raised exception." when a server writes to a socket the client has
    just closed; a replay server racing a client that stops reading early does that by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "socket.send() raised exception."


_quiet_filter = _QuietClosedSocketWrites()


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a daemon thread. ``port=0`` picks a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.app = app
        self.host = host
        config = uvicorn.Config(app, host=host, port=port, log_level="critical", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="llmkit-replay", daemon=True)
        self.port = 0

    def start(self, timeout: float = 10.0) -> ServerThread:
        logging.getLogger("asyncio").addFilter(_quiet_filter)  # idempotent: filters are a set-like list
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the replay server did not start on {self.host}; is the port free?")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


# --- running it in the foreground (``llmkit serve``) -------------------------------------------------
def serve_cassette(path: str, *, port: int = 0, speed: float = 1.0, play_log: str | None = None,
                   quiet: bool = False, host: str = "127.0.0.1",
                   max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> int:
    """Serve one cassette in the foreground until Ctrl-C (``llmkit serve --cassette FILE``).

    Introduced in lesson 0 (00_setup_and_replay). The first line printed is the base URL (flushed, so a
    script can read it); the socket is listening before it is printed. Each request is logged on one
    line unless ``quiet``; with ``play_log`` the indices of the played interactions are written on exit,
    for ``llmkit cassette check FILE --played LOG``. A request body over ``max_body_bytes`` gets a 413.
    """
    import signal
    import socket

    import uvicorn

    from .cassette import Cassette
    from .check import write_play_log

    cassette = Cassette.load(path)
    player = Player(cassette)
    app = ReplayApp(player, speed=speed, max_body_bytes=max_body_bytes)
    if not quiet:
        def log(ex: Exchange) -> None:
            what = f"interaction #{ex.interaction}" if ex.interaction is not None else "MISS"
            print(f"{ex.provider} {ex.path} -> {what} ({ex.status})", flush=True)
            if ex.interaction is None and app.misses:
                print("  " + str(app.misses[-1]).replace("\n", "\n  "), flush=True)
        app.observers.append(log)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it every
    # response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on, so the URL is usable as soon as it is printed
    print(f"http://{host}:{sock.getsockname()[1]}", flush=True)
    print(f"llmkit replay server · {Path(path).name} ({cassette.summary()}) · speed {speed:g} · "
          "Ctrl-C stops it", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the previous
    # handler: make SIGTERM end up where Ctrl-C does, so the play log is written either way.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
        if play_log:
            write_play_log(player, play_log)
        print(f"stopped · played {len(player.played)} of {len(cassette.interactions)} interactions"
              + (f" · {len(app.misses)} misses" if app.misses else ""), flush=True)
    return 0
