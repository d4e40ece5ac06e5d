"""Forgetting: delete memories and everything derived from them, on both backends.

Introduced in lesson 7 (07_memory_systems); ``forget_user`` (a whole user) came with per-user
memories. What is derived from a message: the long-term facts
consolidated from it (with every earlier and later version of those facts and their source
links), and the session summaries that folded it in. Forgetting removes the rows, their
full-text entries and their vectors in one transaction. On SQLite the file is opened with
``secure_delete`` (freed pages are zeroed), the FTS5 index is merged so no segment keeps the
deleted words, and the WAL is checkpointed, so the text is gone from the file's bytes too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._memory import Memory

_CHUNK = 500


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _select_ids(conn: Any, sql: str, ids: Sequence[int]) -> set[int]:
    """Run ``sql`` (one ``{marks}`` slot, repeated ``sql.count('{marks}')`` times) per chunk."""
    out: set[int] = set()
    slots = sql.count("{marks}")
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        query = sql.replace("{marks}", _marks(len(chunk)))
        out.update(r[0] for r in conn.execute(query, chunk * slots) if r[0] is not None)
    return out


def _run(conn: Any, sql: str, ids: Sequence[int]) -> None:
    slots = sql.count("{marks}")
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        conn.execute(sql.replace("{marks}", _marks(len(chunk))), chunk * slots)


def _closure(conn: Any, ids: set[int]) -> set[int]:
    """``ids`` plus the facts derived from them and every version of those facts."""
    todo = set(ids)
    seen: set[int] = set()
    while todo:
        batch = sorted(todo)
        seen |= todo
        found = _select_ids(conn, "SELECT fact_id FROM fact_sources WHERE message_id IN ({marks})", batch)
        found |= _select_ids(conn, "SELECT supersedes FROM facts WHERE memory_id IN ({marks})", batch)
        found |= _select_ids(conn, "SELECT superseded_by FROM facts WHERE memory_id IN ({marks})", batch)
        todo = found - seen
    return seen


def _rewind_summaries(conn: Any, removed: set[int]) -> None:
    """Drop every summary that folded in a removed message; fall back to the last clean one."""
    rows = _select_rows(conn, "SELECT session, min(id) FROM memories WHERE kind = 0 AND id IN ({marks}) "
                        "GROUP BY session", sorted(removed))
    first: dict[int, int] = {}
    for session, low in rows:
        first[session] = min(low, first.get(session, low))
    for session, low in first.items():
        conn.execute("DELETE FROM summaries WHERE session = ? AND upto >= ?", (session, low))
        last = conn.execute(
            "SELECT content, upto FROM summaries WHERE session = ? ORDER BY upto DESC LIMIT 1",
            (session,)).fetchone()
        conn.execute(
            "UPDATE sessions SET summary = ?, summarised_upto = ? WHERE id = ? AND summarised_upto >= ?",
            (last[0] if last else None, last[1] if last else 0, session, low))


def _select_rows(conn: Any, sql: str, ids: Sequence[int]) -> list[tuple]:
    out: list[tuple] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        out.extend(conn.execute(sql.replace("{marks}", _marks(len(chunk))), chunk).fetchall())
    return out


def delete(mem: Memory, ids: Iterable[int], sessions: Sequence[int] = (), user: int | None = None) -> int:
    """Delete ``ids`` (and whole ``sessions``, or a whole ``user``) with everything derived;
    return memories removed."""
    store = mem.store
    with store.lock:
        with store.transaction() as conn:
            seeds = set(ids)
            if user is not None:
                sessions = [*sessions, *(r[0] for r in conn.execute(
                    "SELECT id FROM sessions WHERE user_id = ?", (user,)))]
                seeds |= {r[0] for r in conn.execute("SELECT id FROM memories WHERE user_id = ?", (user,))}
            for sid in sessions:
                seeds |= {r[0] for r in conn.execute("SELECT id FROM memories WHERE session = ?", (sid,))}
            removed = _closure(conn, seeds)
            removed = _select_ids(conn, "SELECT id FROM memories WHERE id IN ({marks})", sorted(removed))
            gone = sorted(removed)
            _rewind_summaries(conn, removed)
            _run(conn, "DELETE FROM fact_sources WHERE fact_id IN ({marks}) OR message_id IN ({marks})", gone)
            _run(conn, "DELETE FROM facts WHERE memory_id IN ({marks})", gone)
            _run(conn, "DELETE FROM episodes WHERE memory_id IN ({marks})", gone)
            _run(conn, "DELETE FROM memories WHERE id IN ({marks})", gone)
            for sid in sessions:
                conn.execute("DELETE FROM summaries WHERE session = ?", (sid,))
                conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))
            if user is not None:
                conn.execute("DELETE FROM users WHERE id = ?", (user,))
            # tells other connections' in-process indexes to drop deleted rows (see Memory._sync)
            conn.execute("INSERT INTO meta(key, value) VALUES ('forgotten', '1') ON CONFLICT (key) "
                         "DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")
        store.forget_uncommitted_sessions()  # cached session names may name deleted sessions
        if mem.index is not None:
            mem.index.remove(gone)
            if mem.ann is not None:  # the forgotten vectors leave the saved graph at once
                mem.ann.remove(gone)
                mem._ann_save()
            store.scrub()
    return len(gone)
