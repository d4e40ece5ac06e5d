"""The source lesson's memory design, reimplemented faithfully so that it can be measured.

Introduced in lesson 7 (07_memory_systems) as the "before" picture. Do not use it: every
choice below is one the lesson replaces, and the benchmark and the evaluation measure why.

- a new SQLite connection for every call, no WAL, no shared transaction;
- the model encodes one message at a time (no batching);
- search scores every row in a Python loop (``np.dot`` per row);
- only the last 20 short-term messages of the session are searched;
- anything under a fixed 0.5 cosine similarity is dropped — often everything;
- "concepts" are the words ending in -ing or -ed;
- embeddings are stored as raw bytes without recording their dtype or model.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["EmbedderEncoder", "NaiveMemory"]

SIMILARITY_THRESHOLD = 0.5
SHORT_TERM_SEARCH_LIMIT = 20


class EmbedderEncoder:
    """Gives an llmkit embedder the ``encode(text)`` method of a SentenceTransformer."""

    def __init__(self, embedder: Any):
        self.embedder = embedder

    def encode(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]


class NaiveMemory:
    """Short-term, long-term and episodic tables, as the source lesson wrote them."""

    def __init__(self, db_path: str = "memory.db", encoder: Any = None):
        self.db_path = db_path
        if encoder is None:
            from ._embedding import MiniLMEmbedder

            encoder = EmbedderEncoder(MiniLMEmbedder())
        self.encoder = encoder
        self._init_database()

    def _init_database(self) -> None:
        conn = sqlite3.connect(self.db_path)
        cursor = conn.cursor()
        cursor.execute(
            """CREATE TABLE IF NOT EXISTS short_term_memory (
                id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, role TEXT, content TEXT,
                timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, embedding BLOB)"""
        )
        cursor.execute(
            """CREATE TABLE IF NOT EXISTS long_term_memory (
                id INTEGER PRIMARY KEY AUTOINCREMENT, concept TEXT, content TEXT,
                importance REAL, access_count INTEGER DEFAULT 0, last_accessed DATETIME,
                created_at DATETIME DEFAULT CURRENT_TIMESTAMP, embedding BLOB)"""
        )
        cursor.execute(
            """CREATE TABLE IF NOT EXISTS episodic_memory (
                id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, event_type TEXT,
                summary TEXT, full_context TEXT, outcome TEXT,
                timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, embedding BLOB)"""
        )
        conn.commit()
        conn.close()

    def add_to_short_term(self, session_id: str, role: str, content: str) -> None:
        embedding = np.asarray(self.encoder.encode(content), dtype=np.float32)
        conn = sqlite3.connect(self.db_path)
        conn.execute(
            "INSERT INTO short_term_memory (session_id, role, content, embedding) VALUES (?,?,?,?)",
            (session_id, role, content, embedding.tobytes()),
        )
        conn.commit()
        conn.close()

    def _extract_concepts(self, text: str) -> list[str]:
        return [w for w in text.lower().split() if w.endswith("ing") or w.endswith("ed")]

    def _calculate_importance(self, content: str, concepts: Sequence[str]) -> float:
        return min(1.0, 0.3 + 0.1 * len(concepts) + len(content) / 1000)

    def consolidate_to_long_term(self, session_id: str) -> int:
        conn = sqlite3.connect(self.db_path)
        rows = conn.execute(
            "SELECT content, embedding FROM short_term_memory WHERE session_id = ?", (session_id,)
        ).fetchall()
        for content, embedding in rows:
            concepts = self._extract_concepts(content)
            importance = self._calculate_importance(content, concepts)
            conn.execute(
                "INSERT INTO long_term_memory (concept, content, importance, embedding) "
                "VALUES (?,?,?,?)",
                (", ".join(concepts), content, importance, embedding),
            )
        conn.commit()
        conn.close()
        return len(rows)

    def store_episode(
        self, session_id: str, event_type: str, summary: str, full_context: str, outcome: str
    ) -> None:
        embedding = np.asarray(self.encoder.encode(summary), dtype=np.float32)
        conn = sqlite3.connect(self.db_path)
        conn.execute(
            "INSERT INTO episodic_memory (session_id, event_type, summary, full_context, outcome,"
            " embedding) VALUES (?,?,?,?,?,?)",
            (session_id, event_type, summary, full_context, outcome, embedding.tobytes()),
        )
        conn.commit()
        conn.close()

    @staticmethod
    def _cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def retrieve_relevant_memories(
        self, query: str, session_id: str | None = None, limit: int = 5
    ) -> list[dict[str, Any]]:
        query_embedding = np.asarray(self.encoder.encode(query), dtype=np.float32)
        conn = sqlite3.connect(self.db_path)
        memories: list[dict[str, Any]] = []
        if session_id:
            rows = conn.execute(
                "SELECT id, content, embedding FROM short_term_memory WHERE session_id = ? "
                f"ORDER BY timestamp DESC LIMIT {SHORT_TERM_SEARCH_LIMIT}",
                (session_id,),
            ).fetchall()
            for mid, content, blob in rows:
                similarity = self._cosine(query_embedding, np.frombuffer(blob, dtype=np.float32))
                if similarity > SIMILARITY_THRESHOLD:
                    memories.append({"type": "short_term", "id": mid, "content": content,
                                     "similarity": similarity})
        for mid, concept, content, importance, blob in conn.execute(
            "SELECT id, concept, content, importance, embedding FROM long_term_memory"
        ).fetchall():
            similarity = self._cosine(query_embedding, np.frombuffer(blob, dtype=np.float32))
            if similarity > SIMILARITY_THRESHOLD:
                memories.append({"type": "long_term", "id": mid, "content": content,
                                 "concept": concept, "similarity": similarity * importance})
                conn.execute(
                    "UPDATE long_term_memory SET access_count = access_count + 1, "
                    "last_accessed = CURRENT_TIMESTAMP WHERE id = ?",
                    (mid,),
                )
        for mid, summary, outcome, blob in conn.execute(
            "SELECT id, summary, outcome, embedding FROM episodic_memory"
        ).fetchall():
            similarity = self._cosine(query_embedding, np.frombuffer(blob, dtype=np.float32))
            if similarity > SIMILARITY_THRESHOLD:
                memories.append({"type": "episodic", "id": mid, "content": summary,
                                 "outcome": outcome, "similarity": similarity})
        conn.commit()
        conn.close()
        memories.sort(key=lambda m: m["similarity"], reverse=True)
        return memories[:limit]
