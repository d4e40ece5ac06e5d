"""Per-user memories in llmkit.memory (lesson 7): users share a store and never see each other's rows.

Every test runs on SQLite and on PostgreSQL. "See" means any read path: get, window, summary,
history, sources, episodes, context_for, stats, len and every search mode (also dense search by
the exact vector of another user's memory). Concurrency: two processes on SQLite, two threads on
PostgreSQL, writing and searching at once. ``forget_user`` leaves nothing of the user in any
search or in a raw scan of the store. Migrations from the schema before users are tested on
databases built with the old migrations' own SQL.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import threading

import pytest
from conftest import sqlite_only
from test_memory_forget import raw_occurrences

from llmkit.memory import CONSOLIDATION_SYSTEM, HashEmbedder, Memory
from llmkit.memory._store import MIGRATIONS, SCHEMA_VERSION

ALICE_WORD, BOB_WORD = "quokkaberry", "narwhalite"  # words only one user's memories contain


def old_store(path: str, emb: HashEmbedder, version: int) -> None:
    """A store at schema ``version``, built with that era's migrations and raw SQL, holding
    session 'old' with a message, a fact in two versions (the first superseded) and a summary."""
    vec = [emb.embed([t])[0] for t in ("my locker is number 12", "Locker 11", "Locker 12")]
    if path.startswith("postgresql://"):
        import psycopg

        from llmkit.memory._pg_store import SCHEMA, migrations

        with psycopg.connect(path, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
            conn.execute(f"SET search_path TO {SCHEMA}, public")
            for _, steps in migrations(emb.dim)[:version]:
                for sql in steps:
                    conn.execute(sql)
            conn.execute("INSERT INTO meta VALUES ('schema_version', %s), ('embedder', %s), ('dim', %s)",
                         (str(version), emb.name, str(emb.dim)))
            insert = ("INSERT INTO memories(id, kind, session, role, content, ts, importance, tokens, "
                      "status, embedding) VALUES (%s, %s, 1, %s, %s, %s, 0.5, 4, %s, %s::vector)")
            conn.execute("INSERT INTO sessions(id, name) VALUES (1, 'old')")
            conn.execute("SELECT setval('sessions_id_seq', 1)")
            for n, (kind, role, text, status) in enumerate(
                [(0, "user", "my locker is number 12", 0), (1, None, "Locker 11", 1),
                 (1, None, "Locker 12", 0)], 1):
                conn.execute(insert, (n, kind, role, text, float(n), status, str([float(x) for x in vec[n - 1]])))
            conn.execute("SELECT setval('memories_id_seq', 3)")
            if version >= 2:
                _v2_rows(conn, "%s")
        return
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 16384")
    for _, steps in MIGRATIONS[:version]:
        for sql in steps:
            conn.execute(sql)
    conn.execute("PRAGMA application_id = 1280003405")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO meta VALUES ('embedder', ?), ('dim', ?)", (emb.name, str(emb.dim)))
    conn.execute("INSERT INTO sessions(id, name) VALUES (1, 'old')")
    for n, (kind, role, text, status) in enumerate(
        [(0, "user", "my locker is number 12", 0), (1, None, "Locker 11", 1), (1, None, "Locker 12", 0)], 1):
        conn.execute(
            "INSERT INTO memories(id, kind, session, role, content, ts, importance, tokens, status, "
            "embedding) VALUES (?, ?, 1, ?, ?, ?, 0.5, 4, ?, ?)",
            (n, kind, role, text, float(n), status, vec[n - 1].tobytes()))
    if version >= 2:
        _v2_rows(conn, "?")
    conn.close()


def _v2_rows(conn, mark: str) -> None:
    q = lambda sql: sql.replace("?", mark)  # noqa: E731
    conn.execute(q("INSERT INTO facts(memory_id, supersedes, superseded_by) VALUES (2, NULL, 3), (3, 2, NULL)"))
    conn.execute(q("INSERT INTO fact_sources VALUES (2, 1), (3, 1)"))
    conn.execute(q("INSERT INTO summaries(session, upto, content, created) VALUES (1, 1, 'About lockers.', 0)"))
    conn.execute(q("UPDATE sessions SET summary = 'About lockers.', summarised_upto = 1, "
                   "consolidated_upto = 1 WHERE id = 1"))


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_store_migrates_to_the_default_user(memory_path, version):
    emb = HashEmbedder()
    old_store(memory_path, emb, version)
    with Memory(memory_path, embedder=emb) as mem:
        assert mem.store.version == SCHEMA_VERSION == 3
        assert [h.content for h in mem.search("locker number", k=5)] [:1] == ["my locker is number 12"]
        assert {h.content for h in mem.search("locker", k=5, kinds="long_term")} == {"Locker 12"}
        assert [r.content for r in mem.window("old")] == ["my locker is number 12"]
        assert len(mem) == 3
        if version == 2:
            assert [r.content for r in mem.history(3)] == ["Locker 11", "Locker 12"]
            assert mem.summary("old") == "About lockers."
        new = mem.add("old", "user", "my locker moved to 14")  # ids continue after the old ones
        assert new == 4
        if not mem.remote:
            assert mem.store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        with Memory(memory_path, embedder=emb, user_id="bob") as bob:
            assert bob.search("locker", k=10) == [] and bob.window("old") == [] and len(bob) == 0
            bob.add("old", "user", "bob's own session called old")  # names are per user now
            assert [r.content for r in bob.window("old")] == ["bob's own session called old"]
        assert len(mem.window("old")) == 2


def two_users(path: str) -> tuple[Memory, Memory]:
    emb = HashEmbedder()
    llm = _Scripted()
    return (Memory(path, embedder=emb, user_id="alice", llm=llm, window_turns=2, auto_summarise=False),
            Memory(path, embedder=emb, user_id="bob", llm=llm, window_turns=2, auto_summarise=False))


class _Scripted:
    """A stand-in model: consolidation adds one fact per batch quoting the first message, and a
    summary repeats the batch (so a leak of the other user's words would show)."""

    def __call__(self, system: str, user: str) -> str:
        first = next(m for line in user.splitlines() if (m := re.match(r"\[(\d+)\] \d{4}-\S+ \S+ (.*)", line)))
        ident, text = int(first[1]), first[2]
        if system == CONSOLIDATION_SYSTEM:
            return json.dumps({"facts": [{"op": "add", "content": f"Fact: {text}", "source_ids": [ident],
                                          "importance": 0.5}]})
        return f"Summary: {text}"


def stock(mem: Memory, word: str) -> dict[str, int]:
    ids = {f"m{n}": mem.add("s1", "user", f"{word} note {n} about the shared topic lockers")
           for n in range(5)}
    ids["episode"] = mem.record_episode("s1", "task", f"{word} task about lockers", {"w": word}, "done")
    mem.consolidate("s1")
    mem.summarise("s1")
    return ids


def seen_by(mem: Memory, word: str, other_ids: dict[str, int]) -> list[str]:
    """Every read path on which ``mem`` shows ``word`` or one of ``other_ids``."""
    where = []
    for mode in ("hybrid", "dense", "lexical"):
        for query in (f"{word} note", "shared topic lockers"):
            if any(word in h.content for h in mem.search(query, k=100, mode=mode)):
                where.append(f"search {mode} {query!r}")
    vec = mem._embed([f"{word} note 0 about the shared topic lockers"])[0]
    if any(word in h.content for h in mem.search("x", k=100, mode="dense", embedding=vec)):
        where.append("dense by vector")
    for name, mid in other_ids.items():
        for read in (mem.get, mem.history, mem.sources, mem.episode, mem.forget):
            try:
                read(mid)
                where.append(f"{read.__name__}({name})")
            except KeyError:
                pass
    text = mem.context_for(f"{word} lockers", session_id="s1", max_tokens=4000, k=50)
    text += str(mem.window("s1")) + str(mem.summary("s1"))
    if word in text:
        where.append("context_for/window/summary")
    return where


def test_users_never_see_each_others_memories(memory_path):
    alice, bob = two_users(memory_path)
    try:
        a_ids, b_ids = stock(alice, ALICE_WORD), stock(bob, BOB_WORD)
        assert alice.stats()["long_term"] >= 1 and bob.stats()["long_term"] >= 1
        assert ALICE_WORD in alice.summary("s1") and BOB_WORD in bob.summary("s1")
        assert seen_by(alice, BOB_WORD, b_ids) == []
        assert seen_by(bob, ALICE_WORD, a_ids) == []
        assert any(ALICE_WORD in h.content for h in alice.search(f"{ALICE_WORD} note", k=5))
        assert len(alice) == len(bob) == alice.stats()["memories"] > 0
        assert alice.stats()["store_memories"] == len(alice) + len(bob)
        assert bob.forget_session("nope") == 0 and alice.forget_session("s1") > 0
        assert len(bob) == bob.stats()["memories"] > 0  # alice's forget_session left bob's s1 alone
    finally:
        alice.close()
        bob.close()


def test_forget_user_leaves_nothing_behind(memory_path):
    alice, bob = two_users(memory_path)
    try:
        a_ids, b_ids = stock(alice, ALICE_WORD), stock(bob, BOB_WORD)
        before_alice, before_bob = len(alice), len(bob)
        assert before_alice > len(a_ids) and raw_occurrences(memory_path, ALICE_WORD) > 0
        removed = bob.forget_user("alice")  # any Memory on the store may forget any user
        assert removed == before_alice
        assert len(alice) == 0 and alice.stats()["sessions"] == 0 and alice.stats()["summaries"] == 0
        assert seen_by(bob, ALICE_WORD, a_ids) == []
        assert seen_by(alice, ALICE_WORD, a_ids) == []  # alice's own (stale) handle finds nothing
        assert len(bob) == before_bob and seen_by(alice, BOB_WORD, b_ids) == []
        assert raw_occurrences(memory_path, ALICE_WORD) == 0
        assert raw_occurrences(memory_path, BOB_WORD) > 0
        assert bob.forget_user("alice") == 0
        alice.add("s1", "user", "starting over")  # the user comes back, empty
        assert [h.content for h in alice.search("starting over", k=5)] == ["starting over"]
        if not alice.remote:
            with sqlite3.connect(memory_path) as conn:
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        alice.close()
        bob.close()


def _writer(path: str, user: str, word: str, rounds: int, out) -> None:
    """Write and search as ``user``; report every hit that is not this user's."""
    bad: list[str] = []
    try:
        with Memory(path, embedder=HashEmbedder(), user_id=user) as mem:
            for n in range(rounds):
                mem.add_many([{"session_id": f"s{n % 3}", "role": "user",
                               "content": f"{word} {n}.{i} the shared topic lockers"} for i in range(3)])
                for mode in ("hybrid", "dense", "lexical"):
                    bad += [h.content for h in mem.search("shared topic lockers", k=20, mode=mode)
                            if word not in h.content]
                bad += [r.content for r in mem.window(f"s{n % 3}") if word not in r.content]
            count = len(mem)
    except Exception as exc:  # reported, so the test fails at once instead of waiting
        out.put((user, -1, [repr(exc)]))
        return
    out.put((user, count, bad))


def test_concurrent_users_never_see_each_others_rows(memory_path, memory_backend):
    """Two processes (SQLite) or two threads (PostgreSQL) write and search at the same time."""
    rounds = 30
    if memory_backend == "sqlite":
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        workers = [ctx.Process(target=_writer, args=(memory_path, u, w, rounds, out))
                   for u, w in (("alice", ALICE_WORD), ("bob", BOB_WORD))]
    else:
        import queue

        out = queue.Queue()
        workers = [threading.Thread(target=_writer, args=(memory_path, u, w, rounds, out))
                   for u, w in (("alice", ALICE_WORD), ("bob", BOB_WORD))]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    for user, count, bad in results:
        assert bad == [], f"{user} saw another user's rows: {bad[:3]}"
        assert count == 3 * rounds, user


def test_user_id_is_checked(tmp_path, memory_backend):
    sqlite_only(memory_backend, "argument checking needs no server")
    with pytest.raises(ValueError, match="user_id"):
        Memory(str(tmp_path / "m.db"), embedder=HashEmbedder(), user_id="  ")
