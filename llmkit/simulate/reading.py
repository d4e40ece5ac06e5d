"""What the simulator reads from a request besides its constraints (lesson 0, ``llmkit simulate``).

``llmkit.providers._<p>_scripted.constraints`` says what a request forbids (strict schemas, tool_choice,
max tokens); this module adds what an answer needs to be shaped like the real one: every declared tool
with its parameter schema (strict or not), whether the newest turn carries tool results, whether
parallel calls are allowed and whether plain JSON (no schema) was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeclaredTool:
    """A function tool a request declares: its name, description and parameter schema (JSON Schema)."""

    name: str
    description: str
    schema: dict


_EMPTY = {"type": "object", "properties": {}}


def declared_tools(api: str, body: dict) -> list[DeclaredTool]:
    """The function tools of a Chat Completions, Responses, Messages or generateContent body."""
    out: list[DeclaredTool] = []
    for tool in body.get("tools") or []:
        if api == "chat" and tool.get("type") == "function":
            fn = tool.get("function") or {}
            out.append(DeclaredTool(fn.get("name", ""), fn.get("description") or "", fn.get("parameters") or _EMPTY))
        elif api == "responses" and tool.get("type") == "function":
            out.append(DeclaredTool(tool.get("name", ""), tool.get("description") or "",
                                    tool.get("parameters") or _EMPTY))
        elif api == "messages" and "input_schema" in tool:
            out.append(DeclaredTool(tool.get("name", ""), tool.get("description") or "", tool["input_schema"]))
        elif api == "generate":
            from llmkit.providers._gemini_scripted import _json_schema

            for fn in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
                # google-genai sends parameters_json_schema in snake case; the API reads both spellings
                schema = (fn.get("parametersJsonSchema") or fn.get("parameters_json_schema")
                          or _json_schema(fn.get("parameters")) or _EMPTY)
                out.append(DeclaredTool(fn.get("name", ""), fn.get("description") or "", schema))
    return [t for t in out if t.name]


def answers_tool_results(api: str, body: dict) -> bool:
    """Does the newest turn hand tool results back (so the model now answers in words)?"""
    if api == "chat":
        messages = body.get("messages") or []
        return bool(messages) and messages[-1].get("role") == "tool"
    if api == "responses":
        items = body.get("input")
        return isinstance(items, list) and bool(items) and isinstance(items[-1], dict) \
            and items[-1].get("type") == "function_call_output"
    if api == "messages":
        messages = body.get("messages") or []
        content = messages[-1].get("content") if messages else None
        return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                                 for b in content)
    if api == "generate":
        contents = body.get("contents") or []
        return bool(contents) and any("functionResponse" in p for p in contents[-1].get("parts") or [])
    return False


def parallel_allowed(api: str, body: dict) -> bool:
    """May the answer make several tool calls? (``parallel_tool_calls: false``; Anthropic's
    ``disable_parallel_tool_use``.)"""
    if api in ("chat", "responses"):
        return body.get("parallel_tool_calls", True) is not False
    if api == "messages":
        return not (body.get("tool_choice") or {}).get("disable_parallel_tool_use")
    return True


def wants_json(api: str, body: dict) -> bool:
    """JSON mode without a schema: Chat's ``json_object``, Responses' ``text.format`` ``json_object``,
    Gemini's ``responseMimeType: application/json``."""
    if api == "chat":
        return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
    if api == "responses":
        return ((body.get("text") or {}).get("format") or {}).get("type") in ("json_object", "json_schema")
    if api == "generate":
        return (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"
    return False


def schema_hint(schema: Any) -> dict:
    """A non-strict format's schema (Chat/Responses ``json_schema`` without ``strict``), or ``{}``."""
    return schema if isinstance(schema, dict) else {}


def loose_schema(api: str, body: dict) -> dict:
    """The schema of a JSON format the request gives without promising strict decoding, or ``{}``."""
    if api == "chat":
        return schema_hint(((body.get("response_format") or {}).get("json_schema") or {}).get("schema"))
    if api == "responses":
        return schema_hint(((body.get("text") or {}).get("format") or {}).get("schema"))
    return {}
