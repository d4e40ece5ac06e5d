"""The SQLite store: one long-lived WAL connection, schema migrations, transactions.

Introduced in lesson 7 (07_memory_systems). Every memory (message, fact, episode) is one row of
``memories`` with its embedding as a float32 blob; ``memories_fts`` is an external-content FTS5
index over the same rows (no second copy of the text). The schema version lives in
``PRAGMA user_version`` and each entry of :data:`MIGRATIONS` moves a database one version up,
inside a transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._errors import MemoryDatabaseError

DEFAULT_USER = "default"  # the user of every memory written without a user_id
APPLICATION_ID = 0x4C4B4D4D  # "LKMM": marks a file as an llmkit memory database
PAGE_SIZE = 16384  # a row (1.5 KB vector + text) wastes ~15% of a 4 KB page, ~2% of a 16 KB one

_V1 = [
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """CREATE TABLE memories(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,             -- 0 short_term, 1 long_term, 2 episodic
        session INTEGER NOT NULL REFERENCES sessions(id),
        role TEXT,                         -- speaker, event type (episodes) or NULL (facts)
        content TEXT NOT NULL,
        ts REAL NOT NULL,                  -- UTC epoch seconds
        tz INTEGER NOT NULL DEFAULT 0,     -- UTC offset of the original timestamp, seconds
        importance REAL NOT NULL,
        tokens INTEGER NOT NULL,
        metadata TEXT,                     -- the caller's JSON, verbatim
        status INTEGER NOT NULL DEFAULT 0, -- 0 active, 1 superseded
        embedding BLOB NOT NULL,           -- float32, L2-normalised
        speaker TEXT GENERATED ALWAYS AS ( -- the role when it is a name: indexed, not stored
            CASE WHEN lower(role) IN ('ai', 'assistant', 'developer', 'human', 'model', 'system', 'tool', 'user')
            THEN NULL ELSE role END) VIRTUAL   -- the roles of _types.GENERIC_ROLES
    )""",
    "CREATE INDEX memories_by_session ON memories(session, kind, id)",
    """CREATE VIRTUAL TABLE memories_fts USING fts5(
        speaker, content, content='memories', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, speaker, content) VALUES (new.id, new.speaker, new.content);
    END""",
    """CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, speaker, content)
        VALUES ('delete', old.id, old.speaker, old.content);
    END""",
    """CREATE TRIGGER memories_au AFTER UPDATE OF role, content ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, speaker, content)
        VALUES ('delete', old.id, old.speaker, old.content);
        INSERT INTO memories_fts(rowid, speaker, content) VALUES (new.id, new.speaker, new.content);
    END""",
    """CREATE TABLE episodes(
        memory_id INTEGER PRIMARY KEY REFERENCES memories(id),
        event_type TEXT NOT NULL, full_context TEXT NOT NULL, outcome TEXT NOT NULL)""",
]

_V2 = [  # consolidation: versioned facts with their sources, rolling summaries, watermarks
    "ALTER TABLE sessions ADD COLUMN summary TEXT",
    "ALTER TABLE sessions ADD COLUMN summarised_upto INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE sessions ADD COLUMN consolidated_upto INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE facts(
        memory_id INTEGER PRIMARY KEY REFERENCES memories(id),
        supersedes INTEGER REFERENCES memories(id),
        superseded_by INTEGER REFERENCES memories(id),
        mentions INTEGER NOT NULL DEFAULT 1)""",
    """CREATE TABLE fact_sources(
        fact_id INTEGER NOT NULL REFERENCES memories(id),
        message_id INTEGER NOT NULL REFERENCES memories(id),
        PRIMARY KEY (fact_id, message_id)) WITHOUT ROWID""",
    # superseded rows are few: this keeps "which rows are inactive?" cheap at any size
    "CREATE INDEX memories_inactive ON memories(id) WHERE status != 0",
    """CREATE TABLE summaries(
        id INTEGER PRIMARY KEY, session INTEGER NOT NULL REFERENCES sessions(id),
        upto INTEGER NOT NULL, content TEXT NOT NULL, created REAL NOT NULL)""",
]

_V3 = [  # users: every session and memory belongs to one; user 1 is the default user
    "CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)",
    f"INSERT INTO users(id, name) VALUES (1, '{DEFAULT_USER}')",
    # session names become unique per user: SQLite cannot drop a UNIQUE constraint, so the
    # table is rebuilt (foreign keys are off while migrating, see Store.migrate); AUTOINCREMENT
    # so a forgotten session's id is never handed to another user's session
    """CREATE TABLE sessions_v3(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL DEFAULT 1 REFERENCES users(id),
        name TEXT NOT NULL, summary TEXT,
        summarised_upto INTEGER NOT NULL DEFAULT 0,
        consolidated_upto INTEGER NOT NULL DEFAULT 0,
        UNIQUE(user_id, name))""",
    "INSERT INTO sessions_v3(id, user_id, name, summary, summarised_upto, consolidated_upto) "
    "SELECT id, 1, name, summary, summarised_upto, consolidated_upto FROM sessions",
    "DROP TABLE sessions",
    "ALTER TABLE sessions_v3 RENAME TO sessions",
    "ALTER TABLE memories ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1",  # its session's user,
    "CREATE INDEX memories_by_user ON memories(user_id, kind, id)",
]

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("memories, sessions, episodes and the FTS5 index", _V1),
    ("consolidation: facts with history and sources, summaries, session watermarks", _V2),
    ("users: sessions and memories belong to a user (default: 'default')", _V3),
]
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = "id, kind, session, role, content, ts, tz, importance, tokens, metadata, status, user_id"


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    kind: int
    session: int
    role: str | None
    content: str
    ts: float
    tz: int
    importance: float
    tokens: int
    metadata: str | None
    status: int
    user_id: int


def _corrupt(path: str, exc: Exception) -> MemoryDatabaseError:
    return MemoryDatabaseError(
        f"{path} is not a usable SQLite database ({exc}). It may be corrupted or not a "
        "database at all: move it aside (keep it for recovery) and open a new file, "
        "or restore it from a backup."
    )


class SessionCache:
    """User and session names and their integer ids, cached; a rollback clears it (see ``transaction()``).

    Shared by the SQLite ``Store`` and the PostgreSQL ``PgStore``; each says how to read one
    row (``_session_row``). Writers resolve ids inside their transaction (``session_ids``,
    ``ensure_user``), so a cache made stale by another connection's ``forget_user`` is never
    written through.
    """

    def __init__(self) -> None:
        self._session_names: dict[int, str] = {}
        self._session_ids: dict[tuple[int, str], int] = {}
        self._user_ids: dict[str, int] = {}

    def _session_row(self, sql: str, *params: object) -> Any:
        raise NotImplementedError

    def _remember_session(self, user: int, name: str, sid: int) -> int:
        self._session_ids[(user, name)] = sid
        self._session_names[sid] = name
        return sid

    def forget_uncommitted_sessions(self) -> None:
        self._session_ids.clear()
        self._session_names.clear()
        self._user_ids.clear()

    def user_id(self, name: str) -> int | None:
        """The id of user ``name``, None if it never wrote anything."""
        if name in self._user_ids:
            return self._user_ids[name]
        row = self._session_row("SELECT id FROM users WHERE name = ?", name)
        if row:
            self._user_ids[name] = row[0]
        return row[0] if row else None

    def session_id(self, name: str, user: int | None) -> int | None:
        if user is None:
            return None
        if (user, name) in self._session_ids:
            return self._session_ids[(user, name)]
        row = self._session_row("SELECT id FROM sessions WHERE user_id = ? AND name = ?", user, name)
        return self._remember_session(user, name, row[0]) if row else None

    def session_name(self, sid: int) -> str:
        name = self._session_names.get(sid)
        if name is None:
            name = self._session_row("SELECT name FROM sessions WHERE id = ?", sid)[0]
            self._session_names[sid] = name
        return name


class Store(SessionCache):
    """One SQLite connection shared by all threads, guarded by :attr:`lock`."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        super().__init__()
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise MemoryDatabaseError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._open()
        except MemoryDatabaseError:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise _corrupt(self.path, exc) from exc

    # --- opening and migrating -------------------------------------------------------------

    def _open(self) -> None:
        c = self.conn
        c.execute("PRAGMA busy_timeout = 30000")
        c.execute("BEGIN")  # one snapshot: another process may be creating the schema right now
        try:
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            version = c.execute("PRAGMA user_version").fetchone()[0]
            tables = c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            c.execute("COMMIT")
        if tables == 0 and version == 0:
            c.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only possible before the first table
        elif app_id != APPLICATION_ID:
            raise MemoryDatabaseError(
                f"{self.path} is a SQLite database but not an llmkit memory database "
                "(it has other tables): pass a new file name"
            )
        if version > SCHEMA_VERSION:
            raise MemoryDatabaseError(
                f"{self.path} has schema version {version}, written by a newer llmkit; this one "
                f"knows versions up to {SCHEMA_VERSION}: upgrade llmkit to open it"
            )
        self._use_wal()  # readers never block the writer
        c.execute("PRAGMA synchronous = NORMAL")  # with WAL: consistent after a crash
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA secure_delete = ON")  # forgotten text is zeroed, not left in free pages
        c.execute("PRAGMA busy_timeout = 30000")
        c.execute("PRAGMA cache_size = -65536")
        c.execute("PRAGMA temp_store = MEMORY")
        self.migrate()

    def _use_wal(self, wait: float = 30.0) -> None:
        """Switch to WAL (once per file: the mode persists), retrying while another opener holds a lock.

        Changing the journal mode needs an exclusive lock and SQLite reports "database is locked"
        at once instead of calling the busy handler, so concurrent first opens retry here.
        """
        deadline = time.monotonic() + wait
        delay = 0.005
        while True:
            try:
                if self.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the pending migrations up to ``target``; return the version reached.

        Foreign keys are off meanwhile (a table rebuild drops a referenced table) and every
        migration must leave ``PRAGMA foreign_key_check`` empty, or it is rolled back."""
        with self.lock:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= target:
                return version
            self.conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction
            try:
                return self._migrate(version, target)
            finally:
                self.conn.execute("PRAGMA foreign_keys = ON")

    def _migrate(self, version: int, target: int) -> int:
        with self.lock:
            while version < target:
                with self.transaction():
                    # re-read under the write lock: another process may have migrated meanwhile
                    version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                    if version >= target:
                        break
                    number = version + 1
                    for sql in MIGRATIONS[number - 1][1]:
                        self.conn.execute(sql)
                    if number == 1:
                        self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    broken = self.conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MemoryDatabaseError(
                            f"{self.path}: migration to version {number} left rows whose "
                            f"references are broken ({broken[:3]}); nothing was changed. "
                            "Restore the file from a backup or report it.")
                    self.conn.execute(f"PRAGMA user_version = {number}")
                version = number
            return version

    @property
    def version(self) -> int:
        with self.lock:
            return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception rolls everything back."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                self.forget_uncommitted_sessions()
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self.conn.close()

    # --- meta and sessions -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def ensure_user(self, name: str) -> int:
        """The id of user ``name``, created if missing (call inside a transaction)."""
        row = self.conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        uid = row[0] if row else self.conn.execute(
            "INSERT INTO users(name) VALUES (?)", (name,)).lastrowid
        assert uid is not None
        if self._user_ids.get(name, uid) != uid:  # forgotten and re-created elsewhere
            self._session_ids.clear()
        self._user_ids[name] = uid  # a rollback clears the cache (see transaction())
        return uid

    def session_ids(self, names: Sequence[str], user: int) -> dict[str, int]:
        """Integer ids for a user's session names, creating missing ones (call inside a transaction).

        Read from the database, not the cache: another connection may have forgotten them."""
        out: dict[str, int] = {}
        for name in names:
            row = self.conn.execute(
                "SELECT id FROM sessions WHERE user_id = ? AND name = ?", (user, name)).fetchone()
            sid = row[0] if row else self.conn.execute(
                "INSERT INTO sessions(user_id, name) VALUES (?, ?)", (user, name)).lastrowid
            assert sid is not None
            out[name] = self._remember_session(user, name, sid)
        return out

    def _session_row(self, sql: str, *params: object) -> Any:
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    # --- rows ------------------------------------------------------------------------------

    def insert(self, rows: Sequence[tuple]) -> list[int]:
        """Insert rows ``(kind, session, role, content, ts, tz, importance, tokens, metadata,
        status, user_id, embedding)`` inside the caller's transaction; return their ids in order."""
        base = self.conn.execute(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'memories'), 0)"
        ).fetchone()[0]
        ids = list(range(base + 1, base + 1 + len(rows)))
        self.conn.executemany(
            f"INSERT INTO memories({COLUMNS}, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(i, *row) for i, row in zip(ids, rows, strict=True)],
        )
        return ids

    def fetch(self, ids: Sequence[int]) -> dict[int, Row]:
        if not ids:
            return {}
        out: dict[int, Row] = {}
        with self.lock:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for r in self.conn.execute(
                    f"SELECT {COLUMNS} FROM memories WHERE id IN ({marks})", chunk
                ):
                    out[r[0]] = Row(*r)
        return out

    def embeddings(self, ids: Sequence[int]) -> dict[int, bytes]:
        with self.lock:
            marks = ",".join("?" * len(ids))
            rows = self.conn.execute(
                f"SELECT id, embedding FROM memories WHERE id IN ({marks})", list(ids)
            ).fetchall()
        return dict(rows)

    def scan(self, after_id: int = 0, chunk: int = 20000) -> Iterator[list[tuple]]:
        """Yield ``(id, kind, session, status, ts, importance, embedding, user_id)`` rows in id order."""
        last = after_id
        while True:
            with self.lock:
                rows = self.conn.execute(
                    "SELECT id, kind, session, status, ts, importance, embedding, user_id FROM memories "
                    "WHERE id > ? ORDER BY id LIMIT ?",
                    (last, chunk),
                ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def inactive_ids(self) -> list[int]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM memories WHERE status != 0")]

    def data_version(self) -> int:
        """Changes whenever another connection commits (never for our own commits)."""
        with self.lock:
            return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def recent_messages(self, session: int, limit: int) -> list[Row]:
        """The last ``limit`` messages of a session, oldest first."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {COLUMNS} FROM memories WHERE session = ? AND kind = 0 "
                "ORDER BY id DESC LIMIT ?",
                (session, limit),
            ).fetchall()
        return [Row(*r) for r in reversed(rows)]

    def messages_between(self, session: int, after: int, upto: int | None = None) -> list[Row]:
        """Messages of a session with ``after < id <= upto``, oldest first."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {COLUMNS} FROM memories WHERE session = ? AND kind = 0 AND id > ? "
                "AND id <= ? ORDER BY id",
                (session, after, upto if upto is not None else 2**62),
            ).fetchall()
        return [Row(*r) for r in rows]

    def session_state(self, session: int) -> tuple[str | None, int, int]:
        """(rolling summary, summarised_upto, consolidated_upto)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT summary, summarised_upto, consolidated_upto FROM sessions WHERE id = ?",
                (session,),
            ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, 0, 0)

    def scrub(self) -> None:
        """After deletions: merge the FTS5 segments (dropping deleted words) and empty the WAL."""
        with self.lock:
            self.conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('optimize')")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def ids(self) -> list[int]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM memories ORDER BY id")]

    def count(self, user: int | None = None) -> int:
        """Memories held (one user's, when given)."""
        with self.lock:
            if user is None:
                return self.conn.execute("SELECT count(*) FROM memories").fetchone()[0]
            return self.conn.execute(
                "SELECT count(*) FROM memories WHERE user_id = ?", (user,)).fetchone()[0]

    def file_bytes(self) -> int:
        with self.lock:
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return pages * size
