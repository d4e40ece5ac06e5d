"""The official SDKs' stream objects → the same ``llmkit.events`` as raw HTTP.

Introduced in lesson 2 (02_streaming).

Each SDK object is a typed view of one JSON payload the provider sent. It is
turned back into that payload (``to_dict()`` for openai/anthropic,
``model_dump(by_alias=True)`` for google-genai) and fed to the very stream
parser the raw-HTTP path uses, so SDK and raw streams share one state machine::

    for event in openai_chat_events(client.chat.completions.create(..., stream=True)):
        ...

No SDK is imported here: the objects are used by their methods only. The mappings live in
each provider's module (``llmkit.providers``); these are the lessons' names for them.
"""

from __future__ import annotations

from llmkit.providers.anthropic import message_events as anthropic_message_events
from llmkit.providers.anthropic import stream_events as anthropic_events
from llmkit.providers.anthropic import stream_events_async as anthropic_events_async
from llmkit.providers.gemini import response_events as gemini_response_events
from llmkit.providers.gemini import stream_events as gemini_events
from llmkit.providers.gemini import stream_events_async as gemini_events_async
from llmkit.providers.openai import chat_events as openai_chat_events
from llmkit.providers.openai import chat_events_async as openai_chat_events_async
from llmkit.providers.openai import response_events as openai_response_events
from llmkit.providers.openai import responses_events as openai_responses_events
from llmkit.providers.openai import responses_events_async as openai_responses_events_async

__all__ = [
    "anthropic_events",
    "anthropic_events_async",
    "anthropic_message_events",
    "gemini_events",
    "gemini_events_async",
    "gemini_response_events",
    "openai_chat_events",
    "openai_chat_events_async",
    "openai_response_events",
    "openai_responses_events",
    "openai_responses_events_async",
]
