"""The official SDKs against the replay server: streamed text and streamed tool calls, faults, misses.

Introduced in lesson 0 (00_setup_and_replay). The cassette is made the way a lesson's is: the kit runs in
record mode with a script (``LLMKIT_MODE=record LLMKIT_SCRIPT=...``), so the request bodies are exactly
what each SDK sends and the responses are rendered in each provider's wire format. Then the same calls
run in replay mode and must give the same answers, play every interaction and never leave loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest

from llmkit import guard
from llmkit.kit import Kit

SCRIPT = '''
from llmkit.replay.scripted import Reply, ToolCall


def reply(req):
    text = req.last_user_text()
    if "weather" in text.lower() and not req.has_tool_results():
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}),
                                 ToolCall("get_weather", {"city": "Tokyo"})])
    return Reply(text=f"Hello from {req.provider} ({req.api}): you said {text!r}.")
'''
TOOL_CALLS = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]
WEATHER = "What is the weather in Paris and Tokyo?"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def said(provider: str, api: str, text: str) -> str:
    return f"Hello from {provider} ({api}): you said {text!r}."


EXPECTED = {
    "openai.chat.text": said("openai", "chat", "Say hello"),
    "openai.chat.tools": TOOL_CALLS,
    "openai.responses.text": said("openai", "responses", "Say hello"),
    "openai.responses.stream.text": said("openai", "responses", "Say hello, streaming"),
    "openai.responses.stream.tools": TOOL_CALLS,
    "anthropic.text": said("anthropic", "messages", "Say hello"),
    "anthropic.stream.text": said("anthropic", "messages", "Say hello, streaming"),
    "anthropic.stream.tools": TOOL_CALLS,
    "gemini.text": said("gemini", "generate", "Say hello"),
    "gemini.tools": TOOL_CALLS,
    "gemini.async.text": said("gemini", "generate", "Say hello, async"),
    "gemini.async.tools": TOOL_CALLS,
    "legacy.text": said("gemini", "generate", "Say hello, legacy"),
    "legacy.tools": TOOL_CALLS,
}


# --- the calls a lesson makes ----------------------------------------------------------------------
def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def openai_chat_text(kit: Kit) -> str:
    stream = kit.openai.chat.completions.create(model=kit.models["openai"], messages=user("Say hello"),
                                                stream=True, stream_options={"include_usage": True})
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def openai_chat_tools(kit: Kit) -> list:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
    with kit.openai.chat.completions.stream(model=kit.models["openai"], messages=user(WEATHER),
                                            tools=tools) as stream:
        message = stream.get_final_completion().choices[0].message
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]


def openai_responses_text(kit: Kit) -> str:
    events = kit.openai.responses.create(model=kit.models["openai"], input="Say hello", stream=True)
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def openai_responses_stream(kit: Kit, text: str, tools: list | None = None) -> Any:
    extra = {"tools": tools} if tools else {}
    with kit.openai.responses.stream(model=kit.models["openai"], input=text, **extra) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text
    return final


def anthropic_text(kit: Kit) -> str:
    events = kit.anthropic.messages.create(model=kit.models["anthropic"], max_tokens=200,
                                           messages=user("Say hello"), stream=True)
    return "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")


def anthropic_stream(kit: Kit, text: str, tools: list | None = None) -> tuple[str, Any]:
    extra = {"tools": tools} if tools else {}
    with kit.anthropic.messages.stream(model=kit.models["anthropic"], max_tokens=200, messages=user(text),
                                       **extra) as stream:
        streamed = "".join(stream.text_stream)
        return streamed, stream.get_final_message()


def gemini_tools_config() -> Any:
    from google.genai import types

    return types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
        types.FunctionDeclaration(name="get_weather", parameters_json_schema=SCHEMA)])])


def gemini_calls(chunks: list) -> list:
    return [(c.name, dict(c.args)) for chunk in chunks for c in (chunk.function_calls or [])]


def exercise(kit: Kit) -> dict[str, Any]:
    """Every streamed call of the lesson, through each official SDK; returns what each one yielded."""
    out: dict[str, Any] = {"openai.chat.text": openai_chat_text(kit), "openai.chat.tools": openai_chat_tools(kit),
                           "openai.responses.text": openai_responses_text(kit)}
    out["openai.responses.stream.text"] = openai_responses_stream(kit, "Say hello, streaming").output_text
    tools = [{"type": "function", "name": "get_weather", "parameters": SCHEMA, "strict": False}]
    final = openai_responses_stream(kit, WEATHER, tools)
    out["openai.responses.stream.tools"] = [(o.name, json.loads(o.arguments)) for o in final.output
                                            if o.type == "function_call"]
    out["anthropic.text"] = anthropic_text(kit)
    streamed, message = anthropic_stream(kit, "Say hello, streaming")
    assert streamed == message.content[0].text
    out["anthropic.stream.text"] = streamed
    _, message = anthropic_stream(kit, WEATHER, [{"name": "get_weather", "input_schema": SCHEMA}])
    out["anthropic.stream.tools"] = [(b.name, b.input) for b in message.content if b.type == "tool_use"]

    model = kit.models["gemini"]
    out["gemini.text"] = "".join(c.text or "" for c in kit.gemini.models.generate_content_stream(
        model=model, contents="Say hello"))
    out["gemini.tools"] = gemini_calls(list(kit.gemini.models.generate_content_stream(
        model=model, contents=WEATHER, config=gemini_tools_config())))

    async def gemini_async() -> tuple[str, list]:
        aio = kit.gemini.aio
        text = "".join([c.text or "" async for c in await aio.models.generate_content_stream(
            model=model, contents="Say hello, async")])
        chunks = [c async for c in await aio.models.generate_content_stream(
            model=model, contents=WEATHER, config=gemini_tools_config())]
        await aio.aclose()
        return text, gemini_calls(chunks)

    out["gemini.async.text"], out["gemini.async.tools"] = asyncio.run(gemini_async())

    legacy = kit.legacy_gemini
    out["legacy.text"] = "".join(c.text for c in legacy.GenerativeModel(model).generate_content(
        "Say hello, legacy", stream=True))
    declaration = {"function_declarations": [{"name": "get_weather", "description": "Weather in a city",
                                              "parameters": SCHEMA}]}
    chunks = legacy.GenerativeModel(model, tools=[declaration]).generate_content(WEATHER, stream=True)
    out["legacy.tools"] = [(p.function_call.name, dict(p.function_call.args))
                           for chunk in chunks for p in chunk.parts if p.function_call]
    return out


# --- fixtures --------------------------------------------------------------------------------------
def _isolate(mp: pytest.MonkeyPatch, folder) -> None:
    mp.chdir(folder)  # no stray .env is found from here
    for name in list(os.environ):
        if name.startswith("LLMKIT_") or name.endswith(("_API_KEY", "_BASE_URL")):
            mp.delenv(name)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Any, dict[str, Any]]:
    """Record the lesson's calls once, with the script standing in for the providers."""
    folder = tmp_path_factory.mktemp("sdk_replay")
    (folder / "script.py").write_text(SCRIPT)
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, folder)
        kit = Kit("sdk_replay", mode="record", cassette_dir=folder, script=str(folder / "script.py"))
        try:
            results = exercise(kit)
        finally:
            kit.close()
    return folder, results


@pytest.fixture
def replay_kit(recorded, monkeypatch) -> Any:
    folder, _ = recorded
    _isolate(monkeypatch, folder)
    kit = Kit("sdk_replay", mode="replay", cassette_dir=folder, speed=0)
    yield kit
    kit.close()


# --- tests -----------------------------------------------------------------------------------------
def test_record_mode_with_a_script_answers_every_sdk(recorded):
    folder, results = recorded
    assert results == EXPECTED
    data = json.loads((folder / "sdk_replay.json").read_text())
    assert data["provenance"]["kind"] == "scripted"
    assert len(data["interactions"]) == len(EXPECTED)


def test_replay_gives_every_sdk_the_same_streams(recorded, replay_kit):
    _, results = recorded
    assert guard.installed()
    assert exercise(replay_kit) == results
    assert replay_kit.unused() == [] and replay_kit.misses == []
    # Every stream reports usage except OpenAI chat without stream_options.include_usage (as the API does).
    # The server notes an exchange just after its last byte: give the last one a moment.
    deadline = time.monotonic() + 2
    while len(replay_kit.usage) < len(EXPECTED) - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(replay_kit.usage) == len(EXPECTED) - 1
    assert replay_kit.usage.totals()["output_tokens"] > 0


def test_a_changed_request_is_a_miss_in_each_sdk(replay_kit):
    import anthropic
    import openai
    from google.genai import errors

    with pytest.raises(openai.BadRequestError, match="cassette miss"):
        replay_kit.openai.chat.completions.create(model=replay_kit.models["openai"], messages=user("Say goodbye"))
    with pytest.raises(anthropic.BadRequestError, match="cassette miss"):
        replay_kit.anthropic.messages.create(model=replay_kit.models["anthropic"], max_tokens=200,
                                             messages=user("Say goodbye"))
    with pytest.raises(errors.ClientError, match="cassette miss") as info:
        replay_kit.gemini.models.generate_content(model=replay_kit.models["gemini"], contents="Say goodbye")
    assert info.value.code == 400
    assert [m.diff[0] for m in replay_kit.misses][:1] == [
        "messages[0].content: recorded 'Say hello', sent 'Say goodbye'"]


def test_sdks_retry_a_replayed_429_as_told_by_retry_after(replay_kit):
    import anthropic
    import openai
    from google.genai import errors

    faults = replay_kit.faults
    faults.status(429, provider="openai", retry_after_ms=20)
    assert openai_chat_text(replay_kit) == EXPECTED["openai.chat.text"]  # retried once, then served
    faults.status(429, provider="anthropic", retry_after=0.02)
    assert anthropic_text(replay_kit) == EXPECTED["anthropic.text"]
    assert [a.fault.status for a in faults.log] == [429, 429]
    faults.status(429, provider="openai")
    with pytest.raises(openai.RateLimitError):
        replay_kit.openai.with_options(max_retries=0).chat.completions.create(
            model=replay_kit.models["openai"], messages=user("Say hello"))
    faults.status(529, provider="anthropic")
    with pytest.raises(anthropic.APIStatusError) as info:
        replay_kit.anthropic.with_options(max_retries=0).messages.create(
            model=replay_kit.models["anthropic"], max_tokens=200, messages=user("Say hello"))
    assert info.value.status_code == 529
    faults.status(503, provider="gemini")  # google-genai does not retry unless configured
    with pytest.raises(errors.ServerError) as info:
        list(replay_kit.gemini.models.generate_content_stream(model=replay_kit.models["gemini"],
                                                              contents="Say hello"))
    assert info.value.code == 503


def test_stream_faults_reach_each_sdk_as_its_own_error(replay_kit):
    import anthropic
    import httpx2
    import openai
    from google.genai import errors

    faults = replay_kit.faults
    faults.error_event(after=2, provider="openai", message="Overloaded")
    with pytest.raises(openai.APIError, match="Overloaded"):
        openai_chat_text(replay_kit)
    faults.error_event(after=2, provider="anthropic")
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        anthropic_text(replay_kit)
    faults.error_event(after=1, provider="gemini")
    with pytest.raises(errors.ServerError):
        list(replay_kit.gemini.models.generate_content_stream(model=replay_kit.models["gemini"],
                                                              contents="Say hello"))
    faults.drop_stream(after=2, provider="openai")
    with pytest.raises(openai.APIConnectionError):
        openai_chat_text(replay_kit)
    faults.drop_stream(after=2, provider="anthropic")
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        anthropic_text(replay_kit)
