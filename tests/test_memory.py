"""Tests for llmkit.memory: storage, retrieval, concurrency, bad input (lesson 7)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import sqlite_only

import llmkit.memory as memory_pkg
from llmkit.memory import (
    EmbedderError,
    HashEmbedder,
    Memory,
    MemoryDatabaseError,
    Weights,
)
from llmkit.memory._index import DenseIndex
from llmkit.memory._store import MIGRATIONS, SCHEMA_VERSION

FACTS = [
    "My cat Pixel knocked the coffee mug off the desk",
    "I booked flight FI-615 to Reykjavik for August",
    "The dishwasher keeps flashing error E1042",
    "We had dinner at a tiny restaurant in Porto",
    "Lena gave birth to a baby girl named Ines",
    "I switched to day shifts because nights wrecked my sleep",
]


@pytest.fixture
def emb() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def db(memory_path):
    """A SQLite file or a PostgreSQL database: every test here runs against both backends."""
    return memory_path


def healthy(mem: Memory) -> bool:
    """``mem.check()`` passes every check of its backend."""
    engine = "postgresql" if mem.remote else "sqlite"
    return mem.check() == {engine: True, "fts": True, "index": True}


def fill(mem: Memory, texts=FACTS, session="s1") -> list[int]:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return mem.add_many(
        {"session_id": session, "role": "user", "content": t,
         "timestamp": start + timedelta(minutes=n)}
        for n, t in enumerate(texts)
    )


# --- public surface ---------------------------------------------------------------------------


def test_all_lists_exactly_the_public_names():
    public = {n for n in dir(memory_pkg) if not n.startswith("_")}
    modules = {"naive", "evaluate"}  # submodules, imported on demand
    assert set(memory_pkg.__all__) == public - modules
    for name in memory_pkg.__all__:
        assert getattr(memory_pkg, name) is not None


def test_import_does_not_load_torch():
    code = "import sys, llmkit.memory; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- storage ----------------------------------------------------------------------------------


def test_persists_across_reopen(db, emb):
    meta = {"dia_id": "D1:3", "tags": ["cat", "home"], "score": 0.25, "nested": {"ok": True}}
    with Memory(db, embedder=emb) as mem:
        ids = fill(mem)
        extra = mem.add("s2", "assistant", "Pixel is a tabby", metadata=meta, importance=0.9)
    with Memory(db, embedder=emb) as mem:
        assert len(mem) == len(ids) + 1
        assert healthy(mem)
        hit = mem.search("tabby Pixel", k=1)[0]
        assert (hit.id, hit.session_id, hit.role, hit.importance) == (extra, "s2", "assistant", 0.9)
        assert hit.metadata == meta
        assert [h.id for h in mem.search("E1042", k=1, mode="lexical")] == [ids[2]]
        assert mem.get(ids[0]).timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        assert mem.add("s1", "user", "after reopen") == extra + 1  # ids keep increasing


def test_file_is_wal_with_schema_version_and_float32_blobs(db, emb, memory_backend):
    sqlite_only(memory_backend, "journal mode and blob layout of the file")
    with Memory(db, embedder=emb) as mem:
        fill(mem)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    blob = conn.execute("SELECT embedding FROM memories LIMIT 1").fetchone()[0]
    vec = np.frombuffer(blob, dtype=np.float32)
    assert vec.shape == (emb.dim,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    conn.close()


def test_migrates_a_version_1_database(db, emb, memory_backend):
    if memory_backend == "postgresql":
        return migrate_a_version_1_postgres_database(db, emb)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA page_size = 16384")
    for sql in MIGRATIONS[0][1]:
        conn.execute(sql)
    conn.execute("PRAGMA application_id = 1280003405")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO meta VALUES ('embedder', ?), ('dim', ?)", (emb.name, str(emb.dim)))
    conn.execute("INSERT INTO sessions(id, name) VALUES (1, 'old')")
    vec = emb.embed(["written before consolidation existed"])[0]
    conn.execute(
        "INSERT INTO memories(kind, session, role, content, ts, importance, tokens, embedding) "
        "VALUES (0, 1, 'user', 'written before consolidation existed', 0, 0.5, 6, ?)",
        (vec.tobytes(),),
    )
    conn.close()
    with Memory(db, embedder=emb) as mem:
        assert mem.store.version == SCHEMA_VERSION == 3
        hit = mem.search("consolidation", k=1)[0]
        assert (hit.session_id, hit.content) == ("old", "written before consolidation existed")
        assert mem.stats()["unconsolidated_messages"] == 1  # v2 columns got their defaults


def migrate_a_version_1_postgres_database(url, emb):
    from test_memory_users import old_store  # the same v1 store, built with the v1 migration's SQL

    old_store(url, emb, 1)
    with Memory(url, embedder=emb) as mem:
        assert mem.store.version == SCHEMA_VERSION == 3
        hit = mem.search("locker number", k=1)[0]
        assert (hit.session_id, hit.content) == ("old", "my locker is number 12")
        assert mem.stats()["unconsolidated_messages"] == 1


def test_refuses_a_postgres_database_from_a_newer_llmkit(postgres_url, emb):
    import psycopg

    Memory(postgres_url, embedder=emb).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE llmkit_memory.meta SET value = %s WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    with pytest.raises(MemoryDatabaseError, match="newer llmkit"):
        Memory(postgres_url, embedder=emb)


def test_an_unreachable_postgres_server_says_what_to_check(emb):
    with pytest.raises(MemoryDatabaseError, match="Check the URL"):
        Memory("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", embedder=emb)


def test_refuses_newer_foreign_and_corrupt_files(tmp_path, emb):
    newer = tmp_path / "newer.db"
    Memory(str(newer), embedder=emb).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(MemoryDatabaseError, match="newer llmkit"):
        Memory(str(newer), embedder=emb)

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE invoices(id INTEGER)")
    conn.close()
    with pytest.raises(MemoryDatabaseError, match="not an llmkit memory database"):
        Memory(str(foreign), embedder=emb)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(MemoryDatabaseError, match="corrupted"):
        Memory(str(garbage), embedder=emb)


def test_truncated_database_gives_a_clear_error(tmp_path, emb):
    path = tmp_path / "big.db"
    with Memory(str(path), embedder=emb) as mem:
        fill(mem, [f"memory number {i} about topic {i % 7}" for i in range(400)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MemoryDatabaseError, match="corrupted"):
        Memory(str(path), embedder=emb)


def test_embedder_must_match_the_database(db, emb):
    Memory(db, embedder=emb).close()
    with pytest.raises(EmbedderError, match="hash-256"):
        Memory(db, embedder=HashEmbedder(dim=64))


def test_storage_per_memory_is_small(db, emb):
    with Memory(db, embedder=HashEmbedder(dim=384)) as mem:
        n = 500 if mem.remote else 2000  # each insert also links into the HNSW graph: slower
        fill(mem, [f"turn {i}: we talked about hiking trip number {i} near the lake" for i in range(n)])
        if mem.remote:  # heap + HNSW graph + GIN + fixed pages: larger, still bounded
            assert mem.stats()["bytes_per_memory"] <= 6000
        else:
            mem.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            assert mem.stats()["bytes_per_memory"] <= 2500
    del emb


# --- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"content": ""}, ValueError, "content is empty"),
        ({"content": "   \n"}, ValueError, "content is empty"),
        ({"content": 42}, TypeError, "content must be a str"),
        ({"role": None}, TypeError, "role must be a str"),
        ({"session_id": 7}, TypeError, "session_id must be a str"),
        ({"importance": 2}, ValueError, "between 0 and 1"),
        ({"importance": "high"}, TypeError, "importance"),
        ({"metadata": ["not", "a", "dict"]}, TypeError, "metadata must be a dict"),
        ({"metadata": {"t": (1, 2)}}, TypeError, "round-trip"),
        ({"metadata": {1: "x"}}, TypeError, "round-trip"),
        ({"metadata": {"x": float("nan")}}, TypeError, "JSON"),
        ({"metadata": {"when": datetime.now()}}, TypeError, "JSON"),
        ({"timestamp": "yesterday"}, ValueError, "ISO 8601"),
        ({"timestamp": [2024]}, TypeError, "timestamp"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(db, emb, kwargs, error, match):
    mem = Memory(db, embedder=emb)
    args = {"session_id": "s", "role": "user", "content": "hello"} | kwargs
    with pytest.raises(error, match=match):
        mem.add(args.pop("session_id"), args.pop("role"), args.pop("content"), **args)
    assert len(mem) == 0 and mem.stats()["memories"] == 0


def test_add_many_reports_the_bad_item_and_stores_none(db, emb):
    mem = Memory(db, embedder=emb)
    items = [{"session_id": "s", "role": "user", "content": "fine"},
             {"session_id": "s", "role": "user", "content": ""}]
    with pytest.raises(ValueError, match=r"items\[1\]: content is empty"):
        mem.add_many(items)
    with pytest.raises(ValueError, match="unknown keys"):
        mem.add_many([{"session_id": "s", "role": "user", "content": "x", "speaker": "Al"}])
    assert len(mem) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"k": 0}, "k must be"), ({"kinds": ["semantic"]}, "unknown memory kind"),
     ({"mode": "fuzzy"}, "mode must be")],
)
def test_bad_search_arguments(db, emb, kwargs, match):
    mem = Memory(db, embedder=emb)
    with pytest.raises(ValueError, match=match):
        mem.search("anything", **kwargs)
    with pytest.raises(ValueError, match="query is empty"):
        mem.search("  ")


def test_timestamps_are_timezone_aware(db, emb):
    mem = Memory(db, embedder=emb)
    plus2 = timezone(timedelta(hours=2))
    a = mem.add("s", "user", "aware", timestamp=datetime(2024, 1, 2, 3, 4, tzinfo=plus2))
    b = mem.add("s", "user", "naive", timestamp=datetime(2024, 1, 2, 3, 4))
    c = mem.add("s", "user", "iso", timestamp="2024-01-02T03:04:00-05:00")
    d = mem.add("s", "user", "epoch", timestamp=0)
    e = mem.add("s", "user", "now")
    f = mem.add("s", "user", "locomo", timestamp="1:56 pm on 8 May, 2023")
    assert mem.get(f).timestamp == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert mem.get(a).timestamp == datetime(2024, 1, 2, 3, 4, tzinfo=plus2)
    assert mem.get(a).timestamp.utcoffset() == timedelta(hours=2)
    assert mem.get(b).timestamp == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    assert mem.get(c).timestamp.utcoffset() == timedelta(hours=-5)
    assert mem.get(d).timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    assert abs(mem.get(e).timestamp - datetime.now(UTC)) < timedelta(seconds=60)


# --- retrieval --------------------------------------------------------------------------------


def test_lexical_path_finds_rare_tokens_and_survives_fts_syntax(db, emb):
    mem = Memory(db, embedder=emb)
    ids = fill(mem)
    for query in ['E1042', '"E1042', 'E1042 AND NEAR(', 'error* -E1042 OR ^', "E1042'); DROP"]:
        hits = mem.search(query, k=3, mode="lexical")
        assert hits and hits[0].id == ids[2], query
        assert hits[0].lexical is not None and hits[0].lexical > 0
    assert mem.search("?!*", k=3, mode="lexical") == []


def test_dense_path_forgives_typos_that_lexical_misses(db, emb):
    mem = Memory(db, embedder=emb)
    ids = fill(mem)
    assert mem.search("restaurnt", k=3, mode="lexical") == []
    hits = mem.search("restaurnt", k=3, mode="dense", weights=Weights(recency=0, importance=0, hubness=0))
    assert hits[0].id == ids[3] and hits[0].dense == pytest.approx(hits[0].score)  # the cosine


def test_hybrid_combines_both_paths(db, emb):
    mem = Memory(db, embedder=emb)
    ids = fill(mem)
    hits = mem.search("restaurnt FI-615", k=2)
    assert {h.id for h in hits} == {ids[1], ids[3]}
    typo = next(h for h in hits if h.id == ids[3])
    assert typo.lexical is None and typo.dense is not None


def test_no_similarity_cut_off(db, emb):
    mem = Memory(db, embedder=emb)
    fill(mem)
    hits = mem.search("quantum chromodynamics lecture", k=4)
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert mem.search("anything", k=50)[-1] is not None and len(mem.search("x y", k=50)) == 6


def test_filters_by_session_and_kind(db, emb):
    mem = Memory(db, embedder=emb)
    fill(mem, FACTS[:3], session="a")
    fill(mem, FACTS[3:], session="b")
    ep = mem.record_episode("b", "deploy", "Deployed the dishwasher firmware", {"steps": [1, 2]},
                            "rolled back")
    assert {h.session_id for h in mem.search("dishwasher", k=10, session_id="a")} == {"a"}
    assert mem.search("dishwasher", k=10, session_id="nobody") == []
    hits = mem.search("dishwasher firmware", k=10, kinds="episodic")
    assert [h.id for h in hits] == [ep] and hits[0].kind == "episodic" and hits[0].role == "deploy"
    assert all(h.kind == "short_term" for h in mem.search("dishwasher", kinds=["short_term"]))
    episode = mem.episode(ep)
    assert (episode.full_context, episode.outcome) == ({"steps": [1, 2]}, "rolled back")


def test_recency_and_importance_weights_reorder_equal_matches(db, emb):
    mem = Memory(db, embedder=emb)
    old = mem.add("s", "user", "the blue notebook", timestamp="2020-01-01T00:00:00+00:00")
    new = mem.add("s", "user", "the blue notebook", timestamp="2024-06-01T00:00:00+00:00",
                  importance=0.1)
    now = datetime(2024, 6, 2, tzinfo=UTC)
    by_time = Weights(recency=1.0, importance=0.0)
    by_importance = Weights(recency=0.0, importance=1.0)
    assert mem.search("blue notebook", k=2, weights=by_time, now=now)[0].id == new
    assert mem.search("blue notebook", k=2, weights=by_importance, now=now)[0].id == old
    rrf = mem.search("blue notebook", k=2, weights=Weights(fusion="rrf"), now=now)
    assert {h.id for h in rrf} == {old, new}
    with pytest.raises(ValueError, match="fusion"):
        Weights(fusion="max")


def test_lexical_budget_keeps_rare_words_and_drops_common_ones(db, emb):
    mem = Memory(db, embedder=emb, lexical_budget=50)
    fill(mem, [f"weekend plans number {i}" for i in range(200)] + ["weekend kayak plans"])
    used, dropped, _ = mem.lexical.plan("kayak weekend plans", len(mem))
    assert used == ["kayak"] and set(dropped) == {"weekend", "plans"}
    assert mem.search("kayak weekend plans", k=1, mode="lexical")[0].content == "weekend kayak plans"
    # only common words: the few rows holding a pair of them are scored (AND, not OR)
    fill(mem, [f"sunny weekend number {i}" for i in range(100)] + ["sunny plans"])
    assert mem.lexical.plan("sunny weekend plans", len(mem))[0] == []
    hits = mem.search("sunny weekend plans", k=5, mode="lexical")
    assert [h.content for h in hits] == ["sunny plans"]


def test_projected_dense_search_agrees_with_exact_search():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(6000, 24)) @ rng.normal(size=(24, 128))
    vecs = latent + 0.05 * rng.normal(size=latent.shape)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    fast = DenseIndex(128, project_above=2000)
    exact = DenseIndex(128, exact=True)
    ids = np.arange(1, len(vecs) + 1)
    for index in (fast, exact):
        index.append(ids, vecs, [0] * len(ids), [1] * len(ids), [0.0] * len(ids), [0.5] * len(ids))
    assert fast.projected_dims is not None and fast.projected_dims < 128
    assert exact.projected_dims is None
    overlap = []
    for q in vecs[rng.choice(len(vecs), 50, replace=False)] + 0.1 * rng.normal(size=(50, 128)):
        q = (q / np.linalg.norm(q)).astype(np.float32)
        a, _ = fast.search(q, 10)
        b, _ = exact.search(q, 10)
        overlap.append(len(set(a.tolist()) & set(b.tolist())) / 10)
    assert np.mean(overlap) >= 0.98

    flat = DenseIndex(128, project_above=2000)  # isotropic vectors: projecting would miss rows
    iso = rng.normal(size=(3000, 128)).astype(np.float32)
    flat.append(np.arange(1, 3001), iso / np.linalg.norm(iso, axis=1, keepdims=True),
                [0] * 3000, [1] * 3000, [0.0] * 3000, [0.5] * 3000)
    assert flat.projected_dims is None and flat.energy is not None and flat.energy < 0.6


# --- concurrency and crashes --------------------------------------------------------------------


def test_concurrent_writers_and_readers_lose_nothing(db, emb):
    mem = Memory(db, embedder=emb)
    errors: list[BaseException] = []
    per_thread, threads = 40, 4

    def writer(t: int) -> None:
        try:
            for i in range(0, per_thread, 4):
                if i % 8:
                    mem.add(f"s{t}", "user", f"writer{t} note{i} token{t}x{i}")
                    mem.add_many([{"session_id": f"s{t}", "role": "user",
                                   "content": f"writer{t} note{j} token{t}x{j}"}
                                  for j in range(i + 1, i + 4)])
                else:
                    mem.add_many([{"session_id": f"s{t}", "role": "user",
                                   "content": f"writer{t} note{j} token{t}x{j}"}
                                  for j in range(i, i + 4)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(60):
                for hit in mem.search(f"note{i % 10}", k=5):
                    assert hit.content.startswith("writer")
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    pool += [threading.Thread(target=reader) for _ in range(2)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    assert len(mem) == per_thread * threads
    assert healthy(mem)
    for t in range(threads):
        for i in range(per_thread):
            assert mem.search(f"token{t}x{i}", k=1, mode="lexical")[0].content.endswith(f"token{t}x{i}")
    mem.close()


def test_a_second_connection_sees_the_first_ones_writes(db, emb):
    one, two = Memory(db, embedder=emb), Memory(db, embedder=emb)
    fill(one)
    assert two.search("E1042", k=1)[0].content == FACTS[2]
    new = two.add("s9", "user", "written through the second connection")
    assert one.search("second connection", k=1)[0].id == new
    assert one.add("s9", "user", "and the first again") == new + 1
    assert len(one) == len(two) == len(FACTS) + 2
    one.close()
    two.close()


CRASH = textwrap.dedent(
    """
    import os, sys
    from llmkit.memory import HashEmbedder, Memory
    mem = Memory(sys.argv[1], embedder=HashEmbedder())
    mem.add_many([{"session_id": "s", "role": "user", "content": f"kept {i}"} for i in range(10)])
    real_insert = mem.store.insert
    def insert_then_die(rows):
        real_insert(rows)
        os._exit(3)   # the process dies inside the transaction, before COMMIT
    mem.store.insert = insert_then_die
    mem.add_many([{"session_id": "s", "role": "user", "content": f"lost {i}"} for i in range(10)])
    """
)


def test_crash_mid_write_leaves_a_consistent_database(db, emb):
    proc = subprocess.run([sys.executable, "-c", CRASH, db], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    with Memory(db, embedder=emb) as mem:
        assert healthy(mem)
        assert len(mem) == 10
        assert mem.search("lost", k=10, mode="lexical") == []
        assert len(mem.search("kept", k=10, mode="lexical")) == 10
        mem.add("s", "user", "life goes on")
        assert len(mem) == 11


KILL = textwrap.dedent(
    """
    import sys
    from llmkit.memory import HashEmbedder, Memory
    mem = Memory(sys.argv[1], embedder=HashEmbedder())
    print("ready", flush=True)
    for b in range(100000):
        mem.add_many([{"session_id": "s", "role": "user", "content": f"batch{b} item{i}"}
                      for i in range(10)])
    """
)


def test_sigkill_during_writes_keeps_whole_batches(db, emb):
    proc = subprocess.Popen([sys.executable, "-c", KILL, db], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    threading.Event().wait(1.0)
    proc.kill()
    proc.wait()
    with Memory(db, embedder=emb) as mem:
        assert healthy(mem)
        n = len(mem)
        assert n > 0 and n % 10 == 0
        contents = {mem.get(i).content for i in range(1, n + 1)}
        assert contents == {f"batch{b} item{i}" for b in range(n // 10) for i in range(10)}


# --- episodes, stats, json -------------------------------------------------------------------


def test_stats_count_what_is_stored(db, emb):
    mem = Memory(db, embedder=emb)
    fill(mem)
    mem.record_episode("s1", "support", "Fixed the E1042 error", "log text", "resolved")
    stats = mem.stats()
    assert (stats["memories"], stats["short_term"], stats["episodic"]) == (7, 6, 1)
    assert stats["sessions"] == 1 and stats["unconsolidated_messages"] == 6
    assert stats["embedder"] == "hash-256" and stats["schema_version"] == SCHEMA_VERSION
    json.dumps(stats)  # plain values, ready for a DataFrame or a log line
