"""The tool-call loop through the official SDKs and the replay server (lesson 3).

Each test writes a small script, records a cassette from it with the real SDKs (record mode), then runs
the same code again in replay mode against that cassette: both runs must agree and play every interaction.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmkit import chat
from llmkit.kit import Kit
from llmkit.tools import run_tools, tool

PROVIDERS = ["openai", "anthropic", "gemini"]


def record_and_replay(tmp_path: Path, script: str, body: Callable[[Kit], Any]) -> tuple[Any, Any, dict]:
    """Run ``body`` in record mode against ``script``, then in replay mode; return both results + cassette."""
    path = tmp_path / "script.py"
    path.write_text("from llmkit.replay.scripted import Reply, ToolCall\n" + textwrap.dedent(script))
    out = []
    for mode in ("record", "replay"):
        kit = Kit("tools", mode=mode, speed=0, cassette_dir=tmp_path, script=str(path))
        try:
            out.append(body(kit))
            if mode == "replay":
                assert kit.misses == [] and kit.unused() == []
        finally:
            kit.close()
    return out[0], out[1], json.loads((tmp_path / "tools.json").read_text())


@tool
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": len(city)}


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@tool(side_effects=True)
def send_email(to: str, subject: str) -> str:
    """Send an email."""
    return f"sent to {to}"


PARALLEL = """
def reply(req):
    if not req.has_tool_results():
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Lima"}),
                                 ToolCall("get_weather", '{"city": "Ro')])
    return Reply(text="SEEN " + " || ".join(req.tool_results()))
"""


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_calls_and_malformed_arguments(tmp_path: Path, provider: str, stream: bool) -> None:
    events: list = []

    def body(kit: Kit):
        return run_tools(kit, provider, [chat.user("Weather in Oslo and Lima?")], [get_weather], stream=stream,
                         on_event=events.append)

    first, again, cassette = record_and_replay(tmp_path, PARALLEL, body)
    for run in (first, again):
        assert run.stopped == "answer" and len(run.rounds) == 2
        assert [o.error for o in run.outcomes] == [None, None, "invalid_arguments"]
        # the model saw both real results and the error, in one follow-up request
        assert '"temp_c": 4' in run.text and '"temp_c": 4' in run.text.split("||")[1]
        assert "invalid_arguments" in run.text
        assert all(u[0] > 0 and u[1] > 0 for u in run.usage())
    kinds = {type(e).__name__ for e in events}
    if stream and provider != "gemini":  # Gemini sends a call's arguments whole, never in pieces
        assert "ToolCallDelta" in kinds
    assert ("ToolCallComplete" in kinds) == stream
    second_request = cassette["interactions"][1]["request"]["body"]
    assert ("stream" in json.dumps(second_request)) == (stream and provider != "gemini")
    if provider == "anthropic":
        results = second_request["messages"][-1]["content"]
        assert [r.get("is_error", False) for r in results] == [False, False, True]
        # Anthropic gets a malformed call back as an empty input object, never as a crash
        assert second_request["messages"][-2]["content"][-1]["input"] == {}


FAILURES = """
def reply(req):
    if not req.has_tool_results():
        return Reply(tool_calls=[ToolCall("divide", {"a": 1, "b": 0}), ToolCall("divide", {"a": "one", "b": 2}),
                                 ToolCall("send_email", {"to": "x@y.z", "subject": "hi"})])
    return Reply(text="SEEN " + " || ".join(req.tool_results()))
"""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_failure_becomes_a_result_the_model_sees(tmp_path: Path, provider: str) -> None:
    def body(kit: Kit):
        return run_tools(kit, provider, [chat.user("go")], [get_weather, divide, send_email])

    run, again, _ = record_and_replay(tmp_path, FAILURES, body)
    assert [o.error for o in run.outcomes] == ["tool_error", "invalid_arguments", "not_confirmed"]
    assert [o.error for o in again.outcomes] == [o.error for o in run.outcomes]
    assert run.stopped == "answer"
    for fragment in ("ZeroDivisionError", "a: Input should be a valid number", "did not confirm"):
        assert fragment in run.text


def test_a_call_to_an_undeclared_tool_is_answered_not_raised() -> None:
    # The APIs only let a model call the tools a request declares (scripted replies are held to that too),
    # but a tool list can change between the request and the run: the loop answers instead of crashing.
    from llmkit.events import ToolCallComplete
    from llmkit.tools import execute_calls, execute_calls_sync

    calls = [ToolCallComplete(0, "call_1", "get_wether", json.dumps({"city": "Oslo"})),
             ToolCallComplete(1, "call_2", "get_weather", json.dumps({"city": "Oslo"}))]
    for outcomes in (execute_calls_sync(calls, [get_weather]), asyncio.run(execute_calls(calls, [get_weather]))):
        assert [o.error for o in outcomes] == ["unknown_tool", None]
        assert "get_wether" in outcomes[0].content and "get_weather" in outcomes[0].content
        assert '"temp_c"' in outcomes[1].content


def test_the_async_loop_answers_like_the_sync_one(tmp_path: Path) -> None:
    from llmkit.tools import arun_tools

    def body(kit: Kit):
        sync = run_tools(kit, "anthropic", [chat.user("Weather in Oslo and Lima?")], [get_weather])
        async_ = asyncio.run(arun_tools(kit, "anthropic", [chat.user("Weather in Oslo and Lima?")], [get_weather]))
        return sync, async_

    (sync, async_), _, _ = record_and_replay(tmp_path, PARALLEL, body)
    assert async_.stopped == sync.stopped == "answer"
    assert async_.text == sync.text and len(async_.rounds) == len(sync.rounds) == 2
    assert [o.error for o in async_.outcomes] == [o.error for o in sync.outcomes]


CONFIRMED = """
def reply(req):
    if not req.has_tool_results():
        return Reply(tool_calls=[ToolCall("send_email", {"to": "ana@example.com", "subject": "hi"})])
    return Reply(text="SEEN " + " || ".join(req.tool_results()))
"""


def test_side_effect_runs_only_when_confirmed(tmp_path: Path) -> None:
    asked: list = []

    def body(kit: Kit):
        return run_tools(kit, "openai", [chat.user("mail Ana")], [send_email],
                         confirm=lambda t, kw: asked.append((t.name, kw["to"])) or kw["to"].endswith("@example.com"))

    run, _, _ = record_and_replay(tmp_path, CONFIRMED, body)
    assert asked[0] == ("send_email", "ana@example.com")
    assert run.outcomes[0].error is None and "sent to ana@example.com" in run.text


LOOPING = """
def reply(req):
    return Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
"""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_round_limit_ends_the_loop(tmp_path: Path, provider: str) -> None:
    def body(kit: Kit):
        return run_tools(kit, provider, [chat.user("loop forever")], [get_weather], max_rounds=3)

    run, _, cassette = record_and_replay(tmp_path, LOOPING, body)
    assert run.stopped == "max_rounds" and not run.ok
    assert len(run.rounds) == 3 and len(cassette["interactions"]) == 3
    assert "stopped after 3 rounds" in run.text
    # the unanswered last calls are closed with an error result, so the history can be continued
    assert run.messages[-1]["role"] == "tool" and run.messages[-1]["is_error"]
    assert run.outcomes[-1].error == "round_limit"


ASYNC = """
def reply(req):
    if not req.has_tool_results():
        return Reply(tool_calls=[ToolCall("slow_lookup", {"key": k}) for k in "abc"])
    return Reply(text="SEEN " + " || ".join(req.tool_results()))
"""


def test_async_tools_run_concurrently(tmp_path: Path) -> None:
    @tool
    async def slow_lookup(key: str) -> str:
        """Look a key up slowly."""
        await asyncio.sleep(0.3)
        return key.upper()

    def body(kit: Kit):
        start = time.perf_counter()
        run = run_tools(kit, "anthropic", [chat.user("look up a, b, c")], [slow_lookup])
        return run, time.perf_counter() - start

    (run, seconds), _, _ = record_and_replay(tmp_path, ASYNC, body)
    assert [o.content for o in run.outcomes] == ["A", "B", "C"]
    assert seconds < 0.3 * 3 * 0.7  # three 0.3 s lookups, run at once


def test_max_rounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_tools(None, "openai", [], [], max_rounds=0)
