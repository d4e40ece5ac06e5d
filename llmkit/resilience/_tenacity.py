"""The same retry policy, built on tenacity (what production code should use).

Introduced in lesson 8 (08_errors_and_fallbacks), after the hand-written ``retry_call``.
Three tenacity parts carry the policy:

- ``wait_retry_after``: exponential backoff with jitter that never waits less than the
  server's Retry-After;
- ``stop_at_deadline``: stop on attempts, or when the next wait would pass the deadline,
  on an injectable clock;
- ``retry_if_retryable``: retry only what ``classify`` calls retryable.

Given the same ``rng`` seed, ``retry_with_tenacity`` and ``retry_call`` wait the same: both
read their waits (``compute_wait``) and their give-up decision (``give_up_reason``) from the
one policy in ``llmkit.retry``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import tenacity

from ..retry import Attempt, BackoffPolicy, Clock, Sleep, compute_wait, give_up_reason
from ._errors import CallFailed
from ._taxonomy import ErrorKind, classify

T = TypeVar("T")


class wait_retry_after(tenacity.wait.wait_base):  # lower case, like tenacity's own
    """Backoff with jitter from ``policy``, floored at the server's Retry-After."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        assert retry_state.outcome is not None
        error = classify(retry_state.outcome.exception())
        return compute_wait(retry_state.attempt_number, error.retry_after, self.policy, self.rng)


class stop_at_deadline(tenacity.stop.stop_base):
    """Stop after ``max_attempts``, or when the upcoming wait would end past ``deadline``.

    tenacity's own clock is ``time.monotonic``; the ``before`` hook of
    ``tenacity_retrying`` restarts ``retry_state.start_time`` on our ``clock``.
    """

    def __init__(self, policy: BackoffPolicy, clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        assert retry_state.outcome is not None
        suggested = classify(retry_state.outcome.exception()).retry_after
        elapsed = self.clock() - retry_state.start_time
        return bool(give_up_reason(self.policy, retry_state.attempt_number, elapsed,
                                   retry_state.upcoming_sleep, suggested))


def retry_if_retryable() -> tenacity.retry_base:
    """Retry exactly the errors ``classify`` marks retryable."""
    return tenacity.retry_if_exception(lambda exc: classify(exc).retryable)


def tenacity_retrying(
    policy: BackoffPolicy | None = None,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    **kwargs: Any,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` for ``policy``; use it as ``r(fn)`` or ``@r.wraps``.

    It re-raises the last exception when it gives up (``reraise=True``); extra keyword
    arguments (``before_sleep``, ``after``, ...) go to tenacity.
    """
    policy = policy or BackoffPolicy()

    def restart_stopwatch(retry_state: tenacity.RetryCallState) -> None:
        if retry_state.attempt_number == 1:  # ``before`` runs before every attempt
            retry_state.start_time = clock()

    return tenacity.Retrying(
        sleep=sleep,
        stop=stop_at_deadline(policy, clock),
        wait=wait_retry_after(policy, rng),
        retry=retry_if_retryable(),
        before=restart_stopwatch,
        reraise=True,
        **kwargs,
    )


def retry_with_tenacity(
    fn: Callable[[], T],
    *,
    policy: BackoffPolicy | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
) -> T:
    """``retry_call`` on tenacity: same arguments, same waits, same ``CallFailed``."""
    policy = policy or BackoffPolicy()
    pending: list[Attempt] = []  # the attempt that just failed, until we know its wait

    def attempt_fn() -> T:
        number = len(pending) + 1
        t0 = clock()
        try:
            result = fn()
        except Exception as exc:
            pending.append(Attempt(number, t0, clock(), classify(exc), None))
            raise
        if on_attempt:
            on_attempt(Attempt(number, t0, clock(), None, None))
        return result

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        last = pending[-1]
        pending[-1] = Attempt(last.number, last.start, last.end, last.error,
                              retry_state.upcoming_sleep)
        if on_attempt:
            on_attempt(pending[-1])

    retrying = tenacity_retrying(
        policy, clock=clock, sleep=sleep, rng=rng, before_sleep=before_sleep
    )
    try:
        return retrying(attempt_fn)
    except Exception as exc:
        if not pending or pending[-1].wait is not None:  # not from fn: a bug in a hook
            raise
        last = pending[-1]
        if on_attempt:
            on_attempt(last)
        error = last.error
        assert error is not None
        if error.kind is ErrorKind.UNKNOWN:
            raise
        if not error.retryable:
            reason = "not retryable"
        else:
            # What stopped tenacity: the attempts, the server's Retry-After, or else the deadline.
            reason = give_up_reason(replace(policy, deadline=None), last.number, 0.0, 0.0,
                                    error.retry_after) or "deadline"
        raise CallFailed(error, attempts=last.number, reason=reason) from exc
