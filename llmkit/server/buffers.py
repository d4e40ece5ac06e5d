"""Where a stream's events live until it expires: one interface, two backends (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). The relay server never streams an answer straight from the
provider to a socket: a producer task appends every event to a buffer, and each ``GET`` reads the buffer
from just after the client's ``Last-Event-ID``. A dropped connection therefore loses nothing, and a
reconnect - to this process or, with Redis, to any process - resumes exactly where the client was.

- :class:`InProcessBuffer` (the default): a list per stream in this process's memory.
- :class:`RedisStreamBuffer`: one Redis Stream per stream (``XADD``/``XREAD``; the entry ids such as
  ``1767225600000-0`` *are* the SSE event ids), a hash for its metadata, both expiring with ``EXPIRE``;
  cancellation travels between processes over pub/sub.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

    def __init__(self, *, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._streams: dict[str, _Record] = {}
        self._cancel_callbacks: list[Callable[[str], None]] = []

    def _purge(self) -> None:
        now = self._clock()
        for sid in [s for s, r in self._streams.items() if r.expires <= now]:
            record = self._streams.pop(sid)
            record.changed.set()  # wake readers so they notice the stream is gone

    def _get(self, stream_id: str) -> _Record | None:
        self._purge()
        return self._streams.get(stream_id)

    def __len__(self) -> int:
        self._purge()
        return len(self._streams)

    async def create(self, stream_id: str, meta: dict[str, str]) -> None:
        self._purge()
        self._streams[stream_id] = _Record(dict(meta), self._clock() + self.ttl_s)

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
        return event_id.isdigit() and len(event_id) < 12

    async def expire(self, stream_id: str, seconds: float) -> None:
        record = self._streams.get(stream_id)
        if record is not None:
            record.expires = min(record.expires, self._clock() + seconds)

    async def publish_cancel(self, stream_id: str) -> None:
        for callback in self._cancel_callbacks:
            callback(stream_id)

    async def watch_cancels(self, callback: Callable[[str], None]) -> None:
        if callback not in self._cancel_callbacks:
            self._cancel_callbacks.append(callback)


# --- Redis Streams ----------------------------------------------------------------------------------------
_REDIS_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class RedisStreamBuffer(EventBuffer):
    """Events in Redis Streams, shared by every server process using the same Redis. Introduced in lesson 9.

    Keys: ``{prefix}:{id}:meta`` (a hash) and ``{prefix}:{id}:events`` (a stream whose entry ids are the
    SSE event ids), both with ``EXPIRE ttl``; cancels are published on ``{prefix}:cancel``. Give it a URL
    (``redis://127.0.0.1:6379/0``) or a ``redis.asyncio.Redis``.
    """

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *, ttl_s: float = 600.0,
                 prefix: str = "llmkit:sse"):
        import redis.asyncio as aioredis

        self.ttl_s = ttl_s
        self.prefix = prefix
        if isinstance(url_or_client, str):
            self.redis = aioredis.from_url(url_or_client, decode_responses=True)
        else:
            self.redis = url_or_client
        self._callbacks: list[Callable[[str], None]] = []
        self._listener: asyncio.Task | None = None
        self._pubsub: Any = None

    def _meta_key(self, sid: str) -> str:
        return f"{self.prefix}:{sid}:meta"

    def _events_key(self, sid: str) -> str:
        return f"{self.prefix}:{sid}:events"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}:cancel"

    async def create(self, stream_id: str, meta: dict[str, str]) -> None:
        ttl = max(1, round(self.ttl_s))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._meta_key(stream_id), mapping=meta)
            pipe.expire(self._meta_key(stream_id), ttl)
            await pipe.execute()

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        meta = await self.redis.hgetall(self._meta_key(stream_id))
        return meta or None

    async def append(self, stream_id: str, event: str, data: dict) -> str:
        key = self._events_key(stream_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"event": event, "data": json.dumps(data, separators=(",", ":"))})
            # The stream lives as long as its metadata: the whole answer stays resumable until both expire.
            pipe.pexpire(key, max(1, await self.redis.pttl(self._meta_key(stream_id))))
            entry_id, _ = await pipe.execute()
        return entry_id

    async def read(self, stream_id: str, after: str | None, *, wait: float) -> list[StoredEvent]:
        key = self._events_key(stream_id)
        block = max(1, int(wait * 1000)) if wait > 0 else None
        reply = await self.redis.xread({key: after or "0-0"}, count=1000, block=block)
        if not reply:
            return []
        entries = reply[0][1]
        return [StoredEvent(entry_id, fields["event"], json.loads(fields["data"])) for entry_id, fields in entries]

    def valid_id(self, event_id: str) -> bool:
        return bool(_REDIS_ID.match(event_id))

    async def expire(self, stream_id: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(self._meta_key(stream_id), ms)
            pipe.pexpire(self._events_key(stream_id), ms)
            await pipe.execute()

    async def publish_cancel(self, stream_id: str) -> None:
        await self.redis.publish(self._channel, stream_id)

    async def watch_cancels(self, callback: Callable[[str], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._listener is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(self._channel)
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                for callback in list(self._callbacks):
                    callback(message["data"])

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        await self.redis.aclose()
