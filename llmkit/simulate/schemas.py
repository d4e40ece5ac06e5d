"""Values that conform to a JSON schema, drawn by Hypothesis from a seed (lesson 0, ``llmkit simulate``).

The simulator answers a strict response format or a tool's parameters with a value GENERATED from the
request's schema by ``hypothesis-jsonschema``: a different value for each seed, the same value for the
same seed, and valid for the schema by construction (the simulator still checks it, as the replay
server checks scripted replies).
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any

from ..errors import ConfigError

# Formats hypothesis-jsonschema knows; any other (Gemini's "enum", say) is only an annotation for us.
_FORMATS = frozenset({"date-time", "date", "time", "email", "idn-email", "hostname", "idn-hostname", "ipv4",
                      "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uri-template", "json-pointer",
                      "relative-json-pointer", "regex", "uuid", "duration"})


_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_ONES = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    return {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else set()


# The anthropic SDK's ``transform_schema`` moves constraints the API does not enforce (``minimum``, ``maxLength``,
# ``minItems`` above 1 ...) into the description as "\n\n{minimum: 1, maximum: 10}", for the model to follow.
_HINTED = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                     "maxLength", "minItems", "maxItems"})
_HINT = re.compile(r"(?:^|\n\n)\{([^{}]*)\}$")


def hinted(description: Any) -> dict[str, float | int]:
    """The numeric constraints a description states in the anthropic SDK's ``{key: value, ...}`` form."""
    match = _HINT.search(description) if isinstance(description, str) else None
    out: dict[str, float | int] = {}
    for part in match.group(1).split(", ") if match else []:
        key, _, value = part.partition(": ")
        if key in _HINTED and re.fullmatch(r"-?\d+(\.\d+)?", value):
            out[key] = float(value) if "." in value else int(value)
    return out


def tame(schema: Any) -> Any:
    """``schema`` narrowed to what a model writes: still a subset of what it accepts.

    Constraints stated in a description by the anthropic SDK are honoured (:func:`hinted`), objects get no
    keys beyond their properties (``additionalProperties: false`` where unset), strings
    without a pattern get short words, arrays and numbers without bounds modest sizes, and unknown
    ``format`` annotations (Gemini's ``enum``) are dropped, since the generator cannot read them.
    """
    if isinstance(schema, list):
        return [tame(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "format" and isinstance(value, str) and value not in _FORMATS:
            continue
        if key in _MAPS and isinstance(value, dict):
            out[key] = {name: tame(sub) for name, sub in value.items()}
        elif key in _LISTS + _ONES:
            out[key] = tame(value)
        else:
            out[key] = value
    for key, value in hinted(out.get("description")).items():  # as a model reading the description would
        out.setdefault(key, value)
    kinds = _types(out)
    if ("object" in kinds or "properties" in out) and "additionalProperties" not in out \
            and "patternProperties" not in out:
        out["additionalProperties"] = False
    if "string" in kinds and not {"maxLength", "pattern", "format", "enum", "const"} & out.keys():
        low = out.get("minLength", 0)
        high = max(24, low)
        out["maxLength"] = high
        out["pattern"] = f"^[A-Z][a-z ]{{{max(low - 1, 0)},{high - 1}}}$"  # words, not control characters
    if "array" in kinds and "maxItems" not in out:
        out["maxItems"] = max(4, out.get("minItems", 0))
    if kinds & {"integer", "number"} and not {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                              "enum", "const", "multipleOf"} & out.keys():
        out["minimum"], out["maximum"] = -1000, 100000
    return out


@lru_cache(maxsize=256)
def _strategy(schema_json: str) -> Any:
    import json

    from hypothesis_jsonschema import from_schema

    from ._hypothesis_compat import install

    install()
    return from_schema(tame(json.loads(schema_json)), allow_x00=False, codec="ascii")


def instance(schema: dict, seed: str) -> Any:
    """A value valid for ``schema``, the same for the same ``seed``.

    Hypothesis' ``find`` with generation only (no shrinking, no example database) and a seeded
    ``random.Random`` makes the draw deterministic; skipping the first few examples leaves out the
    "simplest value" Hypothesis tries first, so seeds differ.
    """
    import json

    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import HypothesisException, NoSuchExample

    rng = random.Random(seed)
    skip = rng.randrange(3, 9)
    seen = 0

    def nth(_value: Any) -> bool:
        nonlocal seen
        seen += 1
        return seen >= skip

    config = settings(phases=[Phase.generate], database=None, max_examples=50, deadline=None,
                      suppress_health_check=list(HealthCheck))
    strategy = _strategy(json.dumps(schema, sort_keys=True))
    try:
        try:
            return find(strategy, nth, settings=config, random=rng)
        except NoSuchExample:  # a schema with fewer distinct values than ``skip`` (``{}`` only, an enum)
            return find(strategy, lambda _value: True, settings=config, random=rng)
    except (HypothesisException, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"llmkit simulate cannot generate a value for the schema {json.dumps(schema)[:200]} "
                          f"({type(exc).__name__}: {exc}); simplify the schema or answer this request with a "
                          "scripted cassette.") from exc
