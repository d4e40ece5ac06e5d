"""A chat session that outlives the context window (lesson 6, 06_conversations).

Every turn resends the whole history, so the input tokens of turn *n* grow with *n* and the cost of a
conversation grows with its square. :class:`Conversation` keeps the full transcript, counts what the
next request will cost, and keeps each request under a token budget by one of three policies:

- ``"sliding"``: drop the oldest whole turns until the request fits;
- ``"pinned"``: the same, but the first ``pin_turns`` exchanges are always kept (with the system
  prompt, which is always sent) — the facts a user states first are often the ones that matter;
- ``"summarize"``: replace the oldest turns with a summary written by a real model call (through
  :func:`llmkit.chat.complete`); the summary goes into the system prompt and replaces exactly the turns
  it covers, and it is rewritten, not appended to, when more turns are folded in.

Tokens are counted by each provider's own endpoint (OpenAI ``responses.input_tokens.count``, Anthropic
``messages.count_tokens``, Gemini ``models.count_tokens``); :func:`estimate_tokens` is the offline
estimate (``counter=local_count``) for planning and tests. A session is
saved to a JSON file atomically and loaded back with :meth:`Conversation.load`::

    conv = Conversation(kit, "anthropic", system="You are terse.", budget=2000, policy="summarize")
    conv.send("My name is Ada.")
    conv.save("chat.json");  conv = Conversation.load("chat.json", kit)

Production libraries that do this: LangChain's ``trim_messages`` / summary memory, LlamaIndex's
``ChatMemoryBuffer``; this module exists to show the mechanics.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BudgetError, ConfigError  # BudgetError re-exported: every llmkit error lives there

if TYPE_CHECKING:
    from .kit import Kit

POLICIES = ("none", "sliding", "pinned", "summarize")
FILE_VERSION = 1

SUMMARY_INSTRUCTION = (
    "Summarise the conversation below for your own later use. Keep every fact the user stated about "
    "themselves, their goals, names, numbers and decisions; drop pleasantries. At most 120 words.")

Counter = Callable[["Conversation", str | None, list[dict]], int]


# --- counting --------------------------------------------------------------------------------------
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text ("a token is ~4 characters")
MESSAGE_OVERHEAD = 4  # role and separators per message, as in OpenAI's cookbook "How to count tokens"


def estimate_tokens(system: str | None, messages: list[dict], provider: str = "openai", model: str = "") -> int:
    """An offline estimate, no request made: ~4 characters per token of text, plus
    4 tokens of framing per message and the documented image formula for images (lesson 6).

    Exact counts for OpenAI need ``tiktoken`` with the model's encoding (not installed here); expect this
    estimate to be within ~10–20% for English prose and worse for code or other languages.
    """
    from .multimodal import estimate_image_tokens, image_size

    total = 3 + (math.ceil(len(system) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD if system else 0)
    for m in messages:
        total += MESSAGE_OVERHEAD
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        for p in parts:
            if p.get("type") == "image":
                total += estimate_image_tokens(*image_size(p), provider, model)
            else:
                total += math.ceil(len(p.get("text") or "") / CHARS_PER_TOKEN)
        for c in m.get("tool_calls") or []:
            total += math.ceil((len(c.name) + len(c.arguments)) / CHARS_PER_TOKEN)
    return total


def provider_count(conv: Conversation, system: str | None, messages: list[dict]) -> int:
    """The provider's own count (all three have a counting endpoint), the estimate for one without."""
    from . import providers

    counted = providers.get(conv.provider).count_tokens(conv.kit, conv.model, system, messages)
    return counted if counted is not None else estimate_tokens(system, messages, conv.provider, conv.model)


def local_count(conv: Conversation, system: str | None, messages: list[dict]) -> int:
    """The estimate for any provider: no request is made (tests, planning)."""
    return estimate_tokens(system, messages, conv.provider, conv.model)


# --- the session -----------------------------------------------------------------------------------
@dataclass
class TurnStats:
    """What one :meth:`Conversation.send` sent and what it cost."""

    turn: int
    policy: str
    sent_messages: int  # messages in the request (history window + the new user message)
    counted_tokens: int  # what the counter said the request holds, before it was sent
    input_tokens: int | None  # what the provider billed (from the response's usage)
    output_tokens: int | None
    dropped: int = 0  # messages no longer sent after this turn's trimming (cumulative)
    summarized: int = 0  # messages folded into the summary (cumulative)


@dataclass
class Conversation:
    """A chat session with a token budget (lesson 6). See the module docstring."""

    kit: Kit
    provider: str
    system: str | None = None
    model: str | None = None
    budget: int | None = None
    policy: str = "sliding"
    pin_turns: int = 1
    keep_recent: int = 1  # turns the summarize policy never folds in (besides the new one)
    max_tokens: int = 512
    counter: Counter | None = None
    history: list[dict] = field(default_factory=list)  # the full transcript, never trimmed
    start: int = 0  # history[:start] (beyond the pinned turns) is no longer sent
    summary: str = ""
    summarized: int = 0  # how many history messages the summary covers
    stats: list[TurnStats] = field(default_factory=list)

    def __post_init__(self) -> None:
        from . import providers

        providers.get(self.provider)  # raises ConfigError naming the known providers
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}.")
        if self.policy != "none" and self.budget is None:
            raise ConfigError(f"policy {self.policy!r} needs a budget (input tokens per request), e.g. budget=2000.")
        self.model = self.model or self.kit.models[self.provider]
        self.counter = self.counter or provider_count

    # --- what is sent ------------------------------------------------------------------------------
    @property
    def pinned(self) -> int:
        """How many leading history messages are always sent."""
        return _turn_end(self.history, self.pin_turns) if self.policy == "pinned" else 0

    def effective_system(self) -> str | None:
        if not self.summary:
            return self.system
        note = f"Summary of the earlier conversation (replaces those turns):\n{self.summary}"
        return f"{self.system}\n\n{note}" if self.system else note

    def window(self) -> list[dict]:
        """The messages the next request sends: the pinned turns, then history from ``start``."""
        begin = max(self.start, self.pinned)
        return self.history[:self.pinned] + self.history[begin:]

    def provider_messages(self) -> Any:
        """The window in the provider's own format (what the SDK call receives)."""
        from . import providers

        return providers.get(self.provider).messages(self.window(), self.effective_system())

    def count(self) -> int:
        """Tokens of the next request as it stands (system + window)."""
        assert self.counter is not None
        return self.counter(self, self.effective_system(), self.window())

    # --- keeping within budget ---------------------------------------------------------------------
    def _fit(self) -> int:
        """Trim or summarise until the request fits; return the counted tokens."""
        n = self.count()
        while self.budget is not None and self.policy != "none" and n > self.budget:
            turns = _turn_starts(self.history, max(self.start, self.pinned))
            if len(turns) <= 1:  # only the newest user message is left
                raise BudgetError(f"the newest message alone needs {n} tokens (budget {self.budget}): raise the "
                                  "budget, shorten the system prompt or pinned turns, or split the message.")
            if self.policy == "summarize":
                self._summarize(turns)
            else:
                self.start = turns[1]  # drop the oldest whole turn
            n = self.count()
        return n

    def _summarize(self, turns: list[int]) -> None:
        """Fold the oldest half of the unsummarised turns (at least one) into the summary."""
        from . import chat

        foldable = len(turns) - 1 - self.keep_recent
        take = max(1, math.ceil(max(foldable, 1) / 2))
        end = turns[min(take, len(turns) - 1)]
        folded = self.history[self.start:end]
        transcript = "\n".join(f"{m['role']}: {_text(m)}" for m in folded)
        prompt = (f"Summary so far:\n{self.summary}\n\n" if self.summary else "") + f"New turns:\n{transcript}"
        result = chat.complete(self.kit, self.provider, [chat.user(prompt)], system=SUMMARY_INSTRUCTION,
                               model=self.model, max_tokens=300)
        self.summary = result.text.strip()
        self.summarized += len(folded)
        self.start = end

    # --- talking -----------------------------------------------------------------------------------
    def send(self, content: Any) -> Any:
        """Add a user message, fit the request to the budget, ask the model; returns a ChatResult."""
        from . import chat

        self.history.append(chat.user(content))
        counted = self._fit()
        result = chat.complete(self.kit, self.provider, self.window(), system=self.effective_system(),
                               model=self.model, max_tokens=self.max_tokens)
        self._record(counted, result.usage)
        self.history.append(result.as_message())
        return result

    def stream(self, content: Any) -> Iterator[Any]:
        """Like :meth:`send`, yielding ``llmkit.events`` as they arrive; the answer joins the history at the end."""
        from . import chat
        from .events import collect

        self.history.append(chat.user(content))
        counted = self._fit()
        seen: list[Any] = []
        for event in chat.stream(self.kit, self.provider, self.window(), system=self.effective_system(),
                                 model=self.model, max_tokens=self.max_tokens):
            seen.append(event)
            yield event
        result = chat.ChatResult.from_collected(self.provider, self.model or "", collect(seen))
        self._record(counted, result.usage)
        self.history.append(result.as_message())

    def _record(self, counted: int, usage: Any) -> None:
        begin = max(self.start, self.pinned)
        self.stats.append(TurnStats(
            turn=len(self.stats) + 1, policy=self.policy, sent_messages=len(self.window()), counted_tokens=counted,
            input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
            dropped=begin - self.pinned - self.summarized, summarized=self.summarized))

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"llmkit_conversation": FILE_VERSION, "provider": self.provider, "model": self.model,
                "system": self.system, "budget": self.budget, "policy": self.policy, "pin_turns": self.pin_turns,
                "keep_recent": self.keep_recent, "max_tokens": self.max_tokens,
                "history": [_dump_message(m) for m in self.history], "start": self.start,
                "summary": self.summary, "summarized": self.summarized, "stats": [asdict(s) for s in self.stats]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the session as JSON, atomically (temp file + rename): a crash never leaves half a file."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, indent=1, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], kit: Kit, *, counter: Counter | None = None) -> Conversation:
        """A session saved by :meth:`save`, ready to continue with ``kit``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no saved conversation at {path}; save one with conv.save(path) first.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); was it written by Conversation.save?") from e
        if data.get("llmkit_conversation") != FILE_VERSION:
            raise ConfigError(f"{path} is not an llmkit conversation file (version {FILE_VERSION}).")
        conv = cls(kit, data["provider"], system=data["system"], model=data["model"], budget=data["budget"],
                   policy=data["policy"], pin_turns=data["pin_turns"], keep_recent=data["keep_recent"],
                   max_tokens=data["max_tokens"], counter=counter,
                   history=[_load_message(m) for m in data["history"]], start=data["start"],
                   summary=data["summary"], summarized=data["summarized"])
        conv.stats = [TurnStats(**s) for s in data.get("stats", [])]
        return conv


# --- helpers -----------------------------------------------------------------------------------------
def _is_turn_start(m: dict) -> bool:
    return m["role"] == "user"


def _turn_starts(history: list[dict], begin: int) -> list[int]:
    """Indices of the user messages that open a turn, from ``begin`` on (tool results belong to their turn)."""
    return [i for i in range(begin, len(history)) if _is_turn_start(history[i])]


def _turn_end(history: list[dict], turns: int) -> int:
    """The index just after the first ``turns`` complete turns (0 if there are none yet)."""
    starts = _turn_starts(history, 0)
    return starts[turns] if len(starts) > turns else len(history)


def _text(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "[image]") if p.get("type") != "image" else "[image]" for p in content or [])


def _dump_message(m: dict) -> dict:
    out = dict(m)
    if isinstance(m.get("content"), list):
        out["content"] = [{**p, "data": base64.b64encode(p["data"]).decode()} if p.get("type") == "image" else p
                          for p in m["content"]]
    if m.get("tool_calls"):
        out["tool_calls"] = [{"index": c.index, "id": c.id, "name": c.name, "arguments": c.arguments,
                              "signature": c.signature} for c in m["tool_calls"]]
    return out


def _load_message(m: dict) -> dict:
    from .events import ToolCallComplete

    out = dict(m)
    if isinstance(m.get("content"), list):
        out["content"] = [{**p, "data": base64.b64decode(p["data"])} if p.get("type") == "image" else p
                          for p in m["content"]]
    if "tool_calls" in m:
        out["tool_calls"] = [ToolCallComplete(**c) for c in m.get("tool_calls") or []]
    return out


__all__ = ["POLICIES", "BudgetError", "Conversation", "TurnStats", "estimate_tokens", "local_count",
           "provider_count"]
