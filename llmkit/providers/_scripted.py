"""What every provider's scripted-reply renderer shares: pacing, token estimates, ids.

Introduced in lesson 0 (00_setup_and_replay): scripted cassettes (``llmkit.replay.scripted``) and the
fault injector of lesson 8 (``llmkit.resilience``) render answers through the same per-provider
renderers, so a scripted answer and an injected one are framed alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

CREATED = 1767225600  # 2026-01-01T00:00:00Z, a fixed timestamp so scripted cassettes are stable


def estimate_tokens(text: str) -> int:
    """A documented estimate: about four characters per token (OpenAI's rule of thumb for English)."""
    return max(1, math.ceil(len(text) / 4))


def pieces(text: str) -> list[str]:
    """Split text the way tokens arrive: a word with its leading space, punctuation apart."""
    return re.findall(r"\s*[\w'’]+|\s*[^\w\s]+|\s+", text) or ([text] if text else [])


def text_pieces(reply: Any) -> list[str]:
    """The pieces a reply's text streams in: the fault injector's own chunks, else token-like pieces."""
    chunks = getattr(reply, "chunks", None)
    return list(chunks) if chunks is not None else pieces(reply.text)


def arg_pieces(args: str, size: int = 12) -> list[str]:
    return [args[i:i + size] for i in range(0, len(args), size)] or [""]


def ids(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def loose_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def finish_of(reply: Any) -> str:
    return reply.finish or ("tool_calls" if reply.tool_calls else "stop")


def usage_of(req: Any, reply: Any) -> tuple[int, int]:
    """(input, output) tokens of a scripted reply: the reply's own counts, else estimates."""
    inp = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(json.dumps(req.body or {}))
    out_text = reply.text + "".join(tc.name + tc.arguments_text() for tc in reply.tool_calls)
    out = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(out_text) if out_text else 1
    return inp, out


def cache_of(reply: Any) -> tuple[int, int]:
    """(input tokens read from the prompt cache, written to it) of a scripted reply; both are part of its
    input tokens (lesson 6, 06_conversations). A script sets them only where the request qualifies."""
    return int(getattr(reply, "cached_tokens", None) or 0), int(getattr(reply, "cache_write_tokens", None) or 0)


class Clock:
    """Deterministic frame times: first token at ttft, then one token per 1/tokens_per_s with jitter."""

    def __init__(self, reply: Any, seed: str):
        self.t = reply.ttft_ms
        self.step = 1000.0 / max(reply.tokens_per_s, 1e-3)
        self._h = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
        self.headers_ms = round(reply.ttft_ms * 0.85, 2)

    def next(self, tokens: int = 1) -> float:
        now = self.t
        self._h = (self._h * 1103515245 + 12345) & 0x7FFFFFFF
        jitter = 0.6 + 0.8 * (self._h % 1000) / 1000
        self.t += self.step * max(tokens, 1) * jitter
        return round(now, 2)


@dataclass
class Frames:
    """A rendered stream: its frames, and which of them carry the answer's text pieces."""

    frames: list[Any] = field(default_factory=list)
    text: list[int] = field(default_factory=list)

    def add(self, t: float, raw: str, *, text: bool = False) -> None:
        from llmkit.replay.cassette import Frame

        if text:
            self.text.append(len(self.frames))
        self.frames.append(Frame(t, raw))

    def parts(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """(frames before the first text frame, the text frames, the frames after), as bytes."""
        raw = [f.raw.encode() for f in self.frames]
        first, last = (self.text[0], self.text[-1] + 1) if self.text else (len(raw), len(raw))
        return raw[:first], raw[first:last], raw[last:]


@dataclass
class FaultReply:
    """The reply the fault injector answers with: ``chunks`` of text, fixed small usage."""

    chunks: list[str]
    text: str = ""
    tool_calls: list[Any] = field(default_factory=list)
    finish: str | None = None
    input_tokens: int | None = 8
    output_tokens: int | None = None
    ttft_ms: float = 0.0
    tokens_per_s: float = 1000.0

    def __post_init__(self) -> None:
        self.text = "".join(self.chunks)
        if self.output_tokens is None:
            self.output_tokens = max(1, len(self.text.split()))


@dataclass
class FaultRequest:
    """The request side of a fault-injector answer (the renderers read only these fields)."""

    model: str
    stream: bool
    api: str = ""
    path: str = ""
    body: dict = field(default_factory=dict)
    n: int = 0


def response(status: int, headers: dict[str, str], **kw: Any) -> Any:
    from llmkit.replay.cassette import RecordedResponse

    return RecordedResponse(status, headers, **kw)
