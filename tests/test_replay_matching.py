"""Matching recorded requests: canonical bodies, volatile fields, image blobs, repeats, misses.

Introduced in lesson 0 (00_setup_and_replay). These run the :class:`Player` and the ASGI app directly
(no socket): what is matched, in which order repeats are served, and what a miss looks like.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest
from replay_helpers import (
    ANTHROPIC_MESSAGES,
    GEMINI_GENERATE,
    OPENAI_CHAT,
    anthropic_body,
    cassette_of,
    chat_body,
    gemini_body,
    scripted,
)

from llmkit.errors import CassetteMiss
from llmkit.replay.canonical import canonical_body, canonical_query, canonical_text
from llmkit.replay.cassette import Cassette, Player, RecordedRequest
from llmkit.replay.server import ReplayApp

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # large enough to count as a blob


def request(body, *, provider: str = "openai", path: str = OPENAI_CHAT, query: str = "") -> RecordedRequest:
    return RecordedRequest(provider, "POST", path, query, body)


def asgi(app: ReplayApp, path: str, body: dict, query: str = "") -> tuple[int, dict[str, str], bytes]:
    """Call the ASGI app once, in process; returns status, headers and body."""
    out: dict = {"body": b""}

    async def receive() -> dict:
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            out["body"] += message.get("body", b"")

    scope = {"type": "http", "method": "POST", "path": path, "query_string": query.encode(), "headers": []}
    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


# --- canonical form ------------------------------------------------------------------------------
def test_canonical_text_ignores_key_order_and_volatile_fields():
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    b = {"temperature": 0, "user": "learner-42", "metadata": {"run": 7}, "stream_options": {"include_usage": True},
         "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert canonical_text(a) == canonical_text(b)
    assert canonical_text(a) != canonical_text({**a, "temperature": 1})
    # Volatile fields are ignored at the top level only: inside a message they are content.
    assert canonical_text({"messages": [{"user": "x"}]}) != canonical_text({"messages": [{}]})


def test_canonical_query_drops_the_key_and_sorts():
    assert canonical_query("key=AIzaSECRET&alt=sse") == canonical_query("alt=sse")
    assert canonical_query("b=2&a=1") == canonical_query("a=1&b=2")
    assert canonical_query("alt=sse") != canonical_query("")


def test_images_are_compared_by_hash_whatever_their_encoding():
    digest = hashlib.sha256(PNG).hexdigest()
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    openai_style = {"messages": [{"content": [{"type": "image_url", "image_url": {"url": data_url}}]}]}
    canon = canonical_body(openai_style)
    assert canon["messages"][0]["content"][0]["image_url"]["url"] == f"blob:sha256:{digest}"
    # Gemini sends base64url without a data: prefix; the same bytes give the same reference.
    gemini_style = {"inlineData": {"mimeType": "image/png", "data": base64.urlsafe_b64encode(PNG).decode()}}
    assert canonical_body(gemini_style)["inlineData"]["data"] == f"blob:sha256:{digest}"
    other = PNG[:-1] + b"\x00"
    assert canonical_body({"d": base64.b64encode(other).decode()})["d"] != f"blob:sha256:{digest}"
    # Short strings are never treated as blobs, even when they are valid base64.
    assert canonical_body({"d": "aGVsbG8="})["d"] == "aGVsbG8="


def test_saved_cassette_stores_each_image_once_and_still_matches(tmp_path):
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": data_url}}]}]}
    cassette = cassette_of(scripted("openai", OPENAI_CHAT, body, "A test pattern."),
                           scripted("openai", OPENAI_CHAT, {**body, "temperature": 0}, "Still a pattern."))
    path = cassette.save(tmp_path / "images.json")
    text = path.read_text()
    assert base64.b64encode(PNG).decode()[:100] not in text
    blobs = list((tmp_path / "blobs").iterdir())
    assert [b.name for b in blobs] == [hashlib.sha256(PNG).hexdigest()]
    assert blobs[0].read_bytes() == PNG
    index, _ = Player(Cassette.load(path)).match(request(body))  # the learner's request carries the image
    assert index == 0


# --- the player -----------------------------------------------------------------------------------
def test_identical_requests_are_served_in_order_then_the_last_repeats():
    body = chat_body("roll a die")
    cassette = cassette_of(*(scripted("openai", OPENAI_CHAT, body, face, n=i) for i, face in enumerate("462")))
    player = Player(cassette)
    served = [player.match(request(body))[0] for _ in range(5)]
    assert served == [0, 1, 2, 2, 2]
    assert player.unused() == []
    player.reset()
    assert player.match(request(body))[0] == 0


def test_matching_is_per_path_query_and_body():
    chat = scripted("openai", OPENAI_CHAT, chat_body("hi"), "hello")
    sse = scripted("gemini", GEMINI_GENERATE.replace("generateContent", "streamGenerateContent"),
                   gemini_body("hi"), "hello", query="alt=sse")
    player = Player(cassette_of(chat, sse))
    assert player.match(request({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4.1-mini",
                                 "user": "someone"}))[0] == 0
    sse_path = sse.request.path
    assert player.match(request(gemini_body("hi"), provider="gemini", path=sse_path,
                                query="alt=sse&key=AIzaXYZ"))[0] == 1
    with pytest.raises(CassetteMiss):
        player.match(request(gemini_body("hi"), provider="gemini", path=sse_path))  # no alt=sse
    with pytest.raises(CassetteMiss):
        player.match(request(chat_body("hi"), path="/v1/responses"))
    assert player.unused() == []


def test_a_miss_names_the_closest_recording_and_what_changed():
    cassette = cassette_of(
        scripted("openai", OPENAI_CHAT, chat_body("What is the capital of France?"), "Paris."),
        scripted("openai", OPENAI_CHAT, {**chat_body("Tell me a joke"), "temperature": 0.2}, "No."),
        scripted("anthropic", ANTHROPIC_MESSAGES, anthropic_body("Tell me a joke"), "Knock knock."),
    )
    player = Player(cassette)
    sent = {**chat_body("Tell me a joke"), "temperature": 0.7}
    with pytest.raises(CassetteMiss) as info:
        player.match(request(sent))
    miss = info.value
    assert miss.closest == 1
    assert miss.diff == ["temperature: recorded 0.2, sent 0.7"]
    assert "interaction #1" in str(miss) and "temperature" in str(miss)
    assert "LLMKIT_MODE=record" in str(miss)  # says what to do next
    with pytest.raises(CassetteMiss) as info:
        player.match(request(anthropic_body("Tell me a joke"), provider="anthropic", path="/v1/messages/count_tokens"))
    assert info.value.closest == 2
    assert info.value.diff[0].startswith("<path>: recorded POST /v1/messages, sent POST /v1/messages/count_tokens")
    with pytest.raises(CassetteMiss) as info:
        player.match(request(gemini_body("hi"), provider="gemini", path=GEMINI_GENERATE))
    assert info.value.closest is None and "Nothing was recorded for gemini" in str(info.value)
    assert player.unused() == [0, 1, 2]  # misses play nothing


@pytest.mark.parametrize("provider, path, body", [
    ("openai", OPENAI_CHAT, chat_body("something else")),
    ("anthropic", ANTHROPIC_MESSAGES, anthropic_body("something else")),
    ("gemini", GEMINI_GENERATE, gemini_body("something else")),
])
def test_a_miss_is_answered_with_the_providers_own_400_body(provider, path, body):
    recorded = {"openai": chat_body("hi"), "anthropic": anthropic_body("hi"), "gemini": gemini_body("hi")}[provider]
    app = ReplayApp(Player(cassette_of(scripted(provider, path, recorded, "hello"))))
    status, headers, raw = asgi(app, path, body)
    assert status == 400 and headers["x-llmkit-cassette-miss"] == "1"
    err = json.loads(raw)
    if provider == "openai":
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["code"] == "cassette_miss"
        message = err["error"]["message"]
    elif provider == "anthropic":
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
        message = err["error"]["message"]
    else:
        assert err["error"]["code"] == 400 and err["error"]["status"] == "INVALID_ARGUMENT"
        message = err["error"]["message"]
    assert "cassette miss" in message and "something else" in message
    assert err["llmkit_miss"]["closest"] == 0
    assert len(app.misses) == 1 and isinstance(app.misses[0], CassetteMiss)


def test_an_unknown_endpoint_is_a_404_that_says_what_is_served():
    app = ReplayApp(Player(cassette_of()))
    status, _, raw = asgi(app, "/v1/fine_tuning/jobs", {})
    assert status == 404 and "not a provider endpoint" in json.loads(raw)["error"]["message"]
