"""Streaming a provider's answer over raw HTTP with ``httpx2``: bytes in, ``llmkit.events`` out.

Introduced in lesson 9 (09_sse_server). The relay server reads its upstream this way rather than
through the SDKs: an SDK builds a typed (pydantic) object for every chunk, which the kit then turns
back into a dict for the stream parser; under a few hundred concurrent streams that per-chunk work
is what keeps a single event loop busy. Here each chunk of bytes goes straight to the parser the
SDK path ends in (``llmkit.wire.stream_parser``), so both paths yield the same events.

What the SDKs add is kept where it changes behaviour: openai and anthropic retry 408/409/429/5xx and
connection errors twice (honouring ``retry-after-ms``, ``retry-after`` and ``x-should-retry``) before
the first byte, google-genai does not retry; an HTTP error raises (``httpx2.HTTPStatusError``, which
``llmkit.resilience.classify`` reads, headers included) instead of yielding an answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from llmkit.events import Event
from llmkit.wire._base import WireRequest

__all__ = ["SDK_RETRIES", "astream_events", "new_async_client"]

#: How often each SDK retries on its own (openai and anthropic: 2; google-genai: none).
SDK_RETRIES = {"openai": 2, "anthropic": 2, "gemini": 0}
_INITIAL_DELAY, _MAX_DELAY, _MAX_RETRY_AFTER = 0.5, 8.0, 120.0  # the openai/anthropic SDK constants


def new_async_client(**kwargs: Any) -> Any:
    """An ``httpx2.AsyncClient`` with the SDKs' limits and timeouts (1000 connections, 600 s, connect 5 s)."""
    import httpx2

    kwargs.setdefault("timeout", httpx2.Timeout(600.0, connect=5.0))
    kwargs.setdefault("limits", httpx2.Limits(max_connections=1000, max_keepalive_connections=100))
    return httpx2.AsyncClient(**kwargs)


def _retry_wait(response: Any, retries_done: int) -> float | None:
    """Seconds to wait before retrying ``response`` the way the SDKs do, or None for no retry."""
    from llmkit.resilience import parse_retry_after

    retry_after = parse_retry_after(response.headers)
    if retry_after is not None and retry_after > _MAX_RETRY_AFTER:
        return None
    verdict = response.headers.get("x-should-retry")
    if verdict == "false" or (verdict != "true" and response.status_code not in (408, 409, 429)
                              and response.status_code < 500):
        return None
    if retry_after is not None and 0 < retry_after <= _MAX_RETRY_AFTER:
        return retry_after
    return min(_INITIAL_DELAY * 2.0**retries_done, _MAX_DELAY) * (1 - 0.25 * random.random())


async def _send(client: Any, provider: str, request: WireRequest, url: str, headers: dict[str, str],
                max_retries: int) -> Any:
    import httpx2

    content = request.content()
    for retries_done in range(max_retries + 1):
        last = retries_done == max_retries
        try:
            response = await client.send(client.build_request(request.method, url, headers=headers,
                                                              content=content), stream=True)
        except (httpx2.TimeoutException, httpx2.TransportError):
            if last:
                raise
            await asyncio.sleep(min(_INITIAL_DELAY * 2.0**retries_done, _MAX_DELAY) * (1 - 0.25 * random.random()))
            continue
        if response.status_code < 400:
            return response
        wait = None if last else _retry_wait(response, retries_done)
        if wait is None:
            await response.aread()
            await response.aclose()
            raise _status_error(provider, response)
        await response.aclose()
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _status_error(provider: str, response: Any) -> Exception:
    import httpx2

    from llmkit.wire import anthropic, gemini, openai

    parse = {"openai": openai, "anthropic": anthropic, "gemini": gemini}[provider].parse_error_body
    err = parse(response.status_code, response.content)
    return httpx2.HTTPStatusError(f"{provider} answered HTTP {response.status_code} ({err.type}): {err.message}",
                                  request=response.request, response=response)


async def astream_events(client: Any, provider: str, request: WireRequest, base_url: str, *,
                         headers: dict[str, str] | None = None, max_retries: int | None = None,
                         api: str | None = None) -> AsyncIterator[Event]:
    """POST ``request`` to ``base_url`` with ``client`` and yield the stream's events as bytes arrive.

    ``headers`` (auth) are added to the request's own; ``max_retries`` defaults to what the provider's
    SDK does (:data:`SDK_RETRIES`). Closing or cancelling the iterator closes the HTTP response at once,
    which ends the request upstream.
    """
    from llmkit.wire import stream_parser

    retries = SDK_RETRIES.get(provider, 0) if max_retries is None else max_retries
    response = await _send(client, provider, request, request.url(base_url), {**request.headers, **(headers or {})},
                           retries)
    try:
        parser = stream_parser(provider, api, response.status_code)
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
        for event in parser.close():
            yield event
    finally:
        await response.aclose()
