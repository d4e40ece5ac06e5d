"""Fault injection for the replay server (lesson 0 introduces it, lesson 8 lives on it).

A :class:`Fault` says what goes wrong and for which requests: an HTTP error with the provider's real
error body and retry headers, added latency (a timeout, seen from a client with a short timeout), a
connection dropped after N stream events, or a provider error event in the middle of a stream.
Faults apply in the order added; each applies ``times`` times (None: to every matching request).

    kit.faults.status(429, provider="openai", retry_after=2)   # next OpenAI call gets a 429
    kit.faults.drop_stream(after=5)                            # next stream is cut after 5 events
    kit.faults.chaos(seed=7, rate=0.3)                         # a seeded random mix, for soak tests
    kit.faults.chaos(seed=1, mix={None: 0.6, "529": 0.4})      # ... or weighted: 60% answered, 40% 529

This is the one fault injector of llmkit: lessons and tests make the real replay server fail, and the
official SDKs see exactly what a provider would send.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass
class Fault:
    """One planned fault: what goes wrong, for which requests (``provider``, a ``path`` fragment), how often."""

    provider: str | None = None
    path: str | None = None
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    latency_ms: float = 0.0
    drop_after: int | None = None
    error_after: int | None = None
    event_status: int = 529
    times: int | None = 1
    skip: int = 0
    kind: str | None = None  # the chaos kind it was drawn as ("529", "drop", ...), None when added by hand
    _seen: int = field(default=0, repr=False)
    _applied: int = field(default=0, repr=False)

    def matches(self, provider: str, path: str) -> bool:
        return (self.provider in (None, provider)) and (self.path is None or self.path in path)

    @property
    def spent(self) -> bool:
        return self.times is not None and self._applied >= self.times

    def describe(self) -> str:
        parts = [
            (self.status, f"HTTP {self.status}"),
            (self.status and self.retry_after is not None, f"retry-after {self.retry_after or 0:g}s"),
            (self.status and self.retry_after_ms is not None, f"retry-after-ms {self.retry_after_ms or 0:g}"),
            (self.latency_ms, f"+{self.latency_ms or 0:g} ms"),
            (self.drop_after is not None, f"drop after {self.drop_after} events"),
            (self.error_after is not None, f"error event after {self.error_after} events"),
        ]
        return ", ".join(text for wanted, text in parts if wanted) or "no-op"


@dataclass
class AppliedFault:
    provider: str
    path: str
    fault: Fault


_CHAOS_KINDS = ("429", "429-retry-after", "500", "503", "529", "drop", "error-event")
# Also accepted by chaos(kinds=...): any other HTTP status ("400", "401", ...) and "latency".


class FaultPlan:
    """The faults a replay server will inject (``kit.faults``). Thread-safe; cleared with :meth:`clear`.

    Introduced in lesson 0 (00_setup_and_replay); lesson 8 (08_errors_and_fallbacks) lives on it.
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._rng: random.Random | None = None
        self._chaos_rate = 0.0
        self._chaos_kinds: tuple[str, ...] = ()
        self._chaos_latency_ms = 1000.0
        self._chaos_mix: tuple[list[str | None], list[float]] | None = None
        self.log: list[AppliedFault] = []

    # --- adding faults ---------------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def status(self, status: int, *, provider: str | None = None, path: str | None = None,
               retry_after: float | None = None, retry_after_ms: float | None = None,
               message: str | None = None, times: int | None = 1, skip: int = 0) -> Fault:
        """The next matching request(s) get HTTP ``status`` with the provider's error body."""
        return self.add(Fault(provider, path, status=status, retry_after=retry_after,
                              retry_after_ms=retry_after_ms, message=message, times=times, skip=skip))

    def latency(self, ms: float, *, provider: str | None = None, path: str | None = None,
                times: int | None = 1) -> Fault:
        """Delay the response by ``ms`` (a client timeout shorter than this sees a timeout)."""
        return self.add(Fault(provider, path, latency_ms=ms, times=times))

    def drop_stream(self, after: int, *, provider: str | None = None, path: str | None = None,
                    times: int | None = 1) -> Fault:
        """Cut the connection after ``after`` stream events, without the stream's end."""
        return self.add(Fault(provider, path, drop_after=after, times=times))

    def error_event(self, after: int, *, provider: str | None = None, message: str = "Overloaded",
                    status: int = 529, times: int | None = 1) -> Fault:
        """Send a provider error event after ``after`` stream events, then end the stream."""
        return self.add(Fault(provider, None, message=message, error_after=after,
                              event_status=status, times=times))

    def chaos(self, seed: int, rate: float = 0.3, kinds: tuple[str, ...] = _CHAOS_KINDS,
              latency_ms: float = 1000.0, *, mix: Mapping[str | None, float] | None = None) -> None:
        """Inject a seeded random fault into a ``rate`` share of requests (soak tests), drawn evenly from
        ``kinds``; or, with ``mix``, draw every request's fate from weights (``None``: no fault)::

            kit.faults.chaos(seed=1, mix={None: 0.6, "529": 0.4, "429-retry-after": 0.1})

        Kinds: ``"429-retry-after"``, ``"drop"`` (stream cut), ``"error-event"``, ``"latency"``
        (``latency_ms`` added: a timeout for a client with a shorter timeout) and any HTTP status as
        text (``"400"``). Faults added with :meth:`status` and friends go first. Introduced in lesson 8
        (08_errors_and_fallbacks).
        """
        if mix is not None:
            kinds = tuple(k for k in mix if k is not None)
            if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
                raise ConfigError(f"chaos(mix=...) needs weights >= 0 with a positive sum, got {dict(mix)}; "
                                  'e.g. mix={None: 0.6, "529": 0.4}.')
        for kind in kinds:
            self._chaos_fault(kind, random.Random(0), latency_ms)  # fail now on an unknown kind
        with self._lock:
            self._rng = random.Random(seed)
            self._chaos_rate = rate
            self._chaos_kinds = kinds
            self._chaos_latency_ms = latency_ms
            self._chaos_mix = (list(mix), list(mix.values())) if mix is not None else None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rng = None
            self._chaos_mix = None
            self.log.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if not f.spent]

    # --- taking a fault for a request -------------------------------------------------------------
    def take(self, provider: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.spent or not fault.matches(provider, path):
                    continue
                fault._seen += 1
                if fault._seen <= fault.skip:
                    continue
                fault._applied += 1
                self.log.append(AppliedFault(provider, path, fault))
                return fault
            if self._rng is None:
                return None
            if self._chaos_mix is not None:
                drawn = self._rng.choices(*self._chaos_mix)[0]
            else:
                drawn = self._rng.choice(self._chaos_kinds) if self._rng.random() < self._chaos_rate else None
            if drawn is None:
                return None
            fault = self._chaos_fault(drawn, self._rng, self._chaos_latency_ms)
            fault.kind = drawn
            self.log.append(AppliedFault(provider, path, fault))
            return fault

    @staticmethod
    def _chaos_fault(kind: str, rng: random.Random, latency_ms: float = 1000.0) -> Fault:
        if kind == "429-retry-after":
            return Fault(status=429, retry_after=round(rng.uniform(0.1, 2.0), 2))
        if kind.isdigit() and 400 <= int(kind) <= 599:
            return Fault(status=int(kind))
        if kind == "latency":
            return Fault(latency_ms=latency_ms)
        if kind == "drop":
            return Fault(drop_after=rng.randint(0, 4))
        if kind == "error-event":
            return Fault(error_after=rng.randint(1, 4), message="Overloaded")
        raise ConfigError(f"unknown chaos kind {kind!r}; choose from {_CHAOS_KINDS}, another HTTP status "
                          '("400") or "latency"')

