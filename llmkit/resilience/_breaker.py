"""A circuit breaker per provider: stop calling a provider that keeps failing.

Introduced in lesson 8 (08_errors_and_fallbacks)::

    closed --(failure_threshold consecutive failures)--> open
    open --(cooldown seconds pass)--> half-open: one trial request goes through
    half-open --success--> closed        half-open --failure--> open (a new cool-down)

While open, calls fail at once with ``CircuitOpen`` - no request, no waiting - so a
fallback chain moves straight to the next provider. Only transient failures count
(rate limited, overloaded, server error, timeout, connection lost): a bad request says
nothing about the provider's health.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from enum import StrEnum
from typing import Any, TypeVar

from ._backoff import Clock
from ._errors import CircuitOpen
from ._taxonomy import TRANSIENT_KINDS, ClassifiedError, ErrorKind, classify

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed / open / half-open breaker with an injectable clock; thread-safe."""

    def __init__(
        self,
        name: str = "provider",
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        trips_on: Collection[ErrorKind] = TRANSIENT_KINDS,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.trips_on = frozenset(trips_on)
        self.clock = clock
        self.failures = 0  # consecutive counted failures
        self.opened_at: float | None = None
        self.transitions: list[tuple[float, BreakerState]] = []  # for timeline plots
        self._state = BreakerState.CLOSED
        self._probe_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial request through (0 if not open)."""
        with self._lock:
            if self._current() is not BreakerState.OPEN or self.opened_at is None:
                return 0.0
            return max(0.0, self.opened_at + self.cooldown - self.clock())

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` unless a request may go out now."""
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return
            if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return
            assert self.opened_at is not None
            wait = max(0.0, self.opened_at + self.cooldown - self.clock())
        raise CircuitOpen(self.name, wait)

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self._probe_in_flight = False
            self._move(BreakerState.CLOSED)

    def record_failure(self, error: ClassifiedError | BaseException) -> None:
        """Count ``error`` if its kind trips the breaker; other errors leave it as it was."""
        error = classify(error)
        with self._lock:
            probing = self._probe_in_flight
            self._probe_in_flight = False
            if error.kind not in self.trips_on:
                return
            self.failures += 1
            if probing or self.failures >= self.failure_threshold:
                self.opened_at = self.clock()
                self._move(BreakerState.OPEN)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker."""
        self.before_call()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result

    def _current(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.opened_at is not None:
            if self.clock() >= self.opened_at + self.cooldown:
                self._move(BreakerState.HALF_OPEN)
        return self._state

    def _move(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.transitions.append((self.clock(), state))

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value}, failures={self.failures})"


class BreakerRegistry:
    """One ``CircuitBreaker`` per provider, created on first use with shared settings."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        trips_on: Collection[ErrorKind] = TRANSIENT_KINDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = dict(
            failure_threshold=failure_threshold, cooldown=cooldown, trips_on=trips_on,
            clock=clock,
        )
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> CircuitBreaker:
        with self._lock:
            if provider not in self._breakers:
                self._breakers[provider] = CircuitBreaker(provider, **self._settings)
            return self._breakers[provider]

    __getitem__ = get

    def states(self) -> dict[str, BreakerState]:
        """The state of every breaker created so far."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.state for b in breakers}
