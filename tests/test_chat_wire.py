"""``chat.astream(..., via="wire")`` (lesson 9, 09_sse_server): raw HTTP with httpx2 + ``llmkit.wire`` parsers
must send the body the SDK sends (a cassette recorded through the SDKs replays without a miss) and yield the
same events as the SDK path, retry like the SDKs, and close the response when the consumer stops."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from llmkit import chat
from llmkit.events import TextDelta, ToolCallComplete, ToolCallDelta, collect
from llmkit.kit import Kit

SCRIPT = '''
from llmkit.replay.scripted import Reply, ToolCall

def reply(req):
    if req.has_tool_results():
        return Reply(text="It is 21 °C in Paris — sunny, with \\"light\\" wind.")
    if "weather" in req.last_user_text().lower():
        return Reply(text="Let me check both.", tool_calls=[ToolCall("get_weather", {"city": "Paris", "unit": "c"}),
                                                             ToolCall("get_time", {"tz": "Europe/Paris"})])
    return Reply(text="A plain answer: ünïcode, emoji 🚀 and a long enough tail to span many chunks. " * 3,
                 ttft_ms=50.0, tokens_per_s=40.0)
'''
TOOLS = [
    {"name": "get_weather", "description": "Current weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "unit": {"type": "string", "enum": ["c", "f"]}},
                    "required": ["city"]}},
    {"name": "get_time", "description": "", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]
PROVIDERS = ("openai", "anthropic", "gemini")
PNG = bytes(range(64))  # short: compared literally (long inline data is compared by hash)


def _calls(provider: str) -> list[dict]:
    """The conversations the test sends: text with a system prompt, streamed tool calls, tool results."""
    ask = [chat.user("What is the weather in Paris?")]
    calls = [
        {"messages": [chat.user("Say something, ünïcode.")], "system": "Be brief.",
         "temperature": None if provider == "anthropic" else 0.25},
        {"messages": ask, "tools": TOOLS, "max_tokens": 300},
    ]
    if provider != "anthropic":  # an image part, plus (Gemini) a thought signature the SDK re-encodes
        calls.append({"messages": [chat.user([{"type": "text", "text": "What is this?"},
                                              {"type": "image", "data": PNG, "media_type": "image/png"}])]})
    return calls


async def _run(kit: Kit, provider: str, via: str, **kw) -> list:
    return [e async for e in chat.astream(kit, provider, via=via, **kw)]


async def _conversation(kit: Kit, provider: str, via: str) -> list[list]:
    out = []
    for call in _calls(provider):
        out.append(await _run(kit, provider, via, **call))
    # Second turn: answer the streamed tool calls (ids, arguments and Gemini signatures go back verbatim).
    c = collect(out[1])
    calls = list(c.tool_calls)
    if provider == "gemini":
        calls[0] = ToolCallComplete(calls[0].index, calls[0].id, calls[0].name, calls[0].arguments,
                                    base64.b64encode(b"\xfb\xff\xfe sig").decode())
    history = [chat.user("What is the weather in Paris?"), chat.assistant(c.text, calls),
               chat.tool_result(calls[0], '{"temp": 21}'), chat.tool_result(calls[1], "not json", is_error=True)]
    out.append(await _run(kit, provider, via, messages=history, tools=TOOLS, system="Use tools."))
    return out


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cassette recorded through the official SDKs (``via="sdk"``) against the scripted renderer."""
    folder = tmp_path_factory.mktemp("wire")
    script = folder / "script.py"
    script.write_text(SCRIPT)
    kit = Kit("wire", mode="record", script=str(script), cassette_dir=folder)
    try:
        for provider in PROVIDERS:
            asyncio.run(_conversation(kit, provider, "sdk"))
        kit.check_recording()
    finally:
        kit.close()
    return folder


@pytest.fixture
def replay(cassette_dir: Path):
    kits: list[Kit] = []

    def make(speed: float = 0.0) -> Kit:
        kits.append(Kit("wire", mode="replay", speed=speed, cassette_dir=cassette_dir))
        return kits[-1]

    yield make
    for kit in kits:
        kit.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wire_and_sdk_paths_yield_identical_events_from_one_sdk_recording(replay, provider):
    kit = replay()
    wire = asyncio.run(_conversation(kit, provider, "wire"))
    assert kit.misses == [], f"the wire body differs from the SDK's: {kit.misses[0]}"
    sdk = asyncio.run(_conversation(kit, provider, "sdk"))
    assert kit.misses == []
    assert wire == sdk
    text, tools, answer = collect(wire[0]), collect(wire[1]), collect(wire[-1])
    assert sum(isinstance(e, TextDelta) for e in wire[0]) > 3 and "ünïcode" in text.text
    assert [(c.name, c.args()) for c in tools.tool_calls] == [("get_weather", {"city": "Paris", "unit": "c"}),
                                                              ("get_time", {"tz": "Europe/Paris"})]
    assert tools.finish_reason == "tool_calls" and tools.usage is not None
    if provider != "gemini":  # Gemini sends arguments whole; the others stream fragments
        assert any(isinstance(e, ToolCallDelta) for e in wire[1])
    assert answer.text.startswith("It is 21 °C") and answer.finish_reason == "stop"


def test_gemini_body_matches_what_google_genai_sends(replay, cassette_dir):
    """The recorded (SDK-sent) Gemini bodies are rebuilt field for field by ``wire_request``."""
    from llmkit.replay.canonical import canonical_text
    from llmkit.replay.cassette import Cassette

    interactions = Cassette.load(cassette_dir / "wire.json").interactions
    recorded = [i.request for i in interactions if i.request.provider == "gemini"]
    kit = replay()
    built = []
    for call in _calls("gemini"):
        _, kw = chat._request(kit, "gemini", call["messages"], call.get("system"), None, call.get("tools"),
                              call.get("max_tokens", 1024), call.get("temperature"))
        built.append(chat.wire_request("gemini", kw))
    for req, sent in zip(recorded, built, strict=False):
        assert req.path == sent.path.split("?")[0] and req.query == "alt=sse"
        assert canonical_text(req.body) == canonical_text(sent.body)
    assert "generationConfig" in recorded[0].body and "systemInstruction" in recorded[0].body


def test_wire_retries_like_the_sdk_then_raises_a_classifiable_error(replay):
    import httpx2

    from llmkit.resilience import classify

    kit = replay()
    messages = [chat.user("Say something, ünïcode.")]
    kit.faults.status(429, provider="openai", retry_after_ms=5, times=2)  # the SDKs retry twice
    events = asyncio.run(_run(kit, "openai", "wire", messages=messages, system="Be brief.", temperature=0.25))
    assert collect(events).text.startswith("A plain answer")
    kit.faults.status(429, provider="openai", retry_after_ms=5, times=3)
    with pytest.raises(httpx2.HTTPStatusError) as info:
        asyncio.run(_run(kit, "openai", "wire", messages=messages, system="Be brief.", temperature=0.25))
    error = classify(info.value)
    assert error.kind.value == "rate_limited" and error.retryable and error.retry_after == pytest.approx(0.005)
    assert "429" in str(info.value)


def test_closing_the_wire_stream_closes_the_response_at_once(replay):
    kit = replay(speed=1.0)

    async def run() -> tuple[float, int, list]:
        stream = chat.astream(kit, "openai", [chat.user("Say something, ünïcode.")], system="Be brief.",
                              temperature=0.25, via="wire")
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        t0 = time.monotonic()
        await stream.aclose()
        elapsed = time.monotonic() - t0
        pool = chat.wire_client(kit)._transport._pool
        busy = [c.info() for c in pool.connections if not (c.is_idle() or c.is_closed())]
        await chat.aclose_wire_client(kit)
        return elapsed, len(busy), busy

    elapsed, busy, info = asyncio.run(run())
    assert elapsed < 0.1 and busy == 0, (elapsed, info)


def test_unknown_via_is_refused(replay):
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="'sdk'"):
        asyncio.run(_run(replay(), "openai", "grpc", messages=[chat.user("hi")]))
