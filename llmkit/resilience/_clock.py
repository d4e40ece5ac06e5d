"""A fake clock for retries and breakers: waits are recorded, not slept.

Introduced in lesson 8 (08_errors_and_fallbacks).
"""

from __future__ import annotations


class FakeClock:
    """A clock to pass as ``clock=`` and ``sleep=``: sleeping advances it and is recorded.

    Introduced in lesson 8 (08_errors_and_fallbacks): ``retry_call(..., clock=clock, sleep=clock.sleep)``
    computes every wait instantly; ``clock.sleeps`` lists them.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds}); a wait is never negative - check "
                             "how it was computed")
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
