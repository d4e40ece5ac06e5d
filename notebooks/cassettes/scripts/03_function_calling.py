"""Script for lesson 03's cassette: a model that calls the lesson's tools (provenance: scripted).

It answers in each provider's exact wire format (rendered by llmkit.replay.scripted): tool calls first,
then an answer built from the tool results it was sent - including the error results, so the lesson can
show a model that sends malformed arguments and recovers, and one that never stops calling tools.
"""

import json

from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall


def _results(req):
    out = []
    for r in req.tool_results():
        try:
            value = json.loads(r)
        except json.JSONDecodeError:
            value = r
        if isinstance(value, dict) and isinstance(value.get("result"), dict):
            value = value["result"]  # Gemini wraps a non-object result
        if isinstance(value, dict) and isinstance(value.get("error"), dict):
            value = value["error"]  # and an error result
        out.append(value)
    return out


def _rounds(req):
    """How many tool-result turns this request already carries."""
    body = json.dumps(req.body)
    return max(body.count('"role": "tool"'), body.count('"type": "tool_result"'), body.count('"functionResponse"'),
               body.count('"type": "function_call_output"'))


def _is_strict(tool: dict) -> bool:
    """Chat Completions tools are strict only with ``strict: true``; Responses tools unless ``strict: false``."""
    if "function" in tool:
        return tool["function"].get("strict") is True
    return tool.get("strict") is not False


def _strict_arguments(req: ScriptedRequest, reply: Reply) -> Reply:
    """A strict tool's arguments name every property, optional ones as null - as the real API's do."""
    if req.api not in ("chat", "responses"):
        return reply  # Anthropic and Gemini tools have no strict flag here
    tools = {(t.get("function") or t).get("name"): t for t in (req.body or {}).get("tools") or []}
    for call in reply.tool_calls:
        tool = tools.get(call.name)
        if tool and _is_strict(tool) and isinstance(call.arguments, dict):
            props = ((tool.get("function") or tool).get("parameters") or {}).get("properties") or {}
            call.arguments = {name: call.arguments.get(name) for name in props}
    return reply


def _weather_text(results):
    parts = [f"{r['city']}: {r['temperature']}°{r['unit'][0].upper()}, {r['conditions']}" for r in results
             if isinstance(r, dict) and "city" in r]
    return "Right now — " + "; ".join(parts) + "."


def reply(req: ScriptedRequest) -> Reply:
    return _strict_arguments(req, _reply(req))


def _reply(req: ScriptedRequest) -> Reply:
    prompt = req.last_user_text()
    results = _results(req) if req.has_tool_results() else []
    if "weather in Oslo right now" in prompt:
        if not results:
            return Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
        return Reply(text=_weather_text(results))
    if "Compare the weather" in prompt:
        if not results:
            return Reply(tool_calls=[ToolCall("get_weather", {"city": c}) for c in ("Oslo", "Lima", "Tokyo")])
        warmest = max((r for r in results if "city" in r), key=lambda r: r["temperature"])
        return Reply(text=_weather_text(results) + f" {warmest['city']} is the warmest.")
    if "open orders" in prompt and "Email" not in prompt:
        if not results:
            return Reply(tool_calls=[ToolCall("query_orders", {"customer": "Ana", "status": "open"})])
        rows = results[0]["rows"]
        total = sum(r["amount"] for r in rows)
        return Reply(text=f"Ana has {len(rows)} open orders totalling ${total:.2f}.")
    if "biggest orders" in prompt:
        n = _rounds(req)
        if n == 0:  # malformed JSON: the closing brace is missing
            return Reply(tool_calls=[ToolCall("query_orders", '{"customer": "Ben", "limit": "three"')])
        if n == 1:  # valid JSON, but "three" is not an integer
            return Reply(tool_calls=[ToolCall("query_orders", {"customer": "Ben", "limit": "three"})])
        if n == 2:
            return Reply(tool_calls=[ToolCall("query_orders", {"customer": "Ben", "limit": 3})])
        rows = results[-1]["rows"] if isinstance(results[-1], dict) and "rows" in results[-1] else []
        listing = ", ".join(f"#{r['id']} (${r['amount']:.2f})" for r in rows)
        return Reply(text=f"Ben's three biggest orders: {listing}.")
    if "Email Ana" in prompt:
        if not results:
            return Reply(tool_calls=[ToolCall("send_email", {"to": "ana@example.com", "subject": "Your open orders",
                                                             "body": "You have open orders with us."})])
        if "not_confirmed" in json.dumps(results):
            return Reply(text="I have not sent the email: it needs your confirmation. Shall I send it to "
                              "ana@example.com with the subject \"Your open orders\"?")
        return Reply(text="Done — the email to ana@example.com has been sent.")
    if "until it is sunny" in prompt:
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])  # never satisfied
    return Reply(text="This scripted cassette only answers the lesson's prompts.")
