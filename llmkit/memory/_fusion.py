"""Fusing the dense and lexical rankings, plus recency and importance.

Introduced in lesson 7 (07_memory_systems). Two fusions, chosen by :attr:`Weights.fusion`:

- ``"rrf"`` — reciprocal rank fusion: ``sum(w / (rrf_k + rank))``. Scale-free, but it trusts
  a lexical list made only of weak matches (a query whose words barely occur) as much as a
  strong one.
- ``"convex"`` — a weighted mean of the cosine similarity and the BM25 score expressed as a
  share of the query's IDF mass (what a row containing every query word would score). Both
  are on a 0..1 scale that means the same for every query, so a weak lexical match adds little.

There is no similarity cut-off: the best ``k`` always come back, with each path's own score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._types import Weights

_DAY = 86400.0
MIN_IDF_MASS = 3.0  # the IDF of a word found in about 5% of the rows


@dataclass(frozen=True, slots=True)
class Fused:
    id: int
    score: float
    dense: float | None
    lexical: float | None


def fuse(
    dense: Sequence[tuple[int, float]],
    lexical: Sequence[tuple[int, float]],
    weights: Weights,
    *,
    ts: Mapping[int, float],
    importance: Mapping[int, float],
    now: float,
    cosine: Mapping[int, float] | None = None,
    lexical_mass: float = 0.0,
    use_dense: bool = True,
    use_lexical: bool = True,
    hub: Mapping[int, float] | None = None,
) -> list[Fused]:
    """All candidates with their fused scores, best first (ties broken by newer id).

    ``dense`` and ``lexical`` are ranked ``(id, score)`` lists; ``cosine`` gives the cosine of
    candidates missing from ``dense`` (for convex fusion). ``hub`` gives each candidate's
    hubness (:func:`._hubness.hubness`): the cosine used for ranking is
    ``cos - weights.hubness * (hub - mean hub of the candidates)``; ``Fused.dense`` stays the cosine.
    """
    w_dense = weights.dense if use_dense else 0.0
    w_lex = weights.lexical if use_lexical else 0.0
    cos = dict(cosine or {})
    cos.update(dense)
    bm25 = dict(lexical)
    ids_list = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in lexical]))
    if not ids_list:
        return []
    adjusted = cos
    if hub and weights.hubness and use_dense:
        centre = float(np.mean(list(hub.values())))
        adjusted = {i: c - weights.hubness * (hub.get(i, centre) - centre) for i, c in cos.items()}
        dense = sorted(dense, key=lambda pair: -adjusted[pair[0]])
    ids = np.array(ids_list, dtype=np.int64)
    if weights.fusion == "rrf":
        score = np.zeros(len(ids))
        where = {mid: n for n, mid in enumerate(ids_list)}
        for w, ranking in ((w_dense, dense), (w_lex, lexical)):
            for rank, (mid, _) in enumerate(ranking, start=1):
                score[where[mid]] += w / (weights.rrf_k + rank)
        score /= (w_dense + w_lex) / (weights.rrf_k + 1.0)
    else:
        c = np.array([max(0.0, adjusted.get(i, 0.0)) for i in ids_list])
        # a query made only of common words carries little information: its best lexical
        # match should not count as a full match
        mass = max(lexical_mass, MIN_IDF_MASS)
        b = np.array([min(1.0, bm25.get(i, 0.0) / mass) for i in ids_list])
        score = (w_dense * c + w_lex * b) / (w_dense + w_lex)
    if weights.recency:
        age_days = np.maximum(0.0, now - np.array([ts[i] for i in ids_list])) / _DAY
        score += weights.recency * np.exp2(-age_days / weights.half_life_days)
    if weights.importance:
        score += weights.importance * np.array([importance[i] for i in ids_list])
    order = np.lexsort((-ids, -score))
    return [
        Fused(ids_list[i], float(score[i]), cos.get(ids_list[i]), bm25.get(ids_list[i]))
        for i in order
    ]
