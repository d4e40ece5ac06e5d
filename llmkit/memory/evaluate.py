"""Retrieval quality: recall@k of dense, lexical and hybrid search on a labelled conversation.

Introduced in lesson 7 (07_memory_systems)::

    from llmkit.memory.evaluate import evaluate
    evaluate()                      # the real model on data/eval_conversation.json
    evaluate(by_type=True)          # paraphrase vs keyword questions, etc.

The data format (LoCoMo-like): ``sessions`` of ``turns`` with a ``dia_id``, a ``speaker`` and
``text``; ``questions`` with the ``evidence`` dia_ids that answer them. :func:`from_locomo`
converts a sample of the public LoCoMo benchmark: ``evaluate(data=from_locomo(sample))``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ._embedding import Embedder
from ._memory import Memory

__all__ = ["evaluate", "from_locomo", "load_conversation", "turns"]

MODES = ("dense", "lexical", "hybrid")


def load_conversation(path: str | Path | None = None) -> dict[str, Any]:
    """The bundled evaluation conversation, or another file in the same format."""
    if path is None:
        text = resources.files("llmkit.memory").joinpath("data/eval_conversation.json").read_text(
            encoding="utf-8"
        )
    else:
        text = Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def from_locomo(sample: dict[str, Any]) -> dict[str, Any]:
    """Convert one LoCoMo sample (``conversation`` + ``qa``) into this module's format.

    Session dates like ``"1:56 pm on 8 May, 2023"`` are parsed (UTC); questions keep their
    ``category`` as the type, and questions without evidence are dropped.
    """
    conv = sample["conversation"]
    numbers = sorted(
        int(key.split("_")[1]) for key in conv
        if key.startswith("session_") and key.count("_") == 1 and isinstance(conv[key], list)
    )
    sessions = []
    for n in numbers:
        raw = conv.get(f"session_{n}_date_time", "")
        try:
            date = datetime.strptime(raw.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
        except ValueError:
            date = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=n)
        sessions.append({
            "session_id": f"S{n}", "date": date.isoformat(),
            "turns": [{"dia_id": t["dia_id"], "speaker": t["speaker"], "text": t["text"]}
                      for t in conv[f"session_{n}"] if str(t.get("text", "")).strip()],
        })
    known = {t["dia_id"] for s in sessions for t in s["turns"]}
    questions = [
        {"id": f"q{i}", "question": q["question"], "type": f"category {q.get('category', '?')}",
         "evidence": [e for e in q.get("evidence", []) if e in known]}
        for i, q in enumerate(sample.get("qa", []), 1)
    ]
    return {"sessions": sessions, "questions": [q for q in questions if q["evidence"]]}


def turns(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every turn as an ``add_many`` item, one minute apart from its session's date."""
    items = []
    for session in data["sessions"]:
        start = datetime.fromisoformat(session["date"])
        for n, turn in enumerate(session["turns"]):
            items.append({
                "session_id": session["session_id"], "role": turn["speaker"],
                "content": turn["text"], "timestamp": start + timedelta(minutes=n),
                "metadata": {"dia_id": turn["dia_id"]},
            })
    return items


def build_memory(data: dict[str, Any], embedder: Embedder | None = None) -> Memory:
    """An in-memory :class:`Memory` holding every turn of ``data``."""
    mem = Memory(":memory:", embedder=embedder)
    mem.add_many(turns(data))
    return mem


def _recall(found: Sequence[str], evidence: Sequence[str], k: int) -> float:
    return len(set(found[:k]) & set(evidence)) / len(evidence)


def _mrr(found: Sequence[str], evidence: Sequence[str]) -> float:
    return next((1.0 / r for r, d in enumerate(found, 1) if d in evidence), 0.0)


def evaluate(
    *,
    embedder: Embedder | None = None,
    data: dict[str, Any] | None = None,
    ks: Sequence[int] = (1, 3, 5, 10),
    modes: Sequence[str] = MODES,
    by_type: bool = False,
    include_naive: bool = False,
    per_question: bool = False,
) -> Any:
    """Mean recall@k (share of evidence turns in the top k) and MRR per retrieval mode.

    Returns a pandas DataFrame indexed by mode (and question type with ``by_type``), or one
    row per question and mode with ``per_question``. ``include_naive`` adds the source
    lesson's design (:mod:`llmkit.memory.naive`) as the ``naive`` row.
    """
    import pandas as pd

    data = data or load_conversation()
    mem = build_memory(data, embedder)
    depth = max(ks)
    rows = []
    try:
        for q in data["questions"]:
            for mode in modes:
                hits = mem.search(q["question"], depth, mode=mode)
                found = [h.metadata["dia_id"] for h in hits]
                rows.append(_row(q, mode, found, ks))
        if include_naive:
            for q, found in zip(data["questions"], _naive(data, mem.embedder, depth), strict=True):
                rows.append(_row(q, "naive", found, ks))
    finally:
        mem.close()
    frame = pd.DataFrame(rows)
    if per_question:
        return frame
    keys = ["mode", "type"] if by_type else ["mode"]
    order = [*modes, *(["naive"] if include_naive else [])]
    table = frame.groupby(keys, sort=False)[[f"recall@{k}" for k in ks] + ["mrr"]].mean()
    table.insert(0, "questions", frame.groupby(keys, sort=False).size())
    return table.reindex(order, level=0) if by_type else table.reindex(order)


def _row(q: dict[str, Any], mode: str, found: list[str], ks: Sequence[int]) -> dict[str, Any]:
    row: dict[str, Any] = {"mode": mode, "question": q["question"], "type": q.get("type", "")}
    for k in ks:
        row[f"recall@{k}"] = _recall(found, q["evidence"], k)
    row["mrr"] = _mrr(found, q["evidence"])
    return row


def _naive(data: dict[str, Any], embedder: Embedder, depth: int) -> list[list[str]]:
    """The source design, used as its lesson used it: consolidate, then search in the last
    session."""
    import tempfile

    from .naive import EmbedderEncoder, NaiveMemory

    by_text: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveMemory(str(Path(tmp) / "naive.db"), encoder=EmbedderEncoder(embedder))
        for item in turns(data):
            naive.add_to_short_term(item["session_id"], item["role"], item["content"])
            by_text[item["content"]] = item["metadata"]["dia_id"]
        for session in data["sessions"]:
            naive.consolidate_to_long_term(session["session_id"])
        last = data["sessions"][-1]["session_id"]
        out = []
        for q in data["questions"]:
            found = naive.retrieve_relevant_memories(q["question"], session_id=last, limit=depth)
            out.append(list(dict.fromkeys(by_text[m["content"]] for m in found)))
    return out
