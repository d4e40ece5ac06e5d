"""Errors, retries and fallbacks that hold up in production.

Introduced in lesson 8 (08_errors_and_fallbacks).

- ``classify`` maps any SDK/HTTP failure to an ``ErrorKind`` with ``retryable`` and the
  server's suggested delay; ``refusal`` spots a completed answer that is a refusal.
- ``retry_call`` (hand-written, for reading) and ``retry_with_tenacity`` (for use):
  exponential backoff with full jitter, Retry-After honoured, attempts and a deadline.
- ``FallbackChain`` tries routes (providers/models) in order and records each ``Hop``.
- ``CircuitBreaker``/``BreakerRegistry`` and ``RateLimiter`` protect a provider.
- ``resilient_stream`` retries a stream only before its first text.
- ``ResilientCaller`` puts them together and logs every attempt.
- ``FakeClock`` computes waits instead of sleeping them; ``error_response``/``FaultKind`` are what
  providers send when they fail. To make them fail on cue, use the replay server's ``kit.faults``
  (in-process test fakes: ``llmkit.testing``).

Build SDK clients with ``max_retries=0`` when retrying here: the openai and anthropic
SDKs retry 429/5xx twice on their own, so each attempt here would be three requests.
Importing this package imports no SDK and no HTTP library.
"""

from . import _errors
from ._backoff import Attempt, BackoffPolicy, aretry_call, compute_wait, retry_call
from ._breaker import BreakerRegistry, BreakerState, CircuitBreaker
from ._client import AttemptRecord, ResilientCaller, assert_sdk_retries_off, sdk_retries
from ._clock import FakeClock
from ._errors import *  # noqa: F403  (the error classes: listed once, in _errors.__all__)
from ._fallback import FallbackChain, FallbackResult, Hop, Route
from ._faults import (
    EXPECTED_KIND,
    FaultKind,
    FaultResponse,
    error_response,
    ok_response,
)
from ._ratelimit import RateLimiter, TokenBucket
from ._refusal import raise_if_refused, refusal
from ._streaming import aresilient_stream, resilient_stream, text_of
from ._taxonomy import TRANSIENT_KINDS, ClassifiedError, ErrorKind, classify, parse_retry_after
from ._tenacity import (
    retry_with_tenacity,
    stop_at_deadline,
    tenacity_retrying,
    wait_retry_after,
)

__all__ = [
    *_errors.__all__,
    "EXPECTED_KIND",
    "TRANSIENT_KINDS",
    "Attempt",
    "AttemptRecord",
    "BackoffPolicy",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "ClassifiedError",
    "ErrorKind",
    "FakeClock",
    "FallbackChain",
    "FallbackResult",
    "FaultKind",
    "FaultResponse",
    "Hop",
    "RateLimiter",
    "ResilientCaller",
    "Route",
    "TokenBucket",
    "aresilient_stream",
    "aretry_call",
    "assert_sdk_retries_off",
    "classify",
    "compute_wait",
    "error_response",
    "ok_response",
    "parse_retry_after",
    "raise_if_refused",
    "refusal",
    "resilient_stream",
    "retry_call",
    "retry_with_tenacity",
    "sdk_retries",
    "stop_at_deadline",
    "tenacity_retrying",
    "text_of",
    "wait_retry_after",
]
