"""The building blocks lesson 8's helpers are made of, used on their own.

``TokenBucket`` is what ``RateLimiter`` counts with; ``stop_at_deadline`` is the tenacity stop
strategy behind ``tenacity_retrying``, for readers who compose their own ``tenacity.Retrying``.
"""

from __future__ import annotations

import pytest
import tenacity

from llmkit.resilience import BackoffPolicy, FakeClock, TokenBucket, stop_at_deadline


class Overloaded(Exception):
    status_code = 529


def test_a_token_bucket_lends_into_debt_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, per_second=2, clock=clock)
    assert bucket.reserve(10) == 0.0  # a full bucket pays at once
    assert bucket.reserve(4) == pytest.approx(2.0)  # 4 units in debt at 2/s: wait 2 s
    clock.advance(2.0)
    assert bucket.reserve(0) == 0.0
    bucket.give_back(100)
    assert bucket.level == 10  # never above capacity
    clock.advance(60)
    assert bucket.reserve(12) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, per_second=1)


def test_stop_at_deadline_composes_into_a_hand_built_tenacity_retrying() -> None:
    clock = FakeClock()
    policy = BackoffPolicy(base=1.0, cap=1.0, max_attempts=10, deadline=3.5, jitter="none")
    calls: list[float] = []

    def flaky() -> None:
        calls.append(clock())
        raise Overloaded("overloaded")

    retrying = tenacity.Retrying(stop=stop_at_deadline(policy, clock), wait=tenacity.wait_fixed(1.0),
                                 sleep=clock.sleep, reraise=True,
                                 before=lambda state: setattr(state, "start_time", calls[0] if calls else clock()))
    with pytest.raises(Overloaded):
        retrying(flaky)
    # waits of 1 s each: attempts at t=0,1,2,3; a fifth would start at 4 s, past the 3.5 s deadline
    assert [t - calls[0] for t in calls] == [0.0, 1.0, 2.0, 3.0]

    many = BackoffPolicy(base=0.0, cap=0.0, max_attempts=2, deadline=None)
    calls.clear()
    with pytest.raises(Overloaded):
        tenacity.Retrying(stop=stop_at_deadline(many, clock), sleep=clock.sleep, reraise=True)(flaky)
    assert len(calls) == 2  # max_attempts counts the first try
