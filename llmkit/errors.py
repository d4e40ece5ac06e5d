"""Every error llmkit raises, in one place (lesson 0 introduces them).

    LlmkitError
    ├── ConfigError              a mode, key, path or option is wrong (also a ValueError)
    │   └── KeyMissing           live or record mode has no API key for the provider a cell calls
    ├── NetworkBlockedError      replay mode tried to reach a host other than loopback (also a ConnectionError)
    ├── CassetteError            a cassette file is missing, malformed or inconsistent
    │   ├── CassetteMiss         no recorded request matches; names the closest one and shows a diff
    │   └── ScriptedReplyRejected a script's reply breaks its request's schema, tools, tool_choice or max_tokens
    ├── SecretLeakError          a secret survived scrubbing; the cassette was not written
    ├── ReplayServerError        the replay server's own signals (internal; never reach a lesson)
    │   ├── ClientGone           the client disconnected while the server was still sending
    │   └── DroppedConnection    an injected fault: cut the connection mid-body
    ├── ToolArgumentError        a model's tool arguments are not usable JSON for the schema (lesson 3)
    ├── StructuredOutputFailed   a reply did not fit the schema, even after a repair round (lesson 4)
    ├── BudgetError              a request cannot fit the token budget (lesson 6; also a ValueError)
    ├── ImageError               an image cannot be sent as it is (lesson 5; also a ValueError)
    ├── MemorySystemError        llmkit.memory (lesson 7)
    │   ├── MemoryDatabaseError  the SQLite file is corrupt, foreign or too new
    │   ├── MemoryTimestampError a timestamp outside UTC years 1970..9999 (also a ValueError)
    │   ├── EmbedderError        the embedding model is missing or disagrees with the database
    │   └── ConsolidationError   no model configured, or its reply could not be used
    ├── ResilienceError          llmkit.resilience (lesson 8)
    │   ├── CallFailed           a call gave up: not retryable, attempts spent, or deadline
    │   ├── CircuitOpen          the provider's breaker is open: skipped without a request
    │   ├── ContentRefused       the model declined to answer (a completed response)
    │   ├── AllRoutesFailed      every route of a FallbackChain failed; ``hops`` says why
    │   ├── StreamInterrupted    a stream broke after text arrived; carries ``partial_text``
    │   └── StreamErrorEvent     a provider error event arrived as a stream item (before any text)
    ├── RelayError               the SSE relay, llmkit.server (lesson 9)
    │   ├── BufferFull           the event buffer keeps as many streams as it may (the relay answers 429)
    │   └── BufferFailed         the event buffer refused an event (e.g. Redis unreachable)
    └── TraceUIError             Phoenix, the trace UI, is missing, did not start or did not answer (lesson 12)

Each message says what to do next. The modules that raise these re-export them where lessons import
them (``llmkit.resilience.CallFailed``, ``llmkit.memory.MemorySystemError``, ``llmkit.tools.ToolArgumentError``,
...); this module imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .resilience._fallback import Hop
    from .resilience._taxonomy import ClassifiedError


class LlmkitError(Exception):
    """Base class of every llmkit error."""


# --- setup and replay (lesson 0) -----------------------------------------------------------------------
class ConfigError(LlmkitError, ValueError):
    """A setting is wrong or missing (mode, key, path, option)."""


class KeyMissing(ConfigError):
    """Live or record mode has no API key for ``provider`` (lesson 0); the message names the variable to set."""

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message)
        self.provider = provider


class NetworkBlockedError(LlmkitError, ConnectionError):
    """Replay mode never calls a provider: a connection to a non-loopback host was refused."""


class CassetteError(LlmkitError):
    """A cassette file is missing, malformed or inconsistent."""


class CassetteMiss(CassetteError):
    """No recorded interaction matches a request.

    ``closest`` is the index of the nearest recorded interaction (or None), ``diff`` a list of
    human-readable differences between the request and that recording.
    """

    def __init__(self, message: str, *, closest: int | None = None, diff: list[str] | None = None):
        super().__init__(message)
        self.closest = closest
        self.diff = diff or []


class ScriptedReplyRejected(CassetteError):
    """A scripted reply the real API could not send for its request (a strict schema, an undeclared tool,
    ``tool_choice`` or ``max_tokens`` broken); the message names the request, the constraint and the fix."""


class SecretLeakError(LlmkitError):
    """A secret survived scrubbing; ``field`` names where it was found."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


class ReplayServerError(LlmkitError):
    """Signals inside the replay server; it handles them itself, a lesson never sees one."""


class ClientGone(ReplayServerError):
    """The client disconnected while the server was still sending; the server stops writing."""

    def __init__(self, message: str = "the client disconnected; nothing more is sent on this response") -> None:
        super().__init__(message)


class DroppedConnection(ReplayServerError):
    """Raised inside the replay app to make uvicorn cut the connection mid-body (an injected fault).

    ``sent`` is the body delivered before the cut. Clear it with ``kit.faults.clear()``.
    """

    def __init__(self, message: str, sent: bytes):
        super().__init__(message)
        self.sent = sent


# --- lessons 3 to 6 -----------------------------------------------------------------------------------
class ToolArgumentError(LlmkitError, ValueError):
    """The arguments a model sent cannot be used: not JSON, not an object, or not valid for the schema."""


class StructuredOutputFailed(LlmkitError):
    """The model's reply could not be parsed into the schema, even after one repair round-trip."""


class BudgetError(LlmkitError, ValueError):
    """A request cannot be brought under the token budget; the message says by how much."""


class ImageError(LlmkitError, ValueError):
    """An image cannot be sent as it is (unknown format, too large, unreadable). The message says what to do."""


# --- memory (lesson 7) ----------------------------------------------------------------------------------
class MemorySystemError(LlmkitError):
    """Base class of the errors ``llmkit.memory`` raises on purpose.

    Bad arguments (empty content, wrong types) raise the built-in ``ValueError`` / ``TypeError``.
    """


class MemoryDatabaseError(MemorySystemError):
    """The database file cannot be used (corrupt, not ours, or from a newer llmkit)."""


class MemoryTimestampError(MemorySystemError, ValueError):
    """A memory's timestamp is outside what can be stored and read back (UTC years 1970..9999)."""


class EmbedderError(MemorySystemError):
    """The embedder cannot be loaded or does not match the database."""


class ConsolidationError(MemorySystemError):
    """Consolidation or summarisation could not run, or the model's reply was unusable."""


# --- resilience (lesson 8) --------------------------------------------------------------------------------
class ResilienceError(LlmkitError):
    """Base class of the errors raised by ``llmkit.resilience``; ``classify`` turns each back into a
    ``ClassifiedError``."""


class CallFailed(ResilienceError):
    """A call gave up. ``reason``: "not retryable", "attempts exhausted" or "deadline"."""

    def __init__(self, error: ClassifiedError, *, attempts: int, reason: str) -> None:
        self.error = error
        self.attempts = attempts
        self.reason = reason
        plural = "s" if attempts != 1 else ""
        # str(error) already says what to do next (lesson 8 prints it as it is)
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
        super().__init__(str(error))  # the classification says what to do next


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


class StreamErrorEvent(ResilienceError):
    """A provider error event (``llmkit.events.ProviderError``) arrived as a stream item.

    ``error`` is its classification; ``resilient_stream`` retries it like any failure before the first
    text, and wraps it in :class:`StreamInterrupted` after.
    """

    def __init__(self, event: Any) -> None:
        from .resilience._taxonomy import classify

        self.event = event
        self.error = classify(event)
        super().__init__(str(self.error))


# --- the relay (lesson 9) -----------------------------------------------------------------------------------
class RelayError(LlmkitError):
    """Base class of the errors of the SSE relay (``llmkit.server``)."""


class BufferFull(RelayError):
    """The buffer holds as many streams as it may; the relay answers 429 with ``Retry-After``."""

    def __init__(self, limit: int, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"the buffer already keeps {limit} streams (finished ones stay resumable until they "
                         f"expire); retry in {retry_after:.0f} s, or raise max_streams / lower ttl_s.")


class BufferFailed(RelayError):
    """The event buffer refused an event (e.g. Redis unreachable); the producer tells the readers, who
    should start a new stream once the buffer is back."""


# --- observability (lesson 12) ------------------------------------------------------------------------------
class TraceUIError(LlmkitError):
    """Phoenix, the local trace UI (``llmkit.phoenix``), is not installed, did not start, or did not answer; the
    message names the fix and ends with the last lines of Phoenix's log when there is one."""


__all__ = [
    "AllRoutesFailed",
    "BudgetError",
    "BufferFailed",
    "BufferFull",
    "CallFailed",
    "CassetteError",
    "CassetteMiss",
    "CircuitOpen",
    "ClientGone",
    "ConfigError",
    "ConsolidationError",
    "ContentRefused",
    "DroppedConnection",
    "EmbedderError",
    "ImageError",
    "KeyMissing",
    "LlmkitError",
    "MemoryDatabaseError",
    "MemorySystemError",
    "MemoryTimestampError",
    "NetworkBlockedError",
    "RelayError",
    "ReplayServerError",
    "ResilienceError",
    "ScriptedReplyRejected",
    "SecretLeakError",
    "StreamErrorEvent",
    "StreamInterrupted",
    "StructuredOutputFailed",
    "ToolArgumentError",
    "TraceUIError",
]
