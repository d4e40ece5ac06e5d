"""Hierarchical memory for LLM applications: short-term, long-term and episodic, in SQLite or PostgreSQL.

Introduced in lesson 7 (07_memory_systems)::

    from llmkit.memory import Memory
    mem = Memory("memory.db")
    mem.add("s1", "user", "I moved to Porto in May")
    mem.search("where does the user live?")

Storage is one SQLite file (WAL, migrations, float32 vectors), or a PostgreSQL database with
pgvector for stores that several processes share (``Memory("postgresql://...")``: HNSW and
full-text indexes in the database); retrieval fuses dense cosine similarity with lexical scores;
consolidation turns messages into versioned facts with a model call; ``forget(...)``,
``forget_session(...)`` and ``forget_user(...)`` delete memories and everything derived from them.
Memories belong to a user (``Memory(path, user_id="alice")``, default ``"default"``): every read
and search sees that user's memories only. Dense ranking discounts generic turns (hubness,
:class:`Weights`), and a SQLite store past 100k memories searches an HNSW graph (usearch).
Importing this package does not import torch: the real embedder loads on first use.
"""

from ._consolidate import (
    CONSOLIDATION_SYSTEM,
    CONSOLIDATION_USER,
    SUMMARY_SYSTEM,
    SUMMARY_USER,
    ConsolidationReply,
    parse_reply,
)
from ._embedding import Embedder, HashEmbedder, MiniLMEmbedder
from ._errors import (
    ConsolidationError,
    EmbedderError,
    MemoryDatabaseError,
    MemorySystemError,
    MemoryTimestampError,
)
from ._local_postgres import local_postgres
from ._memory import Memory
from ._store import SCHEMA_VERSION
from ._types import ConsolidationResult, Episode, Hit, Record, Weights

__all__ = [
    "CONSOLIDATION_SYSTEM",
    "CONSOLIDATION_USER",
    "SCHEMA_VERSION",
    "SUMMARY_SYSTEM",
    "SUMMARY_USER",
    "ConsolidationError",
    "ConsolidationReply",
    "ConsolidationResult",
    "Embedder",
    "EmbedderError",
    "Episode",
    "HashEmbedder",
    "Hit",
    "Memory",
    "MemoryDatabaseError",
    "MemorySystemError",
    "MemoryTimestampError",
    "MiniLMEmbedder",
    "Record",
    "Weights",
    "local_postgres",
    "parse_reply",
]
