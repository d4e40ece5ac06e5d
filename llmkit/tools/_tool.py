"""``@tool``: a typed Python function → a JSON schema and each provider's tool format.

Introduced in lesson 3 (03_function_calling).

The function's signature is the contract. Type hints become JSON-schema types through pydantic
(nested models, ``Optional``, ``Literal``/``Enum``, ``list``), the docstring's first paragraph becomes the
description and its ``Args:`` section describes each parameter. The same pydantic model later validates
the arguments the model sends, so the schema the model sees and the check its arguments pass are one thing.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from ..errors import ToolArgumentError  # re-exported: every llmkit error lives in llmkit.errors

__all__ = ["Tool", "ToolArgumentError", "inline_refs", "tool"]


def _docstring(fn: Callable) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    parts = re.split(r"\n\s*(?:Args|Arguments|Parameters):\s*\n", doc, maxsplit=1)
    head, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    params: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        if re.match(r"^\S", line):  # a new section (Returns:, Raises:) ends Args
            break
        m = re.match(r"^\s+(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
        if m:
            current = m.group(1)
            params[current] = m.group(3).strip()
        elif current and line.strip():
            params[current] += " " + line.strip()
    description = " ".join(head.strip().split("\n\n")[0].split())
    return description, params


def inline_refs(schema: dict) -> dict:
    """Replace ``$ref`` with the referenced definition and drop ``$defs`` and pydantic's ``title`` keys.

    Every provider accepts a self-contained schema; not all of them resolve ``$ref``.
    """
    defs = schema.get("$defs", {})

    def walk(node: Any, parent_key: str = "") -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = defs[node["$ref"].split("/")[-1]]
                merged = {**walk(target), **{k: walk(v, k) for k, v in node.items() if k != "$ref"}}
                return merged
            return {k: walk(v, k) for k, v in node.items()
                    if k != "$defs" and not (k == "title" and parent_key != "properties")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(copy.deepcopy(schema))


def _collapse_optional(schema: dict) -> dict:
    """``anyOf: [X, {type: null}]`` with a default of None → X (the parameter is simply not required)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: walk(v) for k, v in node.items()}
            any_of = node.get("anyOf")
            if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of \
                    and node.get("default", 0) is None:
                inner = next(s for s in any_of if s != {"type": "null"})
                rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
                return {**inner, **rest}
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


@dataclass
class Tool:
    """A function the model may call: its name, description, JSON-schema parameters and the function.

    ``side_effects=True`` marks tools that change the world (send an email, write a row): the tool loop
    asks a ``confirm`` callback before running them.
    """

    name: str
    description: str
    parameters: dict
    fn: Callable[..., Any]
    args_model: Any = None  # the pydantic model that validates arguments
    side_effects: bool = False
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    # --- the formats each provider expects ------------------------------------------------------------
    def openai(self) -> dict:
        """OpenAI Chat Completions ``tools=[...]`` entry (replaces the deprecated ``functions=``)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def openai_responses(self) -> dict:
        """OpenAI Responses API function tool (flat: no nested ``function`` object)."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": False}

    def anthropic(self) -> dict:
        """Anthropic Messages ``tools=[...]`` entry (the schema goes in ``input_schema``)."""
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}

    def gemini(self) -> dict:
        """A Gemini function declaration, for ``types.Tool(function_declarations=[...])``."""
        return {"name": self.name, "description": self.description, "parameters_json_schema": self.parameters}

    # --- arguments --------------------------------------------------------------------------------------
    def validate(self, arguments: str | dict | None) -> dict[str, Any]:
        """Parse and validate the model's arguments; return keyword arguments for the function.

        Raises :class:`ToolArgumentError` with a message written for the model to read and fix.
        """
        import pydantic

        if isinstance(arguments, str) or arguments is None:
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                raise ToolArgumentError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos}); "
                                        "send one JSON object that matches the tool's parameters.") from None
        if not isinstance(arguments, dict):
            raise ToolArgumentError(f"arguments must be a JSON object, got {type(arguments).__name__}.")
        if self.args_model is None:
            return arguments
        try:
            validated = self.args_model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
            raise ToolArgumentError(f"invalid arguments for {self.name}: {problems}. "
                                    "Fix these fields and call the tool again.") from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}


def _args_model(fn: Callable, param_docs: dict[str, str]) -> Any:
    import pydantic
    import pydantic.fields  # a submodule: not loaded by `import pydantic` alone

    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"@tool {fn.__name__}: *args/**kwargs cannot be described to a model; "
                            "name every parameter.")
        if name not in hints:
            raise TypeError(f"@tool {fn.__name__}: parameter {name!r} has no type hint; the model needs one "
                            "to know what to send (e.g. `city: str`).")
        if isinstance(param.default, pydantic.fields.FieldInfo):  # `limit: int = Field(10, ge=1)`
            info = param.default
            if info.description is None and name in param_docs:
                info = pydantic.fields.FieldInfo.merge_field_infos(info, description=param_docs[name])
            fields[name] = (hints[name], info)
            continue
        default = ... if param.default is param.empty else param.default
        fields[name] = (hints[name], pydantic.Field(default, description=param_docs.get(name)))
    config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(f"{fn.__name__}_args", __config__=config, **fields)


def tool(fn: Callable | None = None, *, name: str | None = None, description: str | None = None,
         side_effects: bool = False) -> Any:
    """Turn a typed function into a :class:`Tool` (lesson 3, 03_function_calling).

    Use as ``@tool`` or ``@tool(side_effects=True)``. The returned Tool is still callable like the function.
    """

    def wrap(f: Callable) -> Tool:
        doc, param_docs = _docstring(f)
        model = _args_model(f, param_docs)
        schema = _collapse_optional(inline_refs(model.model_json_schema()))
        schema.pop("title", None)
        return Tool(name or f.__name__, description or doc, schema, f, model, side_effects)

    return wrap(fn) if fn is not None else wrap
