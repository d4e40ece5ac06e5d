"""A scripted reply must be one the real API could send for its request (lesson 4, 04_structured_output).

``llmkit.replay.scripted.render`` reads each request's constraints (strict schemas, declared and strict
tools, ``tool_choice``, the output-token limit) and rejects a reply that breaks one; refusals, truncated
replies and safety blocks stay allowed, and render in each provider's real shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import events, providers
from llmkit.errors import CassetteError, LlmkitError, ScriptedReplyRejected
from llmkit.replay.cassette import Cassette, Interaction, RecordedRequest
from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall, check_script, render, violations

SCHEMA = {"type": "object", "properties": {"grade": {"type": "string", "enum": ["a", "b"]},
                                           "score": {"type": "integer"}},
          "required": ["grade", "score"], "additionalProperties": False}
TOOL = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}
GOOD = json.dumps({"grade": "a", "score": 3})
BAD = json.dumps({"grade": "z"})  # out of the enum, and "score" missing

PATHS = {("openai", "chat"): "/v1/chat/completions", ("openai", "responses"): "/v1/responses",
         ("anthropic", "messages"): "/v1/messages",
         ("gemini", "generate"): "/v1beta/models/gemini-2.5-flash:generateContent"}


def req(provider: str, api: str, body: dict, n: int = 0) -> ScriptedRequest:
    base = {"model": "m", "messages": [{"role": "user", "content": "grade this"}]}
    if provider == "gemini":
        base = {"contents": [{"role": "user", "parts": [{"text": "grade this"}]}]}
    if api == "responses":
        base = {"model": "m", "input": "grade this"}
    return ScriptedRequest(provider, api, PATHS[provider, api], {**base, **body}, False, n)


STRICT_FORMATS = {
    ("openai", "chat"): {"response_format": {"type": "json_schema", "json_schema": {
        "name": "Grade", "schema": SCHEMA, "strict": True}}},
    ("openai", "responses"): {"text": {"format": {"type": "json_schema", "name": "Grade", "schema": SCHEMA,
                                                  "strict": True}}},
    ("anthropic", "messages"): {"max_tokens": 500, "output_config": {"format": {"type": "json_schema",
                                                                               "schema": SCHEMA}}},
    ("gemini", "generate"): {"generationConfig": {"responseMimeType": "application/json",
                                                  "responseJsonSchema": SCHEMA}},
}


@pytest.mark.parametrize("provider, api", list(STRICT_FORMATS))
def test_a_strict_response_format_rejects_text_that_breaks_the_schema(provider: str, api: str) -> None:
    request = req(provider, api, STRICT_FORMATS[provider, api], n=4)
    render(request, Reply(text=GOOD), {})  # a valid reply renders
    with pytest.raises(ScriptedReplyRejected) as info:
        render(request, Reply(text=BAD), {})
    message = str(info.value)
    assert f"#{4}" in message and PATHS[provider, api] in message and "grade this" in message  # the request
    assert "'z' is not one of" in message and "'score' is a required property" in message  # the constraint
    assert "Fix the script" in message  # the fix
    assert isinstance(info.value, CassetteError) and isinstance(info.value, LlmkitError)


def test_gemini_openapi_response_schema_is_read_as_json_schema() -> None:
    schema = {"type": "OBJECT", "properties": {"grade": {"type": "STRING", "enum": ["a", "b"]},
                                               "note": {"type": "STRING", "nullable": True}},
              "required": ["grade", "note"]}
    request = req("gemini", "generate", {"generationConfig": {"responseMimeType": "application/json",
                                                              "responseSchema": schema}})
    assert violations(request, json.dumps({"grade": "a", "note": None})) == []
    assert "responseSchema" in violations(request, json.dumps({"grade": "c", "note": None}))[0]


def test_without_a_strict_format_any_text_is_allowed() -> None:
    loose = {"response_format": {"type": "json_object"}}
    assert violations(req("openai", "chat", loose), BAD) == []
    not_strict = {"response_format": {"type": "json_schema", "json_schema": {"name": "G", "schema": SCHEMA}}}
    assert violations(req("openai", "chat", not_strict), BAD) == []


@pytest.mark.parametrize("reply", [
    Reply(refusal="I can't help with that."),
    Reply(text=BAD[:7], finish="length", output_tokens=5),
    Reply(finish="content_filter"),
], ids=["refusal", "truncated", "content-filter"])
@pytest.mark.parametrize("provider, api", list(STRICT_FORMATS))
def test_refusals_truncations_and_blocks_stay_allowed(provider: str, api: str, reply: Reply) -> None:
    request = req(provider, api, {**STRICT_FORMATS[provider, api], "max_tokens": 5, "max_output_tokens": 5,
                                  "max_completion_tokens": 5})
    assert violations(request, reply) == []
    render(request, reply, {})


def test_a_strict_tool_rejects_arguments_that_break_its_schema() -> None:
    tools = {"tools": [{"type": "function", "function": {"name": "weather", "parameters": TOOL, "strict": True}}]}
    request = req("openai", "chat", tools)
    assert violations(request, Reply(tool_calls=[ToolCall("weather", {"city": "Oslo"})])) == []
    problems = violations(request, Reply(tool_calls=[ToolCall("weather", {"town": "Oslo"})]))
    assert len(problems) == 1 and "strict tool 'weather'" in problems[0] and "'city' is a required" in problems[0]
    loose = {"tools": [{"type": "function", "function": {"name": "weather", "parameters": TOOL}}]}
    assert violations(req("openai", "chat", loose), Reply(tool_calls=[ToolCall("weather", {"town": "x"})])) == []


def test_responses_function_tools_are_strict_unless_strict_false() -> None:
    call = Reply(tool_calls=[ToolCall("weather", {"town": "Oslo"})])
    default = {"tools": [{"type": "function", "name": "weather", "parameters": TOOL}]}
    assert violations(req("openai", "responses", default), call)
    off = {"tools": [{"type": "function", "name": "weather", "parameters": TOOL, "strict": False}]}
    assert violations(req("openai", "responses", off), call) == []


def test_anthropic_strict_tool_is_checked_and_a_plain_one_is_not() -> None:
    call = Reply(tool_calls=[ToolCall("weather", {"town": "Oslo"})])
    strict = {"max_tokens": 100, "tools": [{"name": "weather", "input_schema": TOOL, "strict": True}]}
    plain = {"max_tokens": 100, "tools": [{"name": "weather", "input_schema": TOOL}]}
    assert "strict tool" in violations(req("anthropic", "messages", strict), call)[0]
    assert violations(req("anthropic", "messages", plain), call) == []


@pytest.mark.parametrize("provider, api, tools", [
    ("openai", "chat", {"tools": [{"type": "function", "function": {"name": "weather", "parameters": TOOL}}]}),
    ("anthropic", "messages", {"max_tokens": 100, "tools": [{"name": "weather", "input_schema": TOOL}]}),
    ("gemini", "generate", {"tools": [{"functionDeclarations": [{"name": "weather", "parameters": TOOL}]}]}),
])
def test_a_call_to_an_undeclared_tool_is_rejected(provider: str, api: str, tools: dict) -> None:
    problems = violations(req(provider, api, tools), Reply(tool_calls=[ToolCall("stocks", {"s": "X"})]))
    assert len(problems) == 1 and "'stocks'" in problems[0] and "declared: weather" in problems[0]
    assert violations(req(provider, api, {"max_tokens": 100}), Reply(tool_calls=[ToolCall("weather", {})]))


@pytest.mark.parametrize("provider, api, forced, none", [
    ("openai", "chat", {"tool_choice": {"type": "function", "function": {"name": "weather"}}},
     {"tool_choice": "none"}),
    ("openai", "responses", {"tool_choice": {"type": "function", "name": "weather"}}, {"tool_choice": "none"}),
    ("anthropic", "messages", {"tool_choice": {"type": "tool", "name": "weather"}}, {"tool_choice": {"type": "none"}}),
    ("gemini", "generate", {"toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                                     "allowedFunctionNames": ["weather"]}}},
     {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}),
])
def test_tool_choice_is_obeyed(provider: str, api: str, forced: dict, none: dict) -> None:
    tools = {"openai": [{"type": "function", "function": {"name": "weather", "parameters": TOOL}},
                        {"type": "function", "function": {"name": "stocks", "parameters": {}}}],
             "anthropic": [{"name": "weather", "input_schema": TOOL}, {"name": "stocks", "input_schema": {}}],
             "gemini": [{"functionDeclarations": [{"name": "weather"}, {"name": "stocks"}]}]}[provider]
    if api == "responses":
        tools = [{"type": "function", "name": "weather", "parameters": TOOL, "strict": False},
                 {"type": "function", "name": "stocks", "parameters": {}, "strict": False}]
    base = {"tools": tools, "max_tokens": 100}
    weather, stocks = ToolCall("weather", {"city": "Oslo"}), ToolCall("stocks", {})
    assert violations(req(provider, api, {**base, **forced}), Reply(tool_calls=[weather])) == []
    assert "requires a call to 'weather'" in violations(req(provider, api, {**base, **forced}), "Sunny.")[0]
    assert "forces 'weather'" in violations(req(provider, api, {**base, **forced}), Reply(tool_calls=[stocks]))[0]
    assert violations(req(provider, api, {**base, **none}), "Sunny.") == []
    assert "forbids tool calls" in violations(req(provider, api, {**base, **none}), Reply(tool_calls=[weather]))[0]


@pytest.mark.parametrize("provider, api, limit", [
    ("openai", "chat", {"max_completion_tokens": 10}), ("openai", "chat", {"max_tokens": 10}),
    ("openai", "responses", {"max_output_tokens": 10}), ("anthropic", "messages", {"max_tokens": 10}),
    ("gemini", "generate", {"generationConfig": {"maxOutputTokens": 10}}),
])
def test_a_reply_longer_than_the_token_limit_must_be_marked_truncated(provider: str, api: str, limit: dict) -> None:
    long_text = "word " * 40  # ~50 tokens at four characters a token
    request = req(provider, api, limit)
    problems = violations(request, long_text)
    assert len(problems) == 1 and "=10: the reply is ~50 tokens" in problems[0] and "finish=" in problems[0]
    assert violations(request, Reply(text=long_text[:40], finish="length")) == []
    assert violations(request, Reply(text=long_text, output_tokens=9)) == []  # the script's own count


def test_refusal_renders_in_each_openai_shape_and_parses_as_a_refusal() -> None:
    from openai.types.chat import ChatCompletion
    from openai.types.responses import Response

    refusal = Reply(refusal="I can't help with that.")
    chat = render(req("openai", "chat", STRICT_FORMATS["openai", "chat"]), refusal, {}).body
    message = ChatCompletion.model_validate(chat).choices[0].message
    assert message.refusal == "I can't help with that." and message.content is None
    resp = render(req("openai", "responses", STRICT_FORMATS["openai", "responses"]), refusal, {}).body
    part = Response.construct(**resp).output[0].content[0]  # the SDK builds responses without validating
    assert part.type == "refusal" and part.refusal == "I can't help with that."
    for api in ("chat", "responses"):
        body = render(req("openai", api, {}), refusal, {}).body
        got = providers.get("openai").parse_response(body)
        assert "".join(e.text for e in got if isinstance(e, events.RefusalDelta)) == "I can't help with that."


def test_a_truncated_responses_reply_is_incomplete_for_max_output_tokens() -> None:
    body = render(req("openai", "responses", {"max_output_tokens": 3}), Reply(text='{"gr', finish="length"), {}).body
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    finish = [e for e in providers.get("openai").parse_response(body) if isinstance(e, events.Finish)]
    assert finish and finish[-1].reason == "length"


def test_anthropic_refusal_and_max_tokens_stop_reasons() -> None:
    from anthropic.types import Message

    request = req("anthropic", "messages", STRICT_FORMATS["anthropic", "messages"])
    assert Message.model_validate(render(request, Reply(refusal="No."), {}).body).stop_reason == "refusal"
    cut = render(request, Reply(text='{"grade": "a", "sc', finish="length"), {}).body
    assert Message.model_validate(cut).stop_reason == "max_tokens"


def test_gemini_safety_block_has_the_real_shape() -> None:
    from google.genai import types

    body = render(req("gemini", "generate", STRICT_FORMATS["gemini", "generate"]),
                  Reply(finish="content_filter"), {}).body
    candidate = body["candidates"][0]
    assert candidate["content"] == {} and candidate["finishReason"] == "SAFETY"
    assert any(r.get("blocked") for r in candidate["safetyRatings"])
    assert "candidatesTokenCount" not in body["usageMetadata"]
    parsed = types.GenerateContentResponse.model_validate(body)
    assert parsed.candidates[0].finish_reason == types.FinishReason.SAFETY and parsed.text is None


def test_check_script_finds_the_replies_a_script_would_now_get_rejected(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import json\n"
                      "def reply(req):\n"
                      "    return json.dumps({'grade': 'z'}) if 'bad' in json.dumps(req.body) else "
                      f"{GOOD!r}\n")
    cassette = Cassette("c")
    for i, word in enumerate(("good", "bad")):
        body = {"model": "m", "messages": [{"role": "user", "content": word}], **STRICT_FORMATS["openai", "chat"]}
        request = RecordedRequest("openai", "POST", "/v1/chat/completions", "", body)
        cassette.interactions.append(Interaction(request, render(req("openai", "chat", body, i), GOOD, {})))
    cassette.save(tmp_path / "c.json")
    found = check_script(script, tmp_path / "c.json")
    assert len(found) == 1 and found[0].startswith("interaction 1 (openai chat)")


def test_recording_a_rejected_reply_fails_the_call_with_the_reason_and_records_nothing(tmp_path: Path) -> None:
    import openai

    from llmkit.kit import Kit

    script = tmp_path / "script.py"
    script.write_text(f"def reply(req):\n    return {BAD!r}\n")
    kit = Kit("strict", mode="record", speed=0, cassette_dir=tmp_path, script=str(script))
    try:
        with pytest.raises(openai.BadRequestError, match="'z' is not one of") as info:
            kit.openai.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}],
                                               **STRICT_FORMATS["openai", "chat"])
        assert "Fix the script" in str(info.value)
        with pytest.raises(ScriptedReplyRejected):
            kit.check_recording()
    finally:
        kit.close()
    saved = tmp_path / "strict.json"
    assert not saved.exists() or json.loads(saved.read_text())["interactions"] == []
