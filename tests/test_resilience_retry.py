"""llmkit.resilience: backoff, the hand-written retry loop and its tenacity twin (lesson 8).

Waits are computed on a fake clock, never slept.
"""

from __future__ import annotations

import random
import statistics

import pytest

from llmkit.errors import ConfigError
from llmkit.resilience import (
    EXPECTED_KIND,
    BackoffPolicy,
    CallFailed,
    ErrorKind,
    FakeClock,
    assert_sdk_retries_off,
    compute_wait,
    retry_call,
    retry_with_tenacity,
    sdk_retries,
    tenacity_retrying,
)
from llmkit.testing import FaultInjector, FaultKind, fake_clients

ENGINES = [retry_call, retry_with_tenacity]
PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def ask_openai(clients) -> str:
    r = clients.openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    return r.choices[0].message.content


def ask_anthropic(clients) -> str:
    r = clients.anthropic.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                          messages=PROMPT)
    return r.content[0].text


def ask_gemini(clients) -> str:
    return clients.gemini.models.generate_content(model="gemini-2.5-flash", contents="2+2?").text


ASK = {"openai": ask_openai, "anthropic": ask_anthropic, "gemini": ask_gemini}


@pytest.fixture(scope="module")
def injector() -> FaultInjector:
    return FaultInjector()


@pytest.fixture(scope="module")
def clients(injector: FaultInjector):
    return fake_clients(injector)


@pytest.fixture
def faults(injector: FaultInjector):
    """Set the faults the next requests get; returns the injector with a fresh log."""

    injector.answer = "4"
    return injector.reset


# ----------------------------------------------------------------------------- compute_wait


def test_full_jitter_stays_under_the_exponential_ceiling_and_uses_all_of_it() -> None:
    policy = BackoffPolicy(base=0.5, cap=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [compute_wait(attempt, None, policy, rng) for _ in range(2000)]
        assert 0 <= min(waits) and max(waits) <= ceiling
        assert max(waits) > 0.95 * ceiling and min(waits) < 0.05 * ceiling
        assert statistics.mean(waits) == pytest.approx(ceiling / 2, rel=0.08)


def test_equal_and_no_jitter() -> None:
    rng = random.Random(2)
    equal = BackoffPolicy(base=1, cap=100, jitter="equal")
    waits = [compute_wait(3, None, equal, rng) for _ in range(500)]
    assert 2.0 <= min(waits) and max(waits) <= 4.0
    assert compute_wait(3, None, BackoffPolicy(base=1, jitter="none"), rng) == 4.0


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    policy = BackoffPolicy(base=0.5, cap=2.0)
    rng = random.Random(3)
    assert all(compute_wait(1, 7.0, policy, rng) == 7.0 for _ in range(100))
    # a small Retry-After never shortens the backoff below its draw
    waits = [compute_wait(5, 0.1, policy, rng) for _ in range(500)]
    assert min(waits) >= 0.1 and max(waits) > 1.5


def test_same_seed_same_waits() -> None:
    policy = BackoffPolicy()
    a = [compute_wait(n, None, policy, random.Random(7)) for n in range(1, 6)]
    b = [compute_wait(n, None, policy, random.Random(7)) for n in range(1, 6)]
    assert a == b


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="first try"):
        BackoffPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter="some")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- retry loops


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize(
    "fault",
    [FaultKind.RATE_LIMITED, FaultKind.RATE_LIMITED_RETRY_AFTER, FaultKind.SERVER_ERROR, FaultKind.UNAVAILABLE,
     FaultKind.OVERLOADED, FaultKind.TIMEOUT, FaultKind.CONNECTION_RESET],
)
def test_transient_faults_are_retried_then_succeed(engine, provider, fault, clients,
                                                   faults) -> None:
    injector = faults(fault, fault)
    clock = FakeClock()
    policy = BackoffPolicy(base=1.0, cap=8.0, max_attempts=4, deadline=60)
    attempts = []
    answer = engine(lambda: ASK[provider](clients), policy=policy, clock=clock,
                    sleep=clock.sleep, rng=random.Random(0), on_attempt=attempts.append)
    assert answer == "4"
    assert [s.fault for s in injector.served] == [fault, fault, None]
    assert [a.outcome for a in attempts] == [EXPECTED_KIND[fault].value] * 2 + ["ok"]
    assert clock.sleeps == [a.wait for a in attempts[:2]]
    expected = [compute_wait(n, None, policy, r) for r in [random.Random(0)] for n in (1, 2)]
    if fault is FaultKind.RATE_LIMITED_RETRY_AFTER:
        expected = [max(w, injector.retry_after) for w in expected]
    assert clock.sleeps == pytest.approx(expected)


FINAL = [(p, f) for p in ("openai", "anthropic", "gemini")
         for f in (FaultKind.BAD_REQUEST, FaultKind.AUTH, FaultKind.QUOTA)
         if (p, f) != ("gemini", FaultKind.QUOTA)]  # Gemini has no separate quota error


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("provider", "fault"), FINAL, ids=[f"{p}-{f.value}" for p, f in FINAL])
def test_non_retryable_faults_are_tried_once(engine, provider, fault, clients, faults) -> None:
    injector = faults(fault, None)
    clock = FakeClock()
    with pytest.raises(CallFailed) as info:
        engine(lambda: ASK[provider](clients), clock=clock, sleep=clock.sleep)
    assert len(injector.served) == 1
    assert clock.sleeps == []
    assert info.value.reason == "not retryable" and info.value.attempts == 1
    assert info.value.error.kind is EXPECTED_KIND[fault]
    assert info.value.__cause__ is info.value.error.original


@pytest.mark.parametrize("engine", ENGINES)
def test_attempts_run_out(engine, clients, faults) -> None:
    injector = faults(*[FaultKind.OVERLOADED] * 10)
    clock = FakeClock()
    policy = BackoffPolicy(max_attempts=3, deadline=None)
    with pytest.raises(CallFailed) as info:
        engine(lambda: ask_anthropic(clients), policy=policy, clock=clock, sleep=clock.sleep)
    assert len(injector.served) == 3 and len(clock.sleeps) == 2
    assert info.value.reason == "attempts exhausted"
    assert info.value.error.kind is ErrorKind.OVERLOADED
    assert "gave up after 3 attempts" in str(info.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_deadline_stops_before_a_wait_that_would_pass_it(engine, clients, faults) -> None:
    """Each timeout costs 10 s of client waiting; the deadline is 25 s."""
    injector = faults(*[FaultKind.TIMEOUT] * 10)
    clock = FakeClock()
    injector.clock = clock
    try:
        policy = BackoffPolicy(base=1, cap=4, max_attempts=10, deadline=25)
        start = clock()
        with pytest.raises(CallFailed) as info:
            engine(lambda: ask_openai(clients), policy=policy, clock=clock, sleep=clock.sleep,
                   rng=random.Random(5))
    finally:
        injector.clock = None
    assert info.value.reason == "deadline"
    assert info.value.error.kind is ErrorKind.TIMEOUT
    # never slept past the deadline; gave up at most one attempt (10 s) after it
    assert sum(clock.sleeps) + 10 * (len(clock.sleeps)) <= 25
    assert clock() - start <= 25 + 10
    assert len(injector.served) == len(clock.sleeps) + 1 >= 2


@pytest.mark.parametrize("engine", ENGINES)
def test_a_long_retry_after_past_the_deadline_gives_up_at_once(engine, clients, faults) -> None:
    injector = faults(FaultKind.RATE_LIMITED_RETRY_AFTER, None)
    injector.retry_after = 120
    clock = FakeClock()
    try:
        with pytest.raises(CallFailed) as info:
            engine(lambda: ask_anthropic(clients), policy=BackoffPolicy(deadline=30),
                   clock=clock, sleep=clock.sleep)
    finally:
        injector.retry_after = 2.0
    assert clock.sleeps == [] and len(injector.served) == 1
    assert info.value.reason == "deadline" and info.value.error.retry_after == 120


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bug_is_not_retried_nor_wrapped(engine) -> None:
    calls = []

    def buggy() -> str:
        calls.append(1)
        return {}["choices"]

    clock = FakeClock()
    with pytest.raises(KeyError):
        engine(buggy, clock=clock, sleep=clock.sleep)
    assert calls == [1] and clock.sleeps == []


def test_both_engines_wait_exactly_the_same(clients, faults) -> None:
    plan = [FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR, FaultKind.RATE_LIMITED_RETRY_AFTER,
            FaultKind.CONNECTION_RESET, None]
    logs = []
    for engine in ENGINES:
        faults(*plan)
        clock = FakeClock()
        attempts = []
        engine(lambda: ask_gemini(clients), policy=BackoffPolicy(max_attempts=5), clock=clock,
               sleep=clock.sleep, rng=random.Random(11), on_attempt=attempts.append)
        logs.append([(a.number, a.outcome, a.wait) for a in attempts])
    assert logs[0] == logs[1]
    assert [o for _, o, _ in logs[0]] == ["rate_limited", "server_error", "rate_limited",
                                          "connection_lost", "ok"]


def test_tenacity_retrying_as_a_decorator() -> None:
    clock = FakeClock()
    outcomes = iter([ConnectionResetError(), TimeoutError(), "done"])

    @tenacity_retrying(BackoffPolicy(base=2, jitter="none"), clock=clock, sleep=clock.sleep).wraps
    def flaky() -> str:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert flaky() == "done"
    assert clock.sleeps == [2.0, 4.0]


# ----------------------------------------------------------------------------- SDK retries


def test_sdk_retries_multiply_ours() -> None:
    """With the SDK's default 2 retries, 3 attempts here become 9 requests."""
    # the SDK really sleeps: Retry-After keeps its waits to a millisecond
    injector = FaultInjector([FaultKind.RATE_LIMITED_RETRY_AFTER] * 20, retry_after=0.001)
    chatty = fake_clients(injector, max_retries=2)
    clock = FakeClock()
    with pytest.raises(CallFailed):
        retry_call(lambda: ask_openai(chatty), policy=BackoffPolicy(max_attempts=3),
                   clock=clock, sleep=clock.sleep)
    assert len(injector.served) == 9
    assert len(clock.sleeps) == 2


def test_sdk_retry_check() -> None:
    quiet = fake_clients(FaultInjector())
    assert [sdk_retries(c) for c in (quiet.openai, quiet.anthropic, quiet.gemini)] == [0, 0, 0]
    assert_sdk_retries_off(quiet.openai, quiet.anthropic, quiet.gemini)
    chatty = fake_clients(FaultInjector(), max_retries=2)
    with pytest.raises(ConfigError, match="max_retries=0"):
        assert_sdk_retries_off(chatty.anthropic)
    from google import genai
    from google.genai import types

    retrying = genai.Client(api_key="test", http_options=types.HttpOptions(
        base_url="http://fake.invalid", retry_options=types.HttpRetryOptions(attempts=3)))
    assert sdk_retries(retrying) == 2
    with pytest.raises(ConfigError, match="HttpRetryOptions"):
        assert_sdk_retries_off(retrying)


# --- one policy for every retry loop ------------------------------------------------------------------------
@pytest.mark.parametrize(("package", "other"), [("llmkit.wire", "llmkit.resilience"),
                                                ("llmkit.resilience", "llmkit.wire"),
                                                ("llmkit.wire.transport", "llmkit.resilience")])
def test_wire_and_resilience_do_not_import_each_other(package, other):
    import subprocess
    import sys

    code = f"import sys, {package}; print(sorted(m for m in sys.modules if m.startswith({other!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {package} imported {out.strip()}"


def test_the_async_loop_waits_like_retry_call_and_gives_up_alike(clients, faults):
    import asyncio

    from llmkit.resilience import aretry_call

    policy = BackoffPolicy(base=0.5, cap=8.0, max_attempts=3, deadline=None)

    def run_sync() -> tuple[list[float], str]:
        faults(FaultKind.UNAVAILABLE, FaultKind.UNAVAILABLE, FaultKind.UNAVAILABLE)
        clock = FakeClock()
        with pytest.raises(CallFailed) as info:
            retry_call(lambda: ask_openai(clients), policy=policy, clock=clock, sleep=clock.sleep,
                       rng=random.Random(3))
        return clock.sleeps, info.value.reason

    async def run_async() -> tuple[list[float], str]:
        faults(FaultKind.UNAVAILABLE, FaultKind.UNAVAILABLE, FaultKind.UNAVAILABLE)
        clock = FakeClock()

        async def sleep(seconds: float) -> None:
            clock.sleep(seconds)

        async def call() -> str:
            return ask_openai(clients)

        with pytest.raises(CallFailed) as info:
            await aretry_call(call, policy=policy, clock=clock, sleep=sleep, rng=random.Random(3))
        return clock.sleeps, info.value.reason

    sync_waits, sync_reason = run_sync()
    async_waits, async_reason = asyncio.run(run_async())
    assert len(sync_waits) == 2 and sync_reason == "attempts exhausted"
    assert async_waits == sync_waits and async_reason == sync_reason


@pytest.mark.parametrize("engine", ENGINES)
def test_a_retry_after_longer_than_the_policy_allows_is_not_waited_for(engine, clients, faults):
    injector = faults(FaultKind.RATE_LIMITED_RETRY_AFTER, FaultKind.RATE_LIMITED_RETRY_AFTER)
    clock = FakeClock()
    policy = BackoffPolicy(max_attempts=5, deadline=None, max_retry_after=injector.retry_after / 2)
    with pytest.raises(CallFailed) as info:
        engine(lambda: ask_openai(clients), policy=policy, clock=clock, sleep=clock.sleep)
    assert info.value.reason == "retry-after too long" and info.value.attempts == 1 and clock.sleeps == []
