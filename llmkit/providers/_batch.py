"""Batch APIs answered on loopback: what every provider's batch desk shares (lesson 11, 11_cost_and_latency).

A batch API takes many requests at once, answers them within hours at about half the price, and is
polled until it ends. Scripted recordings (``LLMKIT_SCRIPT``) and ``llmkit simulate`` answer it with a
*desk*: one per provider (``_openai_batch``, ``_anthropic_batch``, ``_gemini_batch``), holding the
uploaded files and batches of one recording or one simulator. Each request inside a batch is answered
by ``answer(api_path, body)``, the same function that answers that request sent on its own, so a batch
result is exactly the reply the real API could send for it.

A batch answers *in progress* to its first :attr:`BatchDesk.polls_to_finish` polls and has ended on the
next. Its timestamps say it ran :meth:`BatchDesk.runtime` seconds; replay holds back the ended answer
until that long (scaled by ``kit.speed``) after the batch was created (``Provider.batch_seconds``).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EPOCH", "Batch", "BatchAnswer", "BatchDesk", "InnerAnswer", "jsonl", "rfc3339", "seconds_between"]

#: (api path, request body) -> (HTTP status, JSON body) of one request inside a batch.
InnerAnswer = Callable[[str, dict], tuple[int, Any]]

#: Scripted clocks start here (2026-01-01T00:00:00Z), so recordings are the same on every run.
EPOCH = 1767225600.0


def rfc3339(t: float) -> str:
    """``t`` (Unix seconds) as Anthropic and Gemini write times: ``2026-01-01T00:00:00Z``."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from one RFC 3339 time to another (None if either is missing or malformed)."""
    from datetime import datetime

    try:
        return (datetime.fromisoformat(end.replace("Z", "+00:00"))
                - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
    except (AttributeError, TypeError, ValueError):
        return None


@dataclass
class BatchAnswer:
    """One HTTP answer of a desk: a JSON ``body``, or ``text`` (a results file) with its content type."""

    status: int = 200
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"

    def response(self, t_ms: float = 120.0) -> Any:
        """As a cassette's ``RecordedResponse``."""
        from llmkit.replay.cassette import RecordedResponse

        headers = {"content-type": self.content_type}
        return RecordedResponse(self.status, headers, body=self.body, body_text=self.text, t_ms=t_ms)


@dataclass
class Batch:
    """One batch: its requests ``(custom id, api path, body)``, and their answers once computed."""

    id: str
    created: float
    requests: list[tuple[str, str, dict]]
    extra: dict[str, Any] = field(default_factory=dict)  # what the provider echoes back (endpoint, model ...)
    results: list[tuple[str, int, Any]] = field(default_factory=list)  # (custom id, status, JSON body)
    polls: int = 0
    cancelled: bool = False

    @property
    def errors(self) -> int:
        return sum(1 for _, status, _ in self.results if status >= 400)


class BatchDesk(ABC):
    """A provider's batch API, answered locally. Subclasses map routes to the provider's wire format."""

    #: How many polls answer "in progress" before the batch has ended.
    polls_to_finish = 2
    #: The scripted run time of a batch: a fixed start-up plus a little per request.
    base_seconds = 20.0
    seconds_per_request = 0.5

    def __init__(self, answer: InnerAnswer, *, clock: Callable[[], float] | None = None, seed: str = "",
                 upstream: str = "") -> None:
        self.answer = answer
        self.clock = clock or (lambda: EPOCH)
        self.seed = seed
        self.upstream = upstream  # the provider's own origin, for absolute URLs in a recording
        self.batches: dict[str, Batch] = {}
        self._made = 0

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A deterministic id: the same recording makes the same ids."""
        self._made += 1
        digest = hashlib.sha256(f"{self.seed}:{prefix}:{self._made}".encode()).hexdigest()
        return prefix + digest[:length]

    def runtime(self, batch: Batch) -> float:
        """Seconds from creation to end, as the batch's timestamps will say."""
        return self.base_seconds + self.seconds_per_request * len(batch.requests)

    def open(self, batch: Batch) -> Batch:
        """Register ``batch`` and answer its requests (the answers are served once it has ended)."""
        for custom_id, path, body in batch.requests:
            status, answer = self.answer(path, body)
            batch.results.append((custom_id, status, answer))
        self.batches[batch.id] = batch
        return batch

    def poll(self, batch_id: str) -> Batch | None:
        """The batch, one poll older; None for an unknown id."""
        batch = self.batches.get(batch_id)
        if batch is not None:
            batch.polls += 1
        return batch

    def ended(self, batch: Batch) -> bool:
        return batch.cancelled or batch.polls > self.polls_to_finish

    @abstractmethod
    def handles(self, method: str, path: str) -> bool:
        """Is ``method path`` one of this provider's batch (or batch-file) endpoints?"""

    @abstractmethod
    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> BatchAnswer:
        """Answer one request to a batch endpoint."""


def jsonl(lines: list[Any]) -> str:
    """Lines of JSON, as results files are written (one compact object per line, newline-terminated)."""
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
