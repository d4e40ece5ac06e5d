"""Structured output through each provider's SDK and the replay server (lesson 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from test_tools_loop import record_and_replay

from llmkit import structured
from llmkit.structured import StructuredOutputFailed

PROVIDERS = ["openai", "anthropic", "gemini"]


class Issue(BaseModel):
    type: Literal["bug", "security", "style"]
    severity: Literal["low", "medium", "high"]
    line: int | None = Field(None, description="1-based line, or null")
    description: str
    suggestion: str


class CodeAnalysis(BaseModel):
    issues: list[Issue]
    score: int = Field(ge=1, le=10)
    summary: str


SCRIPT = """
import json
GOOD = {"issues": [{"type": "bug", "severity": "high", "line": 3, "description": "d", "suggestion": "s"}],
        "score": 6, "summary": "one bug"}
BAD = {"issues": [{"type": "typo", "severity": "high"}], "score": 15, "summary": "x"}

def reply(req):
    prompt = req.last_user_text()
    repairing = "did not match" in json.dumps(req.body)
    if "truncated" in prompt:
        value = '{"issues": [{"type": "bug", "sev'
    else:
        bad = "always-bad" in json.dumps(req.body) or ("bad-once" in prompt and not repairing)
        value = json.dumps(BAD if bad else GOOD)
    if req.provider == "anthropic":
        return Reply(tool_calls=[ToolCall("CodeAnalysis", value)], finish="tool_calls")
    return Reply(text=value, finish="length" if "truncated" in prompt else None)
"""


def test_strict_schema_is_closed_and_fully_required() -> None:
    s = structured.strict_schema(CodeAnalysis)
    issue = s["properties"]["issues"]["items"]
    assert s["additionalProperties"] is False and issue["additionalProperties"] is False
    assert issue["required"] == ["type", "severity", "line", "description", "suggestion"]
    assert "default" not in json.dumps(s) and "$ref" not in json.dumps(s)
    assert {"type": "null"} in issue["properties"]["line"]["anyOf"]  # optional = required but nullable


@pytest.mark.parametrize("provider", PROVIDERS)
def test_valid_repaired_and_honest_failure(tmp_path: Path, provider: str) -> None:
    def body(kit):
        return [structured.generate(kit, provider, CodeAnalysis, p) for p in ("fine", "bad-once", "always-bad")]

    (good, repaired, failed), again, cassette = record_and_replay(tmp_path, SCRIPT, body)
    assert good.ok and not good.repaired and good.value.issues[0].line == 3
    assert repaired.ok and repaired.repaired and len(repaired.attempts) == 2
    assert repaired.attempts[0].error and "score" in repaired.attempts[0].error
    assert not failed.ok and failed.value is None and len(failed.attempts) == 2  # exactly one repair
    assert "could not be parsed" in failed.error and "less than or equal to 10" in failed.error
    with pytest.raises(StructuredOutputFailed, match="do not substitute a default"):
        failed.unwrap()
    assert [r.ok for r in again] == [True, True, False]
    first = cassette["interactions"][0]["request"]["body"]
    if provider == "openai":
        assert first["response_format"]["json_schema"]["strict"] is True
    elif provider == "anthropic":
        assert first["tool_choice"] == {"type": "tool", "name": "CodeAnalysis"}
        repair = cassette["interactions"][2]["request"]["body"]["messages"][-1]["content"][0]
        assert repair["type"] == "tool_result" and repair["is_error"] is True
    else:
        assert first["generationConfig"]["responseMimeType"] == "application/json"
        assert first["generationConfig"]["responseJsonSchema"]["required"] == ["issues", "score", "summary"]


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_truncated_reply_says_so(tmp_path: Path, provider: str) -> None:
    def body(kit):
        return structured.generate(kit, provider, CodeAnalysis, "truncated", repair=False, max_tokens=20)

    result, _, cassette = record_and_replay(tmp_path, SCRIPT, body)
    assert not result.ok and len(cassette["interactions"]) == 1
    assert "cut off at max_tokens=20" in result.error
