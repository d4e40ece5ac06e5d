"""Errors raised by :mod:`llmkit.memory`.

Introduced in lesson 7 (07_memory_systems)::

    MemorySystemError              anything this package raises on purpose
     ├── MemoryDatabaseError       the SQLite file is corrupt, foreign or too new
     ├── EmbedderError             the embedding model is missing or disagrees with the database
     └── ConsolidationError        no model configured, or its reply could not be used

Bad arguments (empty content, wrong types) raise the built-in ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

__all__ = ["ConsolidationError", "EmbedderError", "MemoryDatabaseError", "MemorySystemError"]


class MemorySystemError(Exception):
    """Base class of the errors this package raises on purpose."""


class MemoryDatabaseError(MemorySystemError):
    """The database file cannot be used (corrupt, not ours, or from a newer llmkit)."""


class EmbedderError(MemorySystemError):
    """The embedder cannot be loaded or does not match the database."""


class ConsolidationError(MemorySystemError):
    """Consolidation or summarisation could not run, or the model's reply was unusable."""
