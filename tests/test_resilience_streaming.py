"""llmkit.resilience: streams retry only before their first text (lesson 8)."""

from __future__ import annotations

import random

import pytest

from llmkit.events import ProviderError, TextDelta
from llmkit.resilience import (
    BackoffPolicy,
    CallFailed,
    ErrorKind,
    FakeClock,
    StreamInterrupted,
    classify,
    resilient_stream,
    text_of,
)
from llmkit.testing import FaultInjector, FaultKind, MidStream, fake_clients, split_text

ANSWER = "Two plus two is four, as everyone knows."
PROVIDERS = ["openai", "anthropic", "gemini"]


@pytest.fixture(scope="module")
def injector() -> FaultInjector:
    return FaultInjector(answer=ANSWER)


@pytest.fixture(scope="module")
def clients(injector):
    return fake_clients(injector)


@pytest.fixture
def opener(injector, clients):
    """``opener(provider, *faults)``: a function that opens a new SDK stream per call."""

    def make(provider: str, *faults):
        injector.reset(*faults)
        messages = [{"role": "user", "content": "What is 2 + 2?"}]
        if provider == "openai":
            return lambda: clients.openai.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True)
        if provider == "anthropic":
            return lambda: clients.anthropic.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=messages, stream=True)
        return lambda: clients.gemini.models.generate_content_stream(
            model="gemini-2.5-flash", contents="What is 2 + 2?")

    return make


def consume(stream):
    """Read a stream like a UI would; return (items, text shown, error)."""
    items, shown = [], []
    try:
        for item in stream:
            items.append(item)
            shown.append(text_of(item) or "")
    except Exception as exc:  # the test inspects it
        return items, "".join(shown), exc
    return items, "".join(shown), None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_failures_before_the_first_text_are_retried_without_duplicates(provider, opener,
                                                                       injector) -> None:
    open_stream = opener(provider, FaultKind.OVERLOADED, MidStream(0), FaultKind.RATE_LIMITED, None)
    clock = FakeClock()
    attempts = []
    items, shown, error = consume(resilient_stream(
        open_stream, clock=clock, sleep=clock.sleep, rng=random.Random(0),
        policy=BackoffPolicy(max_attempts=5), on_attempt=attempts.append))
    assert error is None
    assert shown == ANSWER  # every chunk exactly once
    assert len(injector.served) == 4 and all(s.stream for s in injector.served)
    assert [a.outcome for a in attempts] == [
        "overloaded", "connection_lost", "rate_limited", "ok"]
    assert clock.sleeps == [a.wait for a in attempts[:3]]
    if provider == "anthropic":  # the held-back events of the broken attempt are not repeated
        types = [e.type for e in items]
        assert types.count("message_start") == 1 and types.count("content_block_start") == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_break_after_text_raises_with_the_partial_text(provider, opener, injector) -> None:
    open_stream = opener(provider, MidStream(3), None)
    clock = FakeClock()
    _, shown, error = consume(resilient_stream(open_stream, clock=clock, sleep=clock.sleep))
    assert isinstance(error, StreamInterrupted)
    assert shown == "".join(split_text(ANSWER)[:3]) == error.partial_text
    assert error.cause.kind is ErrorKind.CONNECTION
    assert len(injector.served) == 1 and clock.sleeps == []  # never restarted
    assert not classify(error).retryable  # nor will anything above retry it
    assert "continue from here" in str(error)


def test_anthropic_error_event_mid_stream(opener, injector) -> None:
    open_stream = opener("anthropic", MidStream(0, FaultKind.OVERLOADED), MidStream(2, FaultKind.OVERLOADED))
    clock = FakeClock()
    _, shown, error = consume(resilient_stream(open_stream, clock=clock, sleep=clock.sleep))
    # the first error event came before any text: retried; the second after two chunks
    assert len(injector.served) == 2 and len(clock.sleeps) == 1
    assert isinstance(error, StreamInterrupted)
    assert error.cause.kind is ErrorKind.OVERLOADED
    assert error.partial_text == shown == "".join(split_text(ANSWER)[:2])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_non_retryable_open_fails_once(provider, opener, injector) -> None:
    open_stream = opener(provider, FaultKind.BAD_REQUEST, None)
    clock = FakeClock()
    items, _, error = consume(resilient_stream(open_stream, clock=clock, sleep=clock.sleep))
    assert isinstance(error, CallFailed) and error.error.kind is ErrorKind.BAD_REQUEST
    assert items == [] and len(injector.served) == 1


def test_retries_run_out_before_any_text(opener, injector) -> None:
    open_stream = opener("openai", *[FaultKind.SERVER_ERROR] * 5)
    clock = FakeClock()
    items, _, error = consume(resilient_stream(
        open_stream, policy=BackoffPolicy(max_attempts=3), clock=clock, sleep=clock.sleep))
    assert isinstance(error, CallFailed) and error.reason == "attempts exhausted"
    assert items == [] and len(injector.served) == 3


class FakeStream:
    def __init__(self, items):
        self.items = items
        self.closed = False

    def __iter__(self):
        for item in self.items:
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True


def test_streams_are_closed_on_retry_and_when_the_reader_stops() -> None:
    opened = []
    plans = iter([[TextDelta("")] * 2 + [ConnectionResetError()],
                  [TextDelta("a"), TextDelta("b"), TextDelta("c")]])

    def open_stream():
        opened.append(FakeStream(next(plans)))
        return opened[-1]

    clock = FakeClock()
    stream = resilient_stream(open_stream, clock=clock, sleep=clock.sleep)
    assert next(stream).text == "a"
    stream.close()  # the reader stops early
    assert [s.closed for s in opened] == [True, True]


def test_llmkit_error_events_count_as_failures() -> None:
    plans = iter([
        [ProviderError(None, "rate_limit_error", "slow down")],
        [TextDelta("Hel"), TextDelta("lo"), ProviderError(None, "api_error", "boom")],
    ])
    clock = FakeClock()
    _, shown, error = consume(resilient_stream(lambda: FakeStream(next(plans)),
                                               clock=clock, sleep=clock.sleep))
    assert len(clock.sleeps) == 1
    assert isinstance(error, StreamInterrupted) and error.partial_text == shown == "Hello"
    assert error.cause.kind is ErrorKind.SERVER_ERROR


def test_a_stream_without_text_ends_normally() -> None:
    items = ["", ""]  # empty strings carry no text
    clock = FakeClock()
    out = list(resilient_stream(lambda: FakeStream(items), clock=clock, sleep=clock.sleep))
    assert out == ["", ""] and clock.sleeps == []
