"""Function calls in OpenAI's Responses API: the scripted renderer against real recordings, and the parser.

Introduced in lesson 3 (03_function_calling). The renderer (``llmkit/providers/_openai_scripted.py``) must
frame ``function_call`` items and their stream events like the real API; the wire parser
(``llmkit.wire.openai.ResponsesStreamParser``) must turn them into ``llmkit.events`` tool-call events.
Real traffic comes from the conformance corpus (skipped when absent); field names the corpus does not hold
(the argument-delta events) are checked against the pinned SDK's event types.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import require_conformance

from llmkit.events import Finish, TextDelta, ToolCallComplete, ToolCallDelta, ToolCallStart
from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall, render
from llmkit.wire import openai as wire

TOOLS = [{"type": "function", "name": "get_weather", "description": "Get the weather.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
CALLS = [ToolCall("get_weather", {"city": c}) for c in ("Oslo", "Lima")]


def recording(name: str) -> dict:
    return json.loads((require_conformance() / f"{name}.json").read_text())


def rendered(body: dict, reply: Reply, stream: bool) -> Any:
    req = ScriptedRequest("openai", "responses", "/v1/responses", {**body, "stream": stream} if stream else body,
                          stream, 0)
    return render(req, reply, {})


def sse_payloads(text: str) -> list[tuple[str, dict]]:
    """(event name, data object) of every SSE event, with the data's keys in wire order."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def stream_text(response: Any) -> str:
    return "".join(frame.raw for frame in response.stream)


def test_non_streamed_function_call_is_framed_like_the_recording():
    rec = recording("openai-other-responses-encrypted-reasoning")
    real = json.loads(rec["response"]["body_text"])
    body = rec["request"]["body"]
    got = rendered(body, Reply(tool_calls=[ToolCall("lookup_population", {"country": "Pundora"})]), False).body
    real_call = next(i for i in real["output"] if i["type"] == "function_call")
    call = got["output"][0]
    assert list(call) == list(real_call)  # same fields, same order
    assert call["type"] == "function_call" and call["status"] == "completed"
    assert call["id"].startswith("fc_") and call["call_id"].startswith("call_")
    assert json.loads(call["arguments"]) == {"country": "Pundora"}
    assert set(got) == set(real)  # the response object has the real one's fields
    # A tool sent without "strict" comes back strict, with additionalProperties false - as in the recording.
    assert got["tools"] == real["tools"]


def test_explicitly_non_strict_tools_stay_non_strict():
    got = rendered({"model": "m", "input": "x", "tools": [{**TOOLS[0], "strict": False}]}, Reply("ok"), False).body
    assert got["tools"][0]["strict"] is False
    assert "additionalProperties" not in got["tools"][0]["parameters"]


def test_stream_event_keys_follow_the_recorded_order():
    real = sse_payloads(recording("openai-stream-responses-basic")["response"]["body_text"])
    ours = sse_payloads(stream_text(rendered({"model": "m", "input": "x", "tools": TOOLS},
                                             Reply("Sunny.", tool_calls=CALLS), True)))
    for name, data in real + ours:
        keys = list(data)
        assert keys[0] == "type" and data["type"] == name
        assert keys[1:] == sorted(keys[1:]), name  # the rule the real stream follows
    real_shapes = {name: set(data) for name, data in real}
    for name, data in ours:
        if name in real_shapes:
            assert set(data) == real_shapes[name], name
    assert [data["sequence_number"] for _, data in ours] == list(range(len(ours)))


def test_streamed_function_calls_have_the_real_event_sequence_and_fields():
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    events = sse_payloads(stream_text(rendered({"model": "m", "input": "x", "tools": TOOLS},
                                               Reply(tool_calls=CALLS), True)))
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    adapter = TypeAdapter(ResponseStreamEvent)
    for name, data in events:
        if "function_call" not in name and "output_item" not in name:
            continue  # the others are compared with the recorded stream above
        parsed = adapter.validate_python(data)
        declared = set(type(parsed).model_fields)
        extra = set(data) - declared
        # "name" on .done is in OpenAI's API spec, "obfuscation" padding on every delta of a real stream.
        assert extra <= {"obfuscation", "name"}, (name, extra)
        assert declared <= set(data) | {"logprobs"}, name
    for index, call in enumerate(CALLS):
        mine = [(n, d) for n, d in events if d.get("output_index") == index]
        kinds = [n for n, _ in mine]
        assert kinds[0] == "response.output_item.added" and kinds[-1] == "response.output_item.done"
        assert kinds[-2] == "response.function_call_arguments.done"
        assert set(kinds[1:-2]) == {"response.function_call_arguments.delta"}
        added, done = mine[0][1]["item"], mine[-1][1]["item"]
        assert added["status"] == "in_progress" and added["arguments"] == ""
        assert done["status"] == "completed" and done["name"] == call.name
        assert {added["id"], added["call_id"]} == {done["id"], done["call_id"]}
        pieces = "".join(d["delta"] for n, d in mine if n.endswith(".delta"))
        assert pieces == mine[-2][1]["arguments"] == done["arguments"]
        assert json.loads(done["arguments"]) == call.arguments
        assert all(d["item_id"] == added["id"] for _, d in mine[1:-1])
    final = events[-1][1]["response"]
    assert [i["call_id"] for i in final["output"]] == [d["item"]["call_id"] for n, d in events
                                                      if n == "response.output_item.done"]


def test_obfuscation_can_be_switched_off():
    body = {"model": "m", "input": "x", "tools": TOOLS, "stream_options": {"include_obfuscation": False}}
    events = sse_payloads(stream_text(rendered(body, Reply("Hi there.", tool_calls=CALLS), True)))
    assert not any("obfuscation" in d for _, d in events)
    assert any("obfuscation" in d for _, d in sse_payloads(stream_text(
        rendered({"model": "m", "input": "x"}, Reply("Hi there."), True))))


def tool_events(events: list) -> dict[str, list]:
    return {kind.__name__: [e for e in events if isinstance(e, kind)]
            for kind in (ToolCallStart, ToolCallDelta, ToolCallComplete, TextDelta, Finish)}


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_parser_turns_streamed_function_calls_into_tool_events(chunk):
    raw = stream_text(rendered({"model": "m", "input": "x", "tools": TOOLS},
                               Reply("Checking.", tool_calls=CALLS), True)).encode()
    parser = wire.ResponsesStreamParser()
    events = [e for i in range(0, len(raw), chunk) for e in parser.feed(raw[i:i + chunk])] + parser.close()
    got = tool_events(events)
    assert [s.name for s in got["ToolCallStart"]] == ["get_weather", "get_weather"]
    assert all(s.id and s.id.startswith("call_") for s in got["ToolCallStart"])
    complete = got["ToolCallComplete"]
    assert [json.loads(c.arguments) for c in complete] == [c.arguments for c in CALLS]
    assert [c.id for c in complete] == [s.id for s in got["ToolCallStart"]]
    for start, done in zip(got["ToolCallStart"], complete, strict=True):
        joined = "".join(d.arguments_delta for d in got["ToolCallDelta"] if d.index == start.index)
        assert joined == done.arguments
    assert "".join(t.text for t in got["TextDelta"]) == "Checking."
    assert got["Finish"][-1].reason == "tool_calls"


def test_stream_and_body_give_the_same_completed_calls():
    body = {"model": "m", "input": "x", "tools": TOOLS}
    raw = stream_text(rendered(body, Reply(tool_calls=CALLS), True)).encode()
    parser = wire.ResponsesStreamParser()
    streamed = tool_events(parser.feed(raw) + parser.close())["ToolCallComplete"]
    whole = tool_events(wire.parse_response(rendered(body, Reply(tool_calls=CALLS), False).body))
    # ids differ (they derive from the request, which says "stream"); names and arguments do not
    assert [(c.name, c.arguments) for c in streamed] == [(c.name, c.arguments) for c in whole["ToolCallComplete"]]
    assert all(c.id and c.id.startswith("call_") for c in streamed + whole["ToolCallComplete"])
    assert whole["Finish"][-1].reason == "tool_calls"


def test_parser_reads_the_recorded_function_call():
    rec = recording("openai-other-responses-encrypted-reasoning")
    got = tool_events(wire.parse_response(rec["response"]["body_text"]))
    [call] = got["ToolCallComplete"]
    real = next(i for i in json.loads(rec["response"]["body_text"])["output"] if i["type"] == "function_call")
    assert (call.id, call.name, call.arguments) == (real["call_id"], real["name"], real["arguments"])
    assert got["Finish"][-1].reason == "tool_calls"
