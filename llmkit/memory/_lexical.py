"""Lexical retrieval: BM25 from the SQLite FTS5 index.

Introduced in lesson 7 (07_memory_systems). User text never reaches FTS5 as syntax: it is split
into words and every word becomes a quoted string, so ``"``, ``*``, ``AND``, ``NEAR(`` or ``-``
in a question can never make the query fail. FTS5 computes bm25() for every matching row
(about a microsecond each), so a query over a big store would spend its time on words that
match half the rows and say nothing (``the``, ``what``, ``like``): stop words are dropped, the
remaining words are taken rarest first, and words are added only while the rows they match stay
within ``budget``. Rare words — names, codes, places — are exactly what BM25 is good at; when
every word is common, the rows containing a pair of them are scored instead.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Callable, Sequence
from itertools import combinations

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    ve ll re d s t m don didn doesn isn wasn aren weren won wouldn shouldn couldn can't i'm
    tell remember know ever""".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, max_terms: int = 24) -> list[str]:
    """Distinct lower-case words of ``text``, without stop words (unless that leaves nothing)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    content = [w for w in words if w not in STOPWORDS]
    return (content or words)[:max_terms]


def quote(term: str) -> str:
    """An FTS5 string literal: any character is safe inside double quotes (doubled)."""
    return '"' + term.replace('"', '""') + '"'


def idf(df: int, rows: int) -> float:
    """FTS5's BM25 IDF (clamped like FTS5 does, so very common words count a little)."""
    # rows and df may come from two snapshots of a store others write to: keep the log defined
    return max(1e-6, math.log((max(rows - df, 0) + 0.5) / (df + 0.5)))


class LexicalSearcher:
    """Runs budgeted BM25 queries on the ``memories_fts`` table of one connection."""

    def __init__(self, conn: sqlite3.Connection, *, budget: int = 2000):
        self.conn = conn
        self.budget = budget
        self._df_cache: dict[str, int] = {}
        self._df_rows = -1

    def doc_freq(self, term: str, rows: int) -> int:
        """Rows matching ``term``, counted up to ``budget + 1`` (cached per index size)."""
        return self._count(quote(term), rows)

    def _count(self, match: str, rows: int) -> int:
        return self._cached_count(match, rows, self._match_count)

    def _match_count(self, match: str) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM (SELECT rowid FROM memories_fts "
            "WHERE memories_fts MATCH ? LIMIT ?)",
            (match, self.budget + 1),
        ).fetchone()[0]

    def _cached_count(self, key: str, rows: int, count: Callable[[str], int]) -> int:
        """``count(key)``, cached until the index grows by more than 5% (+100 rows) or shrinks."""
        if rows > self._df_rows * 1.05 + 100 or rows < self._df_rows:
            self._df_cache.clear()
            self._df_rows = rows
        n = self._df_cache.get(key)
        if n is None:
            n = self._df_cache[key] = count(key)
        return n

    def match_expression(self, text: str, rows: int) -> tuple[str | None, float]:
        """The FTS5 query for ``text`` (``None`` if nothing affordable matches) and its IDF mass.

        Rare words are OR-ed. When every word is too common for that, the rows containing a
        pair of them are scored instead, if they are few enough.
        """
        used, dropped, mass = self.plan(text, rows)
        if used:
            return " OR ".join(quote(t) for t in used), mass
        # every word is common: their counts are all capped, so try the pairs of the first
        # three and score the rows holding the pair that is rarest together
        pairs = [" AND ".join(quote(t) for t in pair) for pair in combinations(dropped[:3], 2)]
        fits = [(n, p) for p in pairs if 0 < (n := self._count(p, rows)) <= self.budget]
        if fits:
            return min(fits)[1], mass
        return None, mass

    def plan(self, text: str, rows: int) -> tuple[list[str], list[str], float]:
        """(terms used, terms dropped because they match too many rows, the query's IDF mass).

        The IDF mass — what a row matching every word once would score — turns BM25 into
        a 0..1 share of the query's information (:func:`fuse` needs scores on a known scale).
        """
        terms = query_terms(text)
        freqs = {t: self.doc_freq(t, rows) for t in terms}
        mass = sum(idf(freqs[t], rows) for t in terms if freqs[t])
        used: list[str] = []
        total = 0
        for term in sorted(terms, key=lambda t: freqs[t]):
            if freqs[term] == 0:
                continue
            if total + freqs[term] > self.budget:
                break
            used.append(term)
            total += freqs[term]
        return used, [t for t in terms if t not in used and freqs[t] > 0], mass

    def search(
        self,
        text: str,
        limit: int,
        *,
        rows: int,
        kinds: Sequence[int] | None = None,
        session: int | None = None,
        user: int | None = None,
    ) -> tuple[list[tuple[int, float]], float]:
        """((id, bm25 score) best first, the query's IDF mass); ``user`` limits to one user's rows.

        The score is FTS5's bm25() negated (higher = better)."""
        match, mass = self.match_expression(text, rows)
        if match is None:
            return [], mass
        score = "bm25(memories_fts, 0.5, 1.0)"  # a speaker's name counts half as much as the text
        filtered = session is not None or user is not None or (kinds is not None and len(set(kinds)) < 3)
        if not filtered:  # superseded facts are dropped by the caller, no join needed
            sql = (
                f"SELECT rowid, {score} FROM memories_fts WHERE memories_fts MATCH ? "
                "ORDER BY 2 LIMIT ?"
            )
            params: list[object] = [match, limit]
        else:
            where, params = ["m.status = 0"], [match]
            if kinds is not None:
                where.append(f"m.kind IN ({','.join(str(int(k)) for k in set(kinds))})")
            if session is not None:
                where.append("m.session = ?")
                params.append(session)
            if user is not None:
                where.append("m.user_id = ?")
                params.append(user)
            sql = (
                f"SELECT memories_fts.rowid, {score} FROM memories_fts "
                "JOIN memories m ON m.id = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND {' AND '.join(where)} ORDER BY 2 LIMIT ?"
            )
            params.append(limit)
        return [(rowid, -bm25) for rowid, bm25 in self.conn.execute(sql, params)], mass
