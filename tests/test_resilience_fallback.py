"""llmkit.resilience: fallback chain, circuit breaker, rate limiter, ResilientCaller (lesson 8)."""

from __future__ import annotations

import random

import pytest

from llmkit.resilience import (
    AllRoutesFailed,
    BackoffPolicy,
    BreakerRegistry,
    BreakerState,
    CallFailed,
    CircuitBreaker,
    CircuitOpen,
    ClassifiedError,
    ErrorKind,
    FakeClock,
    FallbackChain,
    RateLimiter,
    ResilientCaller,
    Route,
    StreamInterrupted,
    raise_if_refused,
    retry_call,
    retry_with_tenacity,
)
from llmkit.testing import FaultInjector, FaultKind, fake_clients

PROMPT = "What is 2 + 2?"


def user(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


@pytest.fixture
def setup():
    """Three providers behind one fault injector and a fake clock (0.2 s per request)."""
    clock = FakeClock()
    injector = FaultInjector(answer=lambda p: f"answer to {p!r}", clock=clock, latency=0.2)
    clients = fake_clients(injector)

    def claude(prompt: str) -> str:
        r = clients.anthropic.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                              messages=user(prompt))
        return raise_if_refused(r).content[0].text

    def gpt(prompt: str) -> str:
        r = clients.openai.chat.completions.create(model="gpt-4o-mini", messages=user(prompt))
        return raise_if_refused(r).choices[0].message.content

    def gemini(prompt: str) -> str:
        r = clients.gemini.models.generate_content(model="gemini-2.5-flash", contents=prompt)
        return raise_if_refused(r).text

    return clock, injector.reset, {"claude": claude, "gpt": gpt, "gemini": gemini}


def retried(fn, clock, **policy):
    def call(*args):
        return retry_call(lambda: fn(*args), policy=BackoffPolicy(**policy), clock=clock,
                          sleep=clock.sleep, rng=random.Random(0))

    return call


# ----------------------------------------------------------------------------- fallback


def test_fallback_hops_after_retries_and_records_why(setup) -> None:
    clock, plan, ask = setup
    injector = plan(FaultKind.OVERLOADED, FaultKind.OVERLOADED, FaultKind.OVERLOADED, None)
    chain = FallbackChain(
        [Route("claude", retried(ask["claude"], clock, max_attempts=3)),
         Route("gpt", retried(ask["gpt"], clock))],
        clock=clock,
    )
    result = chain(PROMPT)
    assert result.value == f"answer to {PROMPT!r}"
    assert result.route == "gpt"
    assert [s.provider for s in injector.served] == ["anthropic"] * 3 + ["openai"]
    (hop,) = result.hops
    assert hop.route == "claude" and hop.kind is ErrorKind.OVERLOADED
    assert "attempts exhausted after 3 attempt(s)" in hop.reason and "HTTP 529" in hop.reason
    # three requests of 0.2 s plus the two backoff sleeps, measured on the fake clock
    assert hop.elapsed == pytest.approx(3 * 0.2 + sum(clock.sleeps))


def test_non_retryable_hops_at_once(setup) -> None:
    clock, plan, ask = setup
    injector = plan(FaultKind.AUTH, None)
    chain = FallbackChain([Route("claude", retried(ask["claude"], clock)),
                           Route("gemini", retried(ask["gemini"], clock))], clock=clock)
    result = chain(PROMPT)
    assert result.route == "gemini" and clock.sleeps == []
    assert [s.provider for s in injector.served] == ["anthropic", "gemini"]
    assert result.hops[0].kind is ErrorKind.AUTH
    assert "not retryable after 1 attempt(s)" in result.hops[0].reason


def test_refusal_hops_to_the_next_provider() -> None:
    refused = ClassifiedError(ErrorKind.CONTENT_REFUSED, False, message="refusal")
    from llmkit.resilience import ContentRefused

    def declines(prompt: str) -> str:
        raise ContentRefused(refused)

    result = FallbackChain([Route("strict", declines), Route("other", str.upper)])("hi")
    assert (result.value, result.route) == ("HI", "other")
    assert result.hops[0].kind is ErrorKind.CONTENT_REFUSED


def test_hop_on_limits_which_errors_move_on(setup) -> None:
    clock, plan, ask = setup
    injector = plan(FaultKind.BAD_REQUEST, None)
    transient_only = {ErrorKind.OVERLOADED, ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR}
    chain = FallbackChain([Route("gpt", retried(ask["gpt"], clock)),
                           Route("claude", retried(ask["claude"], clock))],
                          hop_on=transient_only)
    with pytest.raises(CallFailed) as info:
        chain(PROMPT)
    assert info.value.error.kind is ErrorKind.BAD_REQUEST
    assert len(injector.served) == 1


def test_all_routes_failed_lists_every_hop(setup) -> None:
    clock, plan, ask = setup
    plan(FaultKind.SERVER_ERROR, FaultKind.AUTH, FaultKind.CONNECTION_RESET)
    chain = FallbackChain([Route(name, retried(fn, clock, max_attempts=1))
                           for name, fn in ask.items()], clock=clock)
    with pytest.raises(AllRoutesFailed) as info:
        chain(PROMPT)
    hops = info.value.hops
    assert [(h.route, h.kind) for h in hops] == [
        ("claude", ErrorKind.SERVER_ERROR), ("gpt", ErrorKind.AUTH),
        ("gemini", ErrorKind.CONNECTION)]
    message = str(info.value)
    assert all(name in message for name in ask) and "Retry later" in message
    assert isinstance(info.value.__cause__, CallFailed)


def test_bugs_and_interrupted_streams_never_hop() -> None:
    second = []

    def other(prompt: str) -> str:
        second.append(prompt)
        return prompt

    def buggy(prompt: str) -> str:
        raise TypeError("a bug in the route")

    with pytest.raises(TypeError):
        FallbackChain([Route("a", buggy), Route("b", other)])("x")
    cause = ClassifiedError(ErrorKind.CONNECTION, True)

    def broke(prompt: str) -> str:
        raise StreamInterrupted("Hello, wor", cause)

    with pytest.raises(StreamInterrupted):
        FallbackChain([Route("a", broke), Route("b", other)])("x")
    assert second == []


def test_routes_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FallbackChain([])
    with pytest.raises(ValueError, match="unique"):
        FallbackChain([Route("a", str), Route("a", str)])


# ----------------------------------------------------------------------------- breaker

TRANSIENT = ClassifiedError(ErrorKind.OVERLOADED, True)
BAD = ClassifiedError(ErrorKind.BAD_REQUEST, False)


def test_breaker_opens_cools_down_probes_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("anthropic", failure_threshold=3, cooldown=30, clock=clock)
    for _ in range(2):
        breaker.record_failure(TRANSIENT)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(TRANSIENT)
    assert breaker.state is BreakerState.OPEN
    calls = []
    with pytest.raises(CircuitOpen) as info:
        breaker.call(calls.append, 1)
    assert calls == [] and info.value.retry_in == 30
    clock.advance(20)
    assert breaker.retry_in() == pytest.approx(10)
    clock.advance(10)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the one trial request
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # everyone else waits for the trial's verdict
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    assert [s for _, s in breaker.transitions] == ["open", "half_open", "closed"]


def test_a_failed_probe_reopens_for_a_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10, clock=clock)
    breaker.record_failure(TRANSIENT)
    clock.advance(10)
    with pytest.raises(TimeoutError):
        breaker.call(_raise, TimeoutError())
    assert breaker.state is BreakerState.OPEN and breaker.retry_in() == 10


def test_only_provider_health_counts() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    for _ in range(5):
        breaker.record_failure(BAD)
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    breaker.record_failure(TRANSIENT)
    breaker.record_success()
    breaker.record_failure(TRANSIENT)
    assert breaker.state is BreakerState.CLOSED  # not consecutive


def test_registry_keeps_one_breaker_per_provider() -> None:
    registry = BreakerRegistry(failure_threshold=1, clock=FakeClock())
    assert registry["openai"] is registry.get("openai")
    registry["openai"].record_failure(TRANSIENT)
    assert registry.states() == {"openai": BreakerState.OPEN}
    registry.get("gemini")
    assert registry.states()["gemini"] is BreakerState.CLOSED


def _raise(exc: BaseException) -> None:
    raise exc


# ----------------------------------------------------------------------------- rate limiter


def test_requests_per_minute_burst_then_spacing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock)
    assert [limiter.acquire() for _ in range(60)] == [0.0] * 60
    assert limiter.acquire() == pytest.approx(1.0)
    assert limiter.acquire() == pytest.approx(2.0)  # reservations queue up
    clock.advance(30)
    assert limiter.acquire() == 0.0  # 30 s refilled 30, 2 were owed


def test_tokens_per_minute_and_settling() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock)
    assert limiter.acquire(tokens=600) == 0
    assert limiter.acquire(tokens=600) == pytest.approx(200 / (1000 / 60))
    limiter.adjust(-400)  # the first request used 200, not 600: 200 left again
    assert limiter.acquire(tokens=100) == 0
    assert limiter.acquire(tokens=300) == pytest.approx(200 / (1000 / 60))
    with pytest.raises(ValueError, match="lower max_tokens"):
        limiter.acquire(tokens=5000)


def test_long_run_rate_stays_under_the_limits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=120, tokens_per_minute=20_000, clock=clock)
    rng = random.Random(4)
    sent = []
    for _ in range(600):
        limiter.wait(tokens=rng.randint(50, 400), sleep=clock.sleep)
        sent.append(clock())
        clock.advance(0.05)
    for i, t in enumerate(sent):  # any 60 s window: at most the burst plus a minute's refill
        in_window = sum(1 for u in sent[i:] if u < t + 60)
        assert in_window <= 2 * 120
    minutes = (sent[-1] - sent[0]) / 60
    assert len(sent) <= 120 * (minutes + 1)
    assert clock.sleeps and max(clock.sleeps) < 60


# ----------------------------------------------------------------------------- caller


@pytest.mark.parametrize("engine", [retry_call, retry_with_tenacity])
def test_caller_breaker_skips_a_failing_provider_and_logs_attempts(setup, engine) -> None:
    clock, plan, ask = setup
    injector = plan(*[FaultKind.OVERLOADED] * 3, None, None)
    caller = ResilientCaller(
        [Route("claude", ask["claude"], provider="anthropic"),
         Route("gpt", ask["gpt"], provider="openai")],
        policy=BackoffPolicy(base=0.5, max_attempts=3, deadline=30),
        breakers=BreakerRegistry(failure_threshold=3, cooldown=60, clock=clock),
        limiters={"openai": RateLimiter(requests_per_minute=1, clock=clock)},
        retry=engine, clock=clock, sleep=clock.sleep, rng=random.Random(1),
    )
    first = caller(PROMPT)
    second = caller("And 3 + 3?")
    assert (first.route, second.route) == ("gpt", "gpt")
    assert second.value == "answer to 'And 3 + 3?'"
    assert second.hops[0].kind is ErrorKind.CIRCUIT_OPEN
    assert [s.provider for s in injector.served] == ["anthropic"] * 3 + ["openai"] * 2
    log = [(r.call, r.route, r.attempt, r.outcome) for r in caller.log]
    assert log == [
        (1, "claude", 1, "overloaded"), (1, "claude", 2, "overloaded"),
        (1, "claude", 3, "overloaded"), (1, "gpt", 1, "ok"),
        (2, "claude", 1, "circuit_open"), (2, "gpt", 1, "ok"),
    ]
    waits = [r.wait for r in caller.log]
    assert waits[0] and waits[1] and waits[2:] == [None] * 4
    # openai allows one request a minute: the second call waited for the limiter
    assert caller.log[3].limiter_wait == 0
    assert caller.log[-1].limiter_wait == pytest.approx(60 - 0.2)  # 0.2 s: the first reply
    assert caller.log[-1].start - caller.log[3].start == pytest.approx(60)
    starts = [r.start for r in caller.log]
    assert starts == sorted(starts)
    assert all(r.end >= r.start for r in caller.log)
