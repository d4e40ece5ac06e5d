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
    if "refuse" in prompt:
        return Reply(refusal="I can't help with that.") if req.provider != "gemini" else Reply(finish="content_filter")
    if "truncated" in prompt:
        value = '{"issues": [{"type": "bug", "sev'
    else:
        bad = "always-bad" in json.dumps(req.body) or ("bad-once" in prompt and not repairing)
        value = json.dumps(BAD if bad else GOOD)
    if req.provider == "anthropic":
        return Reply(tool_calls=[ToolCall("CodeAnalysis", value)],
                     finish="length" if "truncated" in prompt else "tool_calls")
    return Reply(text=value, finish="length" if "truncated" in prompt else None)
"""


def test_strict_schema_is_closed_and_fully_required() -> None:
    s = structured.strict_schema(CodeAnalysis)
    issue = s["properties"]["issues"]["items"]
    assert s["additionalProperties"] is False and issue["additionalProperties"] is False
    assert issue["required"] == ["type", "severity", "line", "description", "suggestion"]
    assert "default" not in json.dumps(s) and "$ref" not in json.dumps(s)
    assert {"type": "null"} in issue["properties"]["line"]["anyOf"]  # optional = required but nullable


@pytest.mark.parametrize("provider", ["anthropic"])  # the one route without constrained decoding
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


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_reply_says_so_and_is_not_repaired(tmp_path: Path, provider: str) -> None:
    def body(kit):
        return structured.generate(kit, provider, CodeAnalysis, "truncated", max_tokens=20)

    result, _, cassette = record_and_replay(tmp_path, SCRIPT, body)
    assert not result.ok and len(result.attempts) == 1 and len(cassette["interactions"]) == 1
    assert result.attempts[0].finish_reason == "length"
    assert "cut off at max_tokens=20" in result.error and "raise max_tokens" in result.error


@pytest.mark.parametrize("provider", PROVIDERS)
def test_refused_or_blocked_reply_is_reported_and_not_repaired(tmp_path: Path, provider: str) -> None:
    def body(kit):
        return structured.generate(kit, provider, CodeAnalysis, "please refuse")

    result, again, cassette = record_and_replay(tmp_path, SCRIPT, body)
    assert not result.ok and len(result.attempts) == 1 and len(cassette["interactions"]) == 1
    expected = {"openai": "the model refused: I can't help with that.", "gemini": "blocked or refused (SAFETY)",
                "anthropic": "blocked or refused (refusal): I can't help with that."}[provider]
    assert expected in result.error and again.error == result.error


def test_strict_routes_cannot_be_scripted_to_break_the_schema() -> None:
    """OpenAI's strict json_schema and Gemini's responseJsonSchema constrain decoding: a scripted reply
    that breaks the schema is refused at record time (tests/test_scripted_constraints.py has the rest)."""
    from llmkit.errors import ScriptedReplyRejected
    from llmkit.replay.scripted import ScriptedRequest, render

    body = {"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "CodeAnalysis", "schema": structured.strict_schema(CodeAnalysis), "strict": True}}}
    bad = json.dumps({"issues": [], "score": 15, "summary": "x"})
    with pytest.raises(ScriptedReplyRejected, match="15 is greater than the maximum of 10"):
        render(ScriptedRequest("openai", "chat", "/v1/chat/completions", body, False, 0), bad, {})
