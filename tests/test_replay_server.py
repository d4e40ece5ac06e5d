"""The replay server through a real socket: byte-exact framing, pacing, and injected faults.

Introduced in lesson 0 (00_setup_and_replay). Clients are raw ``httpx2`` (what the SDKs use underneath),
so these tests see exactly the bytes and timing an SDK would see.
"""

from __future__ import annotations

import json
import statistics
import time

import httpx2
import pytest
from replay_helpers import (
    ANTHROPIC_MESSAGES,
    GEMINI_GENERATE,
    GEMINI_STREAM,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    anthropic_body,
    chat_body,
    gemini_body,
    responses_body,
    scripted,
)

from llmkit.replay.cassette import Frame, Interaction, RecordedRequest, RecordedResponse
from llmkit.replay.faults import FaultPlan
from llmkit.replay.scripted import Reply, ToolCall

TEXT = "Replay servers keep lessons honest: the same bytes, the same pace, every time. Ça marche 🎉"
LEGACY_QUERY = "%24alt=json%3Benum-encoding%3Dint"  # what google-generativeai's REST transport sends

# One streamed exchange per provider framing: (provider, path, query, body).
STREAMS = {
    "openai-chat": ("openai", OPENAI_CHAT, "", chat_body("hi", stream=True)),
    "openai-responses": ("openai", OPENAI_RESPONSES, "", responses_body("hi", stream=True)),
    "anthropic": ("anthropic", ANTHROPIC_MESSAGES, "", anthropic_body("hi", stream=True)),
    "gemini-sse": ("gemini", GEMINI_STREAM, "alt=sse", gemini_body("hi")),
    "gemini-legacy-json-array": ("gemini", GEMINI_STREAM, LEGACY_QUERY, gemini_body("hi")),
}


def stream_interaction(kind: str, reply: Reply | str = TEXT) -> Interaction:
    provider, path, query, body = STREAMS[kind]
    return scripted(provider, path, body, reply, query=query)


_WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
_GEMINI_TOOLS = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": _WEATHER}]}]
TOOL_DECLARATIONS = {
    "openai-chat": [{"type": "function", "function": {"name": "get_weather", "parameters": _WEATHER}}],
    "openai-responses": [{"type": "function", "name": "get_weather", "parameters": _WEATHER, "strict": False}],
    "anthropic": [{"name": "get_weather", "input_schema": _WEATHER}],
    "gemini-sse": _GEMINI_TOOLS,
    "gemini-legacy-json-array": _GEMINI_TOOLS,
}


@pytest.fixture(scope="module")
def client():
    """One keep-alive client for the module (building a client loads TLS certificates: ~30 ms each)."""
    with httpx2.Client() as c:
        yield c


def post(client: httpx2.Client, url: str, it: Interaction, **kw) -> httpx2.Response:
    req = it.request
    target = f"{url}{req.path}" + (f"?{req.query}" if req.query else "")
    return client.post(target, json=req.body, **kw)


def body_of(client: httpx2.Client, url: str, it: Interaction) -> tuple[httpx2.Response, bytes]:
    req = it.request
    target = f"{url}{req.path}" + (f"?{req.query}" if req.query else "")
    with client.stream("POST", target, json=req.body) as response:
        return response, b"".join(response.iter_raw())


# --- framing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(STREAMS))
def test_streams_are_served_byte_exact(serve, client, kind):
    tool = Reply(text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Zürich", "unit": "celsius"})])
    provider, path, query, body = STREAMS[kind]
    text_it = stream_interaction(kind)
    # a different request on the same endpoint, declaring the tool its reply calls (as a real API requires)
    tool_it = scripted(provider, path, {**body, "tools": TOOL_DECLARATIONS[kind]}, tool, query=query)
    served = serve([text_it, tool_it])
    for index, it in enumerate([text_it, tool_it]):
        response, raw = body_of(client, served.url, it)
        assert response.status_code == 200
        assert raw == "".join(f.raw for f in it.response.stream).encode()
        assert response.headers["content-type"] == it.response.headers["content-type"]
        assert response.headers["x-llmkit-replay"] == f"interaction {index}"
        assert "content-length" not in response.headers
    if kind == "gemini-sse":
        assert raw.count(b"\r\n\r\n") == len(tool_it.response.stream)  # CRLF kept
    if kind == "gemini-legacy-json-array":
        assert json.loads(raw)[-1]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"


def test_hand_written_frames_with_odd_bytes_survive(serve, client):
    frames = ["data: {\"a\": \"caf\u00e9 \u2014 \u6f22\u5b57 \U0001f600\"}   \r\n\r\n", ": keep-alive comment\n\n",
              "event: x\r\ndata: 1\r\ndata: 2\r\n\r\n", "data: tail-without-terminator"]
    it = Interaction(RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("odd", stream=True)),
                     RecordedResponse(200, {"content-type": "text/event-stream"},
                                      stream=[Frame(0, f) for f in frames]))
    _, raw = body_of(client, serve(it).url, it)
    assert raw == "".join(frames).encode("utf-8")


def test_json_bodies_drop_recorded_encoding_headers(serve, client):
    it = scripted("anthropic", ANTHROPIC_MESSAGES, anthropic_body("hi"), TEXT)
    it.response.headers.update({"content-encoding": "gzip", "content-length": "12", "transfer-encoding": "chunked"})
    response = post(client, serve(it).url, it)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["content"][0]["text"] == TEXT
    assert response.headers["request-id"] == it.response.headers["request-id"]


# --- pacing ----------------------------------------------------------------------------------------
PACED_T_MS = [60.0, 90.0, 170.0, 215.0, 260.0, 340.0, 380.0, 430.0]  # gaps of 30-80 ms


def paced_interaction() -> Interaction:
    frames = [Frame(t, f"data: {json.dumps({'n': i, 't': t})}\n\n") for i, t in enumerate(PACED_T_MS)]
    return Interaction(RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("pace", stream=True)),
                       RecordedResponse(200, {"content-type": "text/event-stream"}, stream=frames, headers_ms=40.0))


def arrival_times(url: str, it: Interaction) -> tuple[float, list[float]]:
    """Client-side milliseconds from sending the request to the headers and to each complete frame."""
    with httpx2.Client() as client:
        client.get(f"{url}/__llmkit/health")  # connect first: only the request itself is timed
        t0 = time.perf_counter()
        with client.stream("POST", f"{url}{it.request.path}", json=it.request.body) as response:
            headers_ms = (time.perf_counter() - t0) * 1000
            arrivals, buffer = [], b""
            for chunk in response.iter_raw():
                buffer += chunk
                while b"\n\n" in buffer:
                    _, buffer = buffer.split(b"\n\n", 1)
                    arrivals.append((time.perf_counter() - t0) * 1000)
    return headers_ms, arrivals


def test_speed_1_reproduces_the_recorded_timing(serve):
    it = paced_interaction()
    headers_ms, arrivals = arrival_times(serve(it, speed=1.0).url, it)
    errors = [abs(a - t) for a, t in zip(arrivals, PACED_T_MS, strict=True)]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    recorded_gaps = [b - a for a, b in zip(PACED_T_MS, PACED_T_MS[1:], strict=False)]
    gap_errors = [abs(g - r) for g, r in zip(gaps, recorded_gaps, strict=True)]
    print(f"\npacing at speed 1: headers {headers_ms:.1f} ms (recorded 40); frame error mean "
          f"{statistics.mean(errors):.2f} ms, max {max(errors):.2f} ms; gap error max {max(gap_errors):.2f} ms")
    assert abs(headers_ms - 40.0) < 15
    assert statistics.mean(errors) < 5 and max(errors) < 20
    assert max(gap_errors) < 15
    assert all(a >= t - 1 for a, t in zip(arrivals, PACED_T_MS, strict=True))  # never early


def test_speed_is_a_time_factor(serve):
    it = paced_interaction()
    served = serve(it, speed=2.0)  # twice as fast: half the recorded time
    _, arrivals = arrival_times(served.url, it)
    assert abs(arrivals[-1] - PACED_T_MS[-1] / 2) < 20
    served.app.speed = 0.0  # speed can change while the server runs (kit.speed)
    _, arrivals = arrival_times(served.url, it)
    assert arrivals[-1] < 50


def test_speed_0_serves_a_long_stream_at_once(serve):
    frames = [Frame(i * 50.0, f"data: {json.dumps({'n': i, 'delta': 'token '})}\n\n") for i in range(200)]
    it = Interaction(RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("long", stream=True)),
                     RecordedResponse(200, {"content-type": "text/event-stream"}, stream=frames, headers_ms=300))
    url = serve(it, speed=0.0).url
    with httpx2.Client() as client:
        client.get(f"{url}/__llmkit/health")
        t0 = time.perf_counter()
        with client.stream("POST", f"{url}{OPENAI_CHAT}", json=it.request.body) as response:
            raw = b"".join(response.iter_raw())
        elapsed = time.perf_counter() - t0
    print(f"\n200-frame stream (recorded over {frames[-1].t_ms / 1000:.1f} s) served at speed 0 in "
          f"{elapsed * 1000:.1f} ms")
    assert raw.count(b"\n\n") == 200
    assert elapsed < 0.5


# --- faults ----------------------------------------------------------------------------------------
NON_STREAM = {
    "openai": lambda: scripted("openai", OPENAI_CHAT, chat_body("hi"), "hello"),
    "anthropic": lambda: scripted("anthropic", ANTHROPIC_MESSAGES, anthropic_body("hi"), "hello"),
    "gemini": lambda: scripted("gemini", GEMINI_GENERATE, gemini_body("hi"), "hello"),
}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_status_fault_has_the_providers_body_and_retry_headers(serve, client, provider):
    it = NON_STREAM[provider]()
    others = [NON_STREAM[p]() for p in NON_STREAM if p != provider]
    served = serve([it, *others])
    served.app.faults.status(429, provider=provider, retry_after=2, retry_after_ms=1500)
    for other in others:  # a fault for one provider leaves the others alone
        assert post(client, served.url, other).status_code == 200
    response = post(client, served.url, it)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "1500"
    assert "429" in response.headers["x-llmkit-fault"]
    err = response.json()
    if provider == "openai":
        assert err["error"]["code"] == "rate_limit_exceeded" and err["error"]["message"]
    elif provider == "anthropic":
        assert err["type"] == "error" and err["error"]["type"] == "rate_limit_error"
        assert response.headers["x-should-retry"] == "true"
    else:
        assert err["error"] == {"code": 429, "message": err["error"]["message"], "status": "RESOURCE_EXHAUSTED"}
    assert post(client, served.url, it).status_code == 200  # times=1: the next call goes through
    served.app.faults.status(503, provider=provider, times=2)
    assert [post(client, served.url, it).status_code for _ in range(3)] == [503, 503, 200]


def test_latency_fault_delays_and_times_out(serve, client):
    it = NON_STREAM["openai"]()
    served = serve(it)
    post(client, served.url, it)
    t0 = time.perf_counter()
    post(client, served.url, it)
    baseline = time.perf_counter() - t0
    served.app.faults.latency(200, times=2)
    t0 = time.perf_counter()
    assert post(client, served.url, it).status_code == 200
    delayed = time.perf_counter() - t0
    with pytest.raises(httpx2.ReadTimeout):
        post(client, served.url, it, timeout=0.05)
    assert delayed >= 0.2 and baseline < 0.1


def test_drop_fault_cuts_the_stream_after_n_events(serve, client):
    it = stream_interaction("openai-chat")
    served = serve(it)
    served.app.faults.drop_stream(after=3)
    received = b""
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete"):
        with client.stream("POST", f"{served.url}{OPENAI_CHAT}", json=it.request.body) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
    assert received == "".join(f.raw for f in it.response.stream[:3]).encode()
    _, raw = body_of(client, served.url, it)  # spent: the next stream is whole
    assert raw.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("kind", list(STREAMS))
def test_error_event_mid_stream_uses_the_providers_framing(serve, client, kind):
    it = stream_interaction(kind)
    served = serve(it)
    served.app.faults.error_event(after=2, message="Overloaded right now")
    _, raw = body_of(client, served.url, it)
    text = raw.decode()
    head = "".join(f.raw for f in it.response.stream[:2])
    assert text.startswith(head)
    event = text[len(head):]
    if kind == "gemini-legacy-json-array":
        items = json.loads(text)
        assert len(items) == 3 and items[-1]["error"]["message"] == "Overloaded right now"
        assert items[-1]["error"]["status"] == "UNAVAILABLE"
        return
    if kind == "openai-chat":
        assert event.startswith("data: {") and event.endswith("}\n\n") and "event:" not in event
        data = json.loads(event[len("data: "):])
        assert data["error"]["message"] == "Overloaded right now"
    elif kind == "gemini-sse":
        assert event.startswith("data: {") and event.endswith("}\r\n\r\n")
        assert json.loads(event[len("data: "):])["error"]["code"] == 529
    else:
        lines = event.split("\n")
        assert lines[0] == "event: error" and lines[1].startswith("data: ") and event.endswith("\n\n")
        data = json.loads(lines[1][len("data: "):])
        assert data["type"] == "error"
        if kind == "anthropic":
            assert data["error"] == {"type": "overloaded_error", "message": "Overloaded right now"}
        else:
            assert data["message"] == "Overloaded right now"


def test_error_event_before_any_frame_still_gives_a_json_array(serve, client):
    it = stream_interaction("gemini-legacy-json-array")
    served = serve(it)
    served.app.faults.error_event(after=0)
    _, raw = body_of(client, served.url, it)
    assert [item["error"]["code"] for item in json.loads(raw)] == [529]


def test_chaos_is_reproducible_with_a_seed(serve, client):
    it = NON_STREAM["anthropic"]()
    served = serve(it)

    def run(seed: int) -> list[int]:
        served.app.faults.clear()
        served.app.faults.chaos(seed=seed, rate=0.5)
        return [post(client, served.url, it).status_code for _ in range(30)]

    first = run(7)
    assert run(7) == first
    assert run(8) != first
    assert 200 in first and any(s >= 400 for s in first)
    plan_a, plan_b = FaultPlan(), FaultPlan()
    plan_a.chaos(seed=3)
    plan_b.chaos(seed=3)
    take = [(plan_a.take("openai", OPENAI_CHAT), plan_b.take("openai", OPENAI_CHAT)) for _ in range(40)]
    assert [a.describe() if a else None for a, _ in take] == [b.describe() if b else None for _, b in take]
    assert any(a is not None for a, _ in take)
