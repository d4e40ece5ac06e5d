"""Record mode: forward each request to the real provider and write what came back (lesson 0).

The embedded server passes the response through to the SDK as it arrives (a stream stays a stream)
and keeps each SSE event as one frame with its arrival time. After every interaction the cassette
is scrubbed, checked for surviving secrets and saved atomically; if a secret survives, nothing is
written and the error names the field. Upstream base URLs come from ``LLMKIT_UPSTREAM_OPENAI``,
``LLMKIT_UPSTREAM_ANTHROPIC`` and ``LLMKIT_UPSTREAM_GEMINI`` (so tests can record from a local fake).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import LlmkitError, SecretLeakError
from ..models import UPSTREAMS
from . import providers
from .canonical import parse_body
from .cassette import Cassette, Frame, Interaction, RecordedRequest, RecordedResponse
from .scrub import assert_no_secret, scrub, scrub_headers, scrub_text

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
    """Forwards to upstream providers and appends scrubbed interactions to ``cassette``."""

    def __init__(self, cassette: Cassette, path: str | os.PathLike[str], *, secrets: list[str],
                 upstreams: dict[str, str] | None = None, timeout: float = 600.0):
        self.cassette = cassette
        self.path = Path(path)
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
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        base = self.upstreams[request.provider]
        url = f"{base}{request.path}" + (f"?{request.query}" if request.query else "")
        fwd = {k: v for k, v in headers.items() if k.lower() not in _FORWARD_SKIP}
        fwd["accept-encoding"] = "identity"  # keep stream bytes exact
        client = self._http()
        stored_query = urlencode([(k, v) for k, v in parse_qsl(request.query, keep_blank_values=True)
                                  if k != "key"])
        stored_req = RecordedRequest(request.provider, request.method, request.path, stored_query,
                                     scrub(request.body, self.secrets))
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
                parsed = parse_body(body)
                if isinstance(parsed, (dict, list)):
                    resp.body = scrub(parsed, self.secrets)
                else:
                    resp.body_text = scrub_text(body.decode("utf-8", "replace"), self.secrets)
                try:
                    self._append(Interaction(stored_req, resp))
                except SecretLeakError as e:
                    err = providers.error_body(request.provider, 400, f"llmkit record: {e}")
                    body = json.dumps(err).encode()
                    await send({"type": "http.response.start", "status": 400,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
                    return None
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
            text = codecs.getincrementaldecoder("utf-8")()  # a network chunk may end inside a character
            async for chunk in upstream.aiter_bytes():
                now = (loop.time() - t0) * 1000
                received.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if kind == "sse":
                    pieces, buffer = split_frames(buffer + chunk)
                    frames += [Frame(now, p.decode("utf-8")) for p in pieces]
                elif piece := text.decode(chunk):
                    frames.append(Frame(now, piece))
            if buffer or kind != "sse":
                rest = buffer.decode("utf-8") if kind == "sse" else text.decode(b"", final=True)
                if rest:
                    frames.append(Frame((loop.time() - t0) * 1000, rest))
            if observe is not None:
                observe(upstream.status_code, b"".join(received), True)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        frames = [Frame(f.t_ms, scrub_text(f.raw, self.secrets)) for f in frames]
        resp = RecordedResponse(upstream.status_code, resp_headers, stream=frames, headers_ms=headers_ms)
        try:
            self._append(Interaction(stored_req, resp))
        except SecretLeakError:
            return None  # kept in self.errors; the kit raises it
        return resp

    def _append(self, interaction: Interaction) -> None:
        with self._lock:
            candidate = Cassette(self.cassette.name, dict(self.cassette.provenance),
                                 [*self.cassette.interactions, interaction])
            try:
                assert_no_secret(candidate.to_dict(), self.secrets, what=f"cassette {self.path.name}")
            except SecretLeakError as e:
                self.errors.append(e)
                raise
            candidate.save(self.path)
            self.cassette.interactions.append(interaction)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
