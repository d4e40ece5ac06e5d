"""Retry with exponential backoff and full jitter, written out by hand.

Introduced in lesson 8 (08_errors_and_fallbacks). The lesson reads this loop first to
see every decision a retry makes; ``retry_with_tenacity`` is the same policy built on
tenacity, and both take an injectable ``clock`` and ``sleep`` so tests compute the waits
instead of sleeping.

Turn the SDK's own retries off when retrying here (``OpenAI(max_retries=0)``,
``Anthropic(max_retries=0)``; google-genai does not retry unless given
``HttpRetryOptions``): otherwise each of our attempts is up to three SDK requests and
the retries multiply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from ._errors import CallFailed
from ._taxonomy import ClassifiedError, ErrorKind, classify

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], object]


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to keep trying.

    Attempt ``n`` (1-based) that fails waits up to ``min(cap, base * 2**(n-1))`` seconds,
    drawn uniformly from ``[0, that]`` with ``jitter="full"`` ("equal": the upper half;
    "none": exactly that), and never less than the server's ``Retry-After``. At most
    ``max_attempts`` attempts; no wait that would end past ``deadline`` seconds after the
    first attempt started (None: no deadline).
    """

    base: float = 0.5
    cap: float = 20.0
    max_attempts: int = 4
    deadline: float | None = 60.0
    jitter: Literal["full", "equal", "none"] = "full"

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

    ``suggested`` is the server's Retry-After: a floor, because retrying sooner is
    refused anyway; the jitter on top keeps many clients from coming back in step.
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


@dataclass(frozen=True)
class Attempt:
    """One try: when it ran (clock seconds), how it ended, and the wait that followed.

    ``wait`` is None when no retry followed (success or giving up).
    """

    number: int
    start: float
    end: float
    error: ClassifiedError | None
    wait: float | None

    @property
    def outcome(self) -> str:
        """``"ok"`` or the error kind's value, e.g. ``"rate_limited"``."""
        return "ok" if self.error is None else self.error.kind.value


def retry_call(
    fn: Callable[[], T],
    *,
    policy: BackoffPolicy | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
) -> T:
    """Call ``fn()`` until it succeeds, retrying only errors that ``classify`` calls retryable.

    Raises ``CallFailed`` (original exception as ``__cause__``) when an error is not
    retryable, the attempts are spent, or the next wait would pass the deadline.
    Exceptions that are not API/transport errors (``ErrorKind.UNKNOWN``: bugs) are
    re-raised untouched. ``on_attempt`` receives each ``Attempt`` as it ends.
    """
    policy = policy or BackoffPolicy()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        t0 = clock()
        try:
            result = fn()
        except Exception as exc:
            t1 = clock()
            error = classify(exc)
            wait = 0.0
            if error.retryable:
                wait = compute_wait(attempt, error.retry_after, policy, rng)
            if error.kind is ErrorKind.UNKNOWN:
                give_up = "unknown"  # a bug, not a fault: re-raised as it is
            elif not error.retryable:
                give_up = "not retryable"
            elif attempt >= policy.max_attempts:
                give_up = "attempts exhausted"
            elif policy.deadline is not None and (t1 - started) + wait > policy.deadline:
                give_up = "deadline"
            else:
                give_up = ""
            if on_attempt:
                on_attempt(Attempt(attempt, t0, t1, error, None if give_up else wait))
            if give_up == "unknown":
                raise
            if give_up:
                raise CallFailed(error, attempts=attempt, reason=give_up) from exc
            sleep(wait)
            continue
        if on_attempt:
            on_attempt(Attempt(attempt, t0, clock(), None, None))
        return result
