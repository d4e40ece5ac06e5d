"""Streaming a provider's answer over raw HTTP with ``httpx2``: bytes in, ``llmkit.events`` out.

Introduced in lesson 9 (09_sse_server). The relay server reads its upstream this way rather than
through the SDKs: an SDK builds a typed (pydantic) object for every chunk, which the kit then turns
back into a dict for the stream parser; under a few hundred concurrent streams that per-chunk work
is what keeps a single event loop busy. Here each chunk of bytes goes straight to the parser the
SDK path ends in (``llmkit.wire.stream_parser``), so both paths yield the same events.

What the SDKs add is kept where it changes behaviour: openai and anthropic retry 408/409/429/5xx and
connection errors twice (honouring ``retry-after-ms``, ``retry-after`` and ``x-should-retry``) before
the first byte, google-genai does not retry - with the waits of the one retry policy in
``llmkit.retry`` (:func:`sdk_policy`; pass ``policy=`` to change it). An HTTP error raises
(``httpx2.HTTPStatusError``, which ``llmkit.resilience.classify`` reads, headers included) instead of
yielding an answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llmkit.events import Event
from llmkit.retry import BackoffPolicy, aretry, parse_retry_after
from llmkit.wire._base import WireRequest

__all__ = ["SDK_RETRIES", "astream_events", "new_async_client", "sdk_policy"]

#: How often each SDK retries on its own (openai and anthropic: 2; google-genai: none).
SDK_RETRIES = {"openai": 2, "anthropic": 2, "gemini": 0}


def sdk_policy(provider: str, max_retries: int | None = None) -> BackoffPolicy:
    """The retry policy of ``provider``'s SDK, as a :class:`llmkit.retry.BackoffPolicy`.

    Introduced in lesson 9 (09_sse_server). openai and anthropic: 2 retries, 0.5 s doubling up to
    8 s with jitter, and no retry when the server asks for more than 120 s; google-genai: none.
    """
    retries = SDK_RETRIES.get(provider, 0) if max_retries is None else max_retries
    return BackoffPolicy(base=0.5, cap=8.0, max_attempts=retries + 1, deadline=None, jitter="equal",
                         max_retry_after=120.0)


def new_async_client(**kwargs: Any) -> Any:
    """An ``httpx2.AsyncClient`` with the SDKs' limits and timeouts (1000 connections, 600 s, connect 5 s),
    built by llmkit's one client factory. With a kit, prefer ``kit.http_client(is_async=True)``: one per
    event loop, closed by ``kit.close()``. Introduced in lesson 9 (09_sse_server)."""
    from llmkit._http import new_client

    return new_client(is_async=True, **kwargs)


@dataclass(frozen=True, slots=True)
class _Verdict:
    retryable: bool
    retry_after: float | None = None


def _sdk_verdict(exc: Exception) -> _Verdict:
    """Whether the SDKs would retry ``exc``: connection errors and timeouts; 408/409/429/5xx unless the
    server says ``x-should-retry: false`` (``true`` forces a retry)."""
    import httpx2

    if isinstance(exc, httpx2.HTTPStatusError):
        response = exc.response
        verdict = response.headers.get("x-should-retry")
        status = response.status_code
        retryable = verdict == "true" or (verdict != "false" and (status in (408, 409, 429) or status >= 500))
        return _Verdict(retryable, parse_retry_after(response.headers))
    return _Verdict(isinstance(exc, httpx2.TimeoutException | httpx2.TransportError))


async def _send(client: Any, provider: str, request: WireRequest, url: str, headers: dict[str, str],
                policy: BackoffPolicy) -> Any:
    content = request.content()

    async def attempt() -> Any:
        response = await client.send(client.build_request(request.method, url, headers=headers,
                                                          content=content), stream=True)
        if response.status_code < 400:
            return response
        await response.aread()
        await response.aclose()
        raise _status_error(provider, response)

    return await aretry(attempt, judge=_sdk_verdict, policy=policy)


def _status_error(provider: str, response: Any) -> Exception:
    import httpx2

    from llmkit.wire import anthropic, gemini, openai

    parse = {"openai": openai, "anthropic": anthropic, "gemini": gemini}[provider].parse_error_body
    err = parse(response.status_code, response.content)
    return httpx2.HTTPStatusError(f"{provider} answered HTTP {response.status_code} ({err.type}): {err.message}",
                                  request=response.request, response=response)


async def astream_events(client: Any, provider: str, request: WireRequest, base_url: str, *,
                         headers: dict[str, str] | None = None, max_retries: int | None = None,
                         api: str | None = None, policy: BackoffPolicy | None = None) -> AsyncIterator[Event]:
    """POST ``request`` to ``base_url`` with ``client`` and yield the stream's events as bytes arrive.

    ``headers`` (auth) are added to the request's own. Failures before the first byte are retried per
    ``policy`` (the one retry policy of ``llmkit.retry``), by default the provider SDK's
    (:func:`sdk_policy`, with ``max_retries`` retries if given). Closing or cancelling the iterator
    closes the HTTP response at once, which ends the request upstream.
    """
    from llmkit.wire import stream_parser

    response = await _send(client, provider, request, request.url(base_url), {**request.headers, **(headers or {})},
                           policy or sdk_policy(provider, max_retries))
    try:
        parser = stream_parser(provider, api, response.status_code)
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
        for event in parser.close():
            yield event
    finally:
        await response.aclose()
