"""Structured output: a pydantic model is the contract, each provider is held to it, failure is honest.

Introduced in lesson 4 (04_structured_output).

    result = structured.generate(kit, "gemini", CodeAnalysis, "Analyse this code: ...")
    if result.ok:
        result.value.score          # a validated CodeAnalysis
    else:
        result.error                # why the reply could not be parsed - never a made-up default

Each provider constrains its output to the schema in its own way:

- OpenAI: ``response_format={"type": "json_schema", "json_schema": {..., "strict": True}}`` (what
  ``chat.completions.parse(response_format=Model)`` sends);
- Anthropic: forced tool use - one tool whose ``input_schema`` is the schema, ``tool_choice`` naming it;
- Gemini: ``response_mime_type="application/json"`` with ``response_json_schema``.

The reply is validated with pydantic all the same: forced tool use without ``strict`` does not hold the
arguments to the schema, some schema keywords are not enforced by every provider, and a reply can be cut
off at ``max_tokens``, refused or blocked. An invalid reply gets exactly one repair round-trip: the errors go
back to the model, which answers again. A refusal, a block or a cut-off reply gets none (the same request
would meet the same limit); the result says why. If the repair fails too, the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import StructuredOutputFailed  # re-exported: every llmkit error lives in llmkit.errors

if TYPE_CHECKING:
    from .kit import Kit

__all__ = ["Attempt", "Structured", "StructuredOutputFailed", "generate", "json_schema", "strict_schema"]

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    """One model reply: the raw JSON text, why it failed (None if it validated) and its token usage."""

    raw: str
    error: str | None
    usage: Any = None  # llmkit.events.Usage
    finish_reason: str | None = None


@dataclass
class Structured(Generic[T]):
    """The outcome: a validated ``value`` or an honest ``error``, with every attempt kept for inspection."""

    provider: str
    schema: type
    value: T | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def repaired(self) -> bool:
        """True when the first reply was invalid and the repair round-trip fixed it."""
        return self.ok and len(self.attempts) > 1

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        return (f"the {self.schema.__name__} could not be parsed from {self.provider}'s reply after "
                f"{len(self.attempts)} attempt(s): {self.attempts[-1].error}")

    def unwrap(self) -> T:
        """The value, or :class:`StructuredOutputFailed` naming what was wrong."""
        if self.value is None:
            raise StructuredOutputFailed(f"{self.error}. Inspect .attempts for the raw replies; do not "
                                         "substitute a default result.")
        return self.value


# --- schemas -------------------------------------------------------------------------------------
def json_schema(model: type) -> dict:
    """The model's JSON schema, self-contained (no ``$ref``), for Anthropic and Gemini."""
    from .tools import inline_refs

    schema = inline_refs(model.model_json_schema())  # type: ignore[attr-defined]
    schema.pop("title", None)
    return schema


def strict_schema(model: type) -> dict:
    """The schema OpenAI's strict mode accepts: every object closed (``additionalProperties: false``),
    every property required (optional ones may be null), no ``default`` keys."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: walk(v) for k, v in node.items() if k != "default"}
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(json_schema(model))


def _validate(model: type, raw: str) -> tuple[Any, str | None]:
    import pydantic

    try:
        return model.model_validate_json(raw), None  # type: ignore[attr-defined]
    except pydantic.ValidationError as exc:
        problems = []
        for e in exc.errors()[:8]:
            where = ".".join(map(str, e["loc"])) or "(root)"
            problems.append(f"{where}: {e['msg']}")
        return None, "; ".join(problems)


# --- one call per provider -------------------------------------------------------------------------
def _call(kit: Kit, provider: str, model_cls: type, messages: list[dict], system: str | None, model: str,
          max_tokens: int) -> tuple[str, Any, Any]:
    """Ask once; return (raw JSON text, the tool call for Anthropic or None, collected events)."""
    from . import providers

    return providers.get(provider).structured(kit, model_cls, messages, system, model, max_tokens)


def generate(kit: Kit, provider: str, schema: type[T], messages: str | list[dict], *, system: str | None = None,
             model: str | None = None, max_tokens: int = 2048, repair: bool = True) -> Structured[T]:
    """Ask ``provider`` for a ``schema`` instance, validate it, repair once if needed (lesson 4).

    ``messages`` is a prompt or provider-neutral messages (``llmkit.chat``). Never raises for an invalid
    reply: check ``.ok`` or call ``.unwrap()``. Errors of the API itself (HTTP status) raise as usual.
    Refused, blocked and cut-off replies are not repaired (``.attempts`` has one entry).
    """
    from . import chat

    history = [chat.user(messages)] if isinstance(messages, str) else list(messages)
    model = model or kit.models[provider]
    out: Structured[T] = Structured(provider, schema, None)
    for attempt in range(2 if repair else 1):
        raw, call, collected = _call(kit, provider, schema, history, system, model, max_tokens)
        value, error = _validate(schema, raw) if raw else (None, "the reply was empty")
        final = False  # a refusal, a block or a cut reply: asking again the same way gets the same answer
        if collected.refusal:
            value, error, final = None, f"the model refused: {collected.refusal}", True
        elif collected.finish_reason == "content_filter":
            said = f": {collected.text}" if collected.text else ""
            value, error, final = None, f"the reply was blocked or refused ({collected.raw_finish_reason}){said}", True
        elif error and collected.finish_reason == "length":
            error += (f" (the reply was cut off at max_tokens={max_tokens}; raise max_tokens or ask for less, "
                      "a repair round-trip would be cut off too)")
            final = True
        out.attempts.append(Attempt(raw, error, collected.usage, collected.finish_reason))
        if value is not None:
            out.value = value
            return out
        if final:
            return out
        if attempt == 0 and repair:
            fix = (f"Your reply did not match the {schema.__name__} schema: {error}. "
                   "Answer again with the corrected, complete result.")
            if call is not None:  # Anthropic: the error goes back as the forced tool's result
                history += [chat.assistant("", [call]), chat.tool_result(call, fix, is_error=True)]
            else:
                history += [chat.assistant(raw), chat.user(fix)]
    return out


