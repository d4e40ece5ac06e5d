"""``Memory``: the public face of the hierarchical memory.

Introduced in lesson 7 (07_memory_systems).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

import numpy as np

from . import _facts
from ._consolidate import LLM
from ._embedding import Embedder, MiniLMEmbedder
from ._errors import EmbedderError, MemoryDatabaseError
from ._fusion import fuse
from ._index import DenseIndex
from ._lexical import LexicalSearcher
from ._pg_store import PgLexicalSearcher, PgStore, is_postgres_url
from ._store import DEFAULT_USER, SCHEMA_VERSION, Row, Store
from ._types import (
    GENERIC_ROLES,
    KIND_CODE,
    KINDS,
    SEARCH_MODES,
    ConsolidationResult,
    Episode,
    Hit,
    Record,
    Weights,
    approx_tokens,
    check_importance,
    check_kinds,
    check_text,
    encode_json,
    encode_metadata,
    from_epoch,
    to_epoch,
)

_ITEM_KEYS = {"session_id", "role", "content", "timestamp", "importance", "metadata"}


class WriteOptions(TypedDict, total=False):
    """The optional keywords of :meth:`Memory.add` and :meth:`Memory.record_episode`."""

    timestamp: datetime | str | float | None
    importance: float | None
    metadata: Mapping[str, Any] | None


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - set(WriteOptions.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}; "
                        f"allowed: {sorted(WriteOptions.__annotations__)}")


def embedding_text(role: str | None, content: str) -> str:
    """What gets embedded: the content, led by the speaker's name when the role is a name."""
    if role and role.strip().lower() not in GENERIC_ROLES:
        return f"{role}: {content}"
    return content


class Memory:
    """Short-term messages, long-term facts and episodes in SQLite or PostgreSQL, searched hybrid.

    Introduced in lesson 7 (07_memory_systems)::

        mem = Memory("memory.db")                  # or ":memory:"
        mem.add("s1", "user", "My cat Pixel hates the vacuum cleaner")
        mem.search("pets", k=5)                     # best first, never silently empty
        mem.consolidate("s1", llm=complete)         # messages -> durable facts (a model call)

    Args:
        path: the SQLite file (created if missing), ``":memory:"``, or a
            ``postgresql://user:password@host:port/db`` URL of a server with pgvector (pooled
            connections, an HNSW index and full-text search in the database).
        embedder: anything with ``name``, ``dim`` and ``embed(texts)``; default: the real
            all-MiniLM-L6-v2, loaded on first use from the installed package.
        llm: ``complete(system, user) -> text`` used by :meth:`consolidate` and to summarise
            turns that leave the short-term window.
        weights: default ranking weights (:class:`Weights`).
        window_turns, window_tokens: the short-term window of each session — at most this many
            recent turns and tokens; older turns are summarised (when ``llm`` is set), never
            deleted, and stay searchable.
        auto_summarise: with an ``llm``, summarise as soon as ``summarise_every`` turns have
            left a session's window (default half the window).
        count_tokens: token counter for the window and :meth:`context_for` (default ~4
            characters per token).
        user_id: whose memories this ``Memory`` reads and writes (default ``"default"``): every
            read and search sees that user's memories only; users share the store.
        exact: always scan every vector (no projected pre-selection above 20k memories, no
            HNSW graph above ``ann_above``).
        ann_above: on SQLite, from this many memories on (default 100,000) an HNSW graph
            (usearch, saved beside the file) proposes the dense candidates; ``0`` never.
        lexical_budget: most rows a lexical query may score (rare words are kept first).
        merge_threshold: cosine above which a new fact is merged into an existing one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        user_id: str = DEFAULT_USER,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
        weights: Weights | None = None,
        window_turns: int = 20,
        window_tokens: int = 2000,
        auto_summarise: bool = True,
        summarise_every: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
        exact: bool = False,
        ann_above: int | None = None,
        lexical_budget: int = 2000,
        merge_threshold: float = 0.92,
    ):
        if window_turns < 1 or window_tokens < 1:
            raise ValueError("window_turns and window_tokens must be >= 1")
        self.user_id = check_text(user_id, "user_id")
        self.embedder: Embedder = embedder if embedder is not None else MiniLMEmbedder()
        self.llm = llm
        self.weights = weights or Weights()
        self.window_turns = window_turns
        self.window_tokens = window_tokens
        self.auto_summarise = auto_summarise
        self.summarise_every = summarise_every or max(1, window_turns // 2)
        self.count_tokens = count_tokens or approx_tokens
        self.merge_threshold = merge_threshold
        self.last_timings: dict[str, float] = {}
        self.remote = is_postgres_url(path)
        self.store: Any
        if self.remote:
            self._check_embedder_shape()
            self.store = PgStore(str(path), dim=int(self.embedder.dim))
        else:
            self.store = Store(path)
        self.dim = 0
        try:
            self._check_embedder()
            self.dim = int(self.embedder.dim)
            self._data_version = 0
            self._forgotten = self.store.get_meta("forgotten")
            self.index: DenseIndex | None = None
            self.ann: Any = None
            self._ann_dirty = False
            if self.remote:  # the database searches: no in-process copy of the vectors
                self.lexical: LexicalSearcher = PgLexicalSearcher(self.store, budget=lexical_budget)
            else:
                from ._ann import ANN_ABOVE

                self.index = DenseIndex(self.dim, exact=exact)
                self.ann_above = 0 if exact else (ANN_ABOVE if ann_above is None else ann_above)
                self.lexical = LexicalSearcher(self.store.conn, budget=lexical_budget)
                with self.store.lock:
                    self._load(after=0)
                    self._data_version = self.store.data_version()
                    self._ann_update()
        except BaseException:
            self.store.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _check_embedder_shape(self) -> None:
        dim = getattr(self.embedder, "dim", None)
        if not isinstance(dim, int) or dim <= 0 or not callable(getattr(self.embedder, "embed", None)):
            raise EmbedderError("embedder must have an int `dim` and an `embed(texts)` method")

    def _check_embedder(self) -> None:
        self._check_embedder_shape()
        name = str(getattr(self.embedder, "name", type(self.embedder).__name__))
        dim = self.embedder.dim
        stored_name, stored_dim = self.store.get_meta("embedder"), self.store.get_meta("dim")
        if stored_name is None:  # a new file: the first of several concurrent openers decides
            with self.store.transaction() as c:
                c.execute("INSERT INTO meta(key, value) VALUES ('embedder', ?) "
                          "ON CONFLICT DO NOTHING", (name,))
                c.execute("INSERT INTO meta(key, value) VALUES ('dim', ?) ON CONFLICT DO NOTHING",
                          (str(dim),))
            stored_name, stored_dim = self.store.get_meta("embedder"), self.store.get_meta("dim")
        if stored_name != name or int(stored_dim or 0) != dim:
            raise EmbedderError(
                f"{self.store.path} was built with embedder {stored_name!r} (dim {stored_dim}) "
                f"but this Memory uses {name!r} (dim {dim}): vectors from different models "
                "cannot be compared. Open it with the same embedder, or use a new file."
            )

    def _load(self, after: int) -> None:
        """Append rows with id > ``after`` from the database to the index (store lock held)."""
        dim = self.dim
        try:
            for rows in self.store.scan(after):
                blob = b"".join(r[6] for r in rows)
                if len(blob) != len(rows) * dim * 4:
                    raise MemoryDatabaseError(
                        f"{self.store.path}: stored embeddings are not {dim} float32 values each; "
                        "the file is damaged or was written by another program"
                    )
                vecs = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim)
                cols = list(zip(*rows, strict=True))
                self.index.append(
                    cols[0], vecs, cols[1], cols[2], cols[4], cols[5],
                    active=[s == 0 for s in cols[3]], users=cols[7],
                )
        except sqlite3.DatabaseError as exc:
            raise MemoryDatabaseError(
                f"{self.store.path} could not be read ({exc}); it may be corrupted: move it "
                "aside and open a new file, or restore it from a backup"
            ) from exc

    def _sync(self) -> None:
        """Catch up with commits made by other connections (store lock held)."""
        if self.index is None:
            return
        version = self.store.data_version()
        if version != self._data_version:
            self._load(after=self.index.max_id)
            self.index.deactivate(self.store.inactive_ids())
            forgotten = self.store.get_meta("forgotten")
            if forgotten != self._forgotten:  # another connection deleted rows
                snap = self.index.snapshot()
                gone = np.setdiff1d(snap.ids, self.store.ids()).tolist()
                self.index.remove(gone)
                if self.ann is not None:
                    self.ann.remove(gone)
                self.store.forget_uncommitted_sessions()  # cached ids may name deleted ones
                self._forgotten = forgotten
            self._data_version = version
            self._ann_update()

    def _append_committed(self, ids: list[int], vecs: np.ndarray, kinds, sessions, ts, imp,
                          user: int) -> None:
        """Index rows this connection just committed (store lock held)."""
        if self.index is None:
            return
        if self.store.data_version() != self._data_version:
            self._sync()  # another writer committed meanwhile: reload in id order, ours included
        else:
            self.index.append(ids, vecs, kinds, sessions, ts, imp, users=user)
        self._ann_update()

    def _uid(self) -> int | None:
        """This Memory's user id; None while the user has never written anything."""
        return self.store.user_id(self.user_id)

    def _owned(self, memory_id: int) -> Row | None:
        """The row of ``memory_id`` if it exists and belongs to this Memory's user."""
        row = self.store.fetch([memory_id]).get(memory_id)
        return row if row is not None and row.user_id == self._uid() else None

    def _ann_update(self) -> None:
        """Open, build or extend the HNSW graph once the store is past ``ann_above`` (lock held)."""
        if not self.ann_above or len(self.index) < self.ann_above:
            return
        try:
            from usearch.index import Index  # noqa: F401
        except ImportError:
            import warnings

            warnings.warn(f"{len(self.index):,} memories: pip install usearch for an HNSW index; "
                          "searching by exact scan meanwhile", stacklevel=3)
            self.ann_above = 0
            return
        from ._ann import AnnIndex

        snap = self.index.snapshot()
        persistent = self.store.path != ":memory:"
        if self.ann is None:
            self.ann = AnnIndex.load(self.store.path, self.store, self.dim) if persistent else None
            if self.ann is None:
                self.ann = AnnIndex(self.dim)
            else:  # rows forgotten since it was saved
                stale = np.setdiff1d(np.asarray(self.ann.index.keys, dtype=np.int64), snap.ids)
                self.ann.remove(stale.tolist())
            self._ann_dirty = True
        new = snap.ids > self.ann.max_id
        if new.any():
            keep = new & np.any(snap.vecs != 0, axis=1)  # forgotten rows have zero vectors
            self.ann.add(snap.ids[keep], snap.vecs[keep])
            self.ann.max_id = max(self.ann.max_id, int(snap.ids[-1]))
            self._ann_dirty = True
        if self._ann_dirty and persistent and len(self.ann) - self._ann_saved_rows() > 0.1 * len(self.ann):
            self._ann_save()

    def _ann_saved_rows(self) -> int:
        raw = self.store.get_meta("ann")
        return json.loads(raw)["rows"] if raw else 0

    def _ann_save(self) -> None:
        if self.ann is not None and self.store.path != ":memory:":
            self.ann.save(self.store.path, self.store)
            self._ann_dirty = False

    def close(self) -> None:
        """Close the database connection (saving the HNSW graph, if there is one)."""
        if self.ann is not None and self._ann_dirty:
            with self.store.lock:
                self._ann_save()
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """This user's memories."""
        uid = self._uid()
        return 0 if uid is None else self.store.count(uid)

    def __repr__(self) -> str:
        return (f"Memory({self.store.path!r}, user_id={self.user_id!r}, {len(self)} memories, "
                f"embedder={self.embedder!r})")

    # --- writing ---------------------------------------------------------------------------

    def add(self, session_id: str, role: str, content: str, **options: Unpack[WriteOptions]) -> int:
        """Store one message in a session's short-term memory; return its id.

        ``timestamp``: an aware datetime, an ISO 8601 string or epoch seconds; a naive value
        is taken as UTC; default now. It must lie in 1970..9999 (UTC and in its own offset),
        else :class:`MemoryTimestampError` (a ``ValueError``) and nothing is stored.
        ``importance`` in [0, 1] (default 0.5). ``metadata``: JSON-compatible, returned
        unchanged by :meth:`search` and :meth:`get`.
        """
        _check_options(options)
        return self.add_many([{"session_id": session_id, "role": role, "content": content, **options}])[0]

    def add_many(self, items: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store many messages in one transaction (embedded in batches); return their ids."""
        rows: list[tuple] = []
        texts: list[str] = []
        sessions: list[str] = []
        for n, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise TypeError(f"items[{n}] must be a dict, got {type(item).__name__}")
            unknown = set(item) - _ITEM_KEYS
            if unknown:
                raise ValueError(
                    f"items[{n}] has unknown keys {sorted(unknown)}; allowed: "
                    f"{sorted(_ITEM_KEYS)} (put anything else in metadata)"
                )
            try:
                session = check_text(item.get("session_id"), "session_id")
                role = check_text(item.get("role"), "role")
                content = check_text(item.get("content"), "content")
                ts, tz = to_epoch(item.get("timestamp"))
                imp = item.get("importance")
                imp = 0.5 if imp is None else check_importance(imp)
                meta = encode_metadata(item.get("metadata"))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"items[{n}]: {exc}") from None
            rows.append((0, session, role, content, ts, tz, imp, self.count_tokens(content), meta, 0))
            texts.append(embedding_text(role, content))
            sessions.append(session)
        if not rows:
            return []
        vecs = self._embed(texts)
        ids = self._insert(rows, vecs)
        if self.llm is not None and self.auto_summarise:
            for session in dict.fromkeys(sessions):
                if self.pending_summary(session) >= self.summarise_every:
                    self.summarise(session)
        return ids

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``, each distinct text encoded once ("ok", "thanks" recur)."""
        unique = list(dict.fromkeys(texts))
        vecs = np.asarray(self.embedder.embed(unique), dtype=np.float32)
        if vecs.shape != (len(unique), self.dim):
            raise EmbedderError(
                f"embedder returned shape {vecs.shape}, expected ({len(unique)}, {self.dim})"
            )
        bad = ~np.isfinite(vecs).all(axis=1)
        if bad.any():
            raise EmbedderError(
                f"embedder {getattr(self.embedder, 'name', '?')!r} returned NaN or infinite values for "
                f"{int(bad.sum())} of {len(unique)} texts (first: {unique[int(np.argmax(bad))][:60]!r}); "
                "nothing was stored. Check the embedder (an empty input, an overflow in half "
                "precision, or a broken model) and retry."
            )
        if len(unique) < len(texts):
            where = {text: n for n, text in enumerate(unique)}
            vecs = vecs[[where[t] for t in texts]]
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12))

    def _insert(self, rows: Sequence[tuple], vecs: np.ndarray, extra=None) -> list[int]:
        """Insert ``(kind, session name, role, content, ts, tz, importance, tokens, metadata,
        status)`` rows with their vectors in one transaction, then index them.

        ``extra(conn, ids)`` runs inside the same transaction (episode and fact tables)."""
        with self.store.lock:
            with self.store.transaction() as conn:
                uid = self.store.ensure_user(self.user_id)
                sids = self.store.session_ids(list(dict.fromkeys(r[1] for r in rows)), uid)
                db_rows = [
                    (r[0], sids[r[1]], *r[2:], uid, vecs[i].tobytes()) for i, r in enumerate(rows)
                ]
                ids = self.store.insert(db_rows)
                if extra is not None:
                    extra(conn, ids)
            self._append_committed(
                ids, vecs, [r[0] for r in rows], [sids[r[1]] for r in rows],
                [r[4] for r in rows], [r[6] for r in rows], uid,
            )
        return ids

    def record_episode(
        self,
        session_id: str,
        event_type: str,
        summary: str,
        full_context: Any,
        outcome: str,
        **options: Unpack[WriteOptions],
    ) -> int:
        """Store an episode (something that happened and how it ended); return its id.

        The summary, event type and outcome are searchable; ``full_context`` (any
        JSON-compatible value) is kept verbatim for :meth:`episode`. ``timestamp``,
        ``importance`` and ``metadata`` as for :meth:`add`.
        """
        _check_options(options)
        timestamp, importance = options.get("timestamp"), options.get("importance")
        metadata = options.get("metadata")
        check_text(session_id, "session_id")
        check_text(event_type, "event_type")
        check_text(summary, "summary")
        if not isinstance(outcome, str):
            raise TypeError(f"outcome must be a str, got {type(outcome).__name__}")
        context = encode_json(full_context, "full_context")
        ts, tz = to_epoch(timestamp)
        imp = 0.5 if importance is None else check_importance(importance)
        meta = encode_metadata(metadata)
        text = f"{event_type}: {summary}" + (f" Outcome: {outcome}" if outcome.strip() else "")
        row = (2, session_id, event_type, summary, ts, tz, imp, self.count_tokens(summary), meta, 0)

        def episode_row(conn: sqlite3.Connection, ids: list[int]) -> None:
            conn.execute(
                "INSERT INTO episodes(memory_id, event_type, full_context, outcome) "
                "VALUES (?, ?, ?, ?)",
                (ids[0], event_type, context, outcome),
            )

        return self._insert([row], self._embed([text]), extra=episode_row)[0]

    # --- reading ---------------------------------------------------------------------------

    def _record(self, row: Row) -> Record:
        return Record(
            id=row.id, kind=KINDS[row.kind], content=row.content,
            session_id=self.store.session_name(row.session),
            timestamp=from_epoch(row.ts, row.tz), role=row.role, importance=row.importance,
            metadata=None if row.metadata is None else json.loads(row.metadata),
            status="active" if row.status == 0 else "superseded",
        )

    def get(self, memory_id: int) -> Record:
        """The memory with this id (``KeyError`` if there is none, or it is another user's)."""
        row = self._owned(memory_id)
        if row is None:
            raise KeyError(f"no memory with id {memory_id}")
        return self._record(row)

    def episode(self, memory_id: int) -> Episode:
        """The full episode recorded under this id."""
        rec = self.get(memory_id)  # KeyError for another user's memory
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT event_type, full_context, outcome FROM episodes WHERE memory_id = ?",
                (memory_id,),
            ).fetchone()
        if row is None:
            raise KeyError(f"no episode with id {memory_id}")
        return Episode(memory_id, rec.session_id, row[0], rec.content, json.loads(row[1]),
                       row[2], rec.timestamp, rec.metadata)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        session_id: str | None = None,
        kinds: str | Iterable[str] | None = None,
        mode: str = "hybrid",
        weights: Weights | None = None,
        now: datetime | None = None,
        embedding: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` most relevant active memories, best first.

        ``mode``: ``"hybrid"`` (dense + BM25, fused by rank), ``"dense"`` or ``"lexical"``.
        ``kinds`` limits the kinds searched; ``session_id`` limits to one session.
        ``embedding``: a precomputed query vector (skips the embedder).
        No similarity threshold: if there are memories, there are hits.
        """
        check_text(query, "query")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        kind_names = check_kinds(kinds)
        codes = None if kind_names is None else [KIND_CODE[n] for n in kind_names]
        weights = weights or self.weights
        depth = max(50, 5 * k)  # candidates per path; both scores are exact for each
        t0 = time.perf_counter()
        qvec = None
        if mode != "lexical":
            if embedding is None:
                qvec = self._embed([query])[0]
            else:
                qvec = np.asarray(embedding, dtype=np.float32).reshape(-1)
                if qvec.shape != (self.dim,):
                    raise ValueError(f"embedding must have {self.dim} values, got "
                                     f"{np.asarray(embedding).shape}")
                if not np.isfinite(qvec).all():
                    raise ValueError("embedding contains NaN or infinite values: pass a finite vector")
        t1 = time.perf_counter()
        uid = self._uid()
        if uid is None:  # this user has no memories
            return []
        if self.index is None:
            return self._search_remote(query, qvec, k, depth, codes, session_id, mode, weights,
                                       now, t0, t1, uid)
        with self.store.lock:
            self._sync()
            sid = None
            if session_id is not None:
                sid = self.store.session_id(check_text(session_id, "session_id"), uid)
                if sid is None:
                    return []
            snap = self.index.snapshot()
            lexical: list[tuple[int, float]] = []
            mass = 0.0
            if mode != "dense":
                lexical, mass = self.lexical.search(
                    query, depth + snap.inactive, rows=snap.n, kinds=codes, session=sid, user=uid
                )
        t2 = time.perf_counter()
        dense: list[tuple[int, float]] = []
        if qvec is not None:
            ids, scores = self.index.search(qvec, depth, kinds=codes, session=sid, user=uid,
                                            snap=snap, ann=self.ann)
            dense = list(zip(ids.tolist(), scores.tolist(), strict=True))
        t3 = time.perf_counter()
        if lexical:
            pos = snap.positions([i for i, _ in lexical])
            keep = snap.active[np.minimum(pos, snap.n - 1)]
            lexical = [pair for pair, ok in zip(lexical, keep, strict=True) if ok][:depth]
        cand_ids = sorted({i for i, _ in dense} | {i for i, _ in lexical})
        pos = snap.positions(cand_ids)
        ts = dict(zip(cand_ids, snap.ts[pos].tolist(), strict=True))
        imp = dict(zip(cand_ids, snap.importance[pos].tolist(), strict=True))
        cosine = None
        if qvec is not None and lexical:
            lex_ids = [i for i, _ in lexical]
            cosine = dict(zip(lex_ids, (snap.vecs[snap.positions(lex_ids)] @ qvec).tolist(),
                              strict=True))
        hub = None
        if qvec is not None and weights.hubness:
            hub = self._hubness(cand_ids, snap.vecs[pos], uid, snap)
        fused = fuse(dense, lexical, weights, ts=ts, importance=imp, cosine=cosine,
                     lexical_mass=mass, now=(now or datetime.now(UTC)).timestamp(),
                     use_dense=mode != "lexical", use_lexical=mode != "dense", hub=hub)[:k]
        return self._hits(fused, t0, t1, t2, t3)

    def _hubness(self, ids: list[int], vecs: np.ndarray, uid: int, snap=None) -> dict[int, float]:
        """{id: hubness} of the candidates against a reference sample of the user's memories."""
        from . import _hubness

        if snap is not None:
            # rebuilt after a forget or once the store has grown by a tenth: a chat that adds a turn before each
            # search must not pay for a new reference every time (hubness is a slowly moving average)
            built = getattr(self, "_hub_key", None)
            if (built is None or built[0] != uid or built[2] != snap.inactive or snap.n < built[1]
                    or snap.n > built[1] * 1.1 + 16):
                mine = snap.active & (snap.users == uid)
                self._hub_ref = (_hubness.reference(snap.vecs, mine), int(mine.sum()))
                self._hub_key = (uid, snap.n, snap.inactive)
                self._hub_memo = {}
        else:  # PostgreSQL: a sample of the user's rows, refreshed every minute
            key = (uid, int(time.monotonic() // 60))
            if getattr(self, "_hub_key", None) != key:
                self._hub_ref = self.store.sample_embeddings(uid, _hubness.SAMPLE)
                self._hub_key = key
                self._hub_memo = {}
        # a memory's hubness only changes with the reference: compute it once per reference, for the new ids only
        memo = self._hub_memo
        todo = [j for j, i in enumerate(ids) if i not in memo]
        if todo:
            ref, population = self._hub_ref
            found = _hubness.hubness(vecs[todo], ref, population).tolist()
            memo.update(zip((ids[j] for j in todo), found, strict=True))
        return {i: memo[i] for i in ids}

    def _search_remote(self, query, qvec, k, depth, codes, session_id, mode, weights, now,
                       t0, t1, uid) -> list[Hit]:
        """:meth:`search` on PostgreSQL: HNSW and full-text candidates, fused here."""
        sid = None
        if session_id is not None:
            sid = self.store.session_id(check_text(session_id, "session_id"), uid)
            if sid is None:
                return []
        lexical: list[tuple[int, float]] = []
        mass = 0.0
        if mode != "dense":
            lexical, mass = self.lexical.search(
                query, depth, rows=max(1, self.store.max_id()), kinds=codes, session=sid, user=uid)
        t2 = time.perf_counter()
        dense = [] if qvec is None else self.store.dense(qvec, depth, kinds=codes, session=sid,
                                                          user=uid)
        t3 = time.perf_counter()
        info = self.store.candidates(sorted({i for i, _ in dense} | {i for i, _ in lexical}),
                                     qvec if lexical else None)
        lexical = [pair for pair in lexical if pair[0] in info]
        cosine = None if qvec is None or not lexical else {i: info[i][2] for i, _ in lexical}
        hub = None
        if qvec is not None and weights.hubness and info:
            cand = sorted(info)
            vecs = self.store.embeddings(cand)
            hub = self._hubness(cand, np.stack([vecs[i] for i in cand]), uid)
        fused = fuse(dense, lexical, weights, ts={i: v[0] for i, v in info.items()},
                     importance={i: v[1] for i, v in info.items()}, cosine=cosine,
                     lexical_mass=mass, now=(now or datetime.now(UTC)).timestamp(),
                     use_dense=mode != "lexical", use_lexical=mode != "dense", hub=hub)[:k]
        return self._hits(fused, t0, t1, t2, t3)

    def _hits(self, fused, t0: float, t1: float, t2: float, t3: float) -> list[Hit]:
        t4 = time.perf_counter()
        rows = self.store.fetch([f.id for f in fused])
        hits = []
        uid = self._uid()
        for f in fused:
            if f.id not in rows or rows[f.id].user_id != uid:  # forgotten since the search began
                continue
            rec = self._record(rows[f.id])
            hits.append(Hit(rec.id, rec.kind, rec.content, f.score, rec.session_id, rec.timestamp,
                            rec.metadata, rec.role, rec.importance, f.dense, f.lexical))
        t5 = time.perf_counter()
        self.last_timings = {
            "embed_ms": (t1 - t0) * 1e3, "lexical_ms": (t2 - t1) * 1e3,
            "dense_ms": (t3 - t2) * 1e3, "fuse_ms": (t4 - t3) * 1e3,
            "fetch_ms": (t5 - t4) * 1e3, "total_ms": (t5 - t0) * 1e3,
        }
        return hits

    # --- forgetting (see _forget.py) -----------------------------------------------------------

    def forget(self, memory_id: int) -> int:
        """Delete one memory and everything derived from it; return how many memories went.

        Derived: the facts consolidated from it (every version, with their source links), and
        the session summaries that folded it in (the session falls back to its last summary
        written before it). Vectors and full-text entries go with the rows; on SQLite the freed
        pages are zeroed and the FTS5 index merged, so the text leaves the file too.
        ``KeyError`` if there is no such memory.
        """
        from ._forget import delete

        if self._owned(memory_id) is None:
            raise KeyError(f"no memory with id {memory_id}")
        return delete(self, [memory_id])

    def forget_session(self, session_id: str) -> int:
        """Delete a whole session: its messages, facts, episodes, summaries, and everything
        derived from them elsewhere; return how many memories went (0 for an unknown session)."""
        from ._forget import delete

        sid = self.store.session_id(check_text(session_id, "session_id"), self._uid())
        return 0 if sid is None else delete(self, [], sessions=[sid])

    def forget_user(self, user_id: str) -> int:
        """Delete everything of a user: sessions, messages, facts with their history, episodes,
        summaries, vectors and full-text entries; return how many memories went (0 for an
        unknown user). Any ``Memory`` on the store may call it, for any user."""
        from ._forget import delete

        uid = self.store.user_id(check_text(user_id, "user_id"))
        return 0 if uid is None else delete(self, [], user=uid)

    # --- the short-term window -------------------------------------------------------------

    def _session_window(self, session_id: str) -> tuple[int, list[Row]] | None:
        """The session's id and the rows in its window; None when it has no rows (or does not exist)."""
        sid = self.store.session_id(check_text(session_id, "session_id"), self._uid())
        window = [] if sid is None else self._window_rows(sid)
        return (sid, window) if sid is not None and window else None

    def _window_rows(self, sid: int) -> list[Row]:
        rows = self.store.recent_messages(sid, self.window_turns)
        total = 0
        keep = 0
        for row in reversed(rows):
            if keep and total + row.tokens > self.window_tokens:
                break
            total += row.tokens
            keep += 1
        return rows[len(rows) - keep :]

    def window(self, session_id: str) -> list[Record]:
        """The session's short-term window: its latest turns within the count/token limits."""
        sid = self.store.session_id(check_text(session_id, "session_id"), self._uid())
        return [] if sid is None else [self._record(r) for r in self._window_rows(sid)]

    def summary(self, session_id: str) -> str | None:
        """The running summary of the turns that left the session's window (if any)."""
        sid = self.store.session_id(check_text(session_id, "session_id"), self._uid())
        return None if sid is None else self.store.session_state(sid)[0]

    def pending_summary(self, session_id: str) -> int:
        """How many turns have left the window and are not in the summary yet."""
        found = self._session_window(session_id)
        if found is None:
            return 0
        sid, window = found
        upto = self.store.session_state(sid)[1]
        with self.store.lock:
            return self.store.conn.execute(
                "SELECT count(*) FROM memories WHERE session = ? AND kind = 0 AND id > ? "
                "AND id < ?",
                (sid, upto, window[0].id),
            ).fetchone()[0]

    # --- consolidation (see _facts.py) -----------------------------------------------------

    def summarise(self, session_id: str, *, llm: LLM | None = None) -> int:
        """Fold the turns that left the window into the session's running summary (model
        calls); return how many turns were folded in. Turns are never deleted."""
        return _facts.summarise(self, session_id, llm)

    def consolidate(
        self, session_id: str, *, llm: LLM | None = None, batch_size: int = 40
    ) -> ConsolidationResult:
        """Turn the session's new messages into long-term facts with a model call.

        The model sees the new messages and the most similar known facts and answers with
        add / update / duplicate operations. Updates keep the old version (see
        :meth:`history`); every fact links to the messages it came from (:meth:`sources`);
        messages are never deleted. Each batch is applied atomically: an unusable reply raises
        :class:`ConsolidationError` and leaves that batch pending.
        """
        return _facts.consolidate(self, session_id, llm, batch_size)

    def sources(self, fact_id: int) -> list[Record]:
        """The messages a fact (and its earlier versions) came from, oldest first."""
        chain = [r.id for r in self.history(fact_id)]
        with self.store.lock:
            marks = ",".join("?" * len(chain))
            ids = [r[0] for r in self.store.conn.execute(
                f"SELECT DISTINCT message_id FROM fact_sources WHERE fact_id IN ({marks}) "
                "ORDER BY message_id", chain)]
        rows = self.store.fetch(ids)
        return [self._record(rows[i]) for i in ids if i in rows]

    def history(self, fact_id: int) -> list[Record]:
        """Every version of a fact, oldest first, ending with ``fact_id``'s version."""
        chain = []
        current: int | None = fact_id
        if self._owned(fact_id) is None:
            raise KeyError(f"no long-term fact with id {fact_id}")
        with self.store.lock:
            while current is not None:
                chain.append(current)
                row = self.store.conn.execute(
                    "SELECT supersedes FROM facts WHERE memory_id = ?", (current,)
                ).fetchone()
                if row is None and current == fact_id:
                    raise KeyError(f"no long-term fact with id {fact_id}")
                current = row[0] if row else None
        rows = self.store.fetch(chain)
        return [self._record(rows[i]) for i in reversed(chain)]

    # --- prompts and numbers ---------------------------------------------------------------

    def context_for(
        self,
        query: str,
        *,
        session_id: str | None = None,
        max_tokens: int = 800,
        k: int = 8,
        include_recent: bool = True,
    ) -> str:
        """The memory text to put in a prompt, within ``max_tokens``.

        With a ``session_id``: the session's running summary (up to a quarter of the budget)
        and its recent window (up to a third, newest turns kept), then the memories most
        relevant to ``query`` from every session, best first, until the budget is spent.
        """
        from ._context import build_context

        return build_context(self, query, session_id, max_tokens, k, include_recent)

    def stats(self) -> dict[str, Any]:
        """Counts of this user's memories, the store's size and settings, e.g. for
        ``pandas.Series(mem.stats())``."""
        uid = self._uid() or 0  # 0: no such user, every count is 0
        with self.store.lock:
            self._sync()
            counts = dict.fromkeys(
                ("short_term", "long_term", "long_term_superseded", "episodic"), 0
            )
            c = self.store.conn
            for kind, status, n in c.execute(
                "SELECT kind, status, count(*) FROM memories WHERE user_id = ? GROUP BY kind, status",
                (uid,),
            ):
                key = KINDS[kind] + ("_superseded" if status else "")
                counts[key] = counts.get(key, 0) + n
            sessions = c.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (uid,)).fetchone()[0]
            unconsolidated = c.execute(
                "SELECT count(*) FROM memories m JOIN sessions s ON s.id = m.session "
                "WHERE s.user_id = ? AND m.kind = 0 AND m.id > s.consolidated_upto", (uid,),
            ).fetchone()[0]
            summaries = c.execute(
                "SELECT count(*) FROM summaries WHERE session IN "
                "(SELECT id FROM sessions WHERE user_id = ?)", (uid,)).fetchone()[0]
            db_bytes = self.store.file_bytes()
            stored = self.store.count()
        total = sum(counts.values())
        return {
            "user_id": self.user_id, "memories": total, **counts, "sessions": sessions,
            "unconsolidated_messages": unconsolidated, "summaries": summaries,
            "store_memories": stored, "db_bytes": db_bytes,
            "bytes_per_memory": round(db_bytes / stored, 1) if stored else None,
            "index_rows": stored if self.index is None else len(self.index),
            "index_projected_dims": None if self.index is None else self.index.projected_dims,
            "ann_rows": None if getattr(self, "ann", None) is None else len(self.ann),
            "embedder": str(getattr(self.embedder, "name", "?")), "dim": self.dim,
            "schema_version": SCHEMA_VERSION, "path": self.store.path,
        }

    def check(self) -> dict[str, bool]:
        """Integrity checks: SQLite's own, the FTS index's, and index == database.

        On PostgreSQL: every row has a full-text vector and the HNSW index is valid."""
        if self.index is None:
            return self.store.check()
        with self.store.lock:
            self._sync()
            c = self.store.conn
            sqlite_ok = c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            try:
                c.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
                fts_ok = True
            except sqlite3.DatabaseError:
                fts_ok = False
            n = c.execute("SELECT count(*) FROM memories").fetchone()[0]
            top = c.execute("SELECT coalesce(max(id), 0) FROM memories").fetchone()[0]
        return {"sqlite": sqlite_ok, "fts": fts_ok,
                "index": n == len(self.index) and top <= self.index.max_id}
