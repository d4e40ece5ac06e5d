"""Every error llmkit raises, in one place (lesson 0 introduces them).

    LlmkitError
    ├── ConfigError            a mode, key, path or option is wrong; the message says how to fix it
    ├── NetworkBlockedError    replay mode tried to reach a host other than loopback (also a ConnectionError)
    ├── CassetteError          a cassette file is missing, malformed or inconsistent
    │   └── CassetteMiss       no recorded request matches; names the closest one and shows a diff
    ├── SecretLeakError        a secret survived scrubbing; the cassette was not written
    └── ResilienceError        llmkit.resilience (lesson 8): a call gave up, a circuit is open, the model
        │                      refused, every fallback route failed, or a stream broke after text
        ├── CallFailed, CircuitOpen, ContentRefused, AllRoutesFailed
        └── StreamInterrupted  carries the partial text; never restarted (that would duplicate it)

Each message says what to do next.
"""

from __future__ import annotations


class LlmkitError(Exception):
    """Base class of every llmkit error."""


class ConfigError(LlmkitError, ValueError):
    """A setting is wrong or missing (mode, key, path, option)."""


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


class SecretLeakError(LlmkitError):
    """A secret survived scrubbing; ``field`` names where it was found."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


__all__ = [
    "CassetteError",
    "CassetteMiss",
    "ConfigError",
    "LlmkitError",
    "NetworkBlockedError",
    "SecretLeakError",
]
