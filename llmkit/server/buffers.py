"""Where a stream's events live until it expires: one interface, two backends (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). The relay server never streams an answer straight from the
provider to a socket: a producer task appends every event to a buffer, and each ``GET`` reads the buffer
from just after the client's ``Last-Event-ID``. A dropped connection therefore loses nothing, and a
reconnect - to this process or, with Redis, to any process - resumes exactly where the client was.

- :class:`InProcessBuffer` (the default): a list per stream in this process's memory.
- :class:`RedisStreamBuffer`: one Redis Stream per stream (``XADD``/``XREAD``; the entry ids such as
  ``1767225600000-0`` *are* the SSE event ids), a hash for its metadata, both expiring with ``EXPIRE``;
  cancellation travels between processes over pub/sub. Its connections come from one bounded pool, and
  waiting readers share one ``XREAD BLOCK`` connection (a fan-out), so a thousand open streams need a
  handful of connections, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
_REDIS_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_REDIS_MAX_ID_PART = 2**64 - 1


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
        if len(self._streams) >= self.max_streams:
            soonest = min(r.expires for r in self._streams.values())
            raise BufferFull(self.max_streams, max(1.0, soonest - self._clock()))
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
        return _INPROCESS_ID.fullmatch(event_id) is not None

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
def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class _Waiter:
    key: str
    after: str
    done: asyncio.Future


class _ReadFanOut:
    """One ``XREAD BLOCK`` on one connection for every reader of this process that is waiting.

    A reader that has caught up registers ``(stream key, last id)``; the loop blocks on all those keys at
    once and hands each reader the entries after its id. A reader whose key is not in the current
    ``XREAD`` wakes the loop through a private stream (``{prefix}:wake:<random>``) that is always part of
    it, so nobody waits for the block timeout to pass.
    """

    def __init__(self, make_client: Callable[[], Any], wake_key: str, *, block_ms: int = 2_000,
                 ttl_s: float = 600.0):
        self._make_client = make_client
        self.wake_key = wake_key
        self._wake_id = "0-0"
        self._block_ms = block_ms
        self._ttl_ms = max(1000, int(ttl_s * 1000))
        self._waiters: dict[str, list[_Waiter]] = {}
        self._reading: dict[str, tuple[int, int]] = {}  # key -> id asked for by the XREAD in flight
        self._client: Any = None
        self._task: asyncio.Task | None = None
        self._failure: BaseException | None = None

    def covers(self, key: str, after: str) -> bool:
        """Whether the XREAD in flight will return every entry of ``key`` after ``after``."""
        reading = self._reading.get(key)
        return reading is not None and reading <= _id_key(after) and self._task is not None and not self._task.done()

    async def wait(self, shared: Any, key: str, after: str, timeout: float) -> list[tuple[str, dict]]:
        """Entries of ``key`` after ``after``, waiting up to ``timeout`` s; [] when none came."""
        waiter = _Waiter(key, after, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(key, []).append(waiter)
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="llmkit-redis-fanout")
            elif key not in self._reading or self._reading[key] > _id_key(after):
                await shared.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)
            async with asyncio.timeout(timeout):
                return await waiter.done
        except TimeoutError:
            return []
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]

    async def _run(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        try:
            while self._waiters:
                streams = {key: min((w.after for w in ws), key=_id_key) for key, ws in self._waiters.items()}
                self._reading = {key: _id_key(after) for key, after in streams.items()}
                streams[self.wake_key] = self._wake_id
                reply = await self._client.xread(streams, count=1000, block=self._block_ms)
                self._reading = {}
                for key, entries in reply or ():
                    if key == self.wake_key:
                        self._wake_id = entries[-1][0]
                        continue
                    for waiter in list(self._waiters.get(key, ())):
                        after = _id_key(waiter.after)
                        mine = [e for e in entries if _id_key(e[0]) > after]
                        if mine and not waiter.done.done():
                            waiter.done.set_result(mine)
        except Exception:
            # A broken connection: the waiting readers look again now (a reader whose Redis is really gone
            # fails on its next command and its client reconnects), and the next wait starts a fresh loop.
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()
            for waiters in self._waiters.values():
                for waiter in waiters:
                    if not waiter.done.done():
                        waiter.done.set_result([])
        finally:
            self._reading = {}

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RedisStreamBuffer(EventBuffer):
    """Events in Redis Streams, shared by every server process using the same Redis. Introduced in lesson 9.

    Keys: ``{prefix}:{id}:meta`` (a hash) and ``{prefix}:{id}:events`` (a stream whose entry ids are the
    SSE event ids), both with ``EXPIRE ttl``; cancels are published on ``{prefix}:cancel``. Give it a URL
    (``redis://127.0.0.1:6379/0``) or a ``redis.asyncio.Redis``.

    With a URL the commands share one ``BlockingConnectionPool`` of ``max_connections`` connections (the
    cancel listener's pub/sub holds one of them): a command waits up to ``pool_timeout`` seconds for a free
    one instead of failing at once. Readers that wait for new events share one more connection (one
    ``XREAD BLOCK`` for all), so a process opens at most ``max_connections + 1`` connections to Redis
    however many streams it serves.
    """

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *, ttl_s: float = 600.0,
                 prefix: str = "llmkit:sse", max_connections: int = 128, pool_timeout: float = 60.0):
        import secrets

        import redis.asyncio as aioredis

        self.ttl_s = ttl_s
        self.prefix = prefix
        if isinstance(url_or_client, str):
            pool = aioredis.BlockingConnectionPool.from_url(url_or_client, decode_responses=True,
                                                            max_connections=max_connections,
                                                            timeout=pool_timeout)
            self.redis = aioredis.Redis.from_pool(pool)
        else:
            self.redis = url_or_client
        shared_pool = self.redis.connection_pool

        def blocking_client() -> Any:
            # Its own one-connection pool, so the blocked XREAD never waits for (or holds) a shared connection.
            # Its socket timeout must outlast the XREAD BLOCK (2 s), or every idle wait would end in an error.
            kwargs = {**shared_pool.connection_kwargs, "socket_timeout": 30.0}
            own = aioredis.ConnectionPool(connection_class=shared_pool.connection_class, max_connections=1, **kwargs)
            return aioredis.Redis.from_pool(own)

        self._fanout = _ReadFanOut(blocking_client, f"{prefix}:wake:{secrets.token_hex(8)}", ttl_s=ttl_s)
        self._expires: dict[str, float] = {}  # stream -> monotonic deadline, for the streams produced here
        self._callbacks: list[Callable[[str], None]] = []
        self._listener: asyncio.Task | None = None
        self._listener_lock: asyncio.Lock | None = None
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
        self._expires[stream_id] = time.monotonic() + ttl

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        meta = await self.redis.hgetall(self._meta_key(stream_id))
        return meta or None

    async def append(self, stream_id: str, event: str, data: dict) -> str:
        key = self._events_key(stream_id)
        deadline = self._expires.get(stream_id)
        # The stream lives as long as its metadata: the whole answer stays resumable until both expire.
        ttl_ms = (max(1, int((deadline - time.monotonic()) * 1000)) if deadline is not None
                  else max(1, await self.redis.pttl(self._meta_key(stream_id))))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"event": event, "data": json.dumps(data, separators=(",", ":"))})
            pipe.pexpire(key, ttl_ms)
            entry_id, _ = await pipe.execute()
        if event in TERMINAL_EVENTS:
            self._expires.pop(stream_id, None)
        return entry_id

    async def read(self, stream_id: str, after: str | None, *, wait: float) -> list[StoredEvent]:
        key = self._events_key(stream_id)
        after = after or "0-0"
        entries: list = []
        # A reader coming back for more while the shared XREAD already watches its stream (the usual case)
        # skips its own XREAD: the shared one returns whatever arrives after its id.
        if not (wait > 0 and self._fanout.covers(key, after)):
            reply = await self.redis.xread({key: after}, count=1000)
            entries = reply[0][1] if reply else []
        if not entries and wait > 0:
            entries = await self._fanout.wait(self.redis, key, after, wait)
        return [StoredEvent(entry_id, fields["event"], json.loads(fields["data"])) for entry_id, fields in entries]

    def valid_id(self, event_id: str) -> bool:
        match = _REDIS_ID.fullmatch(event_id)
        return match is not None and all(int(part) <= _REDIS_MAX_ID_PART for part in match.groups())

    async def expire(self, stream_id: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        self._expires.pop(stream_id, None)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(self._meta_key(stream_id), ms)
            pipe.pexpire(self._events_key(stream_id), ms)
            await pipe.execute()

    async def publish_cancel(self, stream_id: str) -> None:
        await self.redis.publish(self._channel, stream_id)

    async def watch_cancels(self, callback: Callable[[str], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._listener_lock is None:
            self._listener_lock = asyncio.Lock()
        async with self._listener_lock:  # many first requests at once must start one listener, not many
            if self._listener is None:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._channel)
                self._listener = asyncio.create_task(self._listen(), name="llmkit-redis-cancels")

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
        await self._fanout.aclose()
        await self.redis.delete(self._fanout.wake_key)
        await self.redis.aclose()
