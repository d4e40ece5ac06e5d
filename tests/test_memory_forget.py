"""Forgetting in llmkit.memory (lesson 7): nothing of a forgotten memory can be found afterwards.

Every test runs on SQLite and on PostgreSQL. "Found" means any search path (hybrid, dense with
the exact vector, lexical), any read (get, window, summary, history, sources, context_for), a
second connection's in-process index, and a raw scan of the store: the SQLite file's bytes
(WAL included) and FTS5 vocabulary, or every row of every PostgreSQL table as text.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from llmkit.memory import HashEmbedder, Memory

SECRET = "zorblax"  # a word no other memory contains
TEXT = f"My locker code is {SECRET} 4471, keep it private"


class Scripted:
    """A stand-in model: the queued replies in order, then a summary that repeats the secret."""

    def __init__(self, *replies: str):
        self.replies = list(replies)

    def __call__(self, system: str, user: str) -> str:
        return self.replies.pop(0) if self.replies else f"The user shared the locker code {SECRET}."


def facts(*ops: dict) -> str:
    return json.dumps({"facts": list(ops)})


def raw_occurrences(path: str, word: str) -> int:
    """How often ``word`` appears anywhere in the store, read behind ``Memory``'s back."""
    if path.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(path, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'llmkit_memory'")]
            return sum(conn.execute(
                f"SELECT count(*) FROM llmkit_memory.{t} x WHERE x::text ILIKE %s",
                (f"%{word}%",)).fetchone()[0] for t in tables)
    found = 0
    for file in (Path(path), Path(path + "-wal")):
        if file.exists():
            found += file.read_bytes().count(word.encode())
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, memories_fts, 'row')")
        found += conn.execute("SELECT count(*) FROM temp.vocab WHERE term = ?", (word,)).fetchone()[0]
    return found


def findable(mem: Memory, word: str, vector_of: str) -> list[str]:
    """Every place a read path still shows ``word``."""
    where = []
    vec = mem._embed([vector_of])[0]
    for mode in ("hybrid", "dense", "lexical"):
        if any(word in h.content for h in mem.search(f"{word} locker code", k=50, mode=mode)):
            where.append(mode)
    if any(word in h.content for h in mem.search("x", k=50, mode="dense", embedding=vec)):
        where.append("dense by vector")
    if word in mem.context_for(f"{word} locker", session_id="s1", max_tokens=2000):
        where.append("context_for")
    if word in (mem.summary("s1") or ""):
        where.append("summary")
    return where


@pytest.fixture
def stocked(memory_path):
    """A session whose secret message became a fact (with an update) and part of a summary."""
    llm = Scripted()
    mem = Memory(memory_path, embedder=HashEmbedder(), llm=llm, window_turns=2,
                 auto_summarise=False)
    secret = mem.add("s1", "user", TEXT)
    other = mem.add("s1", "user", "I like sailing on weekends")
    mem.add("s1", "user", "The weather was fine")
    mem.add("s1", "user", "We talked about boats")
    mem.add("s2", "user", "Another session about gardening")
    llm.replies += [facts({"op": "add", "content": f"Locker code is {SECRET} 4471",
                           "source_ids": [secret]},
                          {"op": "add", "content": "The user likes sailing", "source_ids": [other]})]
    first = mem.consolidate("s1")
    fact = first.added[0]
    mem.add("s1", "user", f"Actually the {SECRET} code changed to 9902")
    llm.replies += [facts({"op": "update", "fact_id": fact, "content": f"Locker code is {SECRET} 9902",
                           "source_ids": []})]
    second = mem.consolidate("s1")
    assert second.updated and fact in second.updated
    assert SECRET in (mem.summary("s1") or "")
    yield mem, secret, fact, second.updated[fact]
    mem.close()


def test_forget_a_message_removes_it_and_everything_derived(stocked, memory_path):
    mem, secret, fact, newer = stocked
    assert findable(mem, SECRET, TEXT) and raw_occurrences(memory_path, SECRET) > 0  # it was there
    mem.close()
    mem = Memory(memory_path, embedder=HashEmbedder())
    removed = mem.forget(secret)
    assert removed >= 3  # the message, the fact and its update
    for gone in (secret, fact, newer):
        with pytest.raises(KeyError):
            mem.get(gone)
    with pytest.raises(KeyError):
        mem.history(newer)
    # the later message that mentions the word is not derived from the forgotten one: it stays
    later = [h for h in mem.search(f"{SECRET} changed", k=5, mode="lexical")]
    assert [h.content for h in later] == [f"Actually the {SECRET} code changed to 9902"]
    mem.forget(later[0].id)
    assert findable(mem, SECRET, TEXT) == []
    assert mem.summary("s1") is None  # the summary folded the forgotten turn in
    assert "The user likes sailing" in [h.content for h in mem.search("sailing", k=3)]
    assert all(mem.check().values())
    mem.close()
    assert raw_occurrences(memory_path, SECRET) == 0
    with pytest.raises(KeyError):
        Memory(memory_path, embedder=HashEmbedder()).forget(secret)


def test_forget_session_removes_the_session_and_leaves_the_others(stocked, memory_path):
    mem, *_ = stocked
    before = len(mem)
    removed = mem.forget_session("s1")
    assert removed == before - 1 and len(mem) == 1
    assert [h.session_id for h in mem.search("gardening boats sailing", k=10)] == ["s2"]
    assert mem.window("s1") == [] and mem.summary("s1") is None
    assert mem.stats()["sessions"] == 1 and mem.stats()["summaries"] == 0
    assert mem.forget_session("s1") == 0
    mem.add("s1", "user", "a new start")  # the name can be used again
    assert [r.content for r in mem.window("s1")] == ["a new start"]
    mem.close()
    assert raw_occurrences(memory_path, SECRET) == 0
    assert raw_occurrences(memory_path, "sailing") == 0


def test_another_connection_stops_finding_what_one_forgot(memory_path):
    emb = HashEmbedder()
    one, two = Memory(memory_path, embedder=emb), Memory(memory_path, embedder=emb)
    secret = one.add("s1", "user", TEXT)
    one.add("s1", "user", "something else entirely")
    assert two.search("x", k=1, mode="dense", embedding=emb.embed([TEXT])[0])[0].id == secret
    one.forget(secret)
    for mode in ("hybrid", "dense", "lexical"):
        hits = two.search(f"{SECRET} locker", k=5, mode=mode)
        assert all(h.id != secret for h in hits), mode
    assert len(two) == 1
    one.close()
    two.close()
