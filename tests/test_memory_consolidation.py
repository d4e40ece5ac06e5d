"""Consolidation, summaries and context building in llmkit.memory (lesson 7).

The model is the one thing replaced here: a scripted ``complete(system, user)`` that records
its prompts, exactly what ``Memory(llm=...)`` accepts. Everything else is the real code.
"""

from __future__ import annotations

import json
import re

import pytest

from llmkit.memory import (
    CONSOLIDATION_SYSTEM,
    SUMMARY_SYSTEM,
    ConsolidationError,
    HashEmbedder,
    Memory,
    parse_reply,
)
from llmkit.memory._types import approx_tokens


class Scripted:
    """A stand-in model: returns the queued replies in order and keeps every prompt."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls: list[tuple[str, str]] = []

    def __call__(self, system: str, user: str) -> str:
        self.calls.append((system, user))
        return self.replies.pop(0)


def facts(*ops: dict) -> str:
    return json.dumps({"facts": list(ops)})


def snapshot(mem: Memory) -> tuple:
    rows = mem.store.conn.execute("SELECT id, status, content FROM memories ORDER BY id").fetchall()
    state = mem.store.conn.execute("SELECT * FROM sessions ORDER BY id").fetchall()
    links = mem.store.conn.execute("SELECT * FROM fact_sources ORDER BY 1, 2").fetchall()
    return rows, state, links


@pytest.fixture
def mem(memory_path):
    m = Memory(memory_path, embedder=HashEmbedder(), window_turns=50)
    yield m
    m.close()


def test_consolidation_adds_updates_and_merges_without_losing_sources(mem):
    m1 = mem.add("s1", "Maya", "I live in Berlin with my cat Pixel")
    m2 = mem.add("s1", "Maya", "I work as a nurse on the ICU")
    mem.add("s1", "Maya", "Nice weather today")
    first = Scripted(facts(
        {"op": "add", "content": "Maya lives in Berlin", "importance": 0.8, "source_ids": [m1]},
        {"op": "add", "content": "Maya has a cat named Pixel", "source_ids": [m1]},
        {"op": "add", "content": "Maya works as a nurse", "source_ids": [m2]},
    ))
    result = mem.consolidate("s1", llm=first)
    berlin, cat, nurse = result.added
    assert (result.messages, result.calls, result.updated) == (3, 1, {})
    system, user = first.calls[0]
    assert system == CONSOLIDATION_SYSTEM
    assert f"[{m1}]" in user and "I live in Berlin" in user and "Known facts" in user
    assert [r.id for r in mem.sources(berlin)] == [m1]
    assert mem.get(berlin).importance == 0.8 and mem.get(berlin).kind == "long_term"

    m4 = mem.add("s2", "Maya", "Big news: I moved to Lisbon last week")
    m5 = mem.add("s2", "Maya", "Pixel still hates the vacuum cleaner")
    m6 = mem.add("s2", "Maya", "Still a nurse, still tired")
    second = Scripted(facts(
        {"op": "update", "fact_id": berlin, "content": "Maya lives in Lisbon", "source_ids": [m4]},
        {"op": "duplicate", "fact_id": cat, "source_ids": [m5]},
        {"op": "add", "content": "Maya works as a nurse", "source_ids": [m6]},  # a near-duplicate
    ))
    result = mem.consolidate("s2", llm=second)
    assert f"[{berlin}] Maya lives in Berlin" in second.calls[0][1]  # known facts were shown
    lisbon = result.updated[berlin]
    assert result.added == [] and sorted(result.duplicates) == sorted([cat, nurse])

    assert mem.get(berlin).status == "superseded" and mem.get(lisbon).status == "active"
    assert [r.content for r in mem.history(lisbon)] == ["Maya lives in Berlin", "Maya lives in Lisbon"]
    assert [r.id for r in mem.sources(lisbon)] == [m1, m4]
    assert [r.id for r in mem.sources(nurse)] == [m2, m6]
    assert [r.id for r in mem.sources(cat)] == [m1, m5]
    found = [h.content for h in mem.search("where does Maya live", k=5, kinds="long_term")]
    assert "Maya lives in Lisbon" in found and "Maya lives in Berlin" not in found
    stats = mem.stats()
    assert (stats["short_term"], stats["long_term"], stats["long_term_superseded"]) == (6, 3, 1)
    assert stats["unconsolidated_messages"] == 0
    assert mem.check() == {"postgresql" if mem.remote else "sqlite": True, "fts": True, "index": True}
    assert mem.consolidate("s2", llm=Scripted()).calls == 0  # nothing new: no model call


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        ("Sure! I found some facts but I will not show them.", "no JSON"),
        ('{"facts": [{"op": "add"}]}', "content"),
        ('{"facts": [{"op": "forget", "content": "x"}]}', "not valid consolidation JSON"),
        ('{"facts": [{"op": "update", "fact_id": 999, "content": "x"}]}', "fact 999"),
        ('{"facts": [{"op": "add", "content": "x", "source_ids": [12345]}]}', "12345"),
    ],
)
def test_an_unusable_reply_raises_and_changes_nothing(mem, reply, match):
    mem.add("s1", "user", "I live in Berlin")
    before = snapshot(mem)
    with pytest.raises(ConsolidationError, match=match):
        mem.consolidate("s1", llm=Scripted(reply))
    assert snapshot(mem) == before
    ok = mem.consolidate("s1", llm=Scripted(facts({"op": "add", "content": "Lives in Berlin"})))
    assert len(ok.added) == 1 and mem.stats()["unconsolidated_messages"] == 0


def test_consolidate_without_a_model_says_how_to_pass_one(mem):
    mem.add("s1", "user", "hello")
    with pytest.raises(ConsolidationError, match=r"llm=complete"):
        mem.consolidate("s1")
    with pytest.raises(ConsolidationError, match=r"llm=complete"):
        mem.summarise("s1")


def test_parse_reply_tolerates_what_models_actually_send():
    fenced = '```json\n{"facts": [{"op": "ADD", "content": "A", "importance": 3}]}\n```'
    assert parse_reply(fenced).facts[0].importance == 1.0  # clamped
    chatty = 'Here you go:\n[{"op": "merge", "id": "F12", "sources": ["[3]"]}]\nHope it helps'
    op = parse_reply(chatty).facts[0]
    assert (op.op, op.fact_id, op.source_ids) == ("duplicate", 12, [3])
    assert parse_reply('{"facts": []}').facts == []
    single = parse_reply('{"op": "update", "fact_id": 4, "content": "B"}').facts[0]
    assert (single.op, single.fact_id, single.importance) == ("update", 4, None)


def test_old_turns_are_summarised_not_deleted(memory_path):
    systems: list[str] = []

    def summariser(system: str, user: str) -> str:
        systems.append(system)
        ids = re.findall(r"^\[(\d+)\]", user, flags=re.M)
        previous = user.split("Summary so far:\n", 1)[1].split("\n\n", 1)[0]
        start = "" if previous.startswith("(none") else previous + " "
        return start + "turns " + ",".join(ids)

    mem = Memory(memory_path, embedder=HashEmbedder(), llm=summariser, window_turns=4, window_tokens=10_000)
    ids = [mem.add("s", "user", f"turn {i} about topic{i}") for i in range(10)]
    assert [r.id for r in mem.window("s")] == ids[-4:]
    assert mem.pending_summary("s") < 2  # summarised as soon as 2 turns had left the window
    folded = re.findall(r"\d+", mem.summary("s"))
    assert folded == [str(i) for i in ids[: len(folded)]] and len(folded) >= 5
    assert systems and all(s.startswith(SUMMARY_SYSTEM.split("{")[0]) for s in systems)
    for i in range(10):  # every turn is still stored and searchable
        assert mem.search(f"topic{i}", k=1, mode="lexical")[0].id == ids[i]
    assert mem.stats()["summaries"] >= 3


def test_window_is_limited_by_tokens_too(memory_path):
    mem = Memory(memory_path, embedder=HashEmbedder(), window_turns=10, window_tokens=30)
    ids = [mem.add("s", "user", "x" * 40) for _ in range(5)]  # ~10 tokens each
    assert [r.id for r in mem.window("s")] == ids[-3:]
    assert mem.pending_summary("s") == 2


def test_an_empty_summary_changes_nothing(memory_path):
    mem = Memory(memory_path, embedder=HashEmbedder(), window_turns=2, auto_summarise=False)
    for i in range(5):
        mem.add("s", "user", f"turn {i}")
    with pytest.raises(ConsolidationError, match="empty summary"):
        mem.summarise("s", llm=Scripted("   "))
    assert mem.summary("s") is None and mem.pending_summary("s") == 3
    assert mem.summarise("s", llm=Scripted("They counted to two.")) == 3
    assert mem.summary("s") == "They counted to two." and mem.pending_summary("s") == 0


def test_context_for_fits_the_budget_and_labels_its_parts(memory_path):
    mem = Memory(memory_path, embedder=HashEmbedder(), window_turns=3, auto_summarise=False)
    mem.add("old", "user", "My sister Lena lives in Hamburg")
    for i in range(6):
        mem.add("s", "user", f"Message number {i} about the boat Albatross")
    mem.summarise("s", llm=Scripted("Jonas talked about restoring his boat."))
    mem.record_episode("s", "repair", "Fixed the leaking deck of Albatross", {}, "dry deck")
    text = mem.context_for("Where does Lena live?", session_id="s", max_tokens=200)
    assert "Summary of the earlier conversation:" in text
    assert "Jonas talked about restoring his boat." in text
    assert "Recent conversation:" in text and "Message number 5" in text
    assert "Relevant memories:" in text and "Lena lives in Hamburg" in text
    assert approx_tokens(text) <= 200
    tiny = mem.context_for("Where does Lena live?", session_id="s", max_tokens=40)
    assert approx_tokens(tiny) <= 40
    assert mem.context_for("Lena", max_tokens=100).startswith("Relevant memories:")
