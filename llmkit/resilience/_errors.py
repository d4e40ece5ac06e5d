"""The errors ``llmkit.resilience`` raises; each message says what to do next.

Introduced in lesson 8 (08_errors_and_fallbacks)::

    LlmkitError (llmkit.errors)
     └── ResilienceError
          ├── CallFailed         a call gave up: not retryable, attempts spent, or deadline
          ├── CircuitOpen        the provider's breaker is open: skipped without a request
          ├── ContentRefused     the model declined to answer (a completed response)
          ├── AllRoutesFailed    every route of a FallbackChain failed; ``hops`` says why
          └── StreamInterrupted  a stream broke after text arrived; carries ``partial_text``

``classify`` turns any of them back into a ``ClassifiedError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import LlmkitError

if TYPE_CHECKING:
    from ._fallback import Hop
    from ._taxonomy import ClassifiedError


class ResilienceError(LlmkitError):
    """Base class of the errors raised by ``llmkit.resilience``."""


class CallFailed(ResilienceError):
    """A call gave up. ``reason``: "not retryable", "attempts exhausted" or "deadline"."""

    def __init__(self, error: ClassifiedError, *, attempts: int, reason: str) -> None:
        self.error = error
        self.attempts = attempts
        self.reason = reason
        plural = "s" if attempts != 1 else ""
        super().__init__(f"gave up after {attempts} attempt{plural} ({reason}): {error}")


class CircuitOpen(ResilienceError):
    """The circuit breaker of ``name`` is open; ``retry_in`` seconds until it lets a probe by."""

    def __init__(self, name: str, retry_in: float) -> None:
        self.name = name
        self.retry_in = retry_in
        super().__init__(
            f"circuit for {name!r} is open after repeated failures; no request was sent. "
            f"It lets one trial request through in {retry_in:.1f} s - fall back to another "
            "provider meanwhile."
        )


class ContentRefused(ResilienceError):
    """The model declined to answer; ``error`` holds the classification, ``response`` the reply."""

    def __init__(self, error: ClassifiedError, response: object = None) -> None:
        self.error = error
        self.response = response
        super().__init__(str(error))


class AllRoutesFailed(ResilienceError):
    """Every route of a fallback chain failed; ``hops`` lists each route and why it failed."""

    def __init__(self, hops: list[Hop]) -> None:
        self.hops = hops
        lines = "\n".join(f"  {h.route}: {h.kind.value} - {h.reason}" for h in hops)
        super().__init__(
            f"all {len(hops)} routes failed:\n{lines}\n"
            "Retry later, add another route, or show the user a clear failure."
        )


class StreamInterrupted(ResilienceError):
    """A stream failed after some text arrived.

    ``partial_text`` is everything already delivered; ``cause`` the classified failure.
    The stream is *not* restarted: a fresh request would repeat the text already shown.
    """

    def __init__(self, partial_text: str, cause: ClassifiedError) -> None:
        self.partial_text = partial_text
        self.cause = cause
        super().__init__(
            f"stream interrupted after {len(partial_text)} characters: {cause}. "
            "Keep the partial text (.partial_text); to finish, ask again with it as context "
            "('continue from here') rather than resending the same request."
        )
