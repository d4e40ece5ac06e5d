"""Raw HTTP to OpenAI, Anthropic and Gemini, without their SDKs.

Introduced in lesson 1 (01_sdk_vs_http) and lesson 2 (02_streaming).

One module per provider, each with the same parts::

    openai     chat_request / responses_request    ChatStreamParser / ResponsesStreamParser
    anthropic  messages_request                    MessagesStreamParser
    gemini     generate_content_request            GeminiStreamParser
               parse_response(json_body)           parse_error_body(status, body)

A request builder returns a ``WireRequest`` (method, path, headers, JSON body)
for any HTTP client; a stream parser turns response bytes, fed in whatever
chunks the network delivers, into ``llmkit.events`` values; ``parse_response``
does the same for a non-streamed body, so both paths end in the same events.
``sdk_events`` maps the official SDKs' stream objects to those events too.
Nothing here imports an SDK. The per-provider code lives in ``llmkit.providers``;
``wire.openai`` and its siblings are the lessons' names for it, imported on first use
(so ``llmkit.providers`` can build on ``wire._base`` without an import cycle).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmkit.wire._base import StreamParser, WireRequest
from llmkit.wire._sse import JSONArrayDecoder, ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from llmkit.wire import anthropic, gemini, openai

__all__ = [
    "JSONArrayDecoder",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamParser",
    "WireRequest",
    "anthropic",
    "gemini",
    "openai",
    "stream_parser",
]

_SUBMODULES = frozenset({"anthropic", "gemini", "openai", "sdk_events", "transport"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stream_parser(provider: str, api: str | None = None, status: int = 200) -> StreamParser:
    """A fresh stream parser for ``provider`` ("openai" | "anthropic" | "gemini").

    ``api`` picks the OpenAI API: "chat" (default) or "responses".
    Introduced in lesson 2 (02_streaming).
    """
    from llmkit import providers

    return providers.get(provider).stream_parser(api, status)
