"""``Memory.context_for``: memory rendered as prompt text within a token budget.

Introduced in lesson 7 (07_memory_systems).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import Hit, Record, check_text

if TYPE_CHECKING:
    from ._memory import Memory


def _truncate(mem: Memory, text: str, budget: int) -> str:
    if mem.count_tokens(text) <= budget:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the longest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if mem.count_tokens(" ".join(words[:mid]) + " …") <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " …" if lo else ""


def _hit_line(hit: Hit) -> str:
    when = f"{hit.timestamp:%Y-%m-%d}"
    label = {"long_term": "fact", "episodic": f"episode: {hit.role}"}.get(hit.kind, hit.role)
    return f"- ({label}, {when}) {' '.join(hit.content.split())}"


def _turn_line(rec: Record) -> str:
    return f"{rec.role}: {' '.join(rec.content.split())}"


def build_context(
    mem: Memory, query: str, session_id: str | None, max_tokens: int, k: int, recent: bool
) -> str:
    check_text(query, "query")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    left = max_tokens
    head: list[str] = []
    tail: list[str] = []
    shown: set[int] = set()
    if session_id is not None:
        summary = mem.summary(session_id)
        if summary:
            title = "Summary of the earlier conversation:"
            text = _truncate(mem, summary, max_tokens // 4 - mem.count_tokens(title))
            if text:
                head += [title, text, ""]
                left -= mem.count_tokens("\n".join(head))
        if recent:
            title = "Recent conversation:"
            budget = max_tokens // 3 - mem.count_tokens(title)
            lines: list[str] = []
            for rec in reversed(mem.window(session_id)):
                line = _turn_line(rec)
                cost = mem.count_tokens(line) + 1
                if cost > budget:
                    break
                lines.insert(0, line)
                shown.add(rec.id)
                budget -= cost
            if lines:
                tail = ["", title, *lines]
                left -= mem.count_tokens("\n".join(tail))
    title = "Relevant memories:"
    left -= mem.count_tokens(title) + 1
    found: list[str] = []
    for hit in mem.search(query, k + len(shown)):
        if hit.id in shown or len(found) >= k:
            continue
        line = _hit_line(hit)
        cost = mem.count_tokens(line) + 1
        if cost > left:
            continue
        found.append(line)
        left -= cost
    middle = [title, *found] if found else []
    return "\n".join(head + middle + tail).strip()
