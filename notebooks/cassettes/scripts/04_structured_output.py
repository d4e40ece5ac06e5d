"""Script for lesson 04's cassette: code analyses as JSON (provenance: scripted).

Answers follow each provider's structured-output mechanism: JSON text for OpenAI (``response_format``) and
Gemini (``response_json_schema``), a forced ``CodeAnalysis`` tool call for Anthropic. Two prompts misbehave
on purpose: ``legacy_report.py`` gets an invalid first reply (fixed by the repair round-trip) and
``minified.js`` never gets a valid one (the lesson shows the honest failure).
"""

import json

from llmkit.replay.scripted import Reply, ToolCall

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
# An invalid reply: an unknown issue type, a missing field and a score outside 1-10.
INVALID = {"issues": [{"type": "smell", "severity": "medium", "line": 3,
                       "description": "Concatenation in a loop."}], "score": 12, "summary": "Mostly fine."}


def reply(req):
    body = json.dumps(req.body)
    repairing = "did not match" in body
    if "minified.js" in body:
        value = INVALID
    elif "legacy_report.py" in body:
        value = REPORT if repairing else INVALID
    elif "def find_user" in body:
        value = USERS
    else:
        return Reply(text="This scripted cassette only answers the lesson's prompts.")
    if req.provider == "anthropic":
        return Reply(tool_calls=[ToolCall("CodeAnalysis", value)], finish="tool_calls")
    return Reply(text=json.dumps(value, indent=1))
