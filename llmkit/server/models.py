"""What a client may ask the relay server for, with size limits (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). Every field has a bound: a relay in front of a paid API must not
forward a 5 MB prompt or a 500-message history just because a browser sent one. pydantic does the
checking; :func:`describe_errors` turns its errors into one sentence a client can show.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Hard limits, also enforced on the raw body before JSON is parsed (see ``create_app(max_body_bytes=)``).
MAX_MESSAGES = 40
MAX_MESSAGE_CHARS = 16_000
MAX_SYSTEM_CHARS = 4_000
MAX_OUTPUT_TOKENS = 4_096


class Message(BaseModel):
    """One turn of the conversation. Tool calls are not relayed: the server runs no tools."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    """The body of ``POST /api/streams``. Introduced in lesson 9 (09_sse_server)."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "gemini"] = "openai"
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | None = Field(default=None, max_length=MAX_SYSTEM_CHARS)
    max_tokens: int = Field(default=1024, ge=1, le=MAX_OUTPUT_TOKENS)

    def neutral_messages(self) -> list[dict]:
        """The messages in ``llmkit.chat``'s provider-neutral form."""
        return [{"role": m.role, "content": m.content} for m in self.messages]


def describe_errors(error: ValidationError) -> str:
    """pydantic's errors as one line: ``messages.0.content: String should have at most 16000 characters``."""
    parts = []
    for e in error.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)
