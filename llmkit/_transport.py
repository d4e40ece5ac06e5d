"""A transport seam that shows the kit every response body (live mode's usage ledger).

In replay and record mode the embedded server sees all traffic; in live mode the SDKs talk to the
providers directly, so their HTTP clients get this transport: it passes every byte through unchanged
and, when the body has been read to the end, hands it to ``on_body``. httpx's own transports
(``httpx/_transports/``) are the model: one small wrapper, no change to what the SDK sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

OnBody = Callable[[Any, int, bytes], None]  # (request, status, body)


def observing_clients(on_body: OnBody) -> tuple[Any, Any]:
    """A sync and an async ``httpx2`` client whose transports report each finished body."""
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
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            response = self.inner.handle_request(request)
            response.stream = _SyncTee(response.stream, lambda b: on_body(request, response.status_code, b))
            return response

        def close(self) -> None:
            self.inner.close()

    class AsyncObserving(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            response = await self.inner.handle_async_request(request)
            response.stream = _AsyncTee(response.stream, lambda b: on_body(request, response.status_code, b))
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    timeout = httpx2.Timeout(600.0, connect=10.0)
    return (httpx2.Client(transport=SyncObserving(), timeout=timeout, follow_redirects=True),
            httpx2.AsyncClient(transport=AsyncObserving(), timeout=timeout, follow_redirects=True))
