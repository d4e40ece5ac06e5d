"""Resilient streaming: retry until the first text arrives, never after.

Introduced in lesson 8 (08_errors_and_fallbacks). Before any text has been shown a
failed stream can simply be opened again. After that, a new request would start the
answer from the beginning and the reader would see it twice - so a failure then raises
``StreamInterrupted`` carrying the text already delivered, and the caller decides
(show it, or ask the model to continue from it).

Items that carry no text (Anthropic's ``message_start``, OpenAI's role chunk, pings)
are held back until the first text, so a retried attempt never repeats them either.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import StreamErrorEvent as _ErrorEvent
from ._backoff import Attempt, BackoffPolicy, Clock, Sleep, aretry_call, retry_call
from ._errors import StreamInterrupted
from ._taxonomy import classify

T = TypeVar("T")


def text_of(item: Any) -> str | None:
    """The answer text an item carries, or None.

    Knows plain strings, ``llmkit.events.TextDelta``, OpenAI chat chunks and Responses
    ``response.output_text.delta`` events, Anthropic ``content_block_delta`` events and
    google-genai ``GenerateContentResponse`` chunks (thought parts excluded).
    """
    if isinstance(item, str):
        return item or None
    kind = getattr(item, "type", None)
    if type(item).__name__ == "TextDelta" and kind is None:  # llmkit.events
        return item.text or None
    if kind == "content_block_delta":  # Anthropic
        return getattr(item.delta, "text", None) or None
    if kind == "response.output_text.delta":  # OpenAI Responses
        return item.delta or None
    choices = getattr(item, "choices", None)
    if choices is not None:  # OpenAI chat
        parts = [c.delta.content for c in choices if getattr(c.delta, "content", None)]
        return "".join(parts) or None
    candidates = getattr(item, "candidates", None)
    if candidates is not None:  # google-genai
        content = getattr(candidates[0], "content", None) if candidates else None
        parts = getattr(content, "parts", None) or []
        text = "".join(p.text for p in parts if getattr(p, "text", None) and not p.thought)
        return text or None
    return None


def _is_error_item(item: Any) -> bool:
    return type(item).__name__ == "ProviderError" and hasattr(item, "status")


def _checked(item: T) -> T:
    """``item``, unless it is a provider error item: that one is raised as ``_ErrorEvent``."""
    if _is_error_item(item):
        raise _ErrorEvent(item)
    return item


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def resilient_stream(
    open_stream: Callable[[], Iterable[T]],
    *,
    policy: BackoffPolicy | None = None,
    text_of: Callable[[Any], str | None] = text_of,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
) -> Iterator[T]:
    """Yield the items of ``open_stream()``, retrying per ``policy`` until text arrives.

    ``open_stream`` starts a new request each time it is called, e.g.
    ``lambda: client.chat.completions.create(..., stream=True)``. A failure before the
    first text is retried (``CallFailed`` when retries run out); a failure after it
    raises ``StreamInterrupted(partial_text, cause)``. Error items
    (``llmkit.events.ProviderError``) count as failures.
    """

    def open_until_text() -> tuple[Any, Iterator[T], list[T], bool]:
        stream = open_stream()
        items = iter(stream)
        held: list[T] = []
        try:
            for item in items:
                held.append(_checked(item))
                if text_of(item):
                    return stream, items, held, False
        except BaseException:
            _close(stream)
            raise
        return stream, items, held, True

    stream, items, held, finished = retry_call(
        open_until_text, policy=policy, clock=clock, sleep=sleep, rng=rng,
        on_attempt=on_attempt,
    )
    delivered = [text_of(item) or "" for item in held]
    try:
        yield from held
        if finished:
            return
        try:
            for item in items:
                delivered.append(text_of(_checked(item)) or "")
                yield item
        except Exception as exc:
            raise StreamInterrupted("".join(delivered), classify(exc)) from exc
    finally:
        _close(stream)


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if callable(close):
        await close()


async def aresilient_stream(
    open_stream: Callable[[], AsyncIterable[T]],
    *,
    policy: BackoffPolicy | None = None,
    text_of: Callable[[Any], str | None] = text_of,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    rng: random.Random | None = None,
    on_attempt: Callable[[Attempt], object] | None = None,
) -> AsyncIterator[T]:
    """The async twin of ``resilient_stream``: retry per ``policy`` until text arrives, never after.

    Introduced in lesson 9 (09_sse_server): the relay server reads its upstream through it.
    ``open_stream()`` returns an async iterable (e.g. ``llmkit.chat.astream(...)``). A failure
    before the first text is retried (``CallFailed`` when retries run out); after it,
    ``StreamInterrupted(partial_text, cause)``. ``on_attempt`` may be a coroutine function.
    Closing the iterator closes the upstream stream.
    """

    async def open_until_text() -> tuple[Any, AsyncIterator[T], list[T], bool]:
        stream = open_stream()
        items = aiter(stream)
        held: list[T] = []
        try:
            async for item in items:
                held.append(_checked(item))
                if text_of(item):
                    return stream, items, held, False
        except BaseException:
            await _aclose(stream)
            raise
        return stream, items, held, True

    stream, items, held, finished = await aretry_call(
        open_until_text, policy=policy, clock=clock, sleep=sleep, rng=rng, on_attempt=on_attempt,
    )
    delivered = [text_of(item) or "" for item in held]
    try:
        for item in held:
            yield item
        if finished:
            return
        try:
            async for item in items:
                delivered.append(text_of(_checked(item)) or "")
                yield item
        except Exception as exc:
            raise StreamInterrupted("".join(delivered), classify(exc)) from exc
    finally:
        await _aclose(stream)
