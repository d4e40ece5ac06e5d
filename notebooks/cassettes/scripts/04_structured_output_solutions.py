"""Script for the worked solutions of lesson 04 (provenance: scripted).

The exercises send the lesson's prompts (users.py, legacy_report.py, minified.js, keylogger.py) with other
settings, so every request is answered by the lesson's own script: the same analyses, the same non-strict
failures and the same real failure modes (cut off at the token limit, refusal, safety block). The solutions'
schema adds a required ``confidence`` to each issue, so the answers carry one.
"""

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("lesson04_script", Path(__file__).with_name("04_structured_output.py"))
lesson = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson)

CONFIDENCE = {"security": 0.95, "bug": 0.8, "maintainability": 0.6, "performance": 0.85}


def _with_confidence(analysis):
    return {**analysis, "issues": [{**i, "confidence": CONFIDENCE.get(i["type"], 0.5)} for i in analysis["issues"]]}


def reply(req):
    if "confidence" not in json.dumps(req.body):
        return lesson.reply(req)
    saved = {name: getattr(lesson, name) for name in ("USERS", "REPORT", "INVALID")}
    try:
        for name, value in saved.items():
            setattr(lesson, name, _with_confidence(value))
        return lesson.reply(req)
    finally:
        for name, value in saved.items():
            setattr(lesson, name, value)
