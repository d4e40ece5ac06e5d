"""The one factory for llmkit's ``httpx2`` clients: timeouts and limits chosen once, and in live mode a
transport that shows the kit every response body (so the usage ledger sees calls that bypass the server).

Introduced in lesson 0 (00_setup_and_replay); lessons get their clients from ``kit.http_client()``.
The timeouts and limits are the openai/anthropic SDKs' own defaults (600 s, connect 5 s, 1000
connections, 100 kept alive), so a raw call and an SDK call give up at the same moment.

The observing transport passes every byte through unchanged and, once the body has been read to the end,
hands it to ``on_body``; httpx's own transports (``httpx/_transports/``) are the model: one small wrapper,
no change to what the caller sees. ``httpx2`` is imported on first use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

OnBody = Callable[[Any, int, bytes], None]  # (request, status, body)

TIMEOUT_S, CONNECT_TIMEOUT_S = 600.0, 5.0
MAX_CONNECTIONS, MAX_KEEPALIVE = 1000, 100


def new_client(*, is_async: bool = False, on_body: OnBody | None = None, **kwargs: Any) -> Any:
    """An ``httpx2.Client`` (or ``AsyncClient``) with llmkit's timeouts and limits; with ``on_body``, every
    finished response body is reported to it. ``kwargs`` go to the client (e.g. ``verify=False``)."""
    import httpx2

    kwargs.setdefault("timeout", httpx2.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    kwargs.setdefault("limits", httpx2.Limits(max_connections=MAX_CONNECTIONS,
                                              max_keepalive_connections=MAX_KEEPALIVE))
    kwargs.setdefault("follow_redirects", True)
    if on_body is not None:
        verify = kwargs.pop("verify", True)
        limits = kwargs.pop("limits")
        kwargs["transport"] = _observing_transport(is_async, on_body, verify=verify, limits=limits)
    return httpx2.AsyncClient(**kwargs) if is_async else httpx2.Client(**kwargs)


def _observing_transport(is_async: bool, on_body: OnBody, **transport_kwargs: Any) -> Any:
    import httpx2

    class _SyncTee(httpx2.SyncByteStream):
        def __init__(self, inner: Any, done: Callable[[bytes], None]):
            self.inner, self.done, self.parts = inner, done, []

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                self.parts.append(chunk)
                yield chunk
            self.done(b"".join(self.parts))

        def close(self) -> None:
            self.inner.close()

    class _AsyncTee(httpx2.AsyncByteStream):
        def __init__(self, inner: Any, done: Callable[[bytes], None]):
            self.inner, self.done, self.parts = inner, done, []

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.inner:
                self.parts.append(chunk)
                yield chunk
            self.done(b"".join(self.parts))

        async def aclose(self) -> None:
            await self.inner.aclose()

    class SyncObserving(httpx2.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.HTTPTransport(**transport_kwargs)

        def handle_request(self, request: Any) -> Any:
            response = self.inner.handle_request(request)
            response.stream = _SyncTee(response.stream, lambda b: on_body(request, response.status_code, b))
            return response

        def close(self) -> None:
            self.inner.close()

    class AsyncObserving(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.AsyncHTTPTransport(**transport_kwargs)

        async def handle_async_request(self, request: Any) -> Any:
            response = await self.inner.handle_async_request(request)
            response.stream = _AsyncTee(response.stream, lambda b: on_body(request, response.status_code, b))
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    return AsyncObserving() if is_async else SyncObserving()
