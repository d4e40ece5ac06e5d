"""llmkit.memory survives bad data and concurrent first opens (lesson 7, 07_memory_systems).

Out-of-range timestamps and non-finite vectors are refused before anything is written, so no other
process can ever read them; rows written by an older llmkit that lacked these checks stay readable.
Several real processes (``spawn``) creating the same new file at once all succeed.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from llmkit.errors import LlmkitError
from llmkit.memory import EmbedderError, HashEmbedder, Memory, MemorySystemError, MemoryTimestampError

PLUS14 = timezone(timedelta(hours=14))
BAD_TIMESTAMPS = [
    pytest.param(1e20, id="epoch-1e20"),
    pytest.param(1.7e12, id="epoch-milliseconds"),
    pytest.param(-1.0, id="before-1970"),
    pytest.param(datetime(1, 1, 1, tzinfo=PLUS14), id="year-1-plus-14h"),
    pytest.param("0001-01-01T00:00:00+14:00", id="iso-year-1-plus-14h"),
    pytest.param(datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), id="utc-year-10000"),
    pytest.param(datetime(1, 1, 1), id="naive-year-1"),
]
SPAWN = multiprocessing.get_context("spawn")


class PoisonedEmbedder(HashEmbedder):
    """A hashing embedder that returns NaN (or inf) for texts containing "poison" ("infinite")."""

    def embed(self, texts):
        vecs = super().embed(texts)
        for row, text in enumerate(texts):
            if "poison" in text:
                vecs[row, 0] = np.nan
            elif "infinite" in text:
                vecs[row, :] = np.inf
        return vecs


def _every_read(mem: Memory, ids: list[int]) -> list[datetime]:
    """Every read path that returns rows: get, window, search (all modes), context_for."""
    stamps = [mem.get(i).timestamp for i in ids]
    stamps += [r.timestamp for r in mem.window("s")]
    for mode in ("hybrid", "dense", "lexical"):
        stamps += [h.timestamp for h in mem.search("hello world", k=10, mode=mode)]
    assert mem.context_for("hello world", session_id="s")
    return stamps


# --- timestamps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS)
def test_out_of_range_timestamps_are_refused_and_nothing_is_stored(memory_path, timestamp):
    mem = Memory(memory_path, embedder=HashEmbedder())
    with pytest.raises(MemoryTimestampError, match="1970-01-01 to 9999-12-31") as info:
        mem.add("s", "user", "hello world", timestamp=timestamp)
    assert isinstance(info.value, MemorySystemError) and isinstance(info.value, LlmkitError)
    assert isinstance(info.value, ValueError)  # code that caught ValueError for bad input still does
    with pytest.raises(MemoryTimestampError, match=r"items\[1\]"):
        mem.add_many([{"session_id": "s", "role": "user", "content": "fine"},
                      {"session_id": "s", "role": "user", "content": "bad", "timestamp": timestamp}])
    with pytest.raises(MemoryTimestampError):
        mem.record_episode("s", "deploy", "it broke", {}, "rolled back", timestamp=timestamp)
    assert len(mem) == 0 and mem.stats()["memories"] == 0


def test_milliseconds_get_a_hint():
    with pytest.raises(MemoryTimestampError, match="milliseconds: divide by 1000"):
        Memory(embedder=HashEmbedder()).add("s", "user", "x", timestamp=1.7e12)


def test_the_edges_of_the_range_are_stored_and_read_back(memory_path):
    path = memory_path
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    with Memory(path, embedder=HashEmbedder()) as mem:
        ids = [mem.add("s", "user", "hello world first", timestamp=0),
               mem.add("s", "user", "hello world last", timestamp=last),
               mem.add("s", "user", "hello world kiribati", timestamp="9999-12-31T23:00:00+14:00"),
               mem.add("s", "user", "hello world baker", timestamp="1970-01-01T00:00:00-12:00")]
    with Memory(path, embedder=HashEmbedder()) as mem:
        assert [mem.get(i).timestamp for i in ids] == [
            datetime(1970, 1, 1, tzinfo=UTC), last,
            datetime(9999, 12, 31, 23, 0, tzinfo=PLUS14),
            datetime(1970, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-12))),
        ]
        _every_read(mem, ids)


def _write_bad_timestamps(path: str, results) -> None:
    """Another process tries every bad timestamp on a shared file; it reports what it was told."""
    from llmkit.memory import HashEmbedder, Memory, MemoryTimestampError

    told = []
    with Memory(path, embedder=HashEmbedder()) as mem:
        for ts in (1e20, datetime(1, 1, 1, tzinfo=PLUS14), "0001-01-01T00:00:00+14:00"):
            try:
                mem.add("s", "user", "hello world from elsewhere", timestamp=ts)
                told.append("stored")
            except MemoryTimestampError:
                told.append("refused")
    results.put(told)


def test_a_bad_timestamp_from_another_process_never_reaches_readers(memory_path):
    path = memory_path
    with Memory(path, embedder=HashEmbedder()) as reader:
        ids = [reader.add("s", "user", "hello world", timestamp=datetime(2024, 5, 1, tzinfo=UTC))]
        results = SPAWN.Queue()
        writer = SPAWN.Process(target=_write_bad_timestamps, args=(path, results))
        writer.start()
        told = results.get(timeout=120)
        writer.join(60)
        assert told == ["refused"] * 3 and writer.exitcode == 0
        assert len(reader) == 1  # nothing arrived
        _every_read(reader, ids)
    with Memory(path, embedder=HashEmbedder()) as reopened:
        assert len(reopened) == 1
        _every_read(reopened, ids)


def test_rows_written_before_validation_stay_readable(memory_path):
    """A file poisoned by an older llmkit (ts = 1e20, or year 1 at +14:00) no longer breaks every read."""
    path = memory_path
    with Memory(path, embedder=HashEmbedder()) as mem:
        ids = fill_hello(mem, 3)
    # what the old code let add() write
    raw_execute(path, "UPDATE memories SET ts = 1e20, tz = 0 WHERE id = ?", (ids[0],))
    raw_execute(path, "UPDATE memories SET ts = ?, tz = 50400 WHERE id = ?",
                (datetime(1, 1, 1, tzinfo=PLUS14).timestamp(), ids[1]))
    with Memory(path, embedder=HashEmbedder()) as mem:
        stamps = _every_read(mem, ids)
    assert all(datetime(1969, 12, 31, tzinfo=UTC) <= t <= datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
               for t in stamps)
    assert mem_get_year(path, ids[0]) == 9999 and mem_get_year(path, ids[1]) == 1970


def raw_execute(path: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run SQL on the store behind ``Memory``'s back (``?`` placeholders), return its rows."""
    if path.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(path, autocommit=True) as conn:
            conn.execute("SET search_path TO llmkit_memory, public")
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def fill_hello(mem: Memory, n: int) -> list[int]:
    return [mem.add("s", "user", f"hello world number {i}", timestamp=datetime(2024, 5, 1, tzinfo=UTC))
            for i in range(n)]


def mem_get_year(path: str, memory_id: int) -> int:
    with Memory(path, embedder=HashEmbedder()) as mem:
        return mem.get(memory_id).timestamp.year


# --- non-finite vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a poison pill", "an infinite loop"])
def test_non_finite_vectors_are_refused_for_the_whole_batch(memory_path, bad):
    path = memory_path
    with Memory(path, embedder=PoisonedEmbedder()) as mem:
        items = [{"session_id": "s", "role": "user", "content": c} for c in ("hello", bad, "world")]
        with pytest.raises(EmbedderError, match="NaN or infinite values for 1 of 3 texts") as info:
            mem.add_many(items)
        assert bad[:10] in str(info.value) and "nothing was stored" in str(info.value)
        with pytest.raises(EmbedderError):
            mem.record_episode("s", "deploy", bad, {}, "ok")
        with pytest.raises(EmbedderError):
            mem.search(bad, mode="dense")
        assert len(mem) == 0 and all(mem.check().values())
        mem.add("s", "user", "hello")  # a good batch afterwards is stored as usual
        with pytest.raises(ValueError, match="NaN or infinite"):
            mem.search("hello", embedding=np.full(mem.dim, np.nan))
    assert raw_execute(path, "SELECT count(*) FROM memories") == [(1,)]


def _write_poisoned_batch(path: str, results) -> None:
    from llmkit.memory import EmbedderError, Memory

    with Memory(path, embedder=PoisonedEmbedder()) as mem:
        try:
            mem.add_many([{"session_id": "s", "role": "user", "content": c}
                          for c in ("hello", "poison", "world")])
            results.put("stored")
        except EmbedderError:
            results.put("refused")


def test_a_poisoned_batch_from_another_process_writes_nothing(memory_path):
    path = memory_path
    with Memory(path, embedder=PoisonedEmbedder()) as reader:
        reader.add("s", "user", "hello world")
        results = SPAWN.Queue()
        writer = SPAWN.Process(target=_write_poisoned_batch, args=(path, results))
        writer.start()
        assert results.get(timeout=120) == "refused"
        writer.join(60)
        assert len(reader) == 1
        hits = reader.search("hello world", k=5)
        assert [h.content for h in hits] == ["hello world"]
        assert all(np.isfinite(h.score) for h in hits)


# --- concurrent first opens --------------------------------------------------------------------------


def _open_new_files(stores: list[str], start, results) -> None:
    """Each round, every worker opens the same brand-new file at the same moment and writes a row."""
    from llmkit.memory import HashEmbedder, Memory

    for n, store in enumerate(stores):
        start.wait()
        try:
            with Memory(store, embedder=HashEmbedder(64)) as mem:
                mem.add("s", "user", f"hello from round {n}")
            results.put((n, "ok"))
        except Exception as exc:  # reported, not raised: the parent counts failures
            results.put((n, f"{type(exc).__name__}: {exc}"))


def test_processes_creating_the_same_new_file_at_once_all_succeed(tmp_path, memory_backend, request):
    workers, rounds = 4, 15 if memory_backend == "sqlite" else 4
    if memory_backend == "sqlite":
        stores = [str(tmp_path / f"race-{n}.db") for n in range(rounds)]
    else:  # fresh databases: the extension, schema and tables are created by the racing openers
        stores = [request.getfixturevalue("postgres_url")]
        stores += [_new_database(request.getfixturevalue("postgres_server_url"), request)
                   for _ in range(rounds - 1)]
    start, results = SPAWN.Barrier(workers), SPAWN.Queue()
    procs = [SPAWN.Process(target=_open_new_files, args=(stores, start, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in range(workers * rounds)]
    for p in procs:
        p.join(60)
    failures = [o for o in outcomes if o[1] != "ok"]
    assert failures == [], f"{len(failures)} of {len(outcomes)} opens failed: {failures[:3]}"
    for store in stores:
        with Memory(store, embedder=HashEmbedder(64)) as mem:
            assert len(mem) == workers and all(mem.check().values())
            assert mem.store.version == mem.stats()["schema_version"]


def _new_database(server_url: str, request) -> str:
    """Another empty database on the test server, dropped when the test ends."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"llmkit_race_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    request.addfinalizer(drop)
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
