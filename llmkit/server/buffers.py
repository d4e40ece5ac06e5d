"""Where a stream's events live until it expires: one interface, two backends (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). The relay server never streams an answer straight from the
provider to a socket: a producer task appends every event to a buffer, and each ``GET`` reads the buffer
from just after the client's ``Last-Event-ID``. A dropped connection therefore loses nothing, and a
reconnect - to this process or, with Redis, to any process - resumes exactly where the client was.

- :class:`InProcessBuffer` (the default): a list per stream in this process's memory.
- :class:`~llmkit.server.redis_buffer.RedisStreamBuffer` (in ``redis_buffer.py``): one Redis Stream per
  stream, shared by every process that uses the same Redis.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..errors import BufferFull  # re-exported: every llmkit error lives in llmkit.errors

#: Events after which a stream has ended; readers stop there.
TERMINAL_EVENTS = frozenset({"done", "error", "cancelled"})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One SSE event as buffered: its id (the SSE ``id:``), its name (``event:``) and its JSON data."""

    id: str
    event: str
    data: dict

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS


class EventBuffer(ABC):
    """The contract both backends keep. Ids are opaque strings that increase within a stream."""

    ttl_s: float

    @abstractmethod
    async def create(self, stream_id: str, meta: dict[str, str]) -> None:
        """Start a stream with its metadata (the token's hash, the provider); it lives ``ttl_s`` seconds."""

    @abstractmethod
    async def meta(self, stream_id: str) -> dict[str, str] | None:
        """The stream's metadata, or None when it never existed or has expired."""

    @abstractmethod
    async def append(self, stream_id: str, event: str, data: dict) -> str:
        """Add one event; returns its id."""

    def append_soon(self, stream_id: str, event: str, data: dict) -> Awaitable[str]:
        """Add one event behind those added before; a producer may go on before awaiting the result.

        A backend that batches its writes (Redis) returns a future at once, so one stream's events can share
        a round trip; awaiting it gives the id, or raises if the event was not stored. The default is
        :meth:`append` itself: a coroutine that stores the event when awaited.
        """
        return self.append(stream_id, event, data)

    @abstractmethod
    async def read(self, stream_id: str, after: str | None, *, wait: float) -> list[StoredEvent]:
        """Events after id ``after`` (all when None); waits up to ``wait`` seconds for one if none is there."""

    @abstractmethod
    def valid_id(self, event_id: str) -> bool:
        """Whether ``event_id`` has the shape of an id this backend hands out."""

    @abstractmethod
    async def expire(self, stream_id: str, seconds: float) -> None:
        """Let the stream disappear ``seconds`` from now (after a cancel: soon)."""

    @abstractmethod
    async def publish_cancel(self, stream_id: str) -> None:
        """Ask whichever process runs the stream's producer to cancel it."""

    @abstractmethod
    async def watch_cancels(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(stream_id)`` for every cancel published, from any process (idempotent)."""

    async def aclose(self) -> None:
        """Release connections and tasks."""
        return None


# Ids as sent: ASCII digits only (str.isdigit() also accepts "²", which int() refuses).
_INPROCESS_ID = re.compile(r"[0-9]{1,11}")


# --- in-process ------------------------------------------------------------------------------------------
@dataclass
class _Record:
    meta: dict[str, str]
    expires: float
    events: list[StoredEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class InProcessBuffer(EventBuffer):
    """Events in this process's memory; ids are ``1``, ``2``, ... per stream. Introduced in lesson 9.

    Good for one server process. Behind a load balancer with several processes a reconnect may land on a
    process that has never seen the stream: use :class:`RedisStreamBuffer` there.
    """

    def __init__(self, *, ttl_s: float = 600.0, max_streams: int = 5_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_streams = max_streams
        self._clock = clock
        self._streams: dict[str, _Record] = {}
        self._soonest = math.inf  # the earliest expiry of a kept stream
        self._cancel_callbacks: list[Callable[[str], None]] = []

    def _purge(self) -> None:
        now = self._clock()
        if now < self._soonest:  # nothing has expired yet: no scan (this runs on every read)
            return
        for sid in [s for s, r in self._streams.items() if r.expires <= now]:
            record = self._streams.pop(sid)
            record.changed.set()  # wake readers so they notice the stream is gone
        self._soonest = min((r.expires for r in self._streams.values()), default=math.inf)

    def _get(self, stream_id: str) -> _Record | None:
        self._purge()
        return self._streams.get(stream_id)

    def __len__(self) -> int:
        self._purge()
        return len(self._streams)

    async def create(self, stream_id: str, meta: dict[str, str]) -> None:
        self._purge()
        if len(self._streams) >= self.max_streams:
            soonest = min(r.expires for r in self._streams.values())
            raise BufferFull(self.max_streams, max(1.0, soonest - self._clock()))
        self._streams[stream_id] = _Record(dict(meta), self._clock() + self.ttl_s)
        self._soonest = min(self._soonest, self._streams[stream_id].expires)

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        record = self._get(stream_id)
        return dict(record.meta) if record else None

    async def append(self, stream_id: str, event: str, data: dict) -> str:
        record = self._streams.get(stream_id)
        if record is None:
            raise KeyError(f"stream {stream_id} has expired or was never created")
        stored = StoredEvent(str(len(record.events) + 1), event, data)
        record.events.append(stored)
        record.changed.set()
        record.changed = asyncio.Event()
        return stored.id

    async def read(self, stream_id: str, after: str | None, *, wait: float) -> list[StoredEvent]:
        record = self._get(stream_id)
        if record is None:
            return []
        start = int(after) if after else 0
        if start >= len(record.events) and wait > 0:
            try:
                await asyncio.wait_for(record.changed.wait(), wait)
            except TimeoutError:
                return []
        return record.events[start:]

    def valid_id(self, event_id: str) -> bool:
        return _INPROCESS_ID.fullmatch(event_id) is not None

    async def expire(self, stream_id: str, seconds: float) -> None:
        record = self._streams.get(stream_id)
        if record is not None:
            record.expires = min(record.expires, self._clock() + seconds)
            self._soonest = min(self._soonest, record.expires)

    async def publish_cancel(self, stream_id: str) -> None:
        for callback in self._cancel_callbacks:
            callback(stream_id)

    async def watch_cancels(self, callback: Callable[[str], None]) -> None:
        if callback not in self._cancel_callbacks:
            self._cancel_callbacks.append(callback)


def __getattr__(name: str) -> object:
    # The Redis backend lives in its own module (it imports redis); kept importable from here too.
    if name == "RedisStreamBuffer":
        from .redis_buffer import RedisStreamBuffer

        return RedisStreamBuffer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
