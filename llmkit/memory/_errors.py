"""Errors raised by :mod:`llmkit.memory`, re-exported from :mod:`llmkit.errors` (where every llmkit error lives).

Introduced in lesson 7 (07_memory_systems)::

    LlmkitError
     └── MemorySystemError         anything this package raises on purpose
          ├── MemoryDatabaseError  the SQLite file is corrupt, foreign or too new
          ├── MemoryTimestampError a timestamp outside UTC years 1970..9999 (also a ValueError)
          ├── EmbedderError        the embedding model is missing or disagrees with the database
          └── ConsolidationError   no model configured, or its reply could not be used

Bad arguments (empty content, wrong types) raise the built-in ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

from ..errors import (
    ConsolidationError,
    EmbedderError,
    MemoryDatabaseError,
    MemorySystemError,
    MemoryTimestampError,
)

__all__ = ["ConsolidationError", "EmbedderError", "MemoryDatabaseError", "MemorySystemError", "MemoryTimestampError"]
