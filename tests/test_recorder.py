"""Record mode against a local fake provider: keys never reach the cassette, streams are kept per event.

Introduced in lesson 0 (00_setup_and_replay). The fake upstream is a small ASGI app on loopback that
checks it received the (fake) key, answers in each provider's wire format (rendered by the scripted
renderer, then re-encoded as raw UTF-8 the way the real APIs send it) and streams in odd network
chunks - cut inside events, inside separators and inside multi-byte characters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx2
import pytest
from replay_helpers import GEMINI_STREAM, read_body

from llmkit.errors import SecretLeakError
from llmkit.kit import Kit
from llmkit.replay import providers
from llmkit.replay.scripted import Reply, ScriptedRequest, api_of, render
from llmkit.replay.scrub import find_secret
from llmkit.replay.server import ServerThread

KEYS = {
    "openai": "sk-test-" + "Zq7rT2" * 4,
    "anthropic": "sk-ant-api03-" + "Xy9_kL" * 4,
    "gemini": "AIzaSy" + "Fake0123456789abcdefghijklmnopq",
}
TEXT = "Un café naïve — 漢字 and 🎉 emoji, recorded through the proxy."
CHUNK_SIZES = (7, 61, 2, 130, 33, 1, 250, 18)


def utf8_wire(raw: str, kind: str) -> bytes:
    """The rendered stream re-encoded the way providers send it: JSON with raw UTF-8, not \\u escapes."""
    if kind == "json-array":
        items = json.loads(raw)
        return ("[" + ",\r\n".join(json.dumps(i, ensure_ascii=False, indent=2) for i in items) + "]").encode()

    def unescape(m: re.Match) -> str:
        return "data: " + json.dumps(json.loads(m.group(1)), ensure_ascii=False, separators=(",", ":")) + m.group(2)

    return re.sub(r"^data: (\{.*\})(\r?)$", unescape, raw, flags=re.M).encode()


def odd_chunks(payload: bytes) -> list[bytes]:
    """Cut at irregular offsets, plus inside every 4-byte character (an emoji split across reads)."""
    cuts, at, n = set(), 0, 0
    while at < len(payload):
        at += CHUNK_SIZES[n % len(CHUNK_SIZES)]
        cuts.add(at)
        n += 1
    cuts |= {i + 2 for i, b in enumerate(payload) if b >= 0xF0}
    edges = [0, *sorted(c for c in cuts if 0 < c < len(payload)), len(payload)]
    return [payload[a:b] for a, b in zip(edges, edges[1:], strict=False)]


class FakeUpstream:
    """A pretend OpenAI + Anthropic + Gemini that insists on the right key."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.streams: dict[str, tuple[bytes, int]] = {}  # user text -> (bytes sent, events sent)

    def authorised(self, provider: str, headers: dict[str, str], query: str) -> bool:
        key = KEYS[provider]
        if provider == "openai":
            return headers.get("authorization") == f"Bearer {key}"
        if provider == "anthropic":
            return key in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
        return headers.get("x-goog-api-key") == key or dict(parse_qsl(query)).get("key") == key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, query = scope["path"], scope["query_string"].decode()
        provider = providers.provider_for_path(path)
        assert provider is not None
        ok = self.authorised(provider, headers, query)
        self.seen.append((provider, path, ok))
        if not ok:
            return await self.send_json(send, 401, providers.error_body(provider, 401))
        body = json.loads(raw)
        said = ScriptedRequest(provider, "", path, body, False, 0).last_user_text()
        q = dict(parse_qsl(query))
        stream = providers.wants_stream(provider, path, q, body)
        if said.startswith("fail"):  # what Gemini does to a bad alt=sse request: JSON under event-stream
            error = json.dumps(providers.error_body(provider, 400, "API key not valid."), indent=2).encode()
            return await self.send(send, 400, {"content-type": "text/event-stream"}, [error])
        # Encoded twice: scrubbing undoes one layer of base64 (and blanks the key there), so only the gate
        # can stop this one.
        twice = base64.b64encode(base64.b64encode(KEYS[provider].encode())).decode()
        text = f"Your key is {twice}" if said.startswith("echo") else TEXT
        rendered = render(ScriptedRequest(provider, api_of(provider, path), path, body, stream, 0), Reply(text), q)
        extra = {"set-cookie": "session=s3cr3t; HttpOnly", "openai-organization": "org-fake-123",
                 "anthropic-organization-id": "0f0f0f0f"}
        out_headers = {**rendered.headers, **extra}
        if not stream:
            return await self.send_json(send, 200, rendered.body, out_headers)
        kind = providers.stream_kind(provider, path, q)
        payload = utf8_wire("".join(f.raw for f in rendered.stream), kind)
        self.streams[said] = (payload, len(rendered.stream))
        await self.send(send, 200, out_headers, odd_chunks(payload), pause=0.003)

    @staticmethod
    async def send(send: Any, status: int, headers: dict[str, str], chunks: list[bytes], pause: float = 0) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if pause:
                await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send_json(self, send: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        await self.send(send, status, {**(headers or {}), "content-type": "application/json"},
                        [json.dumps(body).encode()])


@pytest.fixture
def upstream(monkeypatch, tmp_path):
    """The fake provider on loopback, with the kit's environment pointing record mode at it."""
    fake = FakeUpstream()
    server = ServerThread(fake).start()
    monkeypatch.chdir(tmp_path)  # no .env from the developer's folders
    for provider in KEYS:
        monkeypatch.setenv(f"LLMKIT_UPSTREAM_{provider.upper()}", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["anthropic"])
    monkeypatch.setenv("GEMINI_API_KEY", KEYS["gemini"])
    yield fake
    server.stop()


@pytest.fixture
def record_kit(upstream, tmp_path):
    kit = Kit("recorded", mode="record", cassette_dir=tmp_path)
    yield kit
    kit.close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def record_session(kit: Kit) -> dict[str, Any]:
    """The calls recorded (and later replayed): SDK calls plus raw HTTP with the key in the query."""
    m = kit.models
    out: dict[str, Any] = {}
    reply = kit.openai.chat.completions.create(model=m["openai"], messages=user("hello"))
    out["openai"] = reply.choices[0].message.content
    stream = kit.openai.chat.completions.create(model=m["openai"], messages=user("hello stream"), stream=True,
                                                stream_options={"include_usage": True})
    out["openai-stream"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    with kit.anthropic.messages.stream(model=m["anthropic"], max_tokens=100, messages=user("hello anthropic")) as s:
        out["anthropic-stream"] = "".join(s.text_stream)
    out["gemini-stream"] = "".join(c.text or "" for c in kit.gemini.models.generate_content_stream(
        model=m["gemini"], contents="hello gemini"))
    with httpx2.Client() as client:
        base = kit.base_url("gemini")
        key = quote(kit.key("gemini"))
        body = {"contents": [{"role": "user", "parts": [{"text": "hello legacy"}]}]}
        legacy = client.post(f"{base}{GEMINI_STREAM}?key={key}", json=body)
        out["legacy-json-array"] = "".join(p["text"] for item in legacy.json()
                                           for p in item["candidates"][0]["content"]["parts"])
        body = {"contents": [{"role": "user", "parts": [{"text": "fail please"}]}]}
        failed = client.post(f"{base}{GEMINI_STREAM}?alt=sse", json=body, headers={"x-goog-api-key": kit.key("gemini")})
        out["gemini-error"] = (failed.status_code, failed.json()["error"]["message"])
    return out


def test_record_mode_writes_no_key_and_keeps_stream_events_exact(upstream, record_kit, tmp_path):
    results = record_session(record_kit)
    record_kit.check_recording()
    assert results == {"openai": TEXT, "openai-stream": TEXT, "anthropic-stream": TEXT, "gemini-stream": TEXT,
                       "legacy-json-array": TEXT, "gemini-error": (400, "API key not valid.")}
    assert [ok for *_, ok in upstream.seen] == [True] * 6  # the proxy forwarded the real key
    path = tmp_path / "recorded.json"
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)

    # No key in any form, no cookie or organisation header, no key in a query.
    for key in KEYS.values():
        for form in (key, quote(key, safe=""), base64.b64encode(key.encode()).decode().rstrip("="), key[-16:]):
            assert form not in text
    assert find_secret(data, list(KEYS.values())) is None
    for it in data["interactions"]:
        assert not {"set-cookie", "openai-organization", "anthropic-organization-id"} & set(it["response"]["headers"])
        assert "key=" not in it["request"].get("query", "")
    assert data["provenance"]["kind"] == "recorded" and data["provenance"]["sdk_versions"]["openai"]

    # Each SSE event is one frame, byte-exact, with its arrival time; the JSON array is kept as sent.
    by_text = {json.dumps(it["request"]["body"]): it for it in data["interactions"]}
    for said, (payload, events) in upstream.streams.items():
        it = next(v for k, v in by_text.items() if said in k)
        frames = it["response"]["stream"]
        assert "".join(f["raw"] for f in frames).encode() == payload
        times = [f["t_ms"] for f in frames]
        assert times == sorted(times) and times[-1] - times[0] > 5
        if said == "hello legacy":
            assert json.loads("".join(f["raw"] for f in frames))[0]["candidates"]
            continue
        assert len(frames) == events
        sep = "\r\n\r\n" if said == "hello gemini" else "\n\n"
        assert all(f["raw"].endswith(sep) and f["raw"].count(sep) == 1 for f in frames)
    assert any("🎉" in f["raw"] for it in data["interactions"] for f in it["response"].get("stream", []))

    # The error answer to a stream request is stored as the JSON body it is (as text when only text is byte-exact).
    error = next(it for it in data["interactions"] if it["response"]["status"] == 400)["response"]
    stored = error["body"] if "body" in error else json.loads(error["body_text"])
    assert stored["error"]["message"] == "API key not valid." and "stream" not in error


def test_the_recording_replays_to_the_same_answers(upstream, record_kit, tmp_path, monkeypatch):
    recorded = record_session(record_kit)
    record_kit.close()
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name)
    upstream.seen.clear()
    kit = Kit("recorded", mode="replay", cassette_dir=tmp_path, speed=0)
    try:
        replayed = record_session(kit)
        assert kit.unused() == [] and kit.misses == []
    finally:
        kit.close()
    assert replayed == recorded
    assert upstream.seen == []  # replay never reached the "provider"


def test_a_key_echoed_by_the_provider_stops_the_write(upstream, record_kit, tmp_path):
    import openai

    m = record_kit.models
    record_kit.openai.chat.completions.create(model=m["openai"], messages=user("hello"))
    path = tmp_path / "recorded.json"
    before = path.read_bytes()

    with pytest.raises(openai.BadRequestError, match="refusing to write"):
        record_kit.openai.chat.completions.create(model=m["openai"], messages=user("echo my key"))
    with pytest.raises(SecretLeakError) as info:
        record_kit.check_recording()
    assert info.value.field.startswith("interactions[1].response.body.choices[0].message.content")
    assert info.value.field in str(info.value)
    assert path.read_bytes() == before

    # A stream has already gone to the caller when the leak is found; the cassette is still not written.
    with record_kit.anthropic.messages.stream(model=m["anthropic"], max_tokens=100, messages=user("echo it")) as s:
        assert "Your key is" in "".join(s.text_stream)
    recorder = record_kit.app.recorder
    # The recorder checks a stream once it has passed on its last byte: wait for that (server thread).
    deadline = time.monotonic() + 5
    while len(recorder.errors) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(recorder.errors) == 2 and recorder.errors[1].field.startswith("interactions[1].response.stream[")
    assert path.read_bytes() == before
