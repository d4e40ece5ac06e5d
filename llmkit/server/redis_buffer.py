"""The Redis backend of the relay's event buffer (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). One Redis Stream per stream (``XADD``/``XREAD``; the entry ids such
as ``1767225600000-0`` *are* the SSE event ids), a hash for its metadata, both expiring with ``EXPIRE``;
cancellation travels between processes over pub/sub.

What keeps a thousand open streams cheap is the number of round trips, not the number of commands:

- every command a request or a producer issues (create, meta, append, a catch-up ``XREAD``, expire) joins
  the next *batch*: whatever many tasks ask for while one batch is in flight leaves as one pipeline on one
  connection of its own (auto-pipelining, as ioredis and Lettuce do it); creating a stream is one batched
  ``HSET`` + ``EXPIRE``, and an event one ``XADD`` (its stream takes its expiry with the first one);
- a reader of a stream whose producer runs in this process is handed the new events by the batch that
  stored them, and one that fell a little behind reads the stream's last 64 events from memory: no
  ``XREAD`` at all unless it fell far behind;
- readers of streams produced by *another* process share one ``XREAD BLOCK`` (a fan-out).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .buffers import TERMINAL_EVENTS, EventBuffer, StoredEvent

_REDIS_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_REDIS_MAX_ID_PART = 2**64 - 1


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _stored(entries: list) -> list[StoredEvent]:
    return [StoredEvent(entry_id, fields["event"], json.loads(fields["data"])) for entry_id, fields in entries]


# --- one round trip for many callers ---------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class _Op:
    add: Callable[[Any], Any]  # queues this op's commands on a pipeline
    count: int  # how many commands it queued
    future: asyncio.Future
    # Runs in the batch loop as soon as the replies are in; its return value is the caller's result.
    settled: Callable[[list], Any] | None
    failed: Callable[[], None] | None  # an ordered op (an append): runs when its batch (or one before it) broke
    resent: bool = False  # an unordered op (create, meta, read, expire) is sent once more after a broken batch


class _Batcher:
    """Sends the commands of every caller waiting at the same moment as one pipeline (one round trip).

    One batch is in flight at a time; whatever is asked meanwhile forms the next one, so a busy process
    makes one round trip per batch instead of one (or three, for MULTI/EXEC) per command. A caller gets
    its own replies; a command that fails fails only its caller. A broken connection fails the batch's
    appends and those queued behind them (sent later, they would land after a gap; resent, they could be
    stored twice); its other commands, idempotent, are sent once more on a new connection.
    """

    def __init__(self, redis: Any, after_batch: Callable[[], None]):
        self._redis = redis
        self._after_batch = after_batch
        self._pending: list[_Op] = []
        self._task: asyncio.Task | None = None

    def submit(self, add: Callable[[Any], Any], count: int = 1, settled: Callable[[list], Any] | None = None,
               failed: Callable[[], None] | None = None) -> asyncio.Future:
        op = _Op(add, count, asyncio.get_running_loop().create_future(), settled, failed)
        self._pending.append(op)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="llmkit-redis-batch")
        return op.future

    async def call(self, add: Callable[[Any], Any], count: int = 1) -> list:
        return await self.submit(add, count)

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for op in batch:
                        op.add(pipe)
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the connection broke: the next batch opens a new one
                ordered = [op for op in self._pending if op.failed is not None]
                again = [op for op in batch if op.failed is None and not op.resent]
                self._pending = again + [op for op in self._pending if op.failed is None]
                for op in again:
                    op.resent = True  # idempotent: resending it is safe, once
                for op in batch + ordered:
                    if op.resent and op in again:
                        continue
                    if op.failed is not None:
                        op.failed()
                    if not op.future.done():
                        op.future.set_exception(exc)
                self._after_batch()
                continue
            start = 0
            for op in batch:
                mine, start = replies[start:start + op.count], start + op.count
                error = next((r for r in mine if isinstance(r, Exception)), None)
                result: Any = mine
                if error is None and op.settled is not None:
                    try:
                        result = op.settled(mine)
                    except Exception as exc:  # never leave the rest of the batch waiting
                        error = exc
                if not op.future.done():
                    op.future.set_exception(error) if error is not None else op.future.set_result(result)
            self._after_batch()

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task  # let the last batch land: it may hold a stream's terminal event


# --- readers of streams produced in this process -----------------------------------------------------------
#: How many recent events of each stream produced here are kept in memory for its readers.
RECENT_EVENTS = 64


@dataclass(eq=False, slots=True)
class _Local:
    """A stream whose producer runs here: its deadline, its newest events and the readers waiting for more.

    Every event of the stream is stored by this process's batches, in order, so ``tail`` (the newest id)
    is exact, and a reader up to ``RECENT_EVENTS`` events behind is served from ``recent`` without Redis.
    """

    deadline: float  # time.monotonic() when its keys expire
    tail: tuple[int, int] = (0, 0)
    floor: tuple[int, int] = (0, 0)  # the newest id no longer in ``recent``
    ttl_set: bool = False  # the events key has its expiry (set with the first XADD, kept by the ones after)
    recent: list[StoredEvent] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    waiters: list[tuple[tuple[int, int], asyncio.Future]] = field(default_factory=list)

    def stored(self, event: StoredEvent) -> None:
        self.tail = _id_key(event.id)
        self.recent.append(event)
        self.ids.append(self.tail)
        if len(self.recent) > 2 * RECENT_EVENTS:
            self.floor = self.ids[-RECENT_EVENTS - 1]
            del self.recent[:-RECENT_EVENTS], self.ids[:-RECENT_EVENTS]

    def distrust(self) -> None:
        # A broken batch may have stored part of its events unseen here: from now on readers behind read Redis.
        self.floor = (2**64, 0)

    def since(self, after: tuple[int, int]) -> list[StoredEvent] | None:
        """The events after ``after``, or None when some of them are no longer kept here."""
        if after < self.floor:
            return None
        return self.recent[bisect.bisect_right(self.ids, after):]

    def wake(self) -> None:
        waiting, self.waiters = self.waiters, []
        for after, future in waiting:
            if future.done():
                continue
            if self.tail > after:
                future.set_result(self.since(after) or [])
            else:  # a forged Last-Event-ID ahead of the stream: keep waiting for a later id
                self.waiters.append((after, future))

    async def wait(self, after: tuple[int, int], timeout: float) -> list[StoredEvent]:
        future = asyncio.get_running_loop().create_future()
        entry = (after, future)
        self.waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return []
        finally:
            with contextlib.suppress(ValueError):
                self.waiters.remove(entry)


# --- readers of streams produced elsewhere -----------------------------------------------------------------
@dataclass(eq=False)
class _Waiter:
    key: str
    after: str
    done: asyncio.Future


class _ReadFanOut:
    """One ``XREAD BLOCK`` on one connection for every reader of this process waiting on a remote stream.

    A reader that has caught up registers ``(stream key, last id)``; the loop blocks on all those keys at
    once and hands each reader the entries after its id. A reader whose key is not in the current
    ``XREAD`` wakes the loop through a private stream (``{prefix}:wake:<random>``) that is always part of
    it, so nobody waits for the block timeout to pass.
    """

    def __init__(self, make_client: Callable[[], Any], wake_key: str, *, block_ms: int = 2_000):
        self._make_client = make_client
        self.wake_key = wake_key
        self._wake_id = "0-0"
        self._block_ms = block_ms
        self._waiters: dict[str, list[_Waiter]] = {}
        self._reading: dict[str, tuple[int, int]] = {}  # key -> id asked for by the XREAD in flight
        self._client: Any = None
        self._task: asyncio.Task | None = None

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

    Commands issued at the same moment travel together as one pipeline, and readers of the streams this
    process produces are handed their events without asking Redis, so a busy relay makes a few round trips
    per batch of events rather than several per event and reader. The batches have one connection of their
    own; readers waiting on streams produced by other processes share one more (one ``XREAD BLOCK`` for all);
    the rest (the cancel listener's pub/sub, publishing a cancel) comes from one ``BlockingConnectionPool`` of
    ``max_connections`` when you give a URL (a command waits up to ``pool_timeout`` seconds for a free one
    instead of failing at once). A process therefore opens at most ``max_connections + 2`` connections to
    Redis, and in practice three or four, however many streams it serves.
    """

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *, ttl_s: float = 600.0,
                 prefix: str = "llmkit:sse", max_connections: int = 128, pool_timeout: float = 60.0):
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

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

        def own_client(**overrides: Any) -> Any:
            # A one-connection pool of its own, so this client never waits for (or holds) a shared connection.
            kwargs = {**shared_pool.connection_kwargs, **overrides}
            own = aioredis.ConnectionPool(connection_class=shared_pool.connection_class, max_connections=1, **kwargs)
            return aioredis.Redis.from_pool(own)

        # The batches: no automatic retry, since resending a batch whose reply was lost would store its events
        # twice; a failed batch fails its callers (a producer then ends its stream with an error event).
        self._batch_client = own_client(retry=Retry(NoBackoff(), 0))
        self._batch = _Batcher(self._batch_client, self._wake_readers)
        self._touched: list[_Local] = []  # streams that got events in the batch being settled
        # The shared XREAD BLOCK: its socket timeout must outlast the block (2 s), or every idle wait would fail.
        self._fanout = _ReadFanOut(lambda: own_client(socket_timeout=30.0), f"{prefix}:wake:{secrets.token_hex(8)}")
        self._local: dict[str, _Local] = {}  # the streams produced here that have not ended, oldest first
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

    def _forget_expired(self) -> None:
        # A producer that never stored its end (its Redis went away) must not be remembered forever.
        now = time.monotonic()
        while self._local:
            sid, local = next(iter(self._local.items()))
            if local.deadline > now:
                return
            del self._local[sid]

    async def create(self, stream_id: str, meta: dict[str, str]) -> None:
        ttl = max(1, round(self.ttl_s))
        key = self._meta_key(stream_id)
        await self._batch.call(lambda pipe: (pipe.hset(key, mapping=meta), pipe.expire(key, ttl)), 2)
        self._forget_expired()
        self._local[stream_id] = _Local(time.monotonic() + ttl)

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        key = self._meta_key(stream_id)
        (meta,) = await self._batch.call(lambda pipe: pipe.hgetall(key))
        return meta or None

    async def append(self, stream_id: str, event: str, data: dict) -> str:
        return await self.append_soon(stream_id, event, data)

    def append_soon(self, stream_id: str, event: str, data: dict) -> Any:
        """Queue one event in the next batch and return at once: a future of its id. The producer of a busy
        stream thus sends several of its events in one round trip instead of waiting for each."""
        key = self._events_key(stream_id)
        fields = {"event": event, "data": json.dumps(data, separators=(",", ":"))}
        local = self._local.get(stream_id)
        if local is None:  # a stream created elsewhere: it lives as long as its metadata
            return asyncio.ensure_future(self._append_elsewhere(stream_id, key, fields))
        # The events key takes the metadata's deadline with the first XADD (which creates it) and keeps it; near
        # or past the deadline every XADD sets it again (an XADD after the key expired creates it anew).
        ttl_ms = int((local.deadline - time.monotonic()) * 1000)
        with_ttl = not local.ttl_set or ttl_ms < 1000
        ttl_ms = max(1, ttl_ms)
        if with_ttl:
            local.ttl_set = True  # queued: the events after it need not repeat it (a failed batch resets it)

        def add(pipe: Any) -> None:
            pipe.xadd(key, fields)
            if with_ttl:
                pipe.pexpire(key, ttl_ms)

        def settled(replies: list) -> str:
            # In the batch loop, before any other task runs: ``tail`` never lags what Redis holds.
            local.stored(StoredEvent(replies[0], event, json.loads(fields["data"])))
            self._touched.append(local)
            if event in TERMINAL_EVENTS:
                self._local.pop(stream_id, None)
            return replies[0]

        def failed() -> None:
            local.ttl_set = False
            local.distrust()
            self._touched.append(local)

        return self._batch.submit(add, 2 if with_ttl else 1, settled, failed)

    async def _append_elsewhere(self, stream_id: str, key: str, fields: dict[str, str]) -> str:
        (pttl,) = await self._batch.call(lambda pipe: pipe.pttl(self._meta_key(stream_id)))
        replies = await self._batch.call(lambda pipe: (pipe.xadd(key, fields), pipe.pexpire(key, max(1, pttl))), 2)
        return replies[0]

    async def _xread(self, key: str, after: str) -> list[StoredEvent]:
        (reply,) = await self._batch.call(lambda pipe: pipe.xread({key: after}, count=1000))
        return _stored(reply[0][1]) if reply else []

    def _wake_readers(self) -> None:
        # Once per batch, so a reader waiting on a stream gets all of the batch's events for it at once.
        touched, self._touched = self._touched, []
        for local in touched:
            local.wake()

    async def read(self, stream_id: str, after: str | None, *, wait: float) -> list[StoredEvent]:
        key = self._events_key(stream_id)
        after = after or "0-0"
        mark = _id_key(after)
        local = self._local.get(stream_id)
        if local is not None:  # produced here: Redis is asked only by a reader far behind
            if local.tail > mark:
                events = local.since(mark)
                return events if events is not None else await self._xread(key, after)
            return await local.wait(mark, wait) if wait > 0 else []
        # Produced in another process (or ended): read, then wait on the shared XREAD BLOCK, unless the one in
        # flight already watches this stream from this id on (a reader coming back for more, the usual case).
        if not (wait > 0 and self._fanout.covers(key, after)):
            events = await self._xread(key, after)
            if events or wait <= 0:
                return events
        return _stored(await self._fanout.wait(self.redis, key, after, wait))

    def valid_id(self, event_id: str) -> bool:
        match = _REDIS_ID.fullmatch(event_id)
        return match is not None and all(int(part) <= _REDIS_MAX_ID_PART for part in match.groups())

    async def expire(self, stream_id: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        self._local.pop(stream_id, None)
        meta_key, events_key = self._meta_key(stream_id), self._events_key(stream_id)
        await self._batch.call(lambda pipe: (pipe.pexpire(meta_key, ms), pipe.pexpire(events_key, ms)), 2)

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
        await self._batch.aclose()
        await self._batch_client.aclose()
        await self._fanout.aclose()
        await self.redis.delete(self._fanout.wake_key)
        await self.redis.aclose()
