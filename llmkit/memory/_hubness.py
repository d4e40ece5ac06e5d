"""Hubness: how generic a memory is, so that dense search stops preferring content-free turns.

Introduced in lesson 7 (07_memory_systems). In a chat, short turns such as "No way! How did it
go?" or "Which one was it again?" sit close to *every* question in embedding space (they are
"hubs"), so they crowd the dense top-k and push the turn that answers out of it. The lesson's
knowledge-update question ("Which neighbourhood did Maya finally move to?") was lost that way:
its answer ranked 16th by cosine behind such turns. CSLS (Conneau et al., 2018, "Word
translation without parallel data") corrects this by subtracting each candidate's mean
similarity to its ``K`` nearest neighbours, ``cos(q, x) - alpha * r(x)``. Here ``r(x)`` is
measured against a reference sample of the same user's active memories (all of them up to
:data:`SAMPLE` rows, a fixed stride sample beyond), only for the fused candidates, and centred
on the candidates' mean so the dense score keeps its scale against the lexical one.
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 10  # K of CSLS
SAMPLE = 2048  # reference rows; below this r(x) is exact


def reference(vecs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The reference rows: ``vecs[mask]``, thinned to at most :data:`SAMPLE` by a fixed stride."""
    rows = np.flatnonzero(mask) if mask is not None else np.arange(len(vecs))
    if len(rows) > SAMPLE:
        rows = rows[:: int(np.ceil(len(rows) / SAMPLE))]
    return np.ascontiguousarray(vecs[rows])


def hubness(cand: np.ndarray, ref: np.ndarray, population: int) -> np.ndarray:
    """Mean cosine of each candidate to its nearest neighbours in ``ref`` (itself excluded).

    ``population`` is how many rows ``ref`` was drawn from: when it is a sample, fewer sample
    neighbours stand for the ``K`` nearest of the population.
    """
    if len(ref) < 2 or len(cand) == 0:
        return np.zeros(len(cand), np.float32)
    sims = cand @ ref.T
    sims[sims > 0.9999] = -1.0  # the candidate itself (or an exact copy) is no neighbour
    k = NEIGHBOURS if population <= len(ref) else max(1, round(NEIGHBOURS * len(ref) / population))
    k = min(k, len(ref) - 1)
    top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return top.mean(axis=1).astype(np.float32)
