"""The PostgreSQL store: the same model as the SQLite file, with pgvector HNSW and full-text search.

Introduced in lesson 7 (07_memory_systems). ``Memory("postgresql://...")`` opens this store
instead of a SQLite file. Tables live in their own schema (``llmkit_memory``) so they never meet
an application's tables; the schema version is a row of ``meta``. Dense search is an HNSW index
(cosine) over ``memories.embedding``, lexical search a GIN index over a generated ``tsvector``.
Connections come from a pool (psycopg 3 + psycopg_pool), so several threads and processes can
write and search one store at the same time; there is no in-process copy of the vectors.

The SQL shared with the SQLite store is written with ``?`` placeholders and portable clauses
(``ON CONFLICT DO NOTHING``); :class:`_Conn` turns ``?`` into psycopg's ``%s``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations
from typing import Any

import numpy as np

from ._errors import MemoryDatabaseError
from ._lexical import LexicalSearcher, idf
from ._store import COLUMNS, DEFAULT_USER, Row, SessionCache

SCHEMA = "llmkit_memory"
# HNSW build parameters: m=16 links per node (pgvector's default) and ef_construction=128 (twice its default).
# At 50k clustered 384-d vectors m=16 with ef_construction=64 already reached recall@10 1.000 (m=8/32 only
# 0.907-0.975; m=24/96 no better for a 2.3x longer build). At 1M (benchmarks/bench_pg_ef_search.py, one build
# each) ef_construction=64 gave recall@10 0.825 / 0.882 / 0.921 at ef_search 100 / 200 / 400, short of 0.95;
# ef_construction=128 gave 0.976 / 0.993 / 0.998; `llmkit bench memory --full` then measured recall 0.998 at
# ef_search 200, p50 9.7 ms, p99 28.3 ms and a build of 527 s instead of 313-337 s (idle machine).
# ef_search bounds how many rows one scan can return, so it is set to at least twice the candidate depth:
# 200 on every pooled connection (search(k <= 10) asks for 50 candidates), raised per query beyond that.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
EF_SEARCH = 200


def hnsw_index() -> str:
    """The statement that builds the HNSW index, with the module's current parameters."""
    return (f"CREATE INDEX memories_hnsw ON memories USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")


def _v1(dim: int) -> list[str]:
    return [
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE sessions(
            id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)""",
        f"""CREATE TABLE memories(
            id BIGSERIAL PRIMARY KEY,
            kind SMALLINT NOT NULL,
            session BIGINT NOT NULL REFERENCES sessions(id),
            role TEXT,
            content TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            tz INTEGER NOT NULL DEFAULT 0,
            importance DOUBLE PRECISION NOT NULL,
            tokens INTEGER NOT NULL,
            metadata TEXT,
            status SMALLINT NOT NULL DEFAULT 0,
            embedding vector({int(dim)}) NOT NULL,
            speaker TEXT GENERATED ALWAYS AS (
                CASE WHEN lower(role) IN ('ai', 'assistant', 'developer', 'human', 'model',
                                          'system', 'tool', 'user')
                THEN NULL ELSE role END) STORED,
            fts tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', coalesce(
                    CASE WHEN lower(role) IN ('ai', 'assistant', 'developer', 'human', 'model',
                                              'system', 'tool', 'user')
                    THEN NULL ELSE role END, '')), 'B')
                || setweight(to_tsvector('english', content), 'A')) STORED
        )""",
        "CREATE INDEX memories_by_session ON memories(session, kind, id)",
        "CREATE INDEX memories_fts ON memories USING gin(fts)",
        hnsw_index(),
        """CREATE TABLE episodes(
            memory_id BIGINT PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
            event_type TEXT NOT NULL, full_context TEXT NOT NULL, outcome TEXT NOT NULL)""",
    ]


_V2 = [
    "ALTER TABLE sessions ADD COLUMN summary TEXT",
    "ALTER TABLE sessions ADD COLUMN summarised_upto BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE sessions ADD COLUMN consolidated_upto BIGINT NOT NULL DEFAULT 0",
    """CREATE TABLE facts(
        memory_id BIGINT PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
        supersedes BIGINT REFERENCES memories(id) ON DELETE SET NULL,
        superseded_by BIGINT REFERENCES memories(id) ON DELETE SET NULL,
        mentions INTEGER NOT NULL DEFAULT 1)""",
    """CREATE TABLE fact_sources(
        fact_id BIGINT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        message_id BIGINT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        PRIMARY KEY (fact_id, message_id))""",
    "CREATE INDEX memories_inactive ON memories(id) WHERE status != 0",
    """CREATE TABLE summaries(
        id BIGSERIAL PRIMARY KEY, session BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        upto BIGINT NOT NULL, content TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)""",
]


_V3 = [
    "CREATE TABLE users(id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    f"INSERT INTO users(id, name) VALUES (1, '{DEFAULT_USER}')",
    "SELECT setval('users_id_seq', 1)",
    "ALTER TABLE sessions ADD COLUMN user_id BIGINT NOT NULL DEFAULT 1 REFERENCES users(id)",
    "ALTER TABLE sessions DROP CONSTRAINT sessions_name_key",
    "ALTER TABLE sessions ADD CONSTRAINT sessions_user_name UNIQUE (user_id, name)",
    "ALTER TABLE memories ADD COLUMN user_id BIGINT NOT NULL DEFAULT 1",  # its session's user
    "CREATE INDEX memories_by_user ON memories(user_id, kind, id)",
]


def migrations(dim: int) -> list[tuple[str, list[str]]]:
    """The PostgreSQL twin of :data:`llmkit.memory._store.MIGRATIONS` (same version numbers)."""
    return [
        ("memories, sessions, episodes, HNSW and full-text indexes", _v1(dim)),
        ("consolidation: facts with history and sources, summaries, session watermarks", _V2),
        ("users: sessions and memories belong to a user (default: 'default')", _V3),
    ]


def is_postgres_url(path: object) -> bool:
    return isinstance(path, str) and re.match(r"postgres(ql)?://", path) is not None


def redact(url: str) -> str:
    """The URL without its password (for messages and ``repr``)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _import_psycopg():
    try:
        import psycopg
        import psycopg_pool
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        raise MemoryDatabaseError(
            f"a postgresql:// memory needs psycopg, psycopg_pool and pgvector ({exc}): "
            "pip install psycopg[binary] psycopg-pool pgvector (llmkit pins them)"
        ) from exc
    return psycopg, psycopg_pool, register_vector


class _Result:
    """Rows already fetched, with the cursor methods the shared code uses."""

    def __init__(self, rows: list[tuple]):
        self._rows = rows

    def fetchone(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple]:
        return self._rows

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._rows)


def _sql(query: str) -> str:
    return query.replace("%", "%%").replace("?", "%s")


class _Conn:
    """``execute`` / ``executemany`` with ``?`` placeholders, on one connection or the pool."""

    def __init__(self, store: PgStore, conn: Any | None = None):
        self._store = store
        self._conn = conn

    def execute(self, query: str, params: Sequence[Any] = ()) -> _Result:
        if self._conn is not None:
            cur = self._conn.execute(_sql(query), list(params))
            return _Result(cur.fetchall() if cur.description else [])
        with self._store.pool.connection() as conn:
            cur = conn.execute(_sql(query), list(params))
            return _Result(cur.fetchall() if cur.description else [])

    def executemany(self, query: str, seq: Sequence[Sequence[Any]]) -> None:
        if self._conn is not None:
            self._conn.cursor().executemany(_sql(query), [list(p) for p in seq])
            return
        with self._store.pool.connection() as conn:
            conn.cursor().executemany(_sql(query), [list(p) for p in seq])


class PgStore(SessionCache):
    """A pool of connections to one PostgreSQL database holding an llmkit memory."""

    dialect = "postgresql"

    def __init__(self, url: str, *, dim: int, pool_size: int = 4):
        psycopg, psycopg_pool, register_vector = _import_psycopg()
        self.url = url
        self.path = redact(url)
        self.dim = dim
        super().__init__()
        self.lock = threading.RLock()
        self._local = threading.local()
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                with conn.transaction():
                    # concurrent first opens: one creates the extension and schema, the rest wait
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('llmkit_memory'))")
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        except psycopg.Error as exc:
            raise MemoryDatabaseError(
                f"cannot prepare {self.path}: {exc}. Check the URL and that the server has "
                "pgvector (e.g. the pgvector/pgvector Docker image, or CREATE EXTENSION vector "
                "as a superuser on a managed service)"
            ) from exc

        def configure(conn: Any) -> None:
            conn.execute(f"SET search_path TO {SCHEMA}, public")
            # filtered HNSW scans continue until enough rows pass the filter
            conn.execute("SET hnsw.iterative_scan = relaxed_order")
            conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
            register_vector(conn)
            conn.commit()

        self._psycopg = psycopg
        self.pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=pool_size, configure=configure,
            kwargs={"autocommit": True}, open=False, name="llmkit-memory",
        )
        try:
            self.pool.open(wait=True, timeout=30)
            self.conn = _Conn(self)
            self.migrate()
        except Exception as exc:
            self.pool.close()
            if isinstance(exc, MemoryDatabaseError):
                raise
            raise MemoryDatabaseError(f"cannot open {self.path}: {exc}") from exc

    # --- migrating -------------------------------------------------------------------------

    def _version(self, conn: Any) -> int:
        has_meta = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
        if not has_meta:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self, target: int | None = None) -> int:
        """Apply the pending migrations up to ``target``; return the version reached."""
        steps = migrations(self.dim)
        target = len(steps) if target is None else target
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('llmkit_memory.migrate'))")
            version = self._version(conn)
            if version > len(steps):
                raise MemoryDatabaseError(
                    f"{self.path} has schema version {version}, written by a newer llmkit; this "
                    f"one knows versions up to {len(steps)}: upgrade llmkit to open it"
                )
            while version < target:
                for sql in steps[version][1]:
                    conn.execute(sql)
                version += 1
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))
        return version

    @property
    def version(self) -> int:
        with self.pool.connection() as conn:
            return self._version(conn)

    @contextmanager
    def transaction(self) -> Iterator[_Conn]:
        """One transaction on one pooled connection; any exception rolls everything back."""
        with self.lock:
            outer = getattr(self._local, "conn", None)
            if outer is not None:  # nested: join the caller's transaction
                yield outer
                return
            with self.pool.connection() as conn:
                try:
                    with conn.transaction():
                        self._local.conn = _Conn(self, conn)
                        yield self._local.conn
                except BaseException:
                    self.forget_uncommitted_sessions()
                    raise
                finally:
                    self._local.conn = None

    def close(self) -> None:
        self.pool.close()

    # --- meta and sessions -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def ensure_user(self, name: str) -> int:
        """The id of user ``name``, created if missing (call inside a transaction)."""
        conn = getattr(self._local, "conn", None) or self.conn
        # an upsert: two processes creating the same user both get its id
        uid = conn.execute(
            "INSERT INTO users(name) VALUES (?) ON CONFLICT (name) "
            "DO UPDATE SET name = excluded.name RETURNING id", (name,)).fetchone()[0]
        if self._user_ids.get(name, uid) != uid:  # forgotten and re-created elsewhere
            self._session_ids.clear()
        self._user_ids[name] = uid
        return uid

    def session_ids(self, names: Sequence[str], user: int) -> dict[str, int]:
        """Integer ids for a user's session names, creating missing ones (call inside a transaction).

        Upserted, not cached: another connection may have forgotten them."""
        conn = getattr(self._local, "conn", None) or self.conn
        out: dict[str, int] = {}
        for name in names:
            sid = conn.execute(
                "INSERT INTO sessions(user_id, name) VALUES (?, ?) ON CONFLICT (user_id, name) "
                "DO UPDATE SET name = excluded.name RETURNING id", (user, name)
            ).fetchone()[0]
            out[name] = self._remember_session(user, name, sid)
        return out

    def _session_row(self, sql: str, *params: object) -> Any:
        return self.conn.execute(sql, params).fetchone()

    # --- rows ------------------------------------------------------------------------------

    def insert(self, rows: Sequence[tuple]) -> list[int]:
        """Insert rows ``(kind, session, role, content, ts, tz, importance, tokens, metadata,
        status, user_id, embedding bytes)`` inside the caller's transaction; return their ids in order."""
        conn = self._local.conn
        assert conn is not None, "insert() runs inside transaction()"
        ids = [r[0] for r in conn.execute(
            "SELECT nextval('memories_id_seq') FROM generate_series(1, ?)", (len(rows),))]
        vecs = [np.frombuffer(r[-1], dtype=np.float32) for r in rows]
        conn.executemany(
            f"INSERT INTO memories({COLUMNS}, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(i, *row[:-1], vec) for i, row, vec in zip(ids, rows, vecs, strict=True)],
        )
        return ids

    def fetch(self, ids: Sequence[int]) -> dict[int, Row]:
        if not ids:
            return {}
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM memories WHERE id = ANY(?)", (list(ids),)).fetchall()
        return {r[0]: Row(*r) for r in rows}

    def embeddings(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        rows = self.conn.execute(
            "SELECT id, embedding FROM memories WHERE id = ANY(?)", (list(ids),)).fetchall()
        return {i: _array(v) for i, v in rows}

    def sample_embeddings(self, user: int, size: int) -> tuple[np.ndarray, int]:
        """(up to ``size`` embeddings of a user's active rows, how many rows they were drawn from)."""
        total = self.conn.execute(
            "SELECT count(*) FROM memories WHERE user_id = ? AND status = 0", (user,)).fetchone()[0]
        # a Bernoulli sample of the table's pages; a fixed seed keeps searches repeatable
        share = min(100.0, 100.0 * 1.5 * size / max(total, 1))
        rows = self.conn.execute(
            f"SELECT embedding FROM memories TABLESAMPLE SYSTEM ({share:.6f}) REPEATABLE (7) "
            "WHERE user_id = ? AND status = 0 LIMIT ?", (user, size)).fetchall()
        vecs = np.array([_array(r[0]) for r in rows], dtype=np.float32).reshape(-1, self.dim)
        return vecs, total

    def count(self, user: int | None = None) -> int:
        if user is None:
            return self.conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        return self.conn.execute(
            "SELECT count(*) FROM memories WHERE user_id = ?", (user,)).fetchone()[0]

    def max_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM memories").fetchone()[0]

    def recent_messages(self, session: int, limit: int) -> list[Row]:
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM memories WHERE session = ? AND kind = 0 "
            "ORDER BY id DESC LIMIT ?", (session, limit)).fetchall()
        return [Row(*r) for r in reversed(rows)]

    def messages_between(self, session: int, after: int, upto: int | None = None) -> list[Row]:
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM memories WHERE session = ? AND kind = 0 AND id > ? "
            "AND id <= ? ORDER BY id", (session, after, upto if upto is not None else 2**62),
        ).fetchall()
        return [Row(*r) for r in rows]

    def session_state(self, session: int) -> tuple[str | None, int, int]:
        row = self.conn.execute(
            "SELECT summary, summarised_upto, consolidated_upto FROM sessions WHERE id = ?",
            (session,)).fetchone()
        return (row[0], row[1], row[2]) if row else (None, 0, 0)

    def scrub(self) -> None:
        """Nothing to do: deleted rows leave every query at once; VACUUM reclaims the space."""

    def file_bytes(self) -> int:
        """Bytes of the memory tables with their indexes and TOAST data."""
        return self.conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind = 'r'", (SCHEMA,)).fetchone()[0]

    def check(self) -> dict[str, bool]:
        """Every row has its full-text vector, and the HNSW index is valid and ready."""
        missing = self.conn.execute("SELECT count(*) FROM memories WHERE fts IS NULL").fetchone()[0]
        valid = self.conn.execute(
            "SELECT coalesce(bool_and(i.indisvalid AND i.indisready), false) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname IN ('memories_hnsw', 'memories_fts')", (SCHEMA,),
        ).fetchone()[0]
        return {"postgresql": True, "fts": missing == 0, "index": bool(valid)}

    # --- search ----------------------------------------------------------------------------

    def dense(
        self, qvec: np.ndarray, limit: int, *, kinds: Sequence[int] | None = None,
        session: int | None = None, user: int | None = None,
    ) -> list[tuple[int, float]]:
        """(id, cosine) of the ``limit`` nearest active rows via the HNSW index, best first."""
        where, params = _filters(kinds, session, user)
        q = np.asarray(qvec, dtype=np.float32)
        sql = (f"SELECT id, 1 - (embedding <=> %s) FROM memories WHERE {where} "
               "ORDER BY embedding <=> %s LIMIT %s")
        with self.pool.connection() as conn:
            if 2 * limit <= EF_SEARCH:  # one round trip
                rows = conn.execute(sql, [q, *params, q, int(limit)]).fetchall()
            else:
                with conn.transaction():
                    conn.execute(f"SET LOCAL hnsw.ef_search = {2 * int(limit)}")
                    rows = conn.execute(sql, [q, *params, q, int(limit)]).fetchall()
        return [(int(i), float(c)) for i, c in rows]

    def candidates(self, ids: Sequence[int], qvec: np.ndarray | None):
        """{id: (ts, importance, cosine or None)} of the fused candidates."""
        if not ids:
            return {}
        if qvec is None:
            rows = self.conn.execute(
                "SELECT id, ts, importance, NULL FROM memories WHERE id = ANY(?)", (list(ids),))
        else:
            rows = self.conn.execute(
                "SELECT id, ts, importance, 1 - (embedding <=> ?) FROM memories "
                "WHERE id = ANY(?)", (np.asarray(qvec, dtype=np.float32), list(ids)))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _array(vec: Any) -> np.ndarray:
    """A pgvector ``Vector`` (or a plain sequence) as float32."""
    return np.asarray(vec.to_numpy() if hasattr(vec, "to_numpy") else vec, dtype=np.float32)


def _filters(
    kinds: Sequence[int] | None, session: int | None, user: int | None = None,
) -> tuple[str, list[Any]]:
    where, params = ["status = 0"], []
    if user is not None:
        where.append("user_id = %s")
        params.append(user)
    if kinds is not None and len(set(kinds)) < 3:
        where.append(f"kind IN ({','.join(str(int(k)) for k in set(kinds))})")
    if session is not None:
        where.append("session = %s")
        params.append(session)
    return " AND ".join(where), params


class PgLexicalSearcher(LexicalSearcher):
    """The budgeted lexical search of :class:`LexicalSearcher`, on PostgreSQL full-text search.

    Words are stemmed by the ``english`` configuration (as the generated ``tsvector`` is); a
    row scores the sum of the IDFs of the query words it contains (BM25 with saturated term
    frequency), so scores share the IDF-mass scale that :func:`fuse` expects.
    """

    def __init__(self, store: PgStore, *, budget: int = 2000):
        super().__init__(None, budget=budget)  # type: ignore[arg-type]
        self.store = store

    def doc_freq(self, term: str, rows: int) -> int:
        return self._cached_count(term, rows, self._term_count)

    def _term_count(self, term: str) -> int:
        return self.store.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories "
            "WHERE fts @@ plainto_tsquery('english', ?) LIMIT ?) t",
            (term, self.budget + 1)).fetchone()[0]

    def _pair_count(self, pair: tuple[str, str]) -> int:
        return self.store.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories WHERE fts @@ plainto_tsquery('english', ?) "
            "AND fts @@ plainto_tsquery('english', ?) LIMIT ?) t", (*pair, self.budget + 1),
        ).fetchone()[0]

    def search(
        self, text: str, limit: int, *, rows: int, kinds: Sequence[int] | None = None,
        session: int | None = None, user: int | None = None,
    ) -> tuple[list[tuple[int, float]], float]:
        used, dropped, mass = self.plan(text, rows)
        where, params = _filters(kinds, session, user)
        if used:
            weights = [idf(self.doc_freq(t, rows), rows) for t in used]
            score = " + ".join(
                "CASE WHEN fts @@ plainto_tsquery('english', %s) THEN %s ELSE 0 END"
                for _ in used)
            score_params: list[Any] = [x for t, w in zip(used, weights, strict=True) for x in (t, w)]
            match = " OR ".join("fts @@ plainto_tsquery('english', %s)" for _ in used)
            match_params: list[Any] = list(used)
        else:  # every word is common: score the rows holding the pair rarest together
            fits = [(n, pair) for pair in combinations(dropped[:3], 2)
                    if 0 < (n := self._pair_count(pair)) <= self.budget]
            if not fits:
                return [], mass
            pair = min(fits)[1]
            match = " AND ".join("fts @@ plainto_tsquery('english', %s)" for _ in pair)
            match_params = list(pair)
            score = "%s"
            score_params = [sum(idf(self.doc_freq(t, rows), rows) for t in pair)]
        sql = (f"SELECT id, ({score}) AS s FROM memories WHERE ({match}) AND {where} "
               "ORDER BY s DESC, id DESC LIMIT %s")
        with self.store.pool.connection() as conn:
            found = conn.execute(sql, [*score_params, *match_params, *params, int(limit)]).fetchall()
        return [(int(i), float(s)) for i, s in found], mass
