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
Nothing here imports an SDK.
"""

from llmkit.wire import anthropic, gemini, openai
from llmkit.wire._base import StreamParser, WireRequest
from llmkit.wire._sse import JSONArrayDecoder, ServerSentEvent, SSEDecoder

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


def stream_parser(provider: str, api: str | None = None, status: int = 200) -> StreamParser:
    """A fresh stream parser for ``provider`` ("openai" | "anthropic" | "gemini").

    ``api`` picks the OpenAI API: "chat" (default) or "responses".
    """
    if provider == "openai":
        if api in (None, "chat", "chat.completions"):
            return openai.ChatStreamParser(status)
        if api == "responses":
            return openai.ResponsesStreamParser(status)
    elif provider == "anthropic":
        return anthropic.MessagesStreamParser(status)
    elif provider == "gemini":
        return gemini.GeminiStreamParser(status)
    raise ValueError(f"no stream parser for provider={provider!r} api={api!r}")
