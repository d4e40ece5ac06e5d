"""What went wrong, in a few words: the error taxonomy.

Introduced in lesson 8 (08_errors_and_fallbacks).

Every failure - an OpenAI, Anthropic or google-genai exception, an httpx/httpx2
transport error, a raw ``(status, headers, body)`` or an error event inside a stream -
is mapped by ``classify`` to one ``ClassifiedError``: a kind, whether retrying can help,
and the delay the server asked for. The rest of the package decides on that alone.

No SDK is imported here: exceptions are recognised by the modules and names of their
classes, so classifying never loads an SDK the program did not already use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import AllRoutesFailed, CircuitOpen, ResilienceError, StreamInterrupted
from ..events import ProviderError
from ..retry import lower_headers, parse_retry_after


class ErrorKind(StrEnum):
    """The few kinds of failure a caller has to tell apart."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection_lost"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    CONTENT_REFUSED = "content_refused"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CIRCUIT_OPEN = "circuit_open"
    UNKNOWN = "unknown"


#: Kinds that say "try again later": the provider or the network, not the request.
TRANSIENT_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
    }
)


_ADVICE = {
    ErrorKind.RATE_LIMITED: "slow down: wait the suggested delay, lower the request rate "
    "(RateLimiter), or fall back to another provider",
    ErrorKind.OVERLOADED: "the provider is overloaded: retry with backoff or fall back to "
    "another provider",
    ErrorKind.SERVER_ERROR: "a server-side error: retry with backoff; if it persists, check "
    "the provider's status page",
    ErrorKind.TIMEOUT: "retry, raise the client timeout for long answers, or stream the answer",
    ErrorKind.CONNECTION: "check the network (or that the replay server is running); "
    "a retry usually helps",
    ErrorKind.BAD_REQUEST: "fix the request (model id, parameters, messages); retrying the "
    "same request will not help",
    ErrorKind.AUTH: "check the API key ({key} in .env), or run in replay mode",
    ErrorKind.CONTENT_REFUSED: "the model declined: rephrase the request or handle the refusal; "
    "retrying the same prompt will not help",
    ErrorKind.QUOTA_EXHAUSTED: "the account is out of quota or credit: add billing or use "
    "another provider; retrying will not help",
    ErrorKind.CIRCUIT_OPEN: "the provider failed repeatedly and is skipped for a cool-down: "
    "fall back to another provider or try again later",
    ErrorKind.UNKNOWN: "this is not an API error: see the original exception",
}


@dataclass(frozen=True)
class ClassifiedError:
    """One failure, classified.

    ``retry_after`` is the delay in seconds the server asked for (``retry-after-ms``,
    ``retry-after`` or Gemini's ``RetryInfo``), or None. ``original`` is what was
    classified (an exception, a response, a tuple).
    """

    kind: ErrorKind
    retryable: bool
    retry_after: float | None = None
    provider: str | None = None
    status: int | None = None
    message: str = ""
    original: object = field(default=None, repr=False, compare=False)

    @property
    def advice(self) -> str:
        """What to do next, in one sentence."""
        from .. import providers

        known = self.provider in providers.names()
        key = providers.get(self.provider).key_vars[0] if known else "the provider's API key variable"
        return _ADVICE[self.kind].format(key=key)

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                self.provider or "",
                f"HTTP {self.status}" if self.status else "",
                f"retry after {self.retry_after:g} s" if self.retry_after is not None else "",
            )
            if part
        )
        head = f"{self.kind.value} ({where})" if where else self.kind.value
        message = f": {self.message}" if self.message else ""
        return f"{head}{message} - {self.advice}"


# --------------------------------------------------------------------------- classify


def classify(obj: object, *, provider: str | None = None) -> ClassifiedError:
    """Classify an exception, an HTTP response or a raw ``(status, headers, body)``.

    Understands the openai, anthropic and google-genai exceptions, httpx/httpx2
    transport errors and responses, the built-in ``TimeoutError``/``ConnectionError``,
    this package's own errors and ``llmkit.events.ProviderError``. Anything else is
    ``ErrorKind.UNKNOWN`` and not retryable. ``provider`` names the provider when it
    cannot be told from the object.
    """
    if isinstance(obj, ClassifiedError):
        return obj
    if isinstance(obj, ResilienceError):
        return _classify_own(obj)
    if isinstance(obj, tuple) and len(obj) == 3:
        status, headers, body = obj
        return _from_http(int(status), headers, body, provider=provider, original=obj)
    if isinstance(obj, BaseException):
        return _classify_exception(obj, provider)
    if isinstance(obj, ProviderError):
        err = {"type": obj.type, "status": obj.type, "code": obj.code, "message": obj.message}
        return _from_http(obj.status or 0, {}, {"error": err}, provider=provider, original=obj)
    if _is_http_response(obj):
        return _from_http(
            obj.status_code,
            obj.headers,
            _response_body(obj),
            provider=provider or _provider_from_url(obj),
            original=obj,
        )
    return ClassifiedError(
        ErrorKind.UNKNOWN, False, provider=provider, message=repr(obj)[:200], original=obj
    )


def _classify_own(exc: ResilienceError) -> ClassifiedError:
    if isinstance(getattr(exc, "error", None), ClassifiedError):  # CallFailed, ContentRefused, StreamErrorEvent
        return exc.error
    if isinstance(exc, CircuitOpen):
        return ClassifiedError(
            ErrorKind.CIRCUIT_OPEN, False, retry_after=exc.retry_in, provider=exc.name,
            message=f"circuit open for {exc.name}", original=exc,
        )
    if isinstance(exc, StreamInterrupted):
        # Never retry a stream that already delivered text: it would duplicate it.
        c = exc.cause
        return ClassifiedError(c.kind, False, c.retry_after, c.provider, c.status, c.message, exc)
    if isinstance(exc, AllRoutesFailed) and exc.hops:
        last = exc.hops[-1]
        return ClassifiedError(last.kind, False, message=str(exc), original=exc)
    return ClassifiedError(ErrorKind.UNKNOWN, False, message=str(exc), original=exc)


def _top_module(cls: type) -> str:
    return cls.__module__.split(".")[0]


def _classify_exception(exc: BaseException, provider: str | None) -> ClassifiedError:
    mro = type(exc).__mro__
    modules = {c.__module__ for c in mro}
    names = {c.__name__ for c in mro}
    if any(m.startswith("google.genai") for m in modules):
        return _from_genai(exc)
    sdk = next((_top_module(c) for c in mro if _top_module(c) in ("openai", "anthropic")), None)
    if sdk is not None:
        return _from_stainless(exc, sdk, names)
    if any(_top_module(c) in ("httpx", "httpx2") for c in mro):
        return _from_httpx(exc, names, provider)
    if isinstance(exc, TimeoutError):
        return ClassifiedError(ErrorKind.TIMEOUT, True, None, provider, None, str(exc), exc)
    if isinstance(exc, ConnectionError):
        return ClassifiedError(ErrorKind.CONNECTION, True, None, provider, None, str(exc), exc)
    return ClassifiedError(
        ErrorKind.UNKNOWN, False, provider=provider, message=f"{type(exc).__name__}: {exc}",
        original=exc,
    )


def _from_stainless(exc: BaseException, sdk: str, names: set[str]) -> ClassifiedError:
    """openai and anthropic share one generated (Stainless) exception hierarchy."""
    message = str(getattr(exc, "message", "") or exc)
    if "APITimeoutError" in names:
        return ClassifiedError(ErrorKind.TIMEOUT, True, None, sdk, None, message, exc)
    if "APIConnectionError" in names:
        cause = exc.__cause__
        detail = f"{message} ({type(cause).__name__}: {cause})" if cause else message
        return ClassifiedError(ErrorKind.CONNECTION, True, None, sdk, None, detail, exc)
    if "ContentFilterFinishReasonError" in names:
        return ClassifiedError(ErrorKind.CONTENT_REFUSED, False, None, sdk, None, message, exc)
    if "APIResponseValidationError" in names:  # the reply did not match the SDK's types
        return ClassifiedError(ErrorKind.SERVER_ERROR, False, None, sdk, None, message, exc)
    if "APIError" not in names:  # e.g. a missing API key, raised before any request
        return ClassifiedError(ErrorKind.UNKNOWN, False, None, sdk, None, message, exc)
    # openai keeps only the inner ``error`` object as ``body``, anthropic the whole body;
    # an error event inside a stream comes with status 200 (anthropic) or none (openai).
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return _from_http(status, headers, getattr(exc, "body", None), provider=sdk,
                      original=exc, is_error=True)


def _from_genai(exc: BaseException) -> ClassifiedError:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code >= 400:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        return _from_http(code, headers, getattr(exc, "details", None), provider="gemini",
                          original=exc, is_error=True)
    return ClassifiedError(ErrorKind.UNKNOWN, False, None, "gemini", None, str(exc), exc)


def _from_httpx(exc: BaseException, names: set[str], provider: str | None) -> ClassifiedError:
    message = f"{type(exc).__name__}: {exc}"
    provider = provider or _provider_from_url(exc)
    if "HTTPStatusError" in names:
        response = exc.response
        return _from_http(
            response.status_code, response.headers, _response_body(response),
            provider=provider or _provider_from_url(response), original=exc, is_error=True,
        )
    if "TimeoutException" in names:
        return ClassifiedError(ErrorKind.TIMEOUT, True, None, provider, None, message, exc)
    if "TransportError" in names:  # NetworkError, RemoteProtocolError, ProxyError, ...
        return ClassifiedError(ErrorKind.CONNECTION, True, None, provider, None, message, exc)
    return ClassifiedError(ErrorKind.UNKNOWN, False, None, provider, None, message, exc)


# --------------------------------------------------------------------------- HTTP level


def _from_http(
    status: int,
    headers: Any,
    body: Any,
    *,
    provider: str | None,
    original: object,
    is_error: bool = False,
) -> ClassifiedError:
    """``is_error``: known to be a failure (an exception), whatever the status says."""
    headers = lower_headers(headers)
    body = _json_body(body)
    error = _error_object(body, status, is_error)
    provider = provider or _provider_from_body(body, headers)
    if status < 400 and not error and not is_error:
        raise ValueError(
            f"status {status} without an error body is not a failure; "
            "to check a completed answer for a refusal use refusal(response)"
        )

    from_body = _kind_from_body(error)
    from_status = _kind_from_status(status)
    if from_body in _BODY_WINS or from_status is None:
        # A stream's error event arrives on a 200 response: only the body tells.
        kind = from_body or ErrorKind.SERVER_ERROR
    else:
        kind = from_status
    retryable = kind in TRANSIENT_KINDS
    should_retry = headers.get("x-should-retry")  # the server's own verdict wins
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = _gemini_retry_delay(error)
    message = error.get("message") or (body if isinstance(body, str) else str(original))
    return ClassifiedError(
        kind,
        retryable,
        retry_after=retry_after,
        provider=provider,
        status=status if status >= 400 else None,
        message=str(message)[:500],
        original=original,
    )


def _error_object(body: Any, status: int, is_error: bool) -> dict[str, Any]:
    """The provider's error object: ``body["error"]``, or the body itself.

    openai's SDK keeps only the inner object as ``exc.body``; anthropic keeps the
    whole ``{"type": "error", "error": {...}}``.
    """
    if not isinstance(body, dict):
        return {}
    if isinstance(body.get("error"), dict):
        return body["error"]
    if is_error or status >= 400 or ("message" in body and body.get("type") != "message"):
        return body
    return {}


#: Body-level codes that are more precise than the HTTP status they come with.
_BODY_WINS = frozenset(
    {
        ErrorKind.QUOTA_EXHAUSTED,
        ErrorKind.AUTH,
        ErrorKind.OVERLOADED,
        ErrorKind.RATE_LIMITED,
        ErrorKind.TIMEOUT,
    }
)

# openai ``error.code``/``error.type``, anthropic ``error.type``, gemini ``error.status``.
_BODY_KINDS = {
    "insufficient_quota": ErrorKind.QUOTA_EXHAUSTED,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "PERMISSION_DENIED": ErrorKind.AUTH,
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.OVERLOADED,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.SERVER_ERROR,
    "server_error": ErrorKind.SERVER_ERROR,
    "INTERNAL": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "not_found_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
    "INVALID_ARGUMENT": ErrorKind.BAD_REQUEST,
    "NOT_FOUND": ErrorKind.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BAD_REQUEST,
}


def _kind_from_body(error: Mapping[str, Any]) -> ErrorKind | None:
    for detail in error.get("details") or ():
        # Gemini reports a bad key as 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
        if isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID":
            return ErrorKind.AUTH
    for key in ("code", "status", "type"):
        value = error.get(key)
        if isinstance(value, str) and value in _BODY_KINDS:
            return _BODY_KINDS[value]
    return None


def _kind_from_status(status: int) -> ErrorKind | None:
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 402:
        return ErrorKind.QUOTA_EXHAUSTED
    if status == 409:  # the SDKs retry it: OpenAI uses 409 for a lock timeout
        return ErrorKind.SERVER_ERROR
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    if status >= 400:
        return ErrorKind.BAD_REQUEST
    return None


def _gemini_retry_delay(error: Mapping[str, Any]) -> float | None:
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                return max(0.0, float(delay.removesuffix("s")))
            except ValueError:
                return None
    return None


def _json_body(body: Any) -> Any:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    if isinstance(body, list) and len(body) == 1:  # Gemini's stream of one error
        return body[0]
    return body


def _is_http_response(obj: object) -> bool:
    return _top_module(type(obj)) in ("httpx", "httpx2") and hasattr(obj, "status_code")


def _response_body(response: Any) -> Any:
    try:
        return response.content
    except Exception:  # a streamed body that was never read
        return None


def _provider_from_url(response_or_error: Any) -> str | None:
    try:
        path = str(response_or_error.request.url.path)
    except Exception:  # no request attached (httpx raises RuntimeError)
        return None
    if path.endswith("/messages"):
        return "anthropic"
    if "generateContent" in path or "GenerateContent" in path:
        return "gemini"
    if path.endswith(("/chat/completions", "/responses", "/completions", "/embeddings")):
        return "openai"
    return None


def _provider_from_body(body: Any, headers: Mapping[str, str]) -> str | None:
    if not isinstance(body, dict):
        return None
    if body.get("type") == "error" or any(h.startswith("anthropic-") for h in headers):
        return "anthropic"
    error = body.get("error")
    if isinstance(error, dict):
        if isinstance(error.get("status"), str) and isinstance(error.get("code"), int):
            return "gemini"
        if "param" in error or any(h.startswith("x-ratelimit-") for h in headers):
            return "openai"
    return None
