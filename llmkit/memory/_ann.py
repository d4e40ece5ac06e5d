"""An approximate nearest-neighbour (HNSW) index for large SQLite memories, kept beside the file.

Introduced in lesson 7 (07_memory_systems). Below ``ANN_ABOVE`` rows the exact scan of
:class:`._index.DenseIndex` is fast enough; above it a usearch HNSW graph proposes candidates
and DenseIndex re-scores them exactly (and drops inactive, forgotten or other users' rows), so
the index can miss a row but never returns a wrong one. usearch was chosen over faiss-cpu,
hnswlib and sqlite-vec (measurements in ``benchmarks/bench_memory.py``): a prebuilt wheel,
removal of single vectors, int8 storage (the graph re-scored from float32 needs no more) and
saving to one file.

Persistence is crash-safe: the graph is written to ``<db>.ann-<token>.tmp``, fsynced and
renamed to ``<db>.ann-<token>``, and only then does the database's ``meta`` row ``ann`` name
that token. A crash at any step leaves either the previous complete file named by ``meta``
or no usable file, and the graph is rebuilt from the vectors (which the database holds).
Rows written after the last save are added when the file is opened.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ANN_ABOVE = 100_000  # rows; below, the exact scan (DenseIndex) answers
CONNECTIVITY = 16  # HNSW M
EXPANSION_ADD = 128  # ef_construction
EXPANSION_SEARCH = 64  # ef_search (raised per query to the pool asked for)
SCRUB_KEYS = 2**63  # keys far above any memory id, used only while removing


def _usearch():
    from usearch.index import Index  # lazy: `import llmkit.memory` stays light

    return Index


class AnnIndex:
    """A usearch HNSW graph over ids and unit vectors (cosine), with crash-safe saving."""

    def __init__(self, dim: int, *, dtype: str = "i8"):
        self.dim = dim
        self.dtype = dtype
        self.index = _usearch()(ndim=dim, metric="cos", dtype=dtype, connectivity=CONNECTIVITY,
                                expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        self.max_id = 0

    def __len__(self) -> int:
        return len(self.index)

    def add(self, ids: Sequence[int] | np.ndarray, vecs: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.uint64)
        if len(ids):
            self.index.add(ids, np.ascontiguousarray(vecs, dtype=np.float32), threads=0)
            self.max_id = max(self.max_id, int(ids.max()))

    def remove(self, ids: Sequence[int]) -> None:
        """Remove rows, and their vectors' bytes: usearch keeps a removed vector in its slot until
        an add recycles the slot, so the freed slots are filled with noise and freed again."""
        present = np.asarray([i for i in ids if i in self.index], dtype=np.uint64)
        if not len(present):
            return
        self.index.remove(present)
        scrub = np.arange(len(present), dtype=np.uint64) + SCRUB_KEYS
        noise = np.random.default_rng().standard_normal((len(present), self.dim)).astype(np.float32)
        self.index.add(scrub, noise / np.linalg.norm(noise, axis=1, keepdims=True), threads=0)
        self.index.remove(scrub)

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        """Ids of about ``count`` nearest rows (approximate), best first."""
        count = min(count, len(self.index))
        if count <= 0:
            return np.zeros(0, np.int64)
        self.index.expansion_search = max(EXPANSION_SEARCH, count)
        found = self.index.search(np.asarray(query, dtype=np.float32), count)
        return np.asarray(found.keys, dtype=np.int64)

    # --- persistence -------------------------------------------------------------------------

    def save(self, db_path: str, store) -> None:
        """Write the graph beside ``db_path`` and name it in ``meta`` (see the module docstring)."""
        token = secrets.token_hex(8)
        final = f"{db_path}.ann-{token}"
        tmp = final + ".tmp"
        self.index.save(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final)
        old = store.get_meta("ann")
        store.set_meta("ann", json.dumps({"token": token, "max_id": self.max_id, "rows": len(self),
                                          "dtype": self.dtype, "dim": self.dim}))
        if old:
            _remove_files(db_path, keep=token)

    @classmethod
    def load(cls, db_path: str, store, dim: int) -> AnnIndex | None:
        """The saved graph named in ``meta``, or None if there is none or it does not match."""
        raw = store.get_meta("ann")
        if not raw:
            return None
        try:
            info = json.loads(raw)
            path = f"{db_path}.ann-{info['token']}"
            if info["dim"] != dim or not os.path.exists(path):
                return None
            ann = cls(dim, dtype=info["dtype"])
            ann.index.load(path)
            if len(ann.index) != info["rows"]:
                return None
            ann.max_id = int(info["max_id"])
            return ann
        except Exception:  # noqa: BLE001 - any damage means: rebuild from the database
            return None

    @staticmethod
    def discard(db_path: str, store) -> None:
        """Forget the saved graph (the next open above the threshold rebuilds it)."""
        if store.get_meta("ann"):
            store.set_meta("ann", "")
        _remove_files(db_path, keep=None)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_files(db_path: str, keep: str | None) -> None:
    folder, name = Path(db_path).parent, Path(db_path).name
    for f in folder.glob(f"{name}.ann-*"):
        if keep is None or not f.name.startswith(f"{name}.ann-{keep}") or f.name.endswith(".tmp"):
            f.unlink(missing_ok=True)
