"""``ResilientCaller``: rate limiter, circuit breaker, retries and fallback in one call.

Introduced in lesson 8 (08_errors_and_fallbacks). For each route in order (fallback),
retry per the policy; each attempt first asks the route's breaker (open: skip the route
at once), then waits for its rate limiter, then calls. Every attempt is logged with its
start, end, outcome and the wait after it, ready for a timeline plot::

    caller = ResilientCaller([Route("claude", ask_claude, provider="anthropic"),
                              Route("gpt", ask_gpt, provider="openai")])
    result = caller("What is 2 + 2?", tokens=300)
    pandas.DataFrame(caller.log)

Build the SDK clients with ``max_retries=0`` (``assert_sdk_retries_off`` checks): the
SDKs retry 429/5xx twice on their own, which would triple every attempt made here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..errors import ConfigError
from ._backoff import Attempt, BackoffPolicy, Clock, Sleep
from ._breaker import BreakerRegistry
from ._fallback import DEFAULT_HOP_ON, FallbackChain, FallbackResult, Route
from ._ratelimit import RateLimiter
from ._taxonomy import ErrorKind
from ._tenacity import retry_with_tenacity

T = TypeVar("T")


class RetryFunction(Protocol):
    """The signature shared by ``retry_call`` and ``retry_with_tenacity``."""

    def __call__(
        self,
        fn: Callable[[], Any],
        *,
        policy: BackoffPolicy | None = ...,
        clock: Clock = ...,
        sleep: Sleep = ...,
        rng: random.Random | None = ...,
        on_attempt: Callable[[Attempt], object] | None = ...,
    ) -> Any: ...


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of one call, for logs and timeline plots (clock seconds).

    ``start`` is when the request went out (after ``limiter_wait``); ``wait`` is the
    backoff sleep that followed, None if no retry followed; ``outcome`` is ``"ok"`` or an
    ``ErrorKind`` value (``"circuit_open"``: skipped without a request).
    """

    call: int
    route: str
    attempt: int
    start: float
    end: float
    outcome: str
    wait: float | None
    limiter_wait: float = 0.0


class ResilientCaller(Generic[T]):
    """Call a list of routes with limiter -> breaker -> retry -> fallback.

    ``limiters`` maps a route's provider (``Route.provider`` or its name) to a
    ``RateLimiter``; ``retry`` is ``retry_with_tenacity`` (default) or ``retry_call``.
    """

    def __init__(
        self,
        routes: Sequence[Route[T]],
        *,
        policy: BackoffPolicy | None = None,
        breakers: BreakerRegistry | None = None,
        limiters: Mapping[str, RateLimiter] | None = None,
        hop_on: Collection[ErrorKind] = DEFAULT_HOP_ON,
        retry: RetryFunction = retry_with_tenacity,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = list(routes)
        self.policy = policy or BackoffPolicy()
        self.breakers = breakers or BreakerRegistry(clock=clock)
        self.limiters = dict(limiters or {})
        self.hop_on = hop_on
        self.retry = retry
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.log: list[AttemptRecord] = []
        self.calls = 0
        FallbackChain(self.routes)  # validate the routes now, not on the first call

    def __call__(self, *args: Any, tokens: int = 0, **kwargs: Any) -> FallbackResult[T]:
        """Get an answer; ``tokens`` is the token estimate for the rate limiter.

        Raises ``AllRoutesFailed`` (with ``hops``) when every route failed.
        """
        self.calls += 1
        routes = [
            Route(r.name, self._resilient(r, self.calls, tokens), r.provider)
            for r in self.routes
        ]
        chain = FallbackChain(routes, hop_on=self.hop_on, clock=self.clock)
        return chain(*args, **kwargs)

    def _resilient(self, route: Route[T], call: int, tokens: int) -> Callable[..., T]:
        breaker = self.breakers.get(route.key)
        limiter = self.limiters.get(route.key)

        def run(*args: Any, **kwargs: Any) -> T:
            sent: list[float] = []  # this attempt's send time and limiter wait
            waited: list[float] = []

            def attempt() -> T:
                sent.clear()
                waited.clear()
                breaker.before_call()  # CircuitOpen is not retryable: the chain moves on
                try:
                    if limiter is not None:
                        waited.append(limiter.wait(tokens, sleep=self.sleep))
                    sent.append(self.clock())
                    result = route.call(*args, **kwargs)
                except Exception as exc:
                    breaker.record_failure(exc)
                    raise
                breaker.record_success()
                return result

            def record(a: Attempt) -> None:
                self.log.append(
                    AttemptRecord(
                        call, route.name, a.number, sent[0] if sent else a.start, a.end,
                        a.outcome, a.wait, waited[0] if waited else 0.0,
                    )
                )

            return self.retry(
                attempt, policy=self.policy, clock=self.clock, sleep=self.sleep,
                rng=self.rng, on_attempt=record,
            )

        return run


def sdk_retries(client: Any) -> int:
    """How many times an SDK client retries on its own (0 when it does not)."""
    max_retries = getattr(client, "max_retries", None)
    if isinstance(max_retries, int):  # openai, anthropic
        return max_retries
    api_client = getattr(client, "_api_client", None)  # google-genai
    options = getattr(getattr(api_client, "_http_options", None), "retry_options", None)
    if options is None:
        return 0
    attempts = getattr(options, "attempts", None)
    return max(0, (attempts if attempts else 5) - 1)  # google-genai's default is 5 attempts


def assert_sdk_retries_off(*clients: Any) -> None:
    """Raise ``ConfigError`` if any SDK client would retry on its own."""
    for client in clients:
        n = sdk_retries(client)
        if n:
            name = type(client).__module__.split(".")[0] + "." + type(client).__name__
            raise ConfigError(
                f"{name} retries {n} times on its own, multiplying llmkit's retries: build it "
                "with max_retries=0 (openai, anthropic) or without HttpRetryOptions "
                "(google-genai)."
            )
