"""llmkit.resilience: the error taxonomy, driven through the official SDKs (lesson 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache

import httpx
import httpx2
import pytest
from conftest import require_conformance

import llmkit.resilience as resilience
from llmkit.resilience import (
    EXPECTED_KIND,
    CallFailed,
    CircuitOpen,
    ClassifiedError,
    ContentRefused,
    ErrorKind,
    classify,
    error_response,
    parse_retry_after,
    raise_if_refused,
    refusal,
)
from llmkit.testing import FaultInjector, FaultKind, fake_clients

PROVIDERS = ("openai", "anthropic", "gemini")
PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def ask(clients, provider: str) -> str:
    """One non-streamed question through the official SDK of ``provider``."""
    if provider == "openai":
        r = clients.openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        return r.choices[0].message.content
    if provider == "anthropic":
        r = clients.anthropic.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=PROMPT
        )
        return r.content[0].text
    return clients.gemini.models.generate_content(
        model="gemini-2.5-flash", contents="What is 2 + 2?"
    ).text


INJECTOR = FaultInjector()


@cache
def shared_clients():
    return fake_clients(INJECTOR)  # built on first use: collecting tests imports no SDK


def sdk_error(provider: str, fault: FaultKind, **settings) -> BaseException:
    injector = INJECTOR.reset(fault)
    injector.retry_after = settings.get("retry_after", 2.0)
    with pytest.raises(Exception) as info:
        ask(shared_clients(), provider)
    assert len(injector.served) == 1, "the SDK retried on its own"
    return info.value


CASES = [
    (provider, fault)
    for provider in PROVIDERS
    for fault in FaultKind
    if not (provider == "gemini" and fault is FaultKind.QUOTA)
]


@pytest.mark.parametrize(("provider", "fault"), CASES, ids=[f"{p}-{f.value}" for p, f in CASES])
def test_every_sdk_exception_gets_its_kind(provider: str, fault: FaultKind) -> None:
    exc = sdk_error(provider, fault)
    error = classify(exc)
    assert error.kind is EXPECTED_KIND[fault]
    assert error.retryable is (error.kind in resilience.TRANSIENT_KINDS)
    assert error.provider == provider
    assert error.original is exc
    if fault not in (FaultKind.TIMEOUT, FaultKind.CONNECTION_RESET):
        assert error.status == error_response(provider, fault).status
        assert error.message  # the provider's own words are kept


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_is_read_the_providers_way(provider: str) -> None:
    delayed = sdk_error(provider, FaultKind.RATE_LIMITED_RETRY_AFTER, retry_after=3.5)
    assert classify(delayed).retry_after == pytest.approx(3.5)
    plain = classify(sdk_error(provider, FaultKind.RATE_LIMITED))
    assert plain.retry_after is None


def test_success_passes_through_the_fakes() -> None:
    clients = fake_clients(FaultInjector([], answer=lambda prompt: f"echo: {prompt}"))
    for provider in PROVIDERS:
        assert ask(clients, provider) == "echo: What is 2 + 2?"


def test_insufficient_quota_is_a_429_that_is_not_retried() -> None:
    error = classify(sdk_error("openai", FaultKind.QUOTA))
    assert error.status == 429
    assert error.kind is ErrorKind.QUOTA_EXHAUSTED
    assert not error.retryable
    assert "billing" in error.advice


# ----------------------------------------------------------------------------- raw HTTP


def test_raw_tuple_with_bytes_body_and_header_casing() -> None:
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                  "message": "Overloaded"}}).encode()
    error = classify((529, {"Retry-After": "7"}, body))
    assert (error.kind, error.retryable, error.retry_after) == (ErrorKind.OVERLOADED, True, 7.0)
    assert error.provider == "anthropic"


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retry_after_as_http_date_uses_the_given_wall_clock() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=lambda: now) == 30.0
    assert parse_retry_after({"retry-after": later}, now=lambda: now + 60) == 0.0


def test_x_should_retry_overrides_the_status() -> None:
    assert not classify((500, {"x-should-retry": "false"}, b"{}")).retryable
    forced = classify((400, {"x-should-retry": "true"}, b"{}"))
    assert forced.kind is ErrorKind.BAD_REQUEST and forced.retryable


def test_httpx_and_httpx2_responses_and_exceptions() -> None:
    for http in (httpx, httpx2):
        request = http.Request("POST", "http://fake.invalid/v1/chat/completions")
        r = error_response("openai", FaultKind.RATE_LIMITED_RETRY_AFTER, retry_after=4)
        response = http.Response(r.status, headers=r.headers, content=r.content, request=request)
        from_response = classify(response)
        assert (from_response.kind, from_response.retry_after) == (ErrorKind.RATE_LIMITED, 4.0)
        assert from_response.provider == "openai"
        status_error = http.HTTPStatusError("429", request=request, response=response)
        assert classify(status_error).kind is ErrorKind.RATE_LIMITED
        assert classify(http.ConnectError("refused", request=request)).kind is ErrorKind.CONNECTION
        assert classify(http.RemoteProtocolError("eof", request=request)).retryable
        assert classify(http.PoolTimeout("pool", request=request)).kind is ErrorKind.TIMEOUT


def test_builtin_and_unknown_errors() -> None:
    assert classify(TimeoutError()).kind is ErrorKind.TIMEOUT
    assert classify(ConnectionResetError()).kind is ErrorKind.CONNECTION
    bug = classify(KeyError("choices"))
    assert bug.kind is ErrorKind.UNKNOWN and not bug.retryable


def test_anthropic_error_event_inside_a_200_stream() -> None:
    """An overloaded ``event: error`` mid-stream has status 200: the body decides."""
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = classify((200, {}, body))
    assert error.kind is ErrorKind.OVERLOADED and error.retryable and error.status is None


def test_sdk_errors_without_status_never_break_classify() -> None:
    import openai

    request = httpx2.Request("POST", "http://fake.invalid/v1/chat/completions")
    mid_stream = classify(openai.APIError("An error occurred during streaming", request,
                                          body=None))
    assert mid_stream.kind is ErrorKind.SERVER_ERROR and mid_stream.retryable
    odd_body = classify(openai.APIError("boom", request, body="not json"))
    assert odd_body.kind is ErrorKind.SERVER_ERROR and odd_body.message == "not json"
    invalid = openai.APIResponseValidationError(httpx2.Response(200, request=request), {})
    assert not classify(invalid).retryable


def test_llmkit_provider_error_event() -> None:
    from llmkit.events import ProviderError

    event = ProviderError(status=None, type="rate_limit_error", message="slow down")
    assert classify(event).kind is ErrorKind.RATE_LIMITED
    assert classify(ProviderError(400, "invalid_request_error", "bad")).retryable is False


def test_a_success_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="refusal"):
        classify((200, {}, {"id": "x", "choices": []}))


def test_own_errors_classify_to_their_cause() -> None:
    inner = ClassifiedError(ErrorKind.SERVER_ERROR, True, provider="openai", status=500)
    assert classify(CallFailed(inner, attempts=3, reason="attempts exhausted")) is inner
    opened = classify(CircuitOpen("openai", 12.0))
    assert opened.kind is ErrorKind.CIRCUIT_OPEN and not opened.retryable
    assert opened.retry_after == 12.0


def test_messages_say_what_to_do_next() -> None:
    auth = classify(sdk_error("anthropic", FaultKind.AUTH))
    assert "ANTHROPIC_API_KEY" in str(auth) and "replay mode" in str(auth)
    bad = str(classify(sdk_error("openai", FaultKind.BAD_REQUEST)))
    assert "HTTP 400" in bad and "will not help" in bad


# ----------------------------------------------------------------------------- refusals


def test_refusal_from_finish_reasons() -> None:
    for reason in ("content_filter", "refusal", "SAFETY", "PROHIBITED_CONTENT"):
        found = refusal(reason)
        assert found is not None and found.kind is ErrorKind.CONTENT_REFUSED
    for reason in ("stop", "end_turn", "STOP", "length", "max_tokens"):
        assert refusal(reason) is None


def test_refusal_from_sdk_objects() -> None:
    from anthropic.types import Message
    from google.genai import types
    from openai.types.chat import ChatCompletion

    chat = ChatCompletion.model_validate({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "content_filter",
                     "message": {"role": "assistant", "content": None}}],
    })
    assert refusal(chat).provider == "openai"
    message = Message.model_validate({
        "id": "m", "type": "message", "role": "assistant", "model": "m", "content": [],
        "stop_reason": "refusal", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    })
    assert refusal(message).provider == "anthropic"
    blocked = types.GenerateContentResponse.model_validate(
        {"promptFeedback": {"blockReason": "SAFETY"}}
    )
    assert "SAFETY" in refusal(blocked).message
    fine = types.GenerateContentResponse.model_validate(
        {"candidates": [{"content": {"parts": [{"text": "4"}]}, "finishReason": "STOP"}]}
    )
    assert refusal(fine) is None
    with pytest.raises(ContentRefused) as info:
        raise_if_refused(message)
    assert classify(info.value).kind is ErrorKind.CONTENT_REFUSED
    assert raise_if_refused(fine) is fine


def test_refusal_from_llmkit_finish_event() -> None:
    from llmkit.events import Finish

    assert refusal(Finish("content_filter", "SAFETY")) is not None
    assert refusal(Finish("stop", "end_turn")) is None


# ----------------------------------------------------------------------------- real traffic

ERROR_FILES = {
    "anthropic-error-400-invalid-request-effort.json": ErrorKind.BAD_REQUEST,
    "anthropic-error-404-count-tokens.json": ErrorKind.BAD_REQUEST,
    "gemini-error-400-api-key-invalid-on-sse.json": ErrorKind.AUTH,
    "openai-error-400-unsupported-value-role.json": ErrorKind.BAD_REQUEST,
    "openai-error-responses-401-invalid-api-key-on-stream.json": ErrorKind.AUTH,
}


def recorded(name: str) -> dict:
    path = require_conformance() / name
    if not path.exists():
        pytest.skip(f"{name} is not in the corpus")
    return json.loads(path.read_text())


def serve(exchange: dict):
    """A handler that answers any request with the recorded response."""
    response = exchange["response"]
    headers = {k: v for k, v in response["headers"].items()
               if k not in ("content-length", "content-encoding", "transfer-encoding")}

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(response["status"], headers=headers,
                               content=response["body_text"].encode())

    return handler


@pytest.mark.parametrize("name", sorted(ERROR_FILES))
def test_recorded_errors_through_the_sdks(name: str) -> None:
    exchange = recorded(name)
    clients = fake_clients(serve(exchange))
    body = exchange["request"]["body"]
    with pytest.raises(Exception) as info:
        if exchange["provider"] == "openai" and exchange["request"]["url"].endswith("/responses"):
            list(clients.openai.responses.create(**body))
        elif exchange["provider"] == "openai":
            clients.openai.chat.completions.create(**body)
        elif exchange["provider"] == "anthropic" and "count_tokens" in exchange["request"]["url"]:
            clients.anthropic.messages.count_tokens(model=body["model"], messages=body["messages"])
        elif exchange["provider"] == "anthropic":
            clients.anthropic.messages.create(
                model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"]
            )
        else:
            list(clients.gemini.models.generate_content_stream(model="m", contents="hi"))
    error = classify(info.value)
    assert error.kind is ERROR_FILES[name]
    assert error.provider == exchange["provider"]
    assert error.status == exchange["response"]["status"]
    raw = classify((exchange["response"]["status"], exchange["response"]["headers"],
                    exchange["response"]["body_text"]))
    assert (raw.kind, raw.provider) == (error.kind, error.provider)


def test_recorded_refusals() -> None:
    openai_refusal = recorded("openai-chat-gpt4o-json-schema-refusal.json")
    chat = fake_clients(serve(openai_refusal)).openai.chat.completions.create(
        model="gpt-4o", messages=openai_refusal["request"]["body"]["messages"]
    )
    found = refusal(chat)
    assert found is not None and "can't assist" in found.message
    assert refusal(json.loads(openai_refusal["response"]["body_text"])) is not None

    gemini_safety = recorded("gemini-chat-finish-safety-blocked.json")
    response = fake_clients(serve(gemini_safety)).gemini.models.generate_content(
        model="gemini-1.5-flash", contents="hi"
    )
    assert refusal(response).message.startswith("SAFETY")
    plain = recorded("gemini-chat-flash25-gzip.json")
    assert refusal(json.loads(plain["response"]["body_text"])) is None


# ----------------------------------------------------------------------------- surface


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name for name in vars(resilience)
        if not name.startswith("_") and not isinstance(getattr(resilience, name), type(sys))
    }
    public -= {"annotations"}
    assert set(resilience.__all__) == public
    assert len(resilience.__all__) == len(set(resilience.__all__))


def test_import_loads_no_sdk_and_no_http_library() -> None:
    code = (
        "import sys, llmkit.resilience; "
        "print([m for m in ('openai', 'anthropic', 'google.genai', 'httpx', 'httpx2') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
