"""llmkit.resilience under fire: calls through ResilientCaller while the replay server injects a weighted,
seeded fault mix (``kit.faults.chaos(mix=...)``).

Lesson 8 (08_errors_and_fallbacks). Three official SDK clients (Anthropic -> OpenAI -> Gemini), built
with ``max_retries=0``, talk over loopback to a replay kit; about half the requests are answered and the
rest fail with 429 (with and without Retry-After), 500, 503, 529, latency past the client's timeout and
400s. Waits run on a ``FakeClock`` (computed, not slept); only the timeouts cost wall time. Every request
the server sees is logged with the fault it drew, so each attempt's classification can be checked.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmkit.kit import Kit
from llmkit.replay.faults import Fault
from llmkit.resilience import (
    AllRoutesFailed,
    AttemptRecord,
    BackoffPolicy,
    BreakerRegistry,
    ErrorKind,
    FakeClock,
    RateLimiter,
    ResilientCaller,
    Route,
)

CALLS = 200
SEED = 8
PROMPTS = 12  # distinct questions, asked in turn: each answer must be the one to its own question
FAULT_MIX: dict[str | None, float] = {
    None: 0.51,
    "429-retry-after": 0.08,
    "429": 0.08,
    "500": 0.09,
    "503": 0.07,
    "529": 0.08,
    "latency": 0.03,
    "400": 0.06,
}
EXPECTED = {"429-retry-after": ErrorKind.RATE_LIMITED, "429": ErrorKind.RATE_LIMITED,
            "500": ErrorKind.SERVER_ERROR, "503": ErrorKind.OVERLOADED, "529": ErrorKind.OVERLOADED,
            "latency": ErrorKind.TIMEOUT, "400": ErrorKind.BAD_REQUEST}
POLICY = BackoffPolicy(base=0.5, cap=8.0, max_attempts=3, deadline=30.0)
TIMEOUT_S, LATE_MS = 0.5, 1500.0  # the clients' timeout (roomy on a busy machine); a latency fault outlasts it
ARRIVAL = 2.0  # fake seconds between calls: open breakers get to cool down
ROUTES = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
SCRIPT = '''
from llmkit.replay.scripted import Reply

def reply(req):
    return Reply(text=f"answer to {req.last_user_text()!r}")
'''


def question(i: int) -> str:
    return f"question {i % PROMPTS}"


def sdk_clients(kit: Kit, timeout: float) -> dict[str, Any]:
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    return {
        "anthropic": anthropic.Anthropic(api_key=kit.key("anthropic"), base_url=kit.base_url("anthropic"),
                                         timeout=timeout, max_retries=0),
        "openai": openai.OpenAI(api_key=kit.key("openai"), base_url=kit.base_url("openai"), timeout=timeout,
                                max_retries=0),
        "gemini": genai.Client(api_key=kit.key("gemini"), http_options=types.HttpOptions(
            base_url=kit.base_url("gemini"), timeout=int(timeout * 1000))),
    }


def asker(clients: dict[str, Any], provider: str):
    c = clients[provider]
    if provider == "anthropic":
        return lambda prompt: c.messages.create(model="claude-haiku-4-5", max_tokens=200,
                                                messages=[{"role": "user", "content": prompt}]).content[0].text
    if provider == "openai":
        return lambda prompt: c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]).choices[0].message.content
    return lambda prompt: c.models.generate_content(model="gemini-2.5-flash", contents=prompt).text


@dataclass
class Served:
    """One request the server got: which provider, and the fault it drew (None: answered)."""

    provider: str
    fault: Fault | None


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    """A replay kit whose cassette answers each question, recorded through the SDKs against a script."""
    folder = tmp_path_factory.mktemp("reliability")
    (folder / "script.py").write_text(SCRIPT)
    with Kit("reliability", mode="record", script=str(folder / "script.py"), cassette_dir=folder) as recorder:
        clients = sdk_clients(recorder, timeout=10)
        for i in range(PROMPTS):
            for provider in ROUTES.values():
                assert asker(clients, provider)(question(i)) == f"answer to {question(i)!r}"
        recorder.check_recording()
    with Kit("reliability", mode="replay", speed=0, cassette_dir=folder) as replay:
        yield replay


@dataclass
class Run:
    outcomes: Counter = field(default_factory=Counter)
    elapsed: list[float] = field(default_factory=list)  # fake seconds per call
    wall: list[float] = field(default_factory=list)  # real seconds per call
    log: list[AttemptRecord] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    failures: list[AllRoutesFailed] = field(default_factory=list)


def run(kit: Kit, seed: int = SEED, calls: int = CALLS) -> Run:
    served: list[Served] = []
    lock = threading.Lock()
    take = kit.faults.take

    def logging_take(provider: str, path: str) -> Fault | None:  # the server calls it once per request
        fault = take(provider, path)
        with lock:
            served.append(Served(provider, fault))
        return fault

    kit.faults.clear()
    kit.faults.chaos(seed=seed, mix=FAULT_MIX, latency_ms=LATE_MS)
    kit.faults.take = logging_take  # type: ignore[method-assign]
    clock = FakeClock()
    clients = sdk_clients(kit, TIMEOUT_S)
    caller = ResilientCaller(
        [Route(name, asker(clients, provider), provider) for name, provider in ROUTES.items()],
        policy=POLICY,
        breakers=BreakerRegistry(failure_threshold=5, cooldown=15, clock=clock),
        limiters={"anthropic": RateLimiter(requests_per_minute=20, tokens_per_minute=10_000, clock=clock)},
        clock=clock, sleep=clock.sleep, rng=random.Random(seed),
    )
    result = Run(log=caller.log, served=served)
    try:
        for i in range(calls):
            prompt = question(i)
            clock.advance(ARRIVAL)
            start, t0 = clock(), time.perf_counter()
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
            result.wall.append(time.perf_counter() - t0)
    finally:
        del kit.faults.take  # back to the class's method
        kit.faults.clear()
    return result


@pytest.fixture(scope="module")
def outcome(kit: Kit) -> Run:
    return run(kit)


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
        assert [h.route for h in failure.hops] == list(ROUTES)
        assert "all 3 routes failed" in str(failure) and "Retry later" in str(failure)


def test_every_request_is_accounted_for_and_classified_right(outcome: Run) -> None:
    sent = [r for r in outcome.log if r.outcome != "circuit_open"]
    assert len(sent) == len(outcome.served)  # no hidden SDK retries, no lost attempts
    for record, served in zip(sent, outcome.served, strict=True):
        assert served.provider == ROUTES[record.route]
        expected = "ok" if served.fault is None else EXPECTED[served.fault.kind].value
        assert record.outcome == expected, (record, served)
    seen = Counter(s.fault.kind if s.fault else None for s in outcome.served)
    assert set(seen) == set(FAULT_MIX)  # every fault in the mix really happened


def test_the_mix_is_drawn_with_its_weights(outcome: Run) -> None:
    seen = Counter(s.fault.kind if s.fault else None for s in outcome.served)
    total = sum(seen.values())
    for kind, weight in FAULT_MIX.items():
        assert abs(seen[kind] / total - weight) < 0.06, (kind, seen[kind], total)


def test_retry_budget_per_call(outcome: Run) -> None:
    for (call, route), attempts in by_call_and_route(outcome.log).items():
        assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
        assert len(attempts) <= POLICY.max_attempts
        assert all(a.wait is not None for a in attempts[:-1]) and attempts[-1].wait is None
        spent = attempts[-1].end - attempts[0].start
        assert spent <= POLICY.deadline + max(a.limiter_wait for a in attempts), (call, route)
    per_call = Counter(r.call for r in outcome.log)
    assert max(per_call.values()) <= 3 * POLICY.max_attempts


def test_no_call_hangs(outcome: Run) -> None:
    limiter_waits: defaultdict[int, float] = defaultdict(float)
    for r in outcome.log:
        limiter_waits[r.call] += r.limiter_wait
    for call, elapsed in enumerate(outcome.elapsed, start=1):
        assert elapsed <= 3 * POLICY.deadline + limiter_waits[call]
    # wall time: at most every attempt of every route timed out
    assert max(outcome.wall) < 3 * POLICY.max_attempts * TIMEOUT_S + 5.0


def test_bad_requests_are_attempted_once(outcome: Run) -> None:
    groups = by_call_and_route(outcome.log)
    bad = [r for r in outcome.log if r.outcome == "bad_request"]
    assert bad
    for record in bad:
        assert groups[record.call, record.route][-1] is record  # nothing after it
        assert record.wait is None


def test_waits_honour_retry_after_and_the_backoff_cap(outcome: Run) -> None:
    sent = [r for r in outcome.log if r.outcome != "circuit_open"]
    honoured = 0
    for record, served in zip(sent, outcome.served, strict=True):
        if record.wait is None:
            continue
        if served.fault is not None and served.fault.retry_after is not None and served.provider != "gemini":
            assert record.wait >= served.fault.retry_after  # google-genai hands no headers on
            honoured += 1
        else:
            assert 0 <= record.wait <= POLICY.cap
    assert honoured


def test_the_protections_all_took_part(outcome: Run) -> None:
    outcomes = Counter(r.outcome for r in outcome.log)
    assert outcomes["circuit_open"] > 0  # breakers opened and were skipped
    assert any(r.limiter_wait > 0 for r in outcome.log)  # the rate limiter held calls back
    assert outcome.outcomes["after 1 hops"] + outcome.outcomes["after 2 hops"] > 0
    retried = [r for r in outcome.log if r.attempt > 1]
    assert retried and any(r.outcome == "ok" for r in retried)


def test_same_seed_same_story(kit: Kit) -> None:
    a, b = run(kit, seed=3, calls=40), run(kit, seed=3, calls=40)
    assert a.outcomes == b.outcomes
    assert [(r.outcome, r.wait) for r in a.log] == [(r.outcome, r.wait) for r in b.log]


def test_a_mix_needs_known_kinds_and_a_positive_weight(kit: Kit) -> None:
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown chaos kind 'teapot'"):
        kit.faults.chaos(seed=1, mix={None: 1.0, "teapot": 1.0})
    with pytest.raises(ConfigError, match="positive sum"):
        kit.faults.chaos(seed=1, mix={None: 0.0, "529": 0.0})
    kit.faults.chaos(seed=1, mix={"529": 1.0})  # every request fails
    try:
        assert all(kit.faults.take("openai", "/v1/chat/completions").status == 529 for _ in range(20))
    finally:
        kit.faults.clear()
    assert kit.faults.take("openai", "/v1/chat/completions") is None  # clear() ends the chaos
