"""A fallback chain across providers or models, recording why each hop happened.

Introduced in lesson 8 (08_errors_and_fallbacks)::

    chain = FallbackChain([
        Route("claude", ask_claude),      # each call takes the same arguments
        Route("gpt", ask_gpt),
        Route("gemini", ask_gemini),
    ])
    result = chain("What is 2 + 2?")
    result.value, result.route, result.hops   # the answer, who gave it, who failed and why

A route's ``call`` is usually already wrapped in retries; the chain moves on when it
raises. A stream that broke after text was shown (``StreamInterrupted``) is never
handed to the next route: that would show the answer twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._backoff import Clock
from ._errors import AllRoutesFailed, CallFailed, StreamInterrupted
from ._taxonomy import ErrorKind, classify

T = TypeVar("T")


@dataclass(frozen=True)
class Route(Generic[T]):
    """A named way to get an answer; ``provider`` keys breakers and limiters (default: name)."""

    name: str
    call: Callable[..., T]
    provider: str | None = None

    @property
    def key(self) -> str:
        return self.provider or self.name


@dataclass(frozen=True)
class Hop:
    """Route ``route`` failed with ``kind`` after ``elapsed`` seconds; ``reason`` says how."""

    route: str
    kind: ErrorKind
    reason: str
    elapsed: float


@dataclass(frozen=True)
class FallbackResult(Generic[T]):
    """The answer, the route that gave it, and the hops taken before it."""

    value: T
    route: str
    hops: list[Hop] = field(default_factory=list)


#: By default every classified failure moves on; UNKNOWN (a bug in our code) propagates.
DEFAULT_HOP_ON = frozenset(ErrorKind) - {ErrorKind.UNKNOWN}


class FallbackChain(Generic[T]):
    """Try each route in order until one answers.

    ``hop_on`` lists the error kinds that move on to the next route; any other error
    propagates unchanged. Raises ``AllRoutesFailed`` (with ``hops``) when none answers.
    """

    def __init__(
        self,
        routes: Sequence[Route[T]],
        *,
        hop_on: Collection[ErrorKind] = DEFAULT_HOP_ON,
        clock: Clock = time.monotonic,
    ) -> None:
        if not routes:
            raise ValueError("a FallbackChain needs at least one Route")
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique, got {names}")
        self.routes = list(routes)
        self.hop_on = frozenset(hop_on)
        self.clock = clock

    def __call__(self, *args: Any, **kwargs: Any) -> FallbackResult[T]:
        """Call the routes in turn with the same arguments."""
        hops: list[Hop] = []
        last: Exception | None = None
        for route in self.routes:
            t0 = self.clock()
            try:
                value = route.call(*args, **kwargs)
            except StreamInterrupted:
                raise
            except Exception as exc:
                error = classify(exc)
                if error.kind not in self.hop_on:
                    raise
                reason = str(error)
                if isinstance(exc, CallFailed):
                    reason = f"{exc.reason} after {exc.attempts} attempt(s): {error}"
                hops.append(Hop(route.name, error.kind, reason, self.clock() - t0))
                last = exc
                continue
            return FallbackResult(value, route.name, hops)
        raise AllRoutesFailed(hops) from last
