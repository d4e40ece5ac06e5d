"""The errors ``llmkit.resilience`` raises, re-exported from :mod:`llmkit.errors` (where every llmkit
error lives); each message says what to do next.

Introduced in lesson 8 (08_errors_and_fallbacks)::

    LlmkitError (llmkit.errors)
     └── ResilienceError
          ├── CallFailed         a call gave up: not retryable, attempts spent, or deadline
          ├── CircuitOpen        the provider's breaker is open: skipped without a request
          ├── ContentRefused     the model declined to answer (a completed response)
          ├── AllRoutesFailed    every route of a FallbackChain failed; ``hops`` says why
          ├── StreamInterrupted  a stream broke after text arrived; carries ``partial_text``
          └── StreamErrorEvent   a provider error event arrived as a stream item

``classify`` turns any of them back into a ``ClassifiedError``.
"""

from __future__ import annotations

from ..errors import (
    AllRoutesFailed,
    CallFailed,
    CircuitOpen,
    ContentRefused,
    ResilienceError,
    StreamErrorEvent,
    StreamInterrupted,
)

__all__ = ["AllRoutesFailed", "CallFailed", "CircuitOpen", "ContentRefused", "ResilienceError",
           "StreamErrorEvent", "StreamInterrupted"]
