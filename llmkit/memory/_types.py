"""Value types and input validation for :mod:`llmkit.memory`.

Introduced in lesson 7 (07_memory_systems).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from ._errors import MemoryTimestampError

Kind = Literal["short_term", "long_term", "episodic"]
KINDS: tuple[Kind, ...] = ("short_term", "long_term", "episodic")
KIND_CODE: dict[str, int] = {name: code for code, name in enumerate(KINDS)}
SEARCH_MODES = ("hybrid", "dense", "lexical")

# Chat roles that say nothing about the content; any other role (a speaker's name) is indexed
# with the text, because questions name people ("what did Caroline ...").
GENERIC_ROLES = frozenset({"user", "assistant", "system", "tool", "developer", "model", "human", "ai"})


@dataclass(frozen=True, slots=True)
class Record:
    """One stored memory: a message, a long-term fact or an episode.

    ``role`` is the speaker for a message, the event type for an episode and ``None`` for a fact.
    ``status`` is ``"active"`` or ``"superseded"`` (an updated fact keeps its old versions).
    """

    id: int
    kind: Kind
    content: str
    session_id: str
    timestamp: datetime
    role: str | None = None
    importance: float = 0.5
    metadata: dict[str, Any] | None = None
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, best first. ``score`` is the fused score (higher is better).

    ``dense`` is the cosine similarity and ``lexical`` the BM25 score (higher is better) when
    that path found the memory, else ``None``.
    """

    id: int
    kind: Kind
    content: str
    score: float
    session_id: str
    timestamp: datetime
    metadata: dict[str, Any] | None = None
    role: str | None = None
    importance: float = 0.5
    dense: float | None = None
    lexical: float | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    """An episode as recorded by :meth:`Memory.record_episode`."""

    id: int
    session_id: str
    event_type: str
    summary: str
    full_context: Any
    outcome: str
    timestamp: datetime
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Weights:
    """Tunable ranking weights (lesson 7 shows what each one does).

    With ``fusion="convex"`` (the default) the score is the weighted mean
    ``(dense * cosine + lexical * bm25_share) / (dense + lexical)``, where ``bm25_share`` is the
    BM25 score as a share of the query's IDF mass (clipped to 1); with ``fusion="rrf"`` it is
    ``sum(w / (rrf_k + rank))`` over the two rankings, scaled so that first place in both
    scores 1.0. Either way ``recency * 0.5 ** (age / half_life_days)`` and
    ``importance * importance_of_memory`` are added: small tie-breakers by default, turn them
    up for assistants where "recent" and "important" should beat "relevant".
    Dense counts twice as much as lexical by default: BM25 is sharp on names and codes but
    blind to paraphrase, and a rare word it matches still lifts a row by up to a third.
    ``hubness`` is subtracted from each cosine times how generic the memory is (its mean
    similarity to its nearest neighbours, see :mod:`llmkit.memory._hubness`): content-free
    turns ("How did it go?") stop crowding out the turn that answers. ``0`` turns it off.
    """

    dense: float = 1.0
    lexical: float = 0.5
    recency: float = 0.02
    importance: float = 0.02
    hubness: float = 0.5
    rrf_k: float = 60.0
    half_life_days: float = 30.0
    fusion: str = "convex"

    def __post_init__(self) -> None:
        for name in ("dense", "lexical", "recency", "importance", "hubness"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0 or math.isnan(value):
                raise ValueError(f"Weights.{name} must be a number >= 0, got {value!r}")
        if self.dense + self.lexical <= 0:
            raise ValueError("Weights.dense + Weights.lexical must be > 0")
        if self.fusion not in ("convex", "rrf"):
            raise ValueError(f"Weights.fusion must be 'convex' or 'rrf', got {self.fusion!r}")
        if self.rrf_k <= 0 or self.half_life_days <= 0:
            raise ValueError("Weights.rrf_k and Weights.half_life_days must be > 0")


@dataclass(slots=True)
class ConsolidationResult:
    """What one :meth:`Memory.consolidate` call changed."""

    session_id: str
    messages: int = 0
    calls: int = 0
    added: list[int] = field(default_factory=list)
    updated: dict[int, int] = field(default_factory=dict)  # old fact id -> new version id
    duplicates: list[int] = field(default_factory=list)
    summarised: int = 0  # turns folded into the running summary


# --- validation -----------------------------------------------------------------------------


def check_text(value: object, name: str) -> str:
    """Return ``value`` if it is a non-blank string, else raise a clear error."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is empty: there is nothing to remember")
    return value


def check_importance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"importance must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"importance must be between 0 and 1, got {value!r}")
    return float(value)


def check_kinds(kinds: str | Iterable[str] | None) -> tuple[Kind, ...] | None:
    if kinds is None:
        return None
    names = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    for name in names:
        if name not in KIND_CODE:
            raise ValueError(f"unknown memory kind {name!r}; use one of {', '.join(KINDS)}")
    if not names:
        raise ValueError(f"kinds is empty; pass None for all kinds or some of {KINDS}")
    return names  # type: ignore[return-value]


def encode_json(value: Any, name: str) -> str:
    """JSON text for ``value``, refusing anything that would not come back unchanged."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be JSON-serialisable (dict, list, str, numbers): {exc}") from None
    if json.loads(text) != value:
        raise TypeError(
            f"{name} would not round-trip unchanged through JSON (tuples become lists and "
            "non-string keys become strings): use lists and string keys"
        )
    return text


def encode_metadata(metadata: object) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    return encode_json(dict(metadata), "metadata")


# What a timestamp may be, in UTC epoch seconds: 1970-01-01 .. 9999-12-31 23:59:59. Before 1970,
# fromtimestamp fails on some platforms; after 9999, datetime cannot represent it at all.
MIN_EPOCH = 0.0
MAX_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _out_of_range(timestamp: object, seconds: float | None) -> MemoryTimestampError:
    hint = ""
    if seconds is not None and MAX_EPOCH < seconds < MAX_EPOCH * 1000:
        hint = " (it looks like milliseconds: divide by 1000)"
    return MemoryTimestampError(
        f"timestamp {timestamp!r} is outside the range a memory can store and read back, "
        f"1970-01-01 to 9999-12-31 in UTC{hint}: pass an aware datetime, an ISO 8601 string or "
        "epoch seconds in that range (or None for now)"
    )


def to_epoch(timestamp: object) -> tuple[float, int]:
    """(UTC epoch seconds, UTC offset in seconds) for a timestamp.

    Accepts an aware ``datetime``, an ISO 8601 string, or epoch seconds (int/float, UTC).
    A naive datetime or an ISO string without an offset is taken as UTC (documented in
    :meth:`Memory.add`); ``None`` means now. The moment, in UTC and in its own offset, must lie
    in years 1970..9999, else :class:`MemoryTimestampError` (a ``ValueError``): a value that
    could not be turned back into a datetime is never written.
    """
    if timestamp is None:
        return datetime.now(UTC).timestamp(), 0
    original = timestamp
    if isinstance(timestamp, bool):
        raise TypeError("timestamp must be a datetime, an ISO 8601 string or epoch seconds")
    if isinstance(timestamp, int | float):
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        seconds, offset = float(timestamp), 0
    else:
        if isinstance(timestamp, str):
            timestamp = parse_time(timestamp)
        if not isinstance(timestamp, datetime):
            raise TypeError(
                "timestamp must be a datetime, an ISO 8601 string or epoch seconds, "
                f"got {type(timestamp).__name__}"
            )
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        delta = timestamp.utcoffset()
        offset = int(delta.total_seconds()) if delta else 0
        try:
            seconds = timestamp.timestamp()
        except (OverflowError, ValueError):
            raise _out_of_range(original, None) from None
    # both the UTC moment and the wall-clock time in its offset must be representable
    if not (MIN_EPOCH <= seconds <= MAX_EPOCH and MIN_EPOCH <= seconds + max(offset, 0) <= MAX_EPOCH):
        raise _out_of_range(original, seconds if isinstance(original, int | float) else None)
    return seconds, offset


# besides ISO 8601: the formats of the public long-conversation benchmarks
_FORMATS = (
    "%I:%M %p on %d %B, %Y",  # LoCoMo: "1:56 pm on 8 May, 2023"
    "%Y/%m/%d (%a) %H:%M",  # LongMemEval: "2023/05/20 (Sat) 02:21"
    "%a, %d %b %Y %H:%M:%S %z",  # RFC 2822 (e-mail, HTTP)
)


def parse_time(text: str) -> datetime:
    """An ISO 8601 string, or one of a few common written formats, as a datetime."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(
        f"timestamp {text!r} is not ISO 8601 (e.g. '2024-05-01T14:30:00+02:00'); pass a "
        "datetime or an ISO string"
    )


def from_epoch(seconds: float, offset: int) -> datetime:
    """The stored moment as an aware datetime in its original offset.

    Rows written before timestamps were validated may lie outside 1970..9999: they are read back
    clamped into that range rather than making every read that meets them fail.
    """
    tz = UTC if offset == 0 else timezone(timedelta(seconds=offset))
    if not MIN_EPOCH <= seconds <= MAX_EPOCH - max(offset, 0):
        seconds = min(max(seconds, MIN_EPOCH), MAX_EPOCH - max(offset, 0)) if math.isfinite(seconds) else MIN_EPOCH
    return datetime.fromtimestamp(seconds, tz)


def approx_tokens(text: str) -> int:
    """A model-free token estimate (about four characters per token for English)."""
    return max(1, (len(text) + 3) // 4)
