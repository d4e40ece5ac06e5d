"""Consolidation and summarisation prompts, and robust parsing of the model's replies.

Introduced in lesson 7 (07_memory_systems). The model is any ``complete(system, user) -> str``
(``llmkit.chat`` in the lessons, replayed from a cassette). The prompts are module constants so
the lesson can print them. A reply is accepted only if it parses into :class:`ConsolidationReply`
and every id it mentions was in the prompt; otherwise :class:`ConsolidationError` is raised and
nothing is changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import ConsolidationError

LLM = Callable[[str, str], str]

CONSOLIDATION_SYSTEM = """\
You maintain the long-term memory of an assistant. Read the new conversation messages and \
extract the durable facts worth remembering in later conversations: facts about the people \
(identity, preferences, relationships, plans, possessions, history, decisions). Skip small \
talk, questions and anything only true for the moment.

Compare every fact with the known facts listed in the prompt and reply with one operation each:
- a fact that is not known yet:
  {"op": "add", "content": "<the fact>", "importance": <0..1>, "source_ids": [<message ids>]}
- a known fact that the messages only repeat:
  {"op": "duplicate", "fact_id": <known fact id>, "source_ids": [<message ids>]}
- a known fact that the messages change or contradict (the newer message wins):
  {"op": "update", "fact_id": <known fact id>, "content": "<the corrected fact>", \
"source_ids": [<message ids>]}

Write every fact as one self-contained sentence that names who it is about ("Maya's cat is \
called Pixel"); make relative dates absolute using the message dates. Importance: 0.9 for \
identity, health and lasting commitments, 0.5 for ordinary preferences, 0.2 for trivia.
Reply with JSON only, no prose: {"facts": [...]} — or {"facts": []} if nothing is worth keeping."""

CONSOLIDATION_USER = """\
Known facts (id: fact):
{facts}

New messages (id, date, speaker: text):
{messages}"""

SUMMARY_SYSTEM = """\
You keep the running summary of a conversation so that it can go on after its older turns \
leave the prompt. Fold the new turns into the summary. Keep names, numbers, dates, decisions, \
preferences, commitments and open questions; drop greetings and small talk. Write at most \
{max_words} words of plain prose. Reply with the updated summary only."""

SUMMARY_USER = """\
Summary so far:
{summary}

Turns to fold in (id, date, speaker: text):
{messages}"""


class _Op(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source_ids: list[int] = Field(
        default_factory=list,
        validation_alias=AliasChoices("source_ids", "sources", "message_ids", "source"),
    )

    @field_validator("source_ids", mode="before")
    @classmethod
    def coerce_ids(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, int | str):
            value = [value]
        return [_as_id(v) for v in value] if isinstance(value, list) else value


class AddFact(_Op):
    op: Literal["add"]
    content: str = Field(min_length=1)
    importance: float = 0.5

    @field_validator("importance", mode="before")
    @classmethod
    def default_importance(cls, value: Any) -> Any:
        return 0.5 if value is None else value

    @field_validator("importance")
    @classmethod
    def clamp_importance(cls, value: float) -> float:
        return min(1.0, max(0.0, value))


class UpdateFact(_Op):
    op: Literal["update"]
    fact_id: int = Field(validation_alias=AliasChoices("fact_id", "id"))
    content: str = Field(min_length=1)
    importance: float | None = None

    @field_validator("fact_id", mode="before")
    @classmethod
    def coerce_fact_id(cls, value: Any) -> Any:
        return _as_id(value)

    @field_validator("importance")
    @classmethod
    def clamp_importance(cls, value: float | None) -> float | None:
        return None if value is None else min(1.0, max(0.0, value))


class DuplicateFact(_Op):
    op: Literal["duplicate"]
    fact_id: int = Field(validation_alias=AliasChoices("fact_id", "id"))

    @field_validator("fact_id", mode="before")
    @classmethod
    def coerce_fact_id(cls, value: Any) -> Any:
        return _as_id(value)


FactOp = Annotated[AddFact | UpdateFact | DuplicateFact, Field(discriminator="op")]


class ConsolidationReply(BaseModel):
    """The JSON the consolidation prompt asks for."""

    facts: list[FactOp]


_OP_NAMES = {
    "add": "add", "new": "add", "insert": "add", "create": "add",
    "update": "update", "modify": "update", "replace": "update", "change": "update",
    "duplicate": "duplicate", "dup": "duplicate", "merge": "duplicate", "same": "duplicate",
    "noop": "duplicate",
}


def _as_id(value: Any) -> Any:
    """``12``, ``"12"``, ``"[12]"`` and ``"F12"`` all mean id 12."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*\[?\s*[A-Za-z#]*\s*(\d+)\s*\]?\s*", value)
        if m:
            return int(m.group(1))
    return value


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``, tolerating code fences and prose around it."""
    if not isinstance(text, str):
        raise ConsolidationError(f"the model returned {type(text).__name__}, expected text")
    body = re.sub(r"```(?:json)?", "", text).strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[{\[]", body):
        try:
            return decoder.raw_decode(body[m.start() :])[0]
        except json.JSONDecodeError:
            continue
    raise ConsolidationError(f"the model's reply contains no JSON: {text[:200]!r}")


def parse_reply(text: str) -> ConsolidationReply:
    """Parse a consolidation reply or raise :class:`ConsolidationError` saying what is wrong."""
    data = extract_json(text)
    if isinstance(data, list):
        data = {"facts": data}
    elif isinstance(data, dict) and "facts" not in data and "op" in data:
        data = {"facts": [data]}
    if isinstance(data, dict) and isinstance(data.get("facts"), list):
        for item in data["facts"]:
            if isinstance(item, dict) and isinstance(item.get("op"), str):
                item["op"] = _OP_NAMES.get(item["op"].strip().lower(), item["op"])
    try:
        return ConsolidationReply.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConsolidationError(
            f"the model's reply is not valid consolidation JSON ({problems}); nothing was "
            f"changed. Reply began: {text[:200]!r}"
        ) from None


def check_references(
    reply: ConsolidationReply, known_facts: Sequence[int], message_ids: Sequence[int]
) -> None:
    """Refuse a reply that names a fact or a message that was not in the prompt."""
    facts, messages = set(known_facts), set(message_ids)
    for n, op in enumerate(reply.facts):
        if isinstance(op, UpdateFact | DuplicateFact) and op.fact_id not in facts:
            raise ConsolidationError(
                f"facts[{n}] refers to fact {op.fact_id}, which was not among the known facts "
                "in the prompt; nothing was changed"
            )
        unknown = sorted(set(op.source_ids) - messages)
        if unknown:
            raise ConsolidationError(
                f"facts[{n}] cites messages {unknown}, which were not in the prompt; "
                "nothing was changed"
            )


def render_lines(rows: Sequence[tuple[int, datetime, str | None, str]]) -> str:
    """``[id] date speaker: text`` lines for a prompt."""
    return "\n".join(
        f"[{i}] {ts:%Y-%m-%d %H:%M} {role or 'note'}: {' '.join(text.split())}"
        for i, ts, role, text in rows
    ) or "(none)"


def render_facts(facts: Sequence[tuple[int, str]]) -> str:
    return "\n".join(f"[{i}] {' '.join(text.split())}" for i, text in facts) or "(none)"
