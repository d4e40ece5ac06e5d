"""Consolidation (messages -> versioned long-term facts) and summaries of old turns.

Introduced in lesson 7 (07_memory_systems). Both make model calls through an injected
``complete(system, user) -> str``; the prompts are in :mod:`._consolidate`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ._consolidate import (
    CONSOLIDATION_SYSTEM,
    CONSOLIDATION_USER,
    LLM,
    SUMMARY_SYSTEM,
    SUMMARY_USER,
    AddFact,
    DuplicateFact,
    UpdateFact,
    check_references,
    parse_reply,
    render_facts,
    render_lines,
)
from ._errors import ConsolidationError
from ._store import Row
from ._types import KIND_CODE, ConsolidationResult, check_text, from_epoch

if TYPE_CHECKING:
    from ._memory import Memory

LONG_TERM = KIND_CODE["long_term"]
MAX_KNOWN_FACTS = 60


def _model(mem: Memory, llm: LLM | None, what: str) -> LLM:
    model = llm or mem.llm
    if model is None:
        raise ConsolidationError(
            f"{what} needs a model: pass Memory(path, llm=complete) or "
            f"{what}(session_id, llm=complete), where complete(system, user) returns the "
            "model's text (lesson 7 uses llmkit.chat)"
        )
    return model


def _lines(mem: Memory, rows: list[Row]) -> str:
    return render_lines([(r.id, from_epoch(r.ts, r.tz), r.role, r.content) for r in rows])


def _batches(rows: list[Row], size: int, max_tokens: int) -> list[list[Row]]:
    out: list[list[Row]] = []
    current: list[Row] = []
    tokens = 0
    for row in rows:
        if current and (len(current) >= size or tokens + row.tokens > max_tokens):
            out.append(current)
            current, tokens = [], 0
        current.append(row)
        tokens += row.tokens
    if current:
        out.append(current)
    return out


# --- summaries ------------------------------------------------------------------------------


def summarise(mem: Memory, session_id: str, llm: LLM | None) -> int:
    model = _model(mem, llm, "summarise")
    found = mem._session_window(session_id)
    if found is None:
        return 0
    sid, window = found
    summary, upto, _ = mem.store.session_state(sid)
    pending = mem.store.messages_between(sid, upto, window[0].id - 1)
    max_words = max(60, mem.window_tokens // 4)
    folded = 0
    for batch in _batches(pending, 10**9, 2 * mem.window_tokens):
        user = SUMMARY_USER.format(summary=summary or "(none yet)", messages=_lines(mem, batch))
        reply = model(SUMMARY_SYSTEM.format(max_words=max_words), user)
        if not isinstance(reply, str) or not reply.strip():
            raise ConsolidationError(
                "the model returned an empty summary; the turns stay pending and nothing "
                "was changed"
            )
        summary = reply.strip()
        with mem.store.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET summary = ?, summarised_upto = ? WHERE id = ?",
                (summary, batch[-1].id, sid),
            )
            conn.execute(
                "INSERT INTO summaries(session, upto, content, created) VALUES (?, ?, ?, ?)",
                (sid, batch[-1].id, summary, time.time()),
            )
        folded += len(batch)
    return folded


# --- consolidation --------------------------------------------------------------------------


def _known_facts(mem: Memory, batch: list[Row]) -> list[tuple[int, str]]:
    """The active facts most similar to the batch (all of them while there are few)."""
    if mem.index is None:
        return _known_facts_remote(mem, batch)
    snap = mem.index.snapshot()
    uid = mem._uid()
    is_fact = (snap.kinds == LONG_TERM) & snap.active & (snap.users == uid)
    fact_ids = snap.ids[is_fact]
    if len(fact_ids) > MAX_KNOWN_FACTS:
        best: dict[int, float] = {}
        vecs = snap.vecs[snap.positions([r.id for r in batch])]
        for vec in vecs:
            ids, scores = mem.index.search(vec, 8, kinds=[LONG_TERM], user=uid, snap=snap)
            for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
                best[i] = max(best.get(i, -1.0), s)
        fact_ids = np.array(sorted(best, key=best.get, reverse=True)[:MAX_KNOWN_FACTS])
    rows = mem.store.fetch(sorted(fact_ids.tolist()))
    return [(i, rows[i].content) for i in sorted(rows)]


def _known_facts_remote(mem: Memory, batch: list[Row]) -> list[tuple[int, str]]:
    """:func:`_known_facts` on PostgreSQL: the database's HNSW index finds the neighbours."""
    uid = mem._uid()
    fact_ids = [r[0] for r in mem.store.conn.execute(
        "SELECT id FROM memories WHERE kind = ? AND status = 0 AND user_id = ? ORDER BY id LIMIT ?",
        (LONG_TERM, uid, MAX_KNOWN_FACTS + 1))]
    if len(fact_ids) > MAX_KNOWN_FACTS:
        best: dict[int, float] = {}
        for vec in mem.store.embeddings([r.id for r in batch]).values():
            for i, score in mem.store.dense(vec, 8, kinds=[LONG_TERM], user=uid):
                best[i] = max(best.get(i, -1.0), score)
        fact_ids = sorted(best, key=best.__getitem__, reverse=True)[:MAX_KNOWN_FACTS]
    rows = mem.store.fetch(sorted(fact_ids))
    return [(i, rows[i].content) for i in sorted(rows)]


def consolidate(
    mem: Memory, session_id: str, llm: LLM | None, batch_size: int
) -> ConsolidationResult:
    model = _model(mem, llm, "consolidate")
    check_text(session_id, "session_id")
    sid = mem.store.session_id(session_id, mem._uid())
    result = ConsolidationResult(session_id)
    if sid is None:
        return result
    _, _, upto = mem.store.session_state(sid)
    pending = mem.store.messages_between(sid, upto)
    calls = 0
    for batch in _batches(pending, batch_size, 3000):
        known = _known_facts(mem, batch)
        user = CONSOLIDATION_USER.format(facts=render_facts(known), messages=_lines(mem, batch))
        reply = parse_reply(model(CONSOLIDATION_SYSTEM, user))
        calls += 1
        check_references(reply, [i for i, _ in known], [r.id for r in batch])
        _apply(mem, sid, session_id, batch, reply.facts, result)
    result.messages, result.calls = len(pending), calls
    if mem.pending_summary(session_id):
        result.summarised = summarise(mem, session_id, model)
    return result


def _nearest_fact(mem: Memory, vec: np.ndarray, snap) -> tuple[list[int], list[float]]:
    """The active long-term fact closest to ``vec`` (in-process index, or the database's)."""
    if mem.index is None:
        found = mem.store.dense(vec, 1, kinds=[LONG_TERM], user=mem._uid())
        return [i for i, _ in found], [c for _, c in found]
    ids, scores = mem.index.search(vec, 1, kinds=[LONG_TERM], user=mem._uid(), snap=snap)
    return ids.tolist(), scores.tolist()


def _apply(
    mem: Memory, sid: int, session: str, batch: list[Row], ops: list,
    result: ConsolidationResult,
) -> None:
    """Apply one batch's operations in one transaction."""
    by_id = {r.id: r for r in batch}
    every = [r.id for r in batch]
    new_texts = [op.content for op in ops if isinstance(op, AddFact | UpdateFact)]
    vecs = mem._embed(new_texts) if new_texts else np.zeros((0, mem.dim), np.float32)

    # merge near-duplicates the model proposed as new: against active facts and each other
    plan: list[tuple[str, object, np.ndarray | None]] = []
    fresh: list[tuple[int, np.ndarray]] = []  # (plan position, vector) of adds kept so far
    v = 0
    snap = None if mem.index is None else mem.index.snapshot()
    for op in ops:
        vec = None
        if isinstance(op, AddFact | UpdateFact):
            vec, v = vecs[v], v + 1
        if isinstance(op, AddFact):
            ids, scores = _nearest_fact(mem, vec, snap)
            if len(ids) and scores[0] >= mem.merge_threshold:
                plan.append(("duplicate", DuplicateFact(op="duplicate", fact_id=int(ids[0]),
                                                        source_ids=op.source_ids), None))
                continue
            twin = next((p for p, w in fresh if float(w @ vec) >= mem.merge_threshold), None)
            if twin is not None:
                plan[twin][1].source_ids.extend(op.source_ids)  # type: ignore[attr-defined]
                continue
            fresh.append((len(plan), vec))
        plan.append((op.op, op, vec))

    def sources(op) -> list[int]:
        return sorted(set(op.source_ids)) or every

    def when(src: list[int]) -> float:
        return max(by_id[i].ts for i in src)

    with mem.store.lock:
        rows, kinds, vectors, links, supersede, dupes = [], [], [], [], [], []
        for kind, op, vec in plan:
            src = sources(op)
            if kind == "duplicate":
                dupes.append((op.fact_id, src))
                continue
            if kind == "update":
                old = mem.store.fetch([op.fact_id])[op.fact_id]
                imp = op.importance if op.importance is not None else old.importance
                supersede.append((len(rows), op.fact_id))
            else:
                imp = op.importance
            rows.append((LONG_TERM, session, None, op.content, when(src), 0, imp,
                         mem.count_tokens(op.content), None, 0))
            kinds.append(kind)
            vectors.append(vec)
            links.append(src)

        def write(conn, ids: list[int]) -> None:
            for fact_id, src in zip(ids, links, strict=True):
                conn.execute("INSERT INTO facts(memory_id) VALUES (?)", (fact_id,))
                conn.executemany("INSERT INTO fact_sources VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 [(fact_id, m) for m in src])
            for pos, old in supersede:
                conn.execute("UPDATE facts SET supersedes = ? WHERE memory_id = ?", (old, ids[pos]))
                conn.execute("UPDATE facts SET superseded_by = ? WHERE memory_id = ?",
                             (ids[pos], old))
                conn.execute("UPDATE memories SET status = 1 WHERE id = ?", (old,))
            for fact_id, src in dupes:
                conn.execute("UPDATE facts SET mentions = mentions + 1 WHERE memory_id = ?",
                             (fact_id,))
                conn.executemany("INSERT INTO fact_sources VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 [(fact_id, m) for m in src])
            conn.execute("UPDATE sessions SET consolidated_upto = ? WHERE id = ?",
                         (batch[-1].id, sid))

        if rows:
            ids = mem._insert(rows, np.stack(vectors), extra=write)
        else:
            with mem.store.transaction() as conn:
                write(conn, [])
            ids = []
        if mem.index is not None:
            mem.index.deactivate([old for _, old in supersede])
    result.added.extend(i for i, kind in zip(ids, kinds, strict=True) if kind == "add")
    for pos, old in supersede:
        result.updated[old] = ids[pos]
    result.duplicates.extend(f for f, _ in dupes)
