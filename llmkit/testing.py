"""In-process test fakes: the official SDK clients answered by a function instead of a server.

The lessons and most tests make providers fail through the replay server (``kit.faults``, see
``llmkit.replay.faults``). These fakes are for the few tests that need what a server cannot give: a
fault per request on a fake clock (a request "costs" 0.3 s, a timeout 10 s, nothing is slept), or an
exact SDK exception for every provider and fault without a socket. Introduced for lesson 8's tests
(08_errors_and_fallbacks)::

    injector = FaultInjector([FaultKind.OVERLOADED, None])   # the first request fails, then answers
    clients = fake_clients(injector)                         # openai, anthropic, gemini; max_retries=0

Each request is answered in the provider's real wire format (``llmkit.resilience.error_response``,
``ok_response``, ``stream_parts``). Nothing here imports an SDK or an HTTP library until it is used.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import providers
from .resilience import FakeClock
from .resilience._faults import (
    EXPECTED_KIND,
    FaultKind,
    error_response,
    ok_response,
    prompt_of,
    provider_of_path,
    split_text,
    stream_parts,
)

__all__ = ["EXPECTED_KIND", "FakeClients", "FakeClock", "FaultInjector", "FaultKind", "MidStream", "Served",
           "fake_clients", "split_text"]


@dataclass(frozen=True)
class MidStream:
    """Break a streamed answer after ``after`` text chunks with ``fault``.

    ``CONNECTION_RESET``/``TIMEOUT`` drop the connection; ``OVERLOADED`` and
    ``SERVER_ERROR`` send Anthropic's ``event: error`` (other providers: a reset).
    """

    after: int
    fault: FaultKind = FaultKind.CONNECTION_RESET


@dataclass(frozen=True)
class Served:
    """One request the injector answered: which provider, what fault, whether streamed."""

    provider: str
    path: str
    fault: FaultKind | MidStream | None
    stream: bool
    prompt: str


@dataclass
class FaultInjector:
    """A ``MockTransport`` handler: each provider's wire format, one planned fault per request.

    ``faults`` is a callable returning the next fault, or an iterable of faults (None: answer
    normally; exhausted: answer normally). ``answer`` is the reply text, or a function
    of the prompt. With ``clock``, every request advances it by ``latency`` and a timeout
    by ``timeout_cost`` (what the client would have waited). ``served`` logs each request.
    """

    faults: Callable[[], FaultKind | MidStream | None] | Iterable[FaultKind | MidStream | None] = ()
    answer: Callable[[str], str] | str = "OK"
    retry_after: float = 2.0
    clock: FakeClock | None = None
    latency: float = 0.0
    timeout_cost: float = 10.0
    served: list[Served] = field(default_factory=list)
    _iter: Iterator[Any] | None = field(default=None, init=False, repr=False)

    def reset(self, *faults: FaultKind | MidStream | None) -> FaultInjector:
        """Plan ``faults`` for the next requests (then answer normally); clear ``served``."""
        self.faults = faults
        self._iter = None
        self.served.clear()
        return self

    def next_fault(self) -> FaultKind | MidStream | None:
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
        if fault is FaultKind.TIMEOUT:
            if self.clock is not None:
                self.clock.advance(self.timeout_cost)
            raise http.ReadTimeout("The read operation timed out", request=request)
        if fault is FaultKind.CONNECTION_RESET:
            raise http.ReadError("[Errno 104] Connection reset by peer", request=request)
        if isinstance(fault, FaultKind):
            r = error_response(provider, fault, retry_after=self.retry_after)
            return http.Response(r.status, headers=r.headers, content=r.content)
        text = self.answer(prompt) if callable(self.answer) else self.answer
        if not stream:
            r = ok_response(provider, text)
            return http.Response(r.status, headers=r.headers, content=r.content)
        return http.Response(200, headers={"content-type": "text/event-stream"},
                             content=self._stream(http, request, provider, text, fault))

    def _stream(self, http: Any, request: Any, provider: str, text: str,
                fault: MidStream | None) -> Iterator[bytes]:
        head, texts, tail = stream_parts(provider, split_text(text))
        yield from head
        if fault is None:
            yield from texts
            yield from tail
            return
        yield from texts[: fault.after]
        event = providers.get(provider).stream_fault_event(fault.fault)
        if event is not None:  # a provider that reports the fault inside the stream (Anthropic)
            yield event.encode()
            return
        if fault.fault is FaultKind.TIMEOUT:
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
