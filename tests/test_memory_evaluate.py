"""The retrieval evaluation and the naive baseline of llmkit.memory (lesson 7)."""

from __future__ import annotations

import numpy as np

from llmkit.memory import HashEmbedder
from llmkit.memory.evaluate import evaluate, from_locomo, load_conversation
from llmkit.memory.naive import EmbedderEncoder, NaiveMemory


def test_the_bundled_conversation_is_labelled_consistently():
    data = load_conversation()
    turns = {t["dia_id"]: t for s in data["sessions"] for t in s["turns"]}
    assert len(data["sessions"]) >= 4 and len(turns) >= 150
    assert len(data["questions"]) >= 25
    assert all(e in turns for q in data["questions"] for e in q["evidence"])
    types = {q["type"] for q in data["questions"]}
    assert {"paraphrase", "keyword"} <= types


def test_evaluate_reports_recall_per_mode():
    table = evaluate(embedder=HashEmbedder(), ks=(1, 5, 10), include_naive=True)
    assert list(table.index) == ["dense", "lexical", "hybrid", "naive"]
    assert (table["questions"] == len(load_conversation()["questions"])).all()
    values = table[["recall@1", "recall@5", "recall@10", "mrr"]].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    assert (np.diff(table[["recall@1", "recall@5", "recall@10"]].to_numpy(), axis=1) >= 0).all()
    assert table.loc["hybrid", "recall@10"] > table.loc["naive", "recall@10"]
    by_type = evaluate(embedder=HashEmbedder(), ks=(5,), by_type=True, modes=("lexical",))
    # BM25 cannot match a question that shares no word with its answer
    assert by_type.loc[("lexical", "keyword"), "recall@5"] > by_type.loc[("lexical", "paraphrase"), "recall@5"]


def test_from_locomo_converts_sessions_dates_and_evidence():
    sample = {
        "conversation": {
            "speaker_a": "Caroline", "speaker_b": "Melanie",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Caroline", "dia_id": "D1:1", "text": "I went to a support group."},
                {"speaker": "Melanie", "dia_id": "D1:2", "text": "That's great!"},
            ],
            "session_2_date_time": "garbled",
            "session_2": [{"speaker": "Melanie", "dia_id": "D2:1", "text": "I painted a lake."}],
        },
        "qa": [
            {"question": "What did Melanie paint?", "evidence": ["D2:1"], "category": 4},
            {"question": "Unanswerable?", "evidence": [], "category": 5},
            {"question": "Typo evidence", "evidence": ["D9:9"], "category": 1},
        ],
    }
    data = from_locomo(sample)
    assert [s["session_id"] for s in data["sessions"]] == ["S1", "S2"]
    assert data["sessions"][0]["date"] == "2023-05-08T13:56:00+00:00"
    assert [q["question"] for q in data["questions"]] == ["What did Melanie paint?"]
    table = evaluate(embedder=HashEmbedder(), data=data, ks=(1,))
    assert table.loc["lexical", "recall@1"] == 1.0


def test_naive_design_drops_everything_under_its_fixed_threshold(tmp_path):
    naive = NaiveMemory(str(tmp_path / "naive.db"), encoder=EmbedderEncoder(HashEmbedder()))
    for text in ["My cat Pixel hates the vacuum", "Booked flight FI-615 to Reykjavik"]:
        naive.add_to_short_term("s", "user", text)
    assert naive._extract_concepts("I booked a flight and started running") == [
        "booked", "started", "running"]
    assert naive.consolidate_to_long_term("s") == 2
    found = naive.retrieve_relevant_memories("Pixel hates the vacuum", session_id="s")
    assert found and found[0]["content"] == "My cat Pixel hates the vacuum"
    assert naive.retrieve_relevant_memories("which feline do I own?", session_id="s") == []
