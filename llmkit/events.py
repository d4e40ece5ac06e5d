"""Provider-neutral events: what a model response *is*, whichever provider sent it.

Introduced in lesson 2 (02_streaming); lesson 1 (01_sdk_vs_http) uses ``collect``.

Every response - streamed or not, raw HTTP or official SDK, OpenAI, Anthropic or
Gemini - is turned into the same small sequence of frozen values::

    Event
     ├── TextDelta(text)                        a piece of the answer
     ├── ThinkingDelta(text)                    reasoning / "thought" text, never the answer
     ├── RefusalDelta(text)                     OpenAI's separate refusal channel
     ├── ToolCallStart(index, id, name)         the model begins a tool call
     ├── ToolCallDelta(index, arguments_delta)  a piece of its JSON arguments
     ├── ToolCallComplete(index, id, name, arguments[, signature])
     ├── Usage(input_tokens, output_tokens, total_tokens)   once, near the end
     ├── Finish(reason, raw_reason)             last: "stop" | "length" | "tool_calls"
     │                                          | "content_filter" | "error" | other raw
     └── ProviderError(status, type, message[, code])

``index`` counts tool calls within one response (0, 1, 2, ...), whatever the
provider numbers them by (content-block index, output index, part position).
A stream ends with the pending ``ToolCallComplete`` values, then ``Usage``,
then ``Finish``; a response that failed carries a ``ProviderError`` instead.
``collect(events)`` folds any sequence back into one ``Collected`` result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "Collected",
    "Event",
    "FINISH_REASONS",
    "Finish",
    "ProviderError",
    "RefusalDelta",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallComplete",
    "ToolCallDelta",
    "ToolCallStart",
    "Usage",
    "collect",
]

#: The normalised finish reasons; any other value is the provider's raw reason.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error")


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """Reasoning text (Gemini ``thought: true`` parts, Claude thinking, reasoning summaries).

    Kept apart from ``TextDelta`` so it never ends up in the answer.
    """

    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """A piece of an OpenAI refusal (``message.refusal``), sent instead of content."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The model started calling tool ``name``; ``id`` is None when the provider gives none."""

    index: int
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of the arguments JSON of tool call ``index`` (not valid JSON on its own)."""

    index: int
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class ToolCallComplete:
    """A finished tool call; ``arguments`` is the full JSON text (``"{}"`` when empty).

    ``signature`` carries Gemini's ``thoughtSignature``, which must be sent back
    with the call in the next turn.
    """

    index: int
    id: str | None
    name: str
    arguments: str
    signature: str | None = None

    def args(self) -> Any:
        """The arguments parsed from JSON."""
        return json.loads(self.arguments or "{}")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for the whole response.

    ``input_tokens`` includes cached prompt tokens; ``output_tokens`` includes
    reasoning/thinking tokens (what the provider bills as output).
    """

    input_tokens: int
    output_tokens: int
    total_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Why generation stopped: a normalised ``reason`` and the provider's ``raw_reason``."""

    reason: str
    raw_reason: str | None


@dataclass(frozen=True, slots=True)
class ProviderError:
    """An error reported by the provider (HTTP error body, error event, failed response).

    ``status`` is the HTTP status, or None for an error that arrived inside a
    stream that started with 200.
    """

    status: int | None
    type: str
    message: str
    code: str | None = None


Event: TypeAlias = (
    TextDelta
    | ThinkingDelta
    | RefusalDelta
    | ToolCallStart
    | ToolCallDelta
    | ToolCallComplete
    | Usage
    | Finish
    | ProviderError
)


@dataclass(frozen=True, slots=True)
class Collected:
    """Everything a sequence of events adds up to."""

    text: str
    thinking: str
    refusal: str
    tool_calls: tuple[ToolCallComplete, ...]
    usage: Usage | None
    finish_reason: str | None
    raw_finish_reason: str | None
    errors: tuple[ProviderError, ...]

    @property
    def ok(self) -> bool:
        """True when the response finished without a provider error."""
        return not self.errors and self.finish_reason not in (None, "error")


def collect(events: Iterable[Event]) -> Collected:
    """Fold events (a list, a parser's output, a live stream) into a ``Collected``.

    Introduced in lesson 2 (02_streaming). Tool calls come from the
    ``ToolCallComplete`` events (ordered by index); the last ``Usage`` and
    ``Finish`` win. A stream that only failed gets ``finish_reason="error"``.
    """
    text: list[str] = []
    thinking: list[str] = []
    refusal: list[str] = []
    calls: dict[int, ToolCallComplete] = {}
    usage: Usage | None = None
    finish: Finish | None = None
    errors: list[ProviderError] = []
    for event in events:
        match event:
            case TextDelta(text=t):
                text.append(t)
            case ThinkingDelta(text=t):
                thinking.append(t)
            case RefusalDelta(text=t):
                refusal.append(t)
            case ToolCallComplete():
                calls[event.index] = event
            case Usage():
                usage = event
            case Finish():
                finish = event
            case ProviderError():
                errors.append(event)
    reason = finish.reason if finish else ("error" if errors else None)
    return Collected(
        text="".join(text),
        thinking="".join(thinking),
        refusal="".join(refusal),
        tool_calls=tuple(calls[i] for i in sorted(calls)),
        usage=usage,
        finish_reason=reason,
        raw_finish_reason=finish.raw_reason if finish else None,
        errors=tuple(errors),
    )
