"""A client-side rate limiter: stay under requests/min and tokens/min before the server says 429.

Introduced in lesson 8 (08_errors_and_fallbacks). Each limit is a token bucket that
holds up to a minute's allowance and refills continuously. ``acquire`` *reserves*
capacity and returns how long to wait before sending; the bucket may go into debt,
so callers that arrive together are spaced out in the order they asked::

    limiter = RateLimiter(requests_per_minute=50, tokens_per_minute=40_000)
    time.sleep(limiter.acquire(tokens=estimate))   # or: limiter.wait(tokens=estimate)
    response = client.messages.create(...)
    limiter.adjust(actual_tokens - estimate)        # settle with the real usage
"""

from __future__ import annotations

import threading
import time

from ._backoff import Clock, Sleep


class TokenBucket:
    """``capacity`` units, refilled at ``per_second``; ``reserve`` returns the wait."""

    def __init__(self, capacity: float, per_second: float, *, clock: Clock = time.monotonic):
        if capacity <= 0 or per_second <= 0:
            raise ValueError("a bucket needs a positive capacity and refill rate")
        self.capacity = capacity
        self.per_second = per_second
        self.clock = clock
        self.level = float(capacity)
        self._updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.per_second)
        self._updated = now

    def reserve(self, amount: float) -> float:
        """Take ``amount`` now (possibly into debt); seconds until it is really available."""
        self._refill()
        self.level -= amount
        return max(0.0, -self.level / self.per_second)

    def give_back(self, amount: float) -> None:
        """Return ``amount`` (negative: take more), never above capacity."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests per minute and/or tokens per minute; thread-safe, injectable clock."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if requests_per_minute is None and tokens_per_minute is None:
            raise ValueError("give requests_per_minute, tokens_per_minute, or both")
        self.requests = (
            TokenBucket(requests_per_minute, requests_per_minute / 60, clock=clock)
            if requests_per_minute
            else None
        )
        self.tokens = (
            TokenBucket(tokens_per_minute, tokens_per_minute / 60, clock=clock)
            if tokens_per_minute
            else None
        )
        self._lock = threading.Lock()

    def acquire(self, tokens: int = 0) -> float:
        """Reserve one request and ``tokens`` tokens; return the seconds to wait before sending.

        ``tokens`` is an estimate of the request's total tokens (prompt + max output).
        """
        if self.tokens is not None and tokens > self.tokens.capacity:
            raise ValueError(
                f"this request needs {tokens} tokens but tokens_per_minute is "
                f"{self.tokens.capacity:g}: shorten the prompt, lower max_tokens, or raise "
                "the limit"
            )
        with self._lock:
            wait = 0.0
            if self.requests is not None:
                wait = self.requests.reserve(1)
            if self.tokens is not None and tokens:
                wait = max(wait, self.tokens.reserve(tokens))
            return wait

    def wait(self, tokens: int = 0, *, sleep: Sleep = time.sleep) -> float:
        """``acquire`` and sleep for the wait; returns the seconds slept."""
        seconds = self.acquire(tokens)
        if seconds > 0:
            sleep(seconds)
        return seconds

    def adjust(self, extra_tokens: int) -> None:
        """Settle an estimate: ``actual - estimated`` tokens (negative gives tokens back)."""
        if self.tokens is not None and extra_tokens:
            with self._lock:
                self.tokens.give_back(-extra_tokens)
