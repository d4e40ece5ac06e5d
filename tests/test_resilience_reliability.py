"""llmkit.resilience under fire: 500 calls through ResilientCaller with seeded random faults.

Lesson 8 (08_errors_and_fallbacks). Three official SDK clients (Anthropic -> OpenAI ->
Gemini) talk to a ``FaultInjector`` that answers about half the requests and fails the
rest with 429 (with and without Retry-After), 500, 503, 529, timeouts, connection resets
and 400s. Time is a ``FakeClock``: a request costs 0.3 s, a timeout 10 s, calls arrive
every 2 s, and every wait is recorded instead of slept. The same scenario can be pointed
at a real local replay server with fault injection by swapping ``fake_clients`` for the
kit's clients.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest

from llmkit.resilience import (
    EXPECTED_KIND,
    AllRoutesFailed,
    AttemptRecord,
    BackoffPolicy,
    BreakerRegistry,
    FakeClock,
    Fault,
    FaultInjector,
    FaultPlan,
    RateLimiter,
    ResilientCaller,
    Route,
    Served,
    fake_clients,
)

CALLS = 500
SEED = 8
FAULT_MIX = {
    None: 0.50,
    Fault.RATE_LIMITED_RETRY_AFTER: 0.07,
    Fault.RATE_LIMITED: 0.07,
    Fault.SERVER_ERROR: 0.08,
    Fault.UNAVAILABLE: 0.06,
    Fault.OVERLOADED: 0.06,
    Fault.TIMEOUT: 0.05,
    Fault.CONNECTION_RESET: 0.07,
    Fault.BAD_REQUEST: 0.04,
}
POLICY = BackoffPolicy(base=0.5, cap=8.0, max_attempts=3, deadline=30.0)
LATENCY, TIMEOUT_COST, RETRY_AFTER = 0.3, 10.0, 2.0
ARRIVAL = 2.0  # seconds between calls: open breakers get to cool down


@dataclass
class Run:
    outcomes: Counter = field(default_factory=Counter)
    elapsed: list[float] = field(default_factory=list)  # fake seconds per call
    log: list[AttemptRecord] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    failures: list[AllRoutesFailed] = field(default_factory=list)


def run(seed: int = SEED, calls: int = CALLS) -> Run:
    clock = FakeClock()
    injector = FaultInjector(
        FaultPlan(FAULT_MIX, seed=seed), answer=lambda prompt: f"answer to {prompt!r}",
        retry_after=RETRY_AFTER, clock=clock, latency=LATENCY, timeout_cost=TIMEOUT_COST,
    )
    clients = fake_clients(injector)

    def claude(prompt: str) -> str:
        r = clients.anthropic.messages.create(
            model="claude-haiku-4-5", max_tokens=200,
            messages=[{"role": "user", "content": prompt}])
        return r.content[0].text

    def gpt(prompt: str) -> str:
        r = clients.openai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content

    def gemini(prompt: str) -> str:
        return clients.gemini.models.generate_content(model="gemini-2.5-flash",
                                                      contents=prompt).text

    caller = ResilientCaller(
        [Route("claude", claude, "anthropic"), Route("gpt", gpt, "openai"),
         Route("gemini", gemini, "gemini")],
        policy=POLICY,
        breakers=BreakerRegistry(failure_threshold=5, cooldown=15, clock=clock),
        limiters={"anthropic": RateLimiter(requests_per_minute=20, tokens_per_minute=10_000,
                                           clock=clock)},
        clock=clock, sleep=clock.sleep, rng=random.Random(seed),
    )
    result = Run(log=caller.log, served=injector.served)
    for i in range(calls):
        prompt = f"question {i}"
        clock.advance(ARRIVAL)
        start = clock()
        try:
            answer = caller(prompt, tokens=250)
        except AllRoutesFailed as exc:
            result.outcomes["all routes failed"] += 1
            result.failures.append(exc)
        else:
            assert answer.value == f"answer to {prompt!r}"  # the right answer, not another's
            result.outcomes[f"answered by {answer.route}"] += 1
            result.outcomes[f"after {len(answer.hops)} hops"] += 1
        result.elapsed.append(clock() - start)
    return result


@pytest.fixture(scope="module")
def outcome() -> Run:
    return run()


def by_call_and_route(log: list[AttemptRecord]) -> dict[tuple[int, str], list[AttemptRecord]]:
    groups: dict[tuple[int, str], list[AttemptRecord]] = defaultdict(list)
    for record in log:
        groups[record.call, record.route].append(record)
    return groups


def test_every_call_ends_in_an_answer_or_a_clear_error(outcome: Run) -> None:
    answered = sum(n for k, n in outcome.outcomes.items() if k.startswith("answered"))
    assert answered + outcome.outcomes["all routes failed"] == CALLS
    assert answered > 0.9 * CALLS
    for failure in outcome.failures:
        assert [h.route for h in failure.hops] == ["claude", "gpt", "gemini"]
        assert "all 3 routes failed" in str(failure) and "Retry later" in str(failure)


def test_every_request_is_accounted_for_and_classified_right(outcome: Run) -> None:
    sent = [r for r in outcome.log if r.outcome != "circuit_open"]
    assert len(sent) == len(outcome.served)  # no hidden SDK retries, no lost attempts
    route_of = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
    for record, served in zip(sent, outcome.served, strict=True):
        assert served.provider == route_of[record.route]
        assert served.prompt == f"question {record.call - 1}"
        expected = "ok" if served.fault is None else EXPECTED_KIND[served.fault].value
        assert record.outcome == expected
    seen = Counter(s.fault for s in outcome.served)
    assert set(seen) == set(FAULT_MIX)  # every fault in the mix really happened


def test_retry_budget_per_call(outcome: Run) -> None:
    for (call, route), attempts in by_call_and_route(outcome.log).items():
        assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
        assert len(attempts) <= POLICY.max_attempts
        assert all(a.wait is not None for a in attempts[:-1]) and attempts[-1].wait is None
        spent = attempts[-1].end - attempts[0].start
        longest = LATENCY + TIMEOUT_COST + max(a.limiter_wait for a in attempts)
        assert spent <= POLICY.deadline + longest, (call, route)
    per_call = Counter(r.call for r in outcome.log)
    assert max(per_call.values()) <= 3 * POLICY.max_attempts


def test_no_call_hangs(outcome: Run) -> None:
    # Worst case: every route spends its deadline plus one last (timed-out) attempt.
    limiter_waits = defaultdict(float)
    for r in outcome.log:
        limiter_waits[r.call] += r.limiter_wait
    for call, elapsed in enumerate(outcome.elapsed, start=1):
        bound = 3 * (POLICY.deadline + LATENCY + TIMEOUT_COST) + limiter_waits[call]
        assert elapsed <= bound


def test_bad_requests_are_attempted_once(outcome: Run) -> None:
    groups = by_call_and_route(outcome.log)
    bad = [r for r in outcome.log if r.outcome == "bad_request"]
    assert bad
    for record in bad:
        assert groups[record.call, record.route][-1] is record  # nothing after it
        assert record.wait is None


def test_waits_honour_retry_after_and_the_backoff_cap(outcome: Run) -> None:
    sent = [r for r in outcome.log if r.outcome != "circuit_open"]
    for record, served in zip(sent, outcome.served, strict=True):
        if record.wait is None:
            continue
        if served.fault is Fault.RATE_LIMITED_RETRY_AFTER:
            assert record.wait >= RETRY_AFTER
        else:
            assert 0 <= record.wait <= POLICY.cap


def test_the_protections_all_took_part(outcome: Run) -> None:
    outcomes = Counter(r.outcome for r in outcome.log)
    assert outcomes["circuit_open"] > 0  # breakers opened and were skipped
    assert any(r.limiter_wait > 0 for r in outcome.log)  # the rate limiter held calls back
    assert outcome.outcomes["after 1 hops"] + outcome.outcomes["after 2 hops"] > 0
    retried = [r for r in outcome.log if r.attempt > 1]
    assert retried and any(r.outcome == "ok" for r in retried)


def test_same_seed_same_story() -> None:
    a, b = run(seed=3, calls=60), run(seed=3, calls=60)
    assert a.outcomes == b.outcomes
    assert [(r.outcome, r.wait) for r in a.log] == [(r.outcome, r.wait) for r in b.log]
