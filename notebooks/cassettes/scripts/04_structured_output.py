"""Script for lesson 04's cassette: code analyses as JSON (provenance: scripted).

Every answer is one the real API could send for its request (``llmkit.replay.scripted`` checks this):

- strict routes (OpenAI ``json_schema`` in Responses and Chat Completions, Anthropic structured outputs,
  Gemini ``response_json_schema``) always get JSON that fits the schema they sent, or a real failure mode:
  a reply cut at the token limit (marked ``finish="length"``), a refusal, a Gemini safety block;
- non-strict routes (Chat Completions JSON mode, Anthropic forced tool use without ``strict``) may get
  JSON that breaks the schema: ``legacy_report.py`` is invalid once (the repair round-trip fixes it),
  ``minified.js`` always (the lesson shows the honest failure);
- Anthropic's structured outputs do not enforce numeric bounds (the SDK moves ``minimum``/``maximum`` into
  the description), so ``legacy_report.py`` through ``messages.parse`` gets a score of 12.
"""

import json

from llmkit.replay.scripted import Reply, ToolCall, estimate_tokens

USERS = {
    "issues": [
        {"type": "security", "severity": "critical", "line": 4,
         "description": "The SQL query is built with an f-string from user input (SQL injection).",
         "suggestion": "Use a parameterised query: cursor.execute('... WHERE name = ?', (name,))."},
        {"type": "bug", "severity": "medium", "line": 7,
         "description": "A bare `except:` swallows every error, including KeyboardInterrupt.",
         "suggestion": "Catch sqlite3.Error and log it, or let it propagate."},
        {"type": "maintainability", "severity": "low", "line": None,
         "description": "The connection is never closed.",
         "suggestion": "Use `with sqlite3.connect(path) as conn:`."},
    ],
    "score": 3,
    "summary": "Works for friendly input but is open to SQL injection and hides errors.",
}
REPORT = {
    "issues": [
        {"type": "performance", "severity": "medium", "line": 3,
         "description": "String concatenation in a loop is quadratic.",
         "suggestion": "Collect the lines in a list and join them once."},
    ],
    "score": 7,
    "summary": "Readable; one avoidable performance problem.",
}
# What a model without constrained decoding can send: an unknown issue type, a missing field, a score of 12.
INVALID = {"issues": [{"type": "smell", "severity": "medium", "line": 3,
                       "description": "Concatenation in a loop."}], "score": 12, "summary": "Mostly fine."}
REFUSAL = "I can't help make software hide from antivirus tools."


def _limit(body):
    """The request's output-token limit, however the provider spells it."""
    config = body.get("generationConfig") or {}
    for value in (body.get("max_completion_tokens"), body.get("max_output_tokens"), config.get("maxOutputTokens")):
        if value is not None:
            return value
    return body.get("max_tokens") if body.get("max_tokens", 10**6) < 1000 else None


def _forced_tool(body):
    choice = body.get("tool_choice") or {}
    return choice.get("name") if choice.get("type") == "tool" else None


def reply(req):
    body = req.body or {}
    raw = json.dumps(body)
    repairing = "did not match" in raw
    if "keylogger.py" in raw:
        return Reply(finish="content_filter") if req.provider == "gemini" else Reply(refusal=REFUSAL)
    if "minified.js" in raw:
        value = INVALID
    elif "legacy_report.py" in raw:
        if "output_config" in body:  # Anthropic structured outputs: the bounds went into the description
            value = {**REPORT, "score": 12}
        else:
            value = REPORT if repairing else INVALID
    elif "def find_user" in raw:
        value = USERS
    else:
        return Reply(text="This scripted cassette only answers the lesson's prompts.")
    text = json.dumps(value, indent=1)
    limit = _limit(body)
    tool = _forced_tool(body)
    if limit is not None and estimate_tokens(text) > limit:  # what the API sends at the limit: a cut reply
        cut = text[:limit * 4]
        if tool:
            return Reply(tool_calls=[ToolCall(tool, cut)], finish="length", output_tokens=limit)
        return Reply(text=cut, finish="length", output_tokens=limit)
    if tool:
        return Reply(tool_calls=[ToolCall(tool, value)], finish="tool_calls")
    return Reply(text=text)
