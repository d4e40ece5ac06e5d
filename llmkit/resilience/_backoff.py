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
from collections.abc import Awaitable, Callable
from itertools import count
from typing import TypeVar

from ..retry import Attempt, BackoffPolicy, Clock, Sleep, aretry, compute_wait, settle_failure
from ._errors import CallFailed
from ._taxonomy import ClassifiedError, ErrorKind, classify

__all__ = ["Attempt", "BackoffPolicy", "Clock", "Sleep", "aretry_call", "compute_wait", "retry_call"]

T = TypeVar("T")


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
    for attempt in count(1):
        t0 = clock()
        try:
            result = fn()
        except Exception as exc:
            error = classify(exc)
            # attempts, the server's Retry-After, the deadline: the one policy in llmkit.retry decides
            failed, give_up = settle_failure(error, attempt, t0, clock(), started, policy, rng)
            if on_attempt:
                on_attempt(failed)
            if error.kind is ErrorKind.UNKNOWN:
                raise  # a bug, not a fault: re-raised as it is
            if give_up:
                raise CallFailed(error, attempts=attempt, reason=give_up) from exc
            sleep(failed.wait)
            continue
        if on_attempt:
            on_attempt(Attempt(attempt, t0, clock(), None, None))
        return result


def _call_failed(exc: Exception, error: ClassifiedError, attempts: int, reason: str) -> BaseException:
    if error.kind is ErrorKind.UNKNOWN:
        return exc  # a bug, not a fault: re-raised as it is
    return CallFailed(error, attempts=attempts, reason=reason)


async def aretry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: BackoffPolicy | None = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
) -> T:
    """The async twin of ``retry_call``: same policy, same waits, same ``CallFailed``.

    Introduced in lesson 9 (09_sse_server), where the relay retries its upstream with it
    (through ``aresilient_stream``). ``on_attempt`` may be a coroutine function.
    """
    return await aretry(fn, judge=classify, policy=policy or BackoffPolicy(), clock=clock, sleep=sleep,
                        rng=rng, on_attempt=on_attempt, give_up=_call_failed)
