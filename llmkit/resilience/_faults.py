"""Injected faults in each provider's real wire format, and a fake clock.

Introduced in lesson 8 (08_errors_and_fallbacks). The lesson, the tests and the replay
server's fault injection share these: ``error_response(provider, fault)`` is the status,
headers and JSON body the provider really sends for that fault; ``FaultInjector`` is an
``httpx``/``httpx2`` ``MockTransport`` handler that answers OpenAI chat, Anthropic
messages and Gemini generateContent requests (streamed or not) and injects a fault per
request from a plan::

    injector = FaultInjector(FaultPlan({None: 0.6, Fault.OVERLOADED: 0.4}, seed=1))
    http = httpx2.Client(transport=httpx2.MockTransport(injector))
    client = anthropic.Anthropic(api_key="test", base_url="http://fake", http_client=http,
                                 max_retries=0)

``FakeClock`` stands in for ``time.monotonic`` and ``time.sleep``: waits are recorded,
not slept. Nothing here imports an SDK or an HTTP library until a request is served.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ._taxonomy import ErrorKind

PROVIDERS = ("openai", "anthropic", "gemini")


class Fault(StrEnum):
    """Faults a provider (or the network between) can throw at a request."""

    RATE_LIMITED = "429"
    RATE_LIMITED_RETRY_AFTER = "429+retry-after"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    OVERLOADED = "529"  # Anthropic's status; OpenAI and Gemini send 503 for the same thing
    TIMEOUT = "timeout"
    CONNECTION_RESET = "reset"
    BAD_REQUEST = "400"
    AUTH = "401"
    QUOTA = "quota"


#: What ``classify`` must say about each fault, whichever provider sent it.
EXPECTED_KIND = {
    Fault.RATE_LIMITED: ErrorKind.RATE_LIMITED,
    Fault.RATE_LIMITED_RETRY_AFTER: ErrorKind.RATE_LIMITED,
    Fault.SERVER_ERROR: ErrorKind.SERVER_ERROR,
    Fault.UNAVAILABLE: ErrorKind.OVERLOADED,
    Fault.OVERLOADED: ErrorKind.OVERLOADED,
    Fault.TIMEOUT: ErrorKind.TIMEOUT,
    Fault.CONNECTION_RESET: ErrorKind.CONNECTION,
    Fault.BAD_REQUEST: ErrorKind.BAD_REQUEST,
    Fault.AUTH: ErrorKind.AUTH,
    Fault.QUOTA: ErrorKind.QUOTA_EXHAUSTED,
}

#: Faults with no HTTP response: the transport raises instead.
TRANSPORT_FAULTS = frozenset({Fault.TIMEOUT, Fault.CONNECTION_RESET})


@dataclass(frozen=True)
class FaultResponse:
    """An HTTP response as a provider sends it."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class MidStream:
    """Break a streamed answer after ``after`` text chunks with ``fault``.

    ``CONNECTION_RESET``/``TIMEOUT`` drop the connection; ``OVERLOADED`` and
    ``SERVER_ERROR`` send Anthropic's ``event: error`` (other providers: a reset).
    """

    after: int
    fault: Fault = Fault.CONNECTION_RESET


# --------------------------------------------------------------------------- error bodies

_OPENAI_ERRORS: dict[Fault, tuple[int, str, str, str | None, str | None]] = {
    # fault: (status, message, type, code, param)
    Fault.RATE_LIMITED: (
        429,
        "Rate limit reached for gpt-4o-mini in organization org-llmkit on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests", "rate_limit_exceeded", None,
    ),
    Fault.SERVER_ERROR: (
        500, "The server had an error while processing your request. Sorry about that!",
        "server_error", None, None,
    ),
    Fault.UNAVAILABLE: (
        503, "The engine is currently overloaded, please try again later.",
        "server_error", None, None,
    ),
    Fault.BAD_REQUEST: (
        400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.", "invalid_request_error", "empty_array", "messages",
    ),
    Fault.AUTH: (
        401, "Incorrect API key provided: sk-test. You can find your API key at "
        "https://platform.openai.com/account/api-keys.", "invalid_request_error",
        "invalid_api_key", None,
    ),
    Fault.QUOTA: (
        429, "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota", "insufficient_quota", None,
    ),
}

_ANTHROPIC_ERRORS: dict[Fault, tuple[int, str, str]] = {
    Fault.RATE_LIMITED: (
        429, "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    Fault.SERVER_ERROR: (500, "api_error", "Internal server error"),
    Fault.UNAVAILABLE: (529, "overloaded_error", "Overloaded"),
    Fault.OVERLOADED: (529, "overloaded_error", "Overloaded"),
    Fault.BAD_REQUEST: (400, "invalid_request_error", "messages: at least one message is required"),
    Fault.AUTH: (401, "authentication_error", "invalid x-api-key"),
    Fault.QUOTA: (402, "billing_error", "Your credit balance is too low to access the API."),
}

_GEMINI_ERRORS: dict[Fault, tuple[int, str, str]] = {
    Fault.RATE_LIMITED: (
        429, "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    Fault.SERVER_ERROR: (
        500, "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    Fault.UNAVAILABLE: (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    Fault.BAD_REQUEST: (
        400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"
    ),
    Fault.AUTH: (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
}


def error_response(provider: str, fault: Fault, *, retry_after: float = 2.0) -> FaultResponse:
    """The response ``provider`` sends for ``fault`` (HTTP faults only).

    The body and headers are shaped by ``llmkit.replay.providers`` (one place per provider's
    error format, shared with the replay server's fault injection); this adds each fault's
    real message and codes. ``RATE_LIMITED_RETRY_AFTER`` carries the suggested delay the
    provider's way: OpenAI ``retry-after-ms`` and ``retry-after``, Anthropic ``retry-after``,
    Gemini a ``RetryInfo.retryDelay`` in the body.
    """
    from ..replay import providers

    if fault in TRANSPORT_FAULTS:
        raise ValueError(f"{fault.value} is a transport fault: it has no HTTP response")
    with_delay = fault is Fault.RATE_LIMITED_RETRY_AFTER
    if with_delay:
        fault = Fault.RATE_LIMITED
    if provider == "openai":
        if fault is Fault.OVERLOADED:
            fault = Fault.UNAVAILABLE
        status, message, type_, code, param = _OPENAI_ERRORS[fault]
        body = providers.error_body("openai", status, message, code=code)
        body["error"].update(type=type_, param=param)
        headers = providers.error_headers(
            "openai", status,
            retry_after=max(1, round(retry_after)) if with_delay else None,
            retry_after_ms=int(retry_after * 1000) if with_delay else None,
        )
        headers["x-request-id"] = "req_llmkit"
        if status == 429:
            headers.update({"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"})
        return FaultResponse(status, headers, body)
    if provider == "anthropic":
        status, type_, message = _ANTHROPIC_ERRORS[fault]
        body = providers.error_body("anthropic", status, message, code=type_)
        headers = providers.error_headers("anthropic", status, retry_after if with_delay else None)
        headers["request-id"] = body["request_id"]
        return FaultResponse(status, headers, body)
    if provider == "gemini":
        if fault is Fault.OVERLOADED:
            fault = Fault.UNAVAILABLE
        if fault is Fault.QUOTA:
            raise ValueError(
                "Gemini has no quota error apart from 429 RESOURCE_EXHAUSTED: use RATE_LIMITED"
            )
        status, grpc_status, message = _GEMINI_ERRORS[fault]
        body = providers.error_body("gemini", status, message, code=grpc_status)
        if fault is Fault.AUTH:
            body["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        if with_delay:
            body["error"]["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                 "retryDelay": f"{retry_after:g}s"}
            ]
        headers = providers.error_headers("gemini", status)
        headers["content-type"] = "application/json; charset=UTF-8"  # as Google sends it
        return FaultResponse(status, headers, body)
    raise ValueError(f"unknown provider {provider!r}: use one of {PROVIDERS}")


# --------------------------------------------------------------------------- answers


def ok_response(provider: str, text: str, *, model: str = "test-model") -> FaultResponse:
    """A successful, non-streamed answer ``text`` in ``provider``'s format."""
    out = max(1, len(text.split()))
    headers = {"content-type": "application/json"}
    if provider == "openai":
        return FaultResponse(200, headers, {
            "id": "chatcmpl-llmkit", "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "system_fingerprint": None,
            "choices": [{
                "index": 0, "logprobs": None, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text, "refusal": None},
            }],
            "usage": {"prompt_tokens": 8, "completion_tokens": out, "total_tokens": 8 + out},
        })
    if provider == "anthropic":
        return FaultResponse(200, headers, {
            "id": "msg_llmkit", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 8, "output_tokens": out},
        })
    if provider == "gemini":
        return FaultResponse(200, headers, {
            "candidates": [{
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP", "index": 0,
            }],
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": out,
                              "totalTokenCount": 8 + out},
            "modelVersion": model, "responseId": "llmkit",
        })
    raise ValueError(f"unknown provider {provider!r}: use one of {PROVIDERS}")


def split_text(text: str) -> list[str]:
    """``"Hello there, world"`` -> ``["Hello ", "there, ", "world"]``: stream chunks."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def stream_frames(provider: str, chunks: list[str], *, model: str = "test-model") -> list[bytes]:
    """Server-sent-event frames streaming ``chunks``; ``len(chunks)`` text frames, in order.

    Returns ``[*head, *text_frames, *tail]`` as one list; ``stream_parts`` splits it.
    """
    head, texts, tail = stream_parts(provider, chunks, model=model)
    return head + texts + tail


def stream_parts(
    provider: str, chunks: list[str], *, model: str = "test-model"
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The frames before the text, one frame per text chunk, and the frames after."""
    if provider == "openai":
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-llmkit", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        head = [chunk({"role": "assistant", "content": ""})]
        texts = [chunk({"content": c}) for c in chunks]
        return head, texts, [chunk({}, "stop"), b"data: [DONE]\n\n"]
    if provider == "anthropic":
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        head = [
            event("message_start", {"type": "message_start", "message": {
                "id": "msg_llmkit", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 8, "output_tokens": 1}}}),
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
            event("ping", {"type": "ping"}),
        ]
        texts = [
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": c}})
            for c in chunks
        ]
        tail = [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": len(chunks)}}),
            event("message_stop", {"type": "message_stop"}),
        ]
        return head, texts, tail
    if provider == "gemini":
        def data(text: str, finish: bool = False) -> bytes:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"},
                                         "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            body = {"candidates": [candidate], "modelVersion": model, "responseId": "llmkit"}
            return f"data: {json.dumps(body)}\r\n\r\n".encode()

        texts = [data(c, finish=i == len(chunks) - 1) for i, c in enumerate(chunks)]
        return [], texts, []
    raise ValueError(f"unknown provider {provider!r}: use one of {PROVIDERS}")


def anthropic_error_event(fault: Fault) -> bytes:
    """Anthropic's in-stream ``event: error`` frame for ``fault`` (framed by ``llmkit.replay.providers``)."""
    from ..replay import providers

    status, _, message = _ANTHROPIC_ERRORS[fault]
    return providers.error_event("anthropic", "/v1/messages", message, status).encode()


# --------------------------------------------------------------------------- clock and plan


class FakeClock:
    """A clock to pass as ``clock=`` and ``sleep=``: sleeping advances it and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FaultPlan:
    """Draw a fault (or None: no fault) per request from a weighted ``mix``; seeded."""

    def __init__(self, mix: Mapping[Fault | MidStream | None, float], *, seed: int) -> None:
        self.choices = list(mix)
        self.weights = [mix[c] for c in self.choices]
        self.rng = random.Random(seed)

    def __call__(self) -> Fault | MidStream | None:
        return self.rng.choices(self.choices, self.weights)[0]


@dataclass(frozen=True)
class Served:
    """One request the injector answered: which provider, what fault, whether streamed."""

    provider: str
    path: str
    fault: Fault | MidStream | None
    stream: bool
    prompt: str


def provider_of_path(path: str) -> str | None:
    """Which provider an API path belongs to (OpenAI chat, Anthropic, Gemini)."""
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return None


def prompt_of(provider: str, body: Mapping[str, Any]) -> str:
    """The text of the last user message in a request body."""
    try:
        if provider == "gemini":
            return "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
        content = body["messages"][-1]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


@dataclass
class FaultInjector:
    """A ``MockTransport`` handler: each provider's wire format, one planned fault per request.

    ``faults`` is a callable (e.g. ``FaultPlan``) or an iterable of faults (None: answer
    normally; exhausted: answer normally). ``answer`` is the reply text, or a function
    of the prompt. With ``clock``, every request advances it by ``latency`` and a timeout
    by ``timeout_cost`` (what the client would have waited). ``served`` logs each request.
    """

    faults: Callable[[], Fault | MidStream | None] | Iterable[Fault | MidStream | None] = ()
    answer: Callable[[str], str] | str = "OK"
    retry_after: float = 2.0
    clock: FakeClock | None = None
    latency: float = 0.0
    timeout_cost: float = 10.0
    served: list[Served] = field(default_factory=list)
    _iter: Iterator[Any] | None = field(default=None, init=False, repr=False)

    def reset(self, *faults: Fault | MidStream | None) -> FaultInjector:
        """Plan ``faults`` for the next requests (then answer normally); clear ``served``."""
        self.faults = faults
        self._iter = None
        self.served.clear()
        return self

    def next_fault(self) -> Fault | MidStream | None:
        if callable(self.faults):
            return self.faults()
        if self._iter is None:
            self._iter = iter(self.faults)
        return next(self._iter, None)

    def __call__(self, request: Any) -> Any:
        http = importlib.import_module(type(request).__module__.split(".")[0])  # httpx(2)
        path = request.url.path
        provider = provider_of_path(path)
        if provider is None:
            return http.Response(404, json={"error": {"message": f"no fake for {path}"}})
        body = json.loads(request.content or b"{}")
        stream = bool(body.get("stream")) or ":streamGenerateContent" in path
        prompt = prompt_of(provider, body)
        fault = self.next_fault()
        self.served.append(Served(provider, path, fault, stream, prompt))
        if self.clock is not None:
            self.clock.advance(self.latency)
        if fault is Fault.TIMEOUT:
            if self.clock is not None:
                self.clock.advance(self.timeout_cost)
            raise http.ReadTimeout("The read operation timed out", request=request)
        if fault is Fault.CONNECTION_RESET:
            raise http.ReadError("[Errno 104] Connection reset by peer", request=request)
        if isinstance(fault, Fault):
            r = error_response(provider, fault, retry_after=self.retry_after)
            return http.Response(r.status, headers=r.headers, content=r.content)
        text = self.answer(prompt) if callable(self.answer) else self.answer
        if not stream:
            r = ok_response(provider, text)
            return http.Response(r.status, headers=r.headers, content=r.content)
        return http.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=self._stream(http, request, provider, text, fault),
        )

    def _stream(
        self, http: Any, request: Any, provider: str, text: str, fault: MidStream | None
    ) -> Iterator[bytes]:
        head, texts, tail = stream_parts(provider, split_text(text))
        yield from head
        if fault is None:
            yield from texts
            yield from tail
            return
        yield from texts[: fault.after]
        if provider == "anthropic" and fault.fault in (Fault.OVERLOADED, Fault.SERVER_ERROR):
            yield anthropic_error_event(fault.fault)
            return
        if fault.fault is Fault.TIMEOUT:
            raise http.ReadTimeout("The read operation timed out", request=request)
        raise http.ReadError("[Errno 104] Connection reset by peer", request=request)


@dataclass(frozen=True)
class FakeClients:
    """The three official SDK clients wired to one fake transport (see ``fake_clients``)."""

    openai: Any
    anthropic: Any
    gemini: Any
    http: Any


def fake_clients(handler: Callable[[Any], Any], *, max_retries: int = 0) -> FakeClients:
    """``openai.OpenAI``, ``anthropic.Anthropic`` and ``genai.Client`` served by ``handler``.

    Requests never leave the process: an ``httpx2.MockTransport`` hands them to
    ``handler`` (e.g. a ``FaultInjector``). ``max_retries`` is the openai/anthropic SDKs'
    own retry count: 0, because the resilient layer retries.
    """
    import anthropic
    import httpx2
    import openai
    from google import genai
    from google.genai import types

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    base = "http://fake.invalid"
    return FakeClients(
        openai=openai.OpenAI(api_key="sk-test", base_url=f"{base}/v1", http_client=http,
                             max_retries=max_retries),
        anthropic=anthropic.Anthropic(api_key="sk-ant-test", base_url=base, http_client=http,
                                      max_retries=max_retries),
        gemini=genai.Client(api_key="test-key",
                            http_options=types.HttpOptions(base_url=base, httpx_client=http)),
        http=http,
    )
