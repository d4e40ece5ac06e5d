"""The raw-HTTP parsers and request builders against real recorded provider traffic.

Recordings come from the real-traffic corpus (docs/conformance.md; found by
``conformance_dir()`` in conftest.py); the tests that read it skip when it is
absent. Expectations are computed here from the recorded JSON (data lines parsed
with a regex and json.loads), not by running the parsers under test.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from urllib.parse import urlsplit

import pytest
from conftest import conformance_files, require_conformance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmkit.events import (
    FINISH_REASONS,
    Finish,
    ProviderError,
    TextDelta,
    ThinkingDelta,
    ToolCallComplete,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    collect,
)
from llmkit.wire import WireRequest, anthropic, gemini, openai, stream_parser


def _load() -> list[dict]:
    records = []
    for path in conformance_files():
        rec = json.loads(path.read_text())
        rec["_name"] = path.stem
        records.append(rec)
    return records


RECORDS = _load()


def api_of(rec: dict) -> str:
    path = urlsplit(rec["request"]["url"]).path
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/messages"):
        return "messages"
    if ":streamGenerateContent" in path or ":generateContent" in path:
        return "gemini"
    return "other"


def is_stream_request(rec: dict) -> bool:
    body = rec["request"]["body"]
    return (isinstance(body, dict) and body.get("stream") is True) or (
        "streamGenerateContent" in rec["request"]["url"]
    )


def pick(pred) -> list:
    return [pytest.param(r, id=r["_name"]) for r in RECORDS if pred(r)] or [pytest.param(None, id="no-recording")]


def need(rec):
    if rec is None:
        require_conformance()
        pytest.skip("no recording of this kind in the corpus")
    return rec


STREAMS = pick(
    lambda r: is_stream_request(r) and r["response"]["status"] < 400 and api_of(r) != "other"
)
ERROR_STREAMS = pick(
    lambda r: r["response"]["status"] >= 400 and api_of(r) in ("chat", "responses", "gemini")
    and is_stream_request(r)
)
ERRORS = pick(lambda r: r["response"]["status"] >= 400 and api_of(r) != "other")
BODIES = pick(lambda r: not is_stream_request(r) and r["response"]["status"] < 400)


def parser_for(rec: dict, status: int | None = None):
    provider = rec["provider"]
    api = "responses" if api_of(rec) == "responses" else None
    return stream_parser(provider, api, rec["response"]["status"] if status is None else status)


def body_bytes(rec: dict) -> bytes:
    return rec["response"]["body_text"].encode()


def run(rec: dict, chunks: list[bytes], status: int | None = None) -> list:
    parser = parser_for(rec, status)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


# -- independent expectations ---------------------------------------------------------------


def data_objects(text: str) -> list[tuple[str | None, dict]]:
    """(event name, data JSON) per SSE block - these recordings use one data line per event."""
    out = []
    for block in re.split(r"\r\n\r\n|\n\n", text):
        name = re.search(r"^event: ?(.*)$", block, re.M)
        data = re.search(r"^data: ?(.*)$", block, re.M)
        if data and data.group(1) != "[DONE]":
            out.append((name.group(1) if name else None, json.loads(data.group(1))))
    return out


def expected_stream(rec: dict) -> dict:
    """text, thinking, tool calls [(id, name, args)], usage (in, out, total), raw finish."""
    objs = [o for _, o in data_objects(rec["response"]["body_text"])]
    text, thinking, calls, usage, finish = [], [], {}, None, None
    api = api_of(rec)
    if api == "chat":
        for o in objs:
            if o.get("usage"):
                u = o["usage"]
                usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
            for ch in o["choices"]:
                d = ch["delta"]
                text.append(d.get("content") or "")
                for tc in d.get("tool_calls") or []:
                    c = calls.setdefault(tc["index"], [None, None, ""])
                    c[0] = c[0] or tc.get("id")
                    c[1] = c[1] or tc["function"].get("name")
                    c[2] += tc["function"].get("arguments") or ""
                finish = ch.get("finish_reason") or finish
    elif api == "responses":
        for o in objs:
            if o["type"] == "response.output_text.delta":
                text.append(o["delta"])
            if o["type"] == "response.output_item.done" and o["item"]["type"] == "function_call":
                it = o["item"]
                calls[o["output_index"]] = [it["call_id"], it["name"], it["arguments"]]
            if o["type"] == "response.completed":
                u = o["response"]["usage"]
                usage = (u["input_tokens"], u["output_tokens"], u["total_tokens"])
                finish = o["response"]["status"]
    elif api == "messages":
        u_in = u_out = 0
        for o in objs:
            if o["type"] == "message_start":
                u = o["message"]["usage"]
                u_in = u["input_tokens"] + u.get("cache_creation_input_tokens", 0) + u.get(
                    "cache_read_input_tokens", 0
                )
            if o["type"] == "content_block_start" and o["content_block"]["type"] == "tool_use":
                b = o["content_block"]
                calls[o["index"]] = [b["id"], b["name"], ""]
            if o["type"] == "content_block_delta":
                d = o["delta"]
                if d["type"] == "text_delta":
                    text.append(d["text"])
                elif d["type"] == "input_json_delta":
                    calls[o["index"]][2] += d["partial_json"]
            if o["type"] == "message_delta":
                u_out = o["usage"]["output_tokens"]
                finish = o["delta"]["stop_reason"]
        usage = (u_in, u_out, u_in + u_out)
    elif api == "gemini":
        for o in objs:
            m = o["usageMetadata"]
            usage = (
                m["promptTokenCount"],
                m.get("candidatesTokenCount", 0) + m.get("thoughtsTokenCount", 0),
                m["totalTokenCount"],
            )
            cand = o["candidates"][0]
            for p in cand["content"]["parts"]:
                if "functionCall" in p:
                    fc = p["functionCall"]
                    calls[len(calls)] = [fc.get("id"), fc["name"], json.dumps(fc["args"])]
                elif p.get("thought"):
                    thinking.append(p["text"])
                else:
                    text.append(p.get("text", ""))
            finish = cand.get("finishReason") or finish
    return {
        "text": "".join(text),
        "thinking": "".join(thinking),
        "calls": [(c[0], c[1], json.loads(c[2] or "{}")) for _, c in sorted(calls.items())],
        "usage": usage,
        "finish": finish,
    }


# What each raw reason means, written out by hand from the providers' docs.
NORMALISED = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "length",
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "completed": "stop",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
}


def expected_reason(raw: str, has_calls: bool) -> str:
    if has_calls and raw in ("STOP", "completed"):  # Gemini / Responses have no tool reason
        return "tool_calls"
    return NORMALISED[raw]


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rec", STREAMS)
def test_stream_yields_what_the_recording_contains(rec):
    rec = need(rec)
    want = expected_stream(rec)
    got = collect(run(rec, [body_bytes(rec)]))
    assert got.errors == ()
    assert got.text == want["text"]
    assert got.thinking == want["thinking"]
    assert [(c.id, c.name, c.args()) for c in got.tool_calls] == want["calls"]
    assert [c.index for c in got.tool_calls] == list(range(len(want["calls"])))
    assert got.usage is not None
    assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.total_tokens) == want[
        "usage"
    ]
    assert got.raw_finish_reason == want["finish"]
    assert got.finish_reason == expected_reason(want["finish"], bool(want["calls"]))
    assert got.finish_reason in FINISH_REASONS  # every real recording maps into the shared vocabulary


@pytest.mark.parametrize("rec", STREAMS)
def test_stream_event_shape(rec):
    """One Usage and one Finish, at the end; deltas non-empty; each call started then completed."""
    events = run(need(rec), [body_bytes(rec)])
    kinds = [type(e) for e in events]
    assert kinds.count(Usage) == 1
    assert kinds.count(Finish) == 1
    assert kinds[-2:] == [Usage, Finish]
    for e in events:
        if isinstance(e, TextDelta | ThinkingDelta):
            assert e.text
        if isinstance(e, ToolCallDelta):
            assert e.arguments_delta
    starts = [i for i, e in enumerate(events) if isinstance(e, ToolCallStart)]
    completes = [i for i, e in enumerate(events) if isinstance(e, ToolCallComplete)]
    assert len(starts) == len(completes)
    for s, c in zip(starts, completes, strict=True):
        assert s < c and events[s].index == events[c].index
        assert (events[s].id, events[s].name) == (events[c].id, events[c].name)
        deltas = [e.arguments_delta for e in events[s:c] if isinstance(e, ToolCallDelta)
                  and e.index == events[s].index]
        if deltas:  # streamed arguments add up to the completed text
            assert "".join(deltas) == events[c].arguments


@pytest.mark.parametrize("rec", STREAMS)
def test_stream_one_byte_chunks_give_the_same_events(rec):
    data = body_bytes(need(rec))
    assert run(rec, [data[i : i + 1] for i in range(len(data))]) == run(rec, [data])


@pytest.mark.parametrize("rec", STREAMS)
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cuts=st.lists(st.integers(min_value=0), max_size=40), newline=st.sampled_from(
    [None, "\n", "\r\n", "\r"]))
def test_stream_any_rechunking_and_newline_style_gives_the_same_events(rec, cuts, newline):
    rec = need(rec)
    reference = run(rec, [body_bytes(rec)])
    text = rec["response"]["body_text"]
    if newline is not None:  # the JSON inside holds no raw newlines, so this is safe
        text = re.sub(r"\r\n|\r|\n", newline, text)
    data = text.encode()
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    assert run(rec, [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]) == reference


@pytest.mark.parametrize(
    "rec", pick(lambda r: "body_raw_base64" in r["response"] and is_stream_request(r))
)
def test_gzip_wire_bytes_decompressed_incrementally(rec):
    rec = need(rec)
    raw = base64.b64decode(rec["response"]["body_raw_base64"])
    assert gzip.decompress(raw) == body_bytes(rec)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = [inflate.decompress(raw[i : i + 7]) for i in range(0, len(raw), 7)]
    assert run(rec, [*chunks, inflate.flush()]) == run(rec, [body_bytes(rec)])


def test_truncated_stream_reports_incomplete_stream():
    rec = record("openai-stream-tools-gpt4omini-multiply-include-usage")
    text = rec["response"]["body_text"]
    cut = text.index('"finish_reason":"tool_calls"')
    events = run(rec, [text[:cut].encode()])
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(events[-1], ProviderError) and events[-1].type == "incomplete_stream"
    # what did arrive is kept, but a call the provider never finished is not "complete"
    assert isinstance(events[0], ToolCallStart) and events[0].name == "multiply"
    assert "".join(e.arguments_delta for e in events if isinstance(e, ToolCallDelta)) == (
        '{"a":1231,"b":2331}'
    )
    assert not any(isinstance(e, ToolCallComplete) for e in events)
    assert collect(events).finish_reason == "error"


def test_stream_cut_between_events_reports_incomplete_stream():
    rec = record("anthropic-image-base64-png-stream")
    text = rec["response"]["body_text"]
    events = run(rec, [text[: text.index("event: content_block_stop")].encode()])
    assert collect(events).text == "Red square, green square."
    assert [e.type for e in events if isinstance(e, ProviderError)] == ["incomplete_stream"]


# -- quirks, one recording each -----------------------------------------------------------------


def record(name: str) -> dict:
    require_conformance()
    for rec in RECORDS:
        if rec["_name"] == name:
            return rec
    pytest.skip(f"{name} is not in the corpus")


def test_gemini_thought_parts_never_reach_the_answer():
    rec = record("gemini-stream-thinking-thought-parts-sse")
    events = run(rec, [body_bytes(rec)])
    got = collect(events)
    assert "**Clarifying User Goals**" in got.thinking
    assert "Clarifying User Goals" not in got.text
    assert got.text.startswith("This is a great question!")
    # usage arrived on every chunk (23 times) but is reported once, with the last totals
    assert body_bytes(rec).count(b"usageMetadata") > 1
    assert [e for e in events if isinstance(e, Usage)] == [Usage(34, 469 + 787, 1290)]


def test_gemini_parallel_calls_whole_with_signature_on_first_only():
    rec = record("gemini-stream-tools-parallel-calls-signature-on-first-only")
    calls = collect(run(rec, [body_bytes(rec)])).tool_calls
    assert [c.args() for c in calls] == [{"password": "mellon"}, {"password": "radiance"}]
    assert calls[0].signature and calls[0].signature.startswith("CikB")
    assert calls[1].signature is None
    assert all(c.id is None for c in calls)  # this API version gives no call ids


def test_anthropic_empty_input_json_delta_gives_empty_object():
    rec = record("anthropic-stream-tools-empty-input-gzip")
    events = run(rec, [body_bytes(rec)])
    assert b'"partial_json":""' in body_bytes(rec)
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    (call,) = collect(events).tool_calls
    assert (call.name, call.arguments) == ("pelican_name_generator", "{}")


def test_anthropic_ping_and_padding_are_harmless():
    rec = record("anthropic-image-base64-png-stream")
    assert b"event: ping" in body_bytes(rec) and b'}              }' in body_bytes(rec)
    assert collect(run(rec, [body_bytes(rec)])).text == "Red square, green square."


def test_openai_usage_only_final_chunk_with_empty_choices():
    rec = record("openai-stream-gpt4omini-after-tool-text")
    assert b'"choices":[],"usage":{' in body_bytes(rec) and b'"obfuscation"' in body_bytes(rec)
    got = collect(run(rec, [body_bytes(rec)]))
    assert (got.text, got.usage) == ("The capital of the UK is London.", Usage(78, 9, 87))


@pytest.mark.parametrize(
    "events, expected",
    [
        (  # Responses: a function call streamed as argument deltas, then done
            [
                {"type": "response.output_item.added", "output_index": 1,
                 "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""}},
                {"type": "response.function_call_arguments.delta", "output_index": 1,
                 "delta": '{"x":'},
                {"type": "response.function_call_arguments.delta", "output_index": 1,
                 "delta": "1}"},
                {"type": "response.function_call_arguments.done", "output_index": 1,
                 "arguments": '{"x":1}'},
                {"type": "response.output_item.done", "output_index": 1,
                 "item": {"type": "function_call", "call_id": "c1", "name": "f",
                          "arguments": '{"x":1}'}},
                {"type": "response.completed", "response": {"status": "completed",
                 "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}},
            ],
            [ToolCallStart(0, "c1", "f"), ToolCallDelta(0, '{"x":'), ToolCallDelta(0, "1}"),
             ToolCallComplete(0, "c1", "f", '{"x":1}'), Usage(3, 2, 5),
             Finish("tool_calls", "completed")],
        ),
        (  # Responses: failed response and a stream error event
            [{"type": "error", "code": "server_error", "message": "boom"}],
            [ProviderError(None, "server_error", "boom", "server_error")],
        ),
        (
            [{"type": "response.failed", "response": {"status": "failed",
              "error": {"code": "rate_limit_exceeded", "message": "slow down"}}}],
            [ProviderError(None, "rate_limit_exceeded", "slow down", "rate_limit_exceeded"),
             Finish("error", "failed")],
        ),
        (
            [{"type": "response.incomplete", "response": {"status": "incomplete",
              "incomplete_details": {"reason": "max_output_tokens"}}}],
            [Finish("length", "max_output_tokens")],
        ),
    ],
)
def test_responses_events_not_in_the_recordings(events, expected):
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    parser = openai.ResponsesStreamParser()
    out = parser.feed(body) + parser.close()
    assert out == expected


def test_anthropic_error_event_mid_stream():
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    parser = anthropic.MessagesStreamParser()
    events = parser.feed(body) + parser.close()
    assert events[0] == TextDelta("Hi")
    assert ProviderError(None, "overloaded_error", "Overloaded") in events
    # the error is the reason; no second "incomplete_stream" error is invented
    assert [e for e in events if isinstance(e, ProviderError)] == [
        ProviderError(None, "overloaded_error", "Overloaded")
    ]
    assert collect(events).finish_reason == "error"


def test_openai_parallel_tool_calls_streamed_interleaved():
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y"'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"x":1}'}},
            {"index": 1, "function": {"arguments": ":2}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    parser = openai.ChatStreamParser()
    got = collect(parser.feed(body.encode()) + parser.close())
    assert [(c.index, c.id, c.name, c.args()) for c in got.tool_calls] == [
        (0, "a", "f", {"x": 1}),
        (1, "b", "g", {"y": 2}),
    ]
    assert (got.finish_reason, got.errors) == ("tool_calls", ())


def test_legacy_gemini_json_array_stream():
    """The legacy SDK's stream (no alt=sse): the same chunks as one JSON array."""
    rec = record("gemini-stream-thinking-thought-parts-sse")
    objs = [o for _, o in data_objects(rec["response"]["body_text"])]
    data = ("[" + ",\r\n".join(json.dumps(o, indent=2) for o in objs) + "]").encode()
    parser = gemini.GeminiStreamParser()
    events = [e for i in range(0, len(data), 50) for e in parser.feed(data[i : i + 50])]
    assert events + parser.close() == run(rec, [body_bytes(rec)])


# -- errors ------------------------------------------------------------------------------------


def expected_error(rec: dict) -> tuple:
    err = json.loads(rec["response"]["body_text"])["error"]
    if rec["provider"] == "gemini":
        return (rec["response"]["status"], err["status"], err["message"])
    return (rec["response"]["status"], err["type"], err["message"])


@pytest.mark.parametrize("rec", ERRORS)
def test_parse_error_body(rec):
    rec = need(rec)
    module = {"openai": openai, "anthropic": anthropic, "gemini": gemini}[rec["provider"]]
    err = module.parse_error_body(rec["response"]["status"], body_bytes(rec))
    assert (err.status, err.type, err.message) == expected_error(rec)


@pytest.mark.parametrize("rec", ERROR_STREAMS)
def test_error_body_on_a_streaming_request_is_one_provider_error(rec):
    rec = need(rec)
    data = body_bytes(rec)
    events = run(rec, [data[i : i + 3] for i in range(0, len(data), 3)])
    assert len(events) == 1 and isinstance(events[0], ProviderError)
    assert (events[0].status, events[0].type, events[0].message) == expected_error(rec)
    # without the status (a client that only looks at the body) the JSON is still recognised
    events = run(rec, [data], status=200)
    assert [(e.type, e.message) for e in events] == [expected_error(rec)[1:]]


def test_gemini_error_reason_code_from_error_info():
    rec = record("gemini-error-400-api-key-invalid-on-sse")
    assert rec["response"]["headers"]["content-type"].startswith("text/event-stream")
    err = gemini.parse_error_body(400, body_bytes(rec))
    assert err.code == "API_KEY_INVALID"


@pytest.mark.parametrize("module", [openai, anthropic, gemini])
def test_non_json_error_body(module):
    err = module.parse_error_body(502, b"<html><body>Bad Gateway</body></html>")
    assert (err.status, err.type) == (502, "http_error")
    assert "Bad Gateway" in err.message


# -- non-streamed bodies -----------------------------------------------------------------------


def expected_body(rec: dict) -> dict:
    obj = json.loads(rec["response"]["body_text"])
    api = api_of(rec)
    text, calls = "", []
    if api == "chat":
        msg = obj["choices"][0]["message"]
        text = msg.get("content") or ""
        calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in msg.get("tool_calls") or []]
        finish = obj["choices"][0]["finish_reason"]
    elif api == "responses":
        for item in obj["output"]:
            if item["type"] == "message":
                text += "".join(p["text"] for p in item["content"] if p["type"] == "output_text")
            if item["type"] == "function_call":
                calls.append((item["call_id"], item["name"], json.loads(item["arguments"])))
        finish = obj["status"]
    elif api == "messages":
        text = "".join(b["text"] for b in obj["content"] if b["type"] == "text")
        calls = [(b["id"], b["name"], b["input"]) for b in obj["content"]
                 if b["type"] == "tool_use"]
        finish = obj["stop_reason"]
    else:
        cand = obj["candidates"][0]
        parts = cand["content"].get("parts", [])
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        finish = cand["finishReason"]
    return {"text": text, "calls": calls, "finish": finish}


@pytest.mark.parametrize("rec", BODIES)
def test_parse_response_matches_the_body(rec):
    rec = need(rec)
    module = {"openai": openai, "anthropic": anthropic, "gemini": gemini}[rec["provider"]]
    want = expected_body(rec)
    events = module.parse_response(rec["response"]["body_text"])
    got = collect(events)
    assert got.text == want["text"]
    assert [(c.id, c.name, c.args()) for c in got.tool_calls] == want["calls"]
    assert got.raw_finish_reason == want["finish"]
    assert got.finish_reason == expected_reason(want["finish"], bool(want["calls"]))
    assert got.finish_reason in FINISH_REASONS  # every real recording maps into the shared vocabulary
    assert type(events[-1]) is Finish
    # a server that ignores stream=true and answers with the whole JSON: same events
    assert run(rec, [body_bytes(rec)]) == events


def test_openai_refusal_is_not_text():
    rec = record("openai-chat-gpt4o-json-schema-refusal")
    got = collect(openai.parse_response(body_bytes(rec)))
    assert got.text == ""
    assert got.refusal == "I'm very sorry, but I can't assist with that request."


def test_gemini_safety_block_is_content_filter_with_prompt_only_usage():
    rec = record("gemini-chat-finish-safety-blocked")
    got = collect(gemini.parse_response(body_bytes(rec)))
    assert (got.text, got.finish_reason, got.raw_finish_reason) == ("", "content_filter", "SAFETY")
    assert got.usage == Usage(14, 0, 14)


def test_responses_encrypted_reasoning_stays_out_of_text_and_thinking():
    rec = record("openai-other-responses-encrypted-reasoning")
    got = collect(openai.parse_response(body_bytes(rec)))
    assert (got.text, got.thinking) == ("", "")
    assert [c.name for c in got.tool_calls] == ["lookup_population"]
    assert got.usage == Usage(94, 85, 179)  # output includes the 63 reasoning tokens


# -- request builders, against the recorded requests -------------------------------------------


def recorded(rec: dict) -> tuple[str, dict]:
    url = urlsplit(rec["request"]["url"])
    return url.path + (f"?{url.query}" if url.query else ""), rec["request"]["body"]


def build(rec: dict) -> WireRequest:
    body = dict(rec["request"]["body"])
    stream = bool(body.pop("stream", False)) or is_stream_request(rec)
    api = api_of(rec)
    if api == "chat":
        include = (body.pop("stream_options", None) or {}).get("include_usage", False)
        return openai.chat_request(body.pop("model"), body.pop("messages"), stream=stream,
                                   include_usage=include, api_key="sk-test", **body)
    if api == "responses":
        return openai.responses_request(body.pop("model"), body.pop("input"), stream=stream,
                                        api_key="sk-test", **body)
    if api == "messages":
        return anthropic.messages_request(body.pop("model"), body.pop("messages"),
                                          max_tokens=body.pop("max_tokens"), stream=stream,
                                          api_key="sk-ant-test", **body)
    version = urlsplit(rec["request"]["url"]).path.split("/")[1]
    return gemini.generate_content_request(rec["model_requested"], body.pop("contents"),
                                           stream=stream, api_version=version,
                                           api_key="AIza-test", **body)


@pytest.mark.parametrize(
    "rec", pick(lambda r: api_of(r) != "other" and isinstance(r["request"]["body"], dict))
)
def test_request_builders_reproduce_the_recorded_request(rec):
    rec = need(rec)
    req = build(rec)
    path, body = recorded(rec)
    assert req.method == rec["request"]["method"]
    assert req.path == path.replace("?beta=true", "")  # the SDK's beta flag is not ours
    want = dict(body)
    if api_of(rec) == "messages" and want.get("stream") is False:
        want.pop("stream")
    if api_of(rec) in ("chat", "responses") and want.get("stream") is False:
        want.pop("stream")
    assert req.body == want
    assert json.loads(req.content()) == want
    assert req.headers["content-type"] == "application/json"
    streamed = is_stream_request(rec)
    assert (req.headers["accept"] == "text/event-stream") == streamed


def test_request_headers_carry_the_key_where_each_provider_expects_it():
    assert openai.chat_request("m", "hi", api_key="k").headers["authorization"] == "Bearer k"
    a = anthropic.messages_request("m", "hi", api_key="k").headers
    assert (a["x-api-key"], a["anthropic-version"]) == ("k", "2023-06-01")
    g = gemini.generate_content_request("m", "hi", api_key="k")
    assert g.headers["x-goog-api-key"] == "k" and "key=" not in g.path
    assert "authorization" not in openai.chat_request("m", "hi").headers


def test_gemini_paths_default_to_v1():
    assert gemini.generate_content_request("models/gemini-x", "hi").path == (
        "/v1/models/gemini-x:generateContent"
    )
    assert gemini.generate_content_request("gemini-x", "hi", stream=True,
                                           api_version="v1beta").path == (
        "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    )


def test_chat_stream_asks_for_usage_by_default():
    body = openai.chat_request("m", "hi", stream=True).body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "stream" not in openai.chat_request("m", "hi").body


@pytest.mark.parametrize(
    "base, path, url",
    [
        ("http://127.0.0.1:5", "/v1/chat/completions", "http://127.0.0.1:5/v1/chat/completions"),
        ("http://127.0.0.1:5/v1/", "/v1/chat/completions",
         "http://127.0.0.1:5/v1/chat/completions"),
        ("https://h/proxy/v1beta", "/v1beta/models/m:generateContent",
         "https://h/proxy/v1beta/models/m:generateContent"),
        ("https://h/proxy", "/v1/messages", "https://h/proxy/v1/messages"),
    ],
)
def test_wire_request_url_joins_without_doubling_the_version(base, path, url):
    assert WireRequest("POST", path).url(base) == url


def test_raw_http_round_trip_through_httpx2():
    """Lesson 1's raw path: build the request, send it, parse the (gzip) stream as it arrives."""
    httpx2 = pytest.importorskip("httpx2")
    rec = record("anthropic-stream-tools-empty-input-gzip")
    req = anthropic.messages_request(
        "claude-haiku-4-5", "Generate one name for a pet pelican", stream=True, api_key="k"
    )
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path, request.headers["x-api-key"],
                     json.loads(request.content)))
        raw = base64.b64decode(rec["response"]["body_raw_base64"])
        return httpx2.Response(200, content=raw, headers={
            "content-type": "text/event-stream", "content-encoding": "gzip"})

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        url = req.url("http://127.0.0.1:9")
        with client.stream(req.method, url, headers=req.headers, content=req.content()) as r:
            parser = anthropic.MessagesStreamParser(r.status_code)
            events = [e for chunk in r.iter_bytes() for e in parser.feed(chunk)]
            events += parser.close()
    assert seen == [("POST", "/v1/messages", "k", req.body)]
    assert events == run(rec, [body_bytes(rec)])
