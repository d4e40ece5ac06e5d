"""Script for the worked solutions of lesson 03 (provenance: scripted).

It answers the exercises' prompts and leaves everything else to the lesson's own script (the weather,
orders and email prompts), so both cassettes behave alike. Replies respect the request: a forced
``tool_choice`` gets a call to that tool, and a strict tool gets every property (optional ones as null).
"""

import importlib.util
from pathlib import Path

from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall

_spec = importlib.util.spec_from_file_location("lesson03_script", Path(__file__).with_name("03_function_calling.py"))
lesson = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson)


def _forced(req: ScriptedRequest) -> str | None:
    choice = (req.body or {}).get("tool_choice")
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name") or choice.get("name")
    return None


def _forecast(req: ScriptedRequest) -> Reply:
    results = lesson._results(req) if req.has_tool_results() else []
    asked = 10 if "10-day" in req.last_user_text() else 3
    if not results:
        return Reply(tool_calls=[ToolCall("get_forecast", {"city": "Oslo", "days": asked})])
    last = results[-1]
    if isinstance(last, dict) and last.get("error") == "invalid_arguments":  # the loop's error result
        return Reply(tool_calls=[ToolCall("get_forecast", {"city": "Oslo", "days": 7})])
    days = last["days"]
    text = "; ".join(f"day {d['day']}: {d['temperature']}°C, {d['conditions']}" for d in days)
    note = " (7 days is the longest forecast I can get)" if len(days) < asked else ""
    return Reply(text=f"Oslo, next {len(days)} days{note} — {text}.")


def reply(req: ScriptedRequest) -> Reply:
    forced = _forced(req)
    if forced and not req.has_tool_results():
        return lesson._strict_arguments(req, Reply(tool_calls=[ToolCall(forced, {"city": "Oslo"})]))
    if "forecast" in req.last_user_text():
        return _forecast(req)
    return lesson.reply(req)
