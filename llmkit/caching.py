"""Response caches: exact (by request) and semantic (by the meaning of the prompt).

Introduced in lesson 11 (11_cost_and_latency). The cheapest and fastest model call is the one you do
not make: :class:`ExactCache` answers a request that was already sent, byte for byte up to key order
and volatile fields; :class:`SemanticCache` answers a prompt that *means* the same as one already
answered, which also serves near-misses that mean something else. :func:`false_hit_curve` measures
that trade-off on a labelled set of paraphrases and near-misses, and :func:`pick_threshold` picks the
similarity threshold that keeps wrong answers under a ceiling.

In production a team would reach for GPTCache, LangChain's ``InMemoryCache`` / ``RedisSemanticCache``
or Redis vector search; the lesson writes these small caches by hand because they are what it teaches.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .replay.canonical import canonical_text

if TYPE_CHECKING:
    from .memory import Embedder

__all__ = [
    "CurvePoint",
    "ExactCache",
    "ParaphrasePair",
    "SemanticCache",
    "false_hit_curve",
    "load_paraphrases",
    "pair_cosines",
    "pick_threshold",
    "request_key",
]

DEFAULT_PARAPHRASES = Path(__file__).resolve().parent.parent / "notebooks" / "data" / "paraphrases.json"

# float32 dot products of unit vectors land a few ulps off: a prompt compared with itself may score
# 0.99999994, which must still reach a threshold of 1.0.
_COSINE_SLACK = 1e-6


def request_key(provider: str, body: dict[str, Any]) -> str:
    """``"<provider>:<sha256 hex>"`` of the canonical request body.

    Canonical means sorted keys, compact separators and no volatile fields (``stream_options``, ``user``,
    ``metadata``), so key order does not matter but the model, the messages and every sampling parameter do.
    """
    digest = hashlib.sha256(canonical_text(body).encode("utf-8")).hexdigest()
    return f"{provider}:{digest}"


def _rate(hits: int, misses: int) -> float:
    total = hits + misses
    return hits / total if total else 0.0


class ExactCache:
    """Answers by exact request: ``{request_key: answer}`` in memory, optionally LRU-bounded, thread-safe.

    ``get`` returns None on a miss, so do not cache None as an answer.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer or None (unbounded), got {max_entries!r}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, provider: str, body: dict[str, Any]) -> Any | None:
        key = request_key(provider, body)
        with self._lock:
            if key not in self._entries:
                self.misses += 1
                return None
            self._entries.move_to_end(key)  # most recently used goes last; eviction pops the first
            self.hits += 1
            return self._entries[key]

    def put(self, provider: str, body: dict[str, Any], answer: Any) -> None:
        key = request_key(provider, body)
        with self._lock:
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while self.max_entries is not None and len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups so far (0.0 before the first lookup)."""
        return _rate(self.hits, self.misses)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        bound = "unbounded" if self.max_entries is None else f"max {self.max_entries}"
        return f"ExactCache({len(self)} entries, {bound}, hit rate {self.hit_rate:.0%})"


class SemanticCache:
    """Answers by meaning: the stored prompt most similar to the new one, if its cosine reaches ``threshold``.

    ``embedder`` follows :class:`llmkit.memory.Embedder` (unit-length float32 rows), so the cosine is a dot
    product. Putting a prompt that is already stored replaces its answer.
    """

    def __init__(self, embedder: Embedder, threshold: float) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(
                f"threshold must be a cosine similarity in (0, 1], got {threshold!r}: "
                "higher serves fewer but safer cache hits; measure the trade-off with false_hit_curve"
            )
        self.embedder = embedder
        self.threshold = float(threshold)
        self.hits = 0
        self.misses = 0
        self._vectors = np.zeros((16, embedder.dim), dtype=np.float32)  # rows beyond len(self) are unused
        self._prompts: list[str] = []
        self._answers: list[Any] = []
        self._row_of: dict[str, int] = {}
        self._lock = threading.Lock()

    def _embed(self, prompt: str) -> np.ndarray:
        return np.asarray(self.embedder.embed([prompt]), dtype=np.float32)[0]

    def put(self, prompt: str, answer: Any) -> None:
        vector = self._embed(prompt)
        with self._lock:
            row = self._row_of.get(prompt)
            if row is not None:
                self._answers[row] = answer
                return
            n = len(self._prompts)
            if n == len(self._vectors):  # double the capacity: amortised O(1) appends
                self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
            self._vectors[n] = vector
            self._prompts.append(prompt)
            self._answers.append(answer)
            self._row_of[prompt] = n

    def get(self, prompt: str) -> tuple[Any, float] | None:
        """``(answer, cosine)`` of the most similar stored prompt when it reaches the threshold, else None."""
        vector = self._embed(prompt)
        with self._lock:
            n = len(self._prompts)
            if n:
                cosines = self._vectors[:n] @ vector
                best = int(np.argmax(cosines))
                cosine = float(cosines[best])
                if cosine >= self.threshold - _COSINE_SLACK:
                    self.hits += 1
                    return self._answers[best], cosine
            self.misses += 1
            return None

    @property
    def hit_rate(self) -> float:
        """Hits over lookups so far (0.0 before the first lookup)."""
        return _rate(self.hits, self.misses)

    def __len__(self) -> int:
        return len(self._prompts)

    def __repr__(self) -> str:
        return f"SemanticCache({len(self)} prompts, threshold {self.threshold}, hit rate {self.hit_rate:.0%})"


@dataclass(frozen=True)
class ParaphrasePair:
    """Two prompts and whether one correct answer serves both (a paraphrase) or not (a near-miss)."""

    a: str
    b: str
    same_answer: bool
    note: str = ""


def _bad_file(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"paraphrase set {path}: {problem}. It must be JSON like "
        '{"description": "...", "pairs": [{"a": "...", "b": "...", "same_answer": true, "note": "..."}]}; '
        f"fix the file, or restore the kit's copy with: git checkout -- notebooks/data/{DEFAULT_PARAPHRASES.name}"
    )


def load_paraphrases(path: str | Path | None = None) -> list[ParaphrasePair]:
    """The labelled pairs of ``path`` (default: ``notebooks/data/paraphrases.json``).

    Raises :class:`llmkit.errors.ConfigError` naming the file and the problem when it is missing or malformed.
    """
    path = Path(path) if path is not None else DEFAULT_PARAPHRASES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad_file(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(path, f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise _bad_file(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise _bad_file(path, 'no "pairs" list at the top level')
    pairs = []
    for i, item in enumerate(data["pairs"]):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("a"), str) and item["a"].strip()
            and isinstance(item.get("b"), str) and item["b"].strip()
            and isinstance(item.get("same_answer"), bool)
            and isinstance(item.get("note", ""), str)
        ):
            raise _bad_file(path, f'pair {i} needs non-empty strings "a" and "b" and a boolean "same_answer"')
        pairs.append(ParaphrasePair(item["a"], item["b"], item["same_answer"], item.get("note", "")))
    return pairs


@dataclass(frozen=True)
class CurvePoint:
    """What a semantic cache with this ``threshold`` would do on a labelled pair set.

    ``hit_rate``: share of true paraphrases served from the cache. ``false_hit_rate``: share of near-misses
    served the wrong cached answer. ``precision``: share of all hits that were right (1.0 with no hits).
    """

    threshold: float
    hit_rate: float
    false_hit_rate: float
    precision: float
    true_hits: int
    false_hits: int
    paraphrases: int
    near_misses: int


def pair_cosines(pairs: Sequence[ParaphrasePair], embedder: Embedder) -> np.ndarray:
    """The cosine of ``a`` and ``b`` of each pair, in order; every distinct text is embedded once."""
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    if not texts:
        return np.zeros(0, dtype=np.float32)
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    row = {text: i for i, text in enumerate(texts)}
    a = vectors[[row[p.a] for p in pairs]]
    b = vectors[[row[p.b] for p in pairs]]
    return np.einsum("ij,ij->i", a, b)


def false_hit_curve(
    pairs: Sequence[ParaphrasePair], embedder: Embedder, thresholds: Iterable[float]
) -> list[CurvePoint]:
    """One :class:`CurvePoint` per threshold, in ascending threshold order.

    A pair is a hit when the cosine of its two prompts reaches the threshold: the cache, holding one
    prompt's answer, would serve it for the other.
    """
    same = np.array([p.same_answer for p in pairs], dtype=bool)
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if not n_same or not n_diff:
        raise ValueError(
            f"the curve needs both kinds of pairs; got {n_same} paraphrases (same_answer=true) and "
            f"{n_diff} near-misses (same_answer=false)"
        )
    cosines = pair_cosines(pairs, embedder)
    points = []
    for threshold in sorted(set(float(t) for t in thresholds)):
        hit = cosines >= threshold - _COSINE_SLACK
        true_hits, false_hits = int((hit & same).sum()), int((hit & ~same).sum())
        hits = true_hits + false_hits
        points.append(CurvePoint(
            threshold=threshold,
            hit_rate=true_hits / n_same,
            false_hit_rate=false_hits / n_diff,
            precision=true_hits / hits if hits else 1.0,
            true_hits=true_hits,
            false_hits=false_hits,
            paraphrases=n_same,
            near_misses=n_diff,
        ))
    return points


def pick_threshold(curve: Sequence[CurvePoint], max_false_hit_rate: float) -> CurvePoint:
    """The lowest threshold whose false-hit rate is at most ``max_false_hit_rate``: under that ceiling,
    the one that serves the most true paraphrases from the cache."""
    allowed = [p for p in curve if p.false_hit_rate <= max_false_hit_rate]
    if allowed:
        return min(allowed, key=lambda p: p.threshold)
    if not curve:
        raise ValueError("the curve is empty: pass at least one threshold to false_hit_curve")
    best = min(curve, key=lambda p: (p.false_hit_rate, -p.hit_rate))
    raise ValueError(
        f"no threshold on the curve keeps the false-hit rate <= {max_false_hit_rate:.1%}; the lowest on the "
        f"curve is {best.false_hit_rate:.1%} (threshold {best.threshold:.2f}). Add higher thresholds to the "
        "curve or accept a higher ceiling."
    )
