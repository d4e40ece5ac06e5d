"""Record mode: forward each request to the real provider and write what came back (lesson 0).

The embedded server passes the response through to the SDK as it arrives (a stream stays a stream)
and keeps each SSE event as one frame with its arrival time. After every interaction the new
interaction is scrubbed and then gated: the scanner of :mod:`llmkit.replay.secrets` looks at exactly
what would reach disk (the JSON, each stream reassembled, every blob file) and, if a secret survives,
nothing is written and the error names the interaction and field. Blobs and the cassette are written to
temporary files and renamed only after the scan passed. An answer that cannot be stored faithfully
(bytes that are not UTF-8) is refused loudly: an entry in ``errors``, a warning, and for a non-streamed
answer a provider-shaped error to the client; it is never dropped silently. Upstream base URLs come
from ``LLMKIT_UPSTREAM_OPENAI``, ``LLMKIT_UPSTREAM_ANTHROPIC`` and ``LLMKIT_UPSTREAM_GEMINI`` (so
tests can record from a local fake). ``kit.faults`` applies in record mode too: a status fault answers instead
of the provider, and a stream fault (a drop, an error event) changes what the client receives while the
cassette keeps the provider's whole answer, so the same fault replays the same cut.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import threading
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import CassetteError, DroppedConnection, LlmkitError, SecretLeakError
from ..models import UPSTREAMS
from . import providers
from .canonical import replace_blobs
from .cassette import (
    Cassette,
    CassetteWriter,
    Frame,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    interaction_entry,
    json_or_text,
    store_blob,
)
from .scrub import leak_error, scrub, scrub_headers, scrub_query, scrub_text
from .secrets import SecretScanner, blob_loader

Send = Callable[[dict], Awaitable[None]]

_FORWARD_SKIP = frozenset({"host", "content-length", "accept-encoding", "connection"})
_SEPARATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def upstream_urls() -> dict[str, str]:
    """Where record mode forwards to: the real providers unless overridden by environment."""
    return {p: os.environ.get(f"LLMKIT_UPSTREAM_{p.upper()}", url).rstrip("/") for p, url in UPSTREAMS.items()}


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete SSE events (each with its separator, bytes kept exact) off the front of ``buffer``."""
    frames = []
    while True:
        cuts = [(buffer.find(sep), sep) for sep in _SEPARATORS]
        cuts = [(i, sep) for i, sep in cuts if i >= 0]
        if not cuts:
            return frames, buffer
        i, sep = min(cuts, key=lambda c: (c[0], -len(c[1])))
        end = i + len(sep)
        frames.append(buffer[:end])
        buffer = buffer[end:]


class Recorder:
    """Forwards to upstream providers and appends scrubbed, gated interactions to ``cassette``.

    Introduced in lesson 0 (00_setup_and_replay). ``errors`` collects every interaction that was not
    written (a :class:`~llmkit.errors.SecretLeakError`, or a :class:`~llmkit.errors.CassetteError` for
    an answer that cannot be stored); ``Kit.check_recording()`` raises the first.
    """

    def __init__(self, cassette: Cassette, path: str | os.PathLike[str], *, secrets: list[str],
                 upstreams: dict[str, str] | None = None, timeout: float = 600.0):
        self.cassette = cassette
        self.path = Path(path)
        self._writer = CassetteWriter()
        self.secrets = [s for s in secrets if s]
        self.upstreams = upstreams or upstream_urls()
        self.timeout = timeout
        self.errors: list[LlmkitError] = []
        self._lock = threading.Lock()
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx2

            self._client = httpx2.AsyncClient(timeout=self.timeout)
        return self._client

    async def forward(self, request: RecordedRequest, headers: dict[str, str], raw: bytes, send: Send,
                      fault: Any = None, observe: Any = None) -> RecordedResponse | None:
        """Forward one request upstream, pass the answer through, append it to the cassette.
        ``observe(status, body, stream)`` is told what came back before the client sees the end."""
        import httpx2

        try:
            return await self._forward(request, headers, raw, send, observe, fault)
        except httpx2.HTTPError as e:  # the provider could not be reached, or broke off its answer
            self.errors.append(CassetteError(
                f"record mode did not store {request.label()}: the provider's answer failed ({type(e).__name__}: "
                f"{scrub_text(str(e), self.secrets)}). Nothing was written for this call; run it again to "
                "record it."))
            raise

    async def _forward(self, request: RecordedRequest, headers: dict[str, str], raw: bytes, send: Send,
                       observe: Any, fault: Any = None) -> RecordedResponse | None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        base = self.upstreams[request.provider]
        url = f"{base}{request.path}" + (f"?{request.query}" if request.query else "")
        fwd = {k: v for k, v in headers.items() if k.lower() not in _FORWARD_SKIP}
        fwd["accept-encoding"] = "identity"  # keep stream bytes exact
        client = self._http()
        stored_req = RecordedRequest(request.provider, request.method, scrub_text(request.path, self.secrets),
                                     scrub_query(request.query, self.secrets), scrub(request.body, self.secrets))
        async with client.stream(request.method, url, content=raw, headers=fwd) as upstream:
            resp_headers = scrub_headers(dict(upstream.headers), self.secrets)
            # An error answer to a stream request is plain JSON, even under an event-stream content type.
            is_stream = upstream.status_code < 400 and (
                upstream.headers.get("content-type", "").startswith("text/event-stream")
                or providers.wants_stream(request.provider, request.path,
                                          dict(parse_qsl(request.query)), request.body))
            out_headers = [(k.encode(), v.encode()) for k, v in upstream.headers.items()
                           if k.lower() not in ("content-length", "content-encoding", "transfer-encoding",
                                                "connection")]
            if not is_stream:
                body = await upstream.aread()
                t_ms = (loop.time() - t0) * 1000
                resp = RecordedResponse(upstream.status_code, resp_headers, t_ms=t_ms)
                problem: LlmkitError | None = None
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError as e:
                    problem = self._refuse_undecodable(request, e, streamed=False)
                else:
                    parsed, verbatim = json_or_text(text)  # JSON only where it replays byte-exact
                    if verbatim is None:
                        resp.body = scrub(parsed, self.secrets)
                    else:
                        resp.body_text = scrub_text(verbatim, self.secrets)
                problem = problem or self._try_append(Interaction(stored_req, resp))
                if problem is not None:
                    err = providers.error_body(request.provider, 400, f"llmkit record: {problem}")
                    body = json.dumps(err).encode()
                    await send({"type": "http.response.start", "status": 400,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
                    return None
                body = providers.localize(request.provider, body, f"http://{headers.get('host', '')}")
                if observe is not None:
                    observe(upstream.status_code, body, False)
                await send({"type": "http.response.start", "status": upstream.status_code,
                            "headers": out_headers + [(b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return resp
            headers_ms = (loop.time() - t0) * 1000
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": out_headers})
            frames: list[Frame] = []
            kind = providers.stream_kind(request.provider, request.path, dict(parse_qsl(request.query)))
            buffer = b""
            received: list[bytes] = []
            # A stream fault (kit.faults.drop_stream / error_mid_stream) changes what the client gets, event by
            # event, as in replay; the cassette still gets the provider's whole answer.
            cut = _StreamCut(request, kind, fault) if kind == "sse" and _is_stream_fault(fault) else None
            undecodable: UnicodeDecodeError | None = None
            text = codecs.getincrementaldecoder("utf-8")()  # a network chunk may end inside a character
            async for chunk in upstream.aiter_bytes():
                now = (loop.time() - t0) * 1000
                received.append(chunk)
                if cut is None:  # the client gets every byte as it came, whatever happens to the recording
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if undecodable is not None:
                    continue
                try:
                    if kind == "sse":
                        pieces, buffer = split_frames(buffer + chunk)
                        frames += [Frame(now, p.decode("utf-8")) for p in pieces]
                        if cut is not None:
                            await cut.send(send, pieces)
                    elif piece := text.decode(chunk):
                        frames.append(Frame(now, piece))
                except UnicodeDecodeError as e:
                    undecodable = e
            if cut is not None and buffer and undecodable is None:
                await cut.send(send, [buffer])  # a last event without its separator
            if undecodable is None and (buffer or kind != "sse"):
                try:
                    rest = buffer.decode("utf-8") if kind == "sse" else text.decode(b"", final=True)
                except UnicodeDecodeError as e:
                    undecodable = e
                else:
                    if rest:
                        frames.append(Frame((loop.time() - t0) * 1000, rest))
            # Settle the recording before the client sees the end, so check_recording() after the
            # call reflects it.
            if undecodable is not None:
                self._refuse_undecodable(request, undecodable, streamed=True)
                resp = None
            else:
                frames = [Frame(f.t_ms, scrub_text(f.raw, self.secrets)) for f in frames]
                resp = RecordedResponse(upstream.status_code, resp_headers, stream=frames, headers_ms=headers_ms)
                if self._try_append(Interaction(stored_req, resp)) is not None:
                    resp = None  # kept in self.errors; the kit raises it
            if observe is not None:
                observe(upstream.status_code, cut.sent if cut is not None else b"".join(received), True)
            if cut is not None and cut.dropped:
                raise DroppedConnection(f"fault: connection dropped after {cut.events} events", cut.sent)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return resp

    def _refuse_undecodable(self, request: RecordedRequest, error: UnicodeDecodeError, *,
                            streamed: bool) -> CassetteError:
        what = "stream" if streamed else "body"
        problem = CassetteError(
            f"record mode did not store the answer to {request.label()}: the provider's {what} is not UTF-8 "
            f"text ({error.reason} at byte {error.start} of a piece of it), and cassettes hold text. "
            + ("The client received the bytes unchanged. " if streamed else "")
            + "Nothing was written for this call; run it again to record it, or leave it out of the lesson.")
        self.errors.append(problem)
        warnings.warn(str(problem), RuntimeWarning, stacklevel=2)
        return problem

    def _try_append(self, interaction: Interaction) -> SecretLeakError | None:
        try:
            self._append(interaction)
        except SecretLeakError as e:
            return e
        return None

    def _append(self, interaction: Interaction) -> None:
        """Gate, then write: blobs and cassette go to temp files renamed only after the scan passed."""
        with self._lock:
            blobs: dict[str, bytes] = {}
            interaction.request.body = replace_blobs(interaction.request.body,
                                                     lambda ref, data, media: blobs.__setitem__(ref, data))
            pending = {ref.removeprefix("blob:sha256:"): data for ref, data in blobs.items()}
            entry = interaction_entry(interaction)
            index = len(self.cassette.interactions)
            # The interactions already written passed this gate: scan the new one and the top-level fields.
            scanner = SecretScanner(self.secrets)
            blob_dir = self.path.parent / "blobs"
            found = (scanner.scan_value(self.cassette.header())
                     or scanner.scan_interaction(entry, f"interactions[{index}]", blob_loader(blob_dir, pending)))
            if found:
                error = leak_error(found, f"cassette {self.path.name}")
                self.errors.append(error)
                raise error
            for digest, data in pending.items():
                store_blob(blob_dir, digest, data)
            self._writer.append(self.cassette, self.path, interaction, entry)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _is_stream_fault(fault: Any) -> bool:
    return fault is not None and (fault.drop_after is not None or fault.error_after is not None)


class _StreamCut:
    """What a client gets of a recorded stream under a stream fault: events up to ``drop_after`` (then the
    connection drops), or up to ``error_after`` (then the provider's error event ends the stream)."""

    def __init__(self, request: RecordedRequest, kind: str, fault: Any):
        self.request, self.kind, self.fault = request, kind, fault
        self.events = 0
        self.sent = b""
        self.done = self.dropped = False

    async def send(self, send: Send, pieces: list[bytes]) -> None:
        for piece in pieces:
            if self.done:
                return
            if self.fault.drop_after is not None and self.events >= self.fault.drop_after:
                self.done = self.dropped = True
                return
            if self.fault.error_after is not None and self.events >= self.fault.error_after:
                piece = providers.error_event(self.request.provider, self.request.path,
                                              self.fault.message or "Overloaded", self.fault.event_status,
                                              kind=self.kind).encode()
                self.done = True
            self.events += 1
            self.sent += piece
            await send({"type": "http.response.body", "body": piece, "more_body": True})
