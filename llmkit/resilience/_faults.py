"""What providers send when they fail, in each provider's real wire format (lesson 8, 08_errors_and_fallbacks).

``FaultKind`` names the faults a provider (or the network between) throws at a request and
``EXPECTED_KIND`` what ``classify`` must make of each; ``error_response(provider, kind)`` is the
status, headers and JSON body the provider really sends (rendered by ``llmkit.providers``).

To make a provider fail on cue, use the replay server: ``kit.faults`` (``llmkit.replay.faults``).
The in-process test fakes built on these (``FaultInjector``, ``fake_clients``) are in ``llmkit.testing``;
``FakeClock`` is in ``llmkit.resilience``. Nothing here imports an SDK or an HTTP library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._taxonomy import ErrorKind


class FaultKind(StrEnum):
    """Faults a provider (or the network between) can throw at a request (lesson 8)."""

    RATE_LIMITED = "429"
    RATE_LIMITED_RETRY_AFTER = "429+retry-after"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    OVERLOADED = "529"  # Anthropic's status; OpenAI and Gemini send 503 for the same thing
    TIMEOUT = "timeout"
    CONNECTION_RESET = "reset"
    BAD_REQUEST = "400"
    AUTH = "401"
    QUOTA = "quota"


#: What ``classify`` must say about each fault, whichever provider sent it.
EXPECTED_KIND = {
    FaultKind.RATE_LIMITED: ErrorKind.RATE_LIMITED,
    FaultKind.RATE_LIMITED_RETRY_AFTER: ErrorKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR: ErrorKind.SERVER_ERROR,
    FaultKind.UNAVAILABLE: ErrorKind.OVERLOADED,
    FaultKind.OVERLOADED: ErrorKind.OVERLOADED,
    FaultKind.TIMEOUT: ErrorKind.TIMEOUT,
    FaultKind.CONNECTION_RESET: ErrorKind.CONNECTION,
    FaultKind.BAD_REQUEST: ErrorKind.BAD_REQUEST,
    FaultKind.AUTH: ErrorKind.AUTH,
    FaultKind.QUOTA: ErrorKind.QUOTA_EXHAUSTED,
}

#: Faults with no HTTP response: the transport raises instead.
TRANSPORT_FAULTS = frozenset({FaultKind.TIMEOUT, FaultKind.CONNECTION_RESET})


@dataclass(frozen=True)
class FaultResponse:
    """An HTTP response as a provider sends it."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode()


# --------------------------------------------------------------------------- error bodies and answers
# Each provider's module in ``llmkit.providers`` renders these (one place per provider's wire format,
# shared with the replay server and scripted cassettes); the functions below keep lesson 8's names.


def error_response(provider: str, fault: FaultKind, *, retry_after: float = 2.0) -> FaultResponse:
    """The response ``provider`` sends for ``fault`` (HTTP faults only).

    Introduced in lesson 8 (08_errors_and_fallbacks). ``RATE_LIMITED_RETRY_AFTER`` carries the
    suggested delay the provider's way: OpenAI ``retry-after-ms`` and ``retry-after``, Anthropic
    ``retry-after``, Gemini a ``RetryInfo.retryDelay`` in the body.
    """
    if fault in TRANSPORT_FAULTS:
        raise ValueError(f"{fault.value} is a transport fault: it has no HTTP response")
    return FaultResponse(*_provider(provider).fault_response(fault, retry_after=retry_after))


def ok_response(provider: str, text: str, *, model: str = "test-model") -> FaultResponse:
    """A successful, non-streamed answer ``text`` in ``provider``'s format (lesson 8)."""
    r = _provider(provider).scripted_answer(text, model)
    return FaultResponse(r.status, r.headers, r.body)


def split_text(text: str) -> list[str]:
    """``"Hello there, world"`` -> ``["Hello ", "there, ", "world"]``: stream chunks."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def stream_parts(
    provider: str, chunks: list[str], *, model: str = "test-model"
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The frames before the text, one frame per text chunk, and the frames after."""
    return _provider(provider).scripted_stream(chunks, model)


def _provider(name: str) -> Any:
    from .. import providers

    if name not in providers.names():
        raise ValueError(f"unknown provider {name!r}: use one of {providers.names()}")
    return providers.get(name)


def provider_of_path(path: str) -> str | None:
    """Which provider an API path belongs to (see ``llmkit.providers.for_path``)."""
    from .. import providers

    provider = providers.for_path(path)
    return provider.name if provider else None


def prompt_of(provider: str, body: Mapping[str, Any]) -> str:
    """The text of the last user message in a request body."""
    return _provider(provider).prompt_of(body)
