"""The one retry policy: how long to wait, when to give up, and what Retry-After asks for.

Introduced in lesson 8 (08_errors_and_fallbacks). Every retry in llmkit reads its waits and its
give-up decision from here: ``llmkit.resilience.retry_call`` (hand-written, for reading), its tenacity
twin ``retry_with_tenacity``, the raw-HTTP transport ``llmkit.wire.transport`` and the relay server of
lesson 9 (through ``llmkit.resilience.aresilient_stream``). This module imports neither
``llmkit.wire`` nor ``llmkit.resilience``, so both can use it without importing each other.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from inspect import isawaitable
from itertools import count
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], object]


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to keep trying. Introduced in lesson 8 (08_errors_and_fallbacks).

    Attempt ``n`` (1-based) that fails waits up to ``min(cap, base * 2**(n-1))`` seconds,
    drawn uniformly from ``[0, that]`` with ``jitter="full"`` ("equal": the upper half;
    "none": exactly that), and never less than the server's ``Retry-After``. At most
    ``max_attempts`` attempts; no wait that would end past ``deadline`` seconds after the
    first attempt started (None: no deadline); no retry when the server asks to wait more
    than ``max_retry_after`` seconds (None: any wait is honoured).
    """

    base: float = 0.5
    cap: float = 20.0
    max_attempts: int = 4
    deadline: float | None = 60.0
    jitter: Literal["full", "equal", "none"] = "full"
    max_retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first try too: use 1 or more")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap are seconds: use values >= 0")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError('jitter must be "full", "equal" or "none"')


def compute_wait(
    attempt: int,
    suggested: float | None,
    policy: BackoffPolicy,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based); pure given ``rng``.

    Introduced in lesson 8 (08_errors_and_fallbacks). ``suggested`` is the server's
    Retry-After: a floor, because retrying sooner is refused anyway; the jitter on top keeps
    many clients from coming back in step.
    """
    ceiling = min(policy.cap, policy.base * 2 ** (attempt - 1))
    rng = rng or random
    if policy.jitter == "full":
        wait = rng.uniform(0.0, ceiling)
    elif policy.jitter == "equal":
        wait = ceiling / 2 + rng.uniform(0.0, ceiling / 2)
    else:
        wait = ceiling
    if suggested is not None:
        wait = max(wait, suggested)
    return wait


def give_up_reason(policy: BackoffPolicy, attempt: int, elapsed: float, wait: float,
                   suggested: float | None = None) -> str:
    """Why not to retry a retryable failure of attempt ``attempt``, or ``""`` to retry after ``wait``.

    Introduced in lesson 8 (08_errors_and_fallbacks). ``elapsed`` counts from the start of the
    first attempt; ``suggested`` is the server's Retry-After.
    """
    if attempt >= policy.max_attempts:
        return "attempts exhausted"
    if policy.max_retry_after is not None and suggested is not None and suggested > policy.max_retry_after:
        return "retry-after too long"
    if policy.deadline is not None and elapsed + wait > policy.deadline:
        return "deadline"
    return ""


class Verdict(Protocol):
    """What a retry loop needs to know about a failure (``llmkit.resilience.ClassifiedError`` is one)."""

    retryable: bool
    retry_after: float | None


@dataclass(frozen=True)
class Attempt:
    """One try: when it ran (clock seconds), how it ended, and the wait that followed.

    Introduced in lesson 8 (08_errors_and_fallbacks). ``error`` is the failure's verdict
    (a ``ClassifiedError`` in ``llmkit.resilience``), None on success; ``wait`` is None when
    no retry followed (success or giving up).
    """

    number: int
    start: float
    end: float
    error: Any
    wait: float | None

    @property
    def outcome(self) -> str:
        """``"ok"`` or the error kind's value, e.g. ``"rate_limited"``."""
        return "ok" if self.error is None else self.error.kind.value


def settle_failure(verdict: Verdict, attempt: int, start: float, end: float, started: float,
                   policy: BackoffPolicy, rng: random.Random | None = None) -> tuple[Attempt, str]:
    """The record of failed attempt ``attempt`` and why to give up (``""``: retry after its ``wait``).

    Introduced in lesson 8 (08_errors_and_fallbacks): the one decision every retry loop makes
    after a failure. ``start``/``end`` bound the attempt and ``started`` is when the first
    attempt began (clock seconds); a retryable failure's wait comes from ``compute_wait``.
    """
    if verdict.retryable:
        wait = compute_wait(attempt, verdict.retry_after, policy, rng)
        reason = give_up_reason(policy, attempt, end - started, wait, verdict.retry_after)
    else:
        wait, reason = 0.0, "not retryable"
    return Attempt(attempt, start, end, verdict, None if reason else wait), reason


async def aretry(
    fn: Callable[[], Awaitable[T]],
    *,
    judge: Callable[[Exception], Verdict],
    policy: BackoffPolicy,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
    give_up: Callable[[Exception, Verdict, int, str], BaseException] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying what ``judge`` calls retryable, per ``policy``.

    Introduced in lesson 9 (09_sse_server): the async retry loop of the raw-HTTP transport and
    of the relay. ``on_attempt`` gets each ``Attempt`` as it ends (it may be a coroutine
    function). When it gives up, the exception ``give_up(exc, verdict, attempts, reason)``
    returns is raised from ``exc`` (by default ``exc`` itself, re-raised).
    """
    if sleep is None:
        import asyncio

        sleep = asyncio.sleep
    started = clock()
    for attempt in count(1):
        t0 = clock()
        try:
            result = await fn()
        except Exception as exc:
            failed, reason = settle_failure(judge(exc), attempt, t0, clock(), started, policy, rng)
            await _call(on_attempt, failed)
            if reason:
                replacement = exc if give_up is None else give_up(exc, failed.error, attempt, reason)
                if replacement is exc:
                    raise
                raise replacement from exc
            await sleep(failed.wait)
            continue
        await _call(on_attempt, Attempt(attempt, t0, clock(), None, None))
        return result


async def _call(hook: Callable[[Attempt], object] | None, attempt: Attempt) -> None:
    if hook is not None and isawaitable(result := hook(attempt)):
        await result


def parse_retry_after(
    headers: Any, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, then ``retry-after``.

    Introduced in lesson 8 (08_errors_and_fallbacks). ``retry-after`` may be seconds or an
    HTTP date (compared with ``now()``, wall time). Returns None when there is no usable
    header; never a negative number.
    """
    headers = lower_headers(headers)
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now())
    return None


def lower_headers(headers: Any) -> dict[str, str]:
    """Headers (a mapping or pairs) as a dict with lower-case names."""
    if not headers:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}
