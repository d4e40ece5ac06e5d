"""Replay fidelity and hostile input, through a real socket on 127.0.0.1.

Introduced in lesson 0 (00_setup_and_replay). The server answers any recorded interaction (also endpoints
it has no provider rule for, e.g. a legacy OpenAI ``/v1/completions`` in an imported VCR cassette),
replays a non-streamed body byte-exact (the recorded whitespace, key order and escapes), refuses JSON
nested too deeply with a provider-shaped 400 and a body past the size limit with a 413.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from conftest import conformance_files, require_conformance
from replay_helpers import ANTHROPIC_MESSAGES, GEMINI_GENERATE, OPENAI_CHAT, chat_body, scripted

from llmkit import cli
from llmkit.errors import CassetteMiss
from llmkit.replay.cassette import Cassette, Interaction, Player, RecordedRequest, RecordedResponse, json_or_text
from llmkit.replay.server import DEFAULT_MAX_BODY_BYTES, ReplayApp, ServerThread
from llmkit.replay.vcr import interaction_from_vcr

# A legacy completion the way the API sends it: two-space indent plus padding before a closing brace.
COMPLETION = ('{\n  "id": "cmpl-8x1",\n  "object": "text_completion",\n  "created": 1710000000,\n'
              '  "model": "gpt-3.5-turbo-instruct",\n  "choices": [\n    {\n'
              '      "text": "\\n\\nBonjour \\u00e0 tous",\n'
              '      "index": 0,\n      "logprobs": null,\n      "finish_reason": "stop"\n    }\n  ],\n'
              '  "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}              }\n')
EMBEDDING = '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0091]}],' \
            '"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}'
MODELS = '{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "system"}]}'
COMPLETION_REQUEST = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello in French", "max_tokens": 16}
EMBEDDING_REQUEST = {"input": "hi", "model": "text-embedding-3-small", "encoding_format": "float"}


def vcr_yaml() -> str:
    """A vcrpy cassette with legacy OpenAI endpoints and a call to a host that is not a provider."""
    def item(method: str, uri: str, request: dict | None, response: str) -> str:
        body = "null" if request is None else json.dumps(json.dumps(request))
        return (f"- request:\n    body: {body}\n    headers: {{}}\n    method: {method}\n    uri: {uri}\n"
                f"  response:\n    body:\n      string: {json.dumps(response)}\n    headers:\n"
                f"      Content-Type:\n      - application/json\n    status:\n      code: 200\n      message: OK\n")
    return "interactions:\n" + "".join([
        item("POST", "https://api.openai.com/v1/completions", COMPLETION_REQUEST, COMPLETION),
        item("POST", "https://api.openai.com/v1/embeddings", EMBEDDING_REQUEST, EMBEDDING),
        item("GET", "https://api.openai.com/v1/models", None, MODELS),
        item("GET", "https://telemetry.example.com/v1/ping", None, "{}"),
    ]) + "version: 1\n"


@pytest.fixture
def imported(tmp_path, capsys) -> Cassette:
    """The VCR cassette imported with ``llmkit cassette import-vcr`` and loaded back from disk."""
    source = tmp_path / "legacy.yaml"
    source.write_text(vcr_yaml(), encoding="utf-8")
    target = tmp_path / "legacy.json"
    assert cli.main(["cassette", "import-vcr", str(source), str(target)]) == 0
    assert "skipped #3: GET telemetry.example.com/v1/ping" in capsys.readouterr().out
    assert cli.main(["cassette", "check", str(target)]) == 0
    return Cassette.load(target)


@pytest.fixture(scope="module")
def client():
    with httpx2.Client() as c:
        yield c


def test_legacy_endpoints_from_a_vcr_cassette_replay_byte_exact(serve, client, imported):
    server = serve(imported)
    completion = client.post(f"{server.url}/v1/completions", json=COMPLETION_REQUEST)
    embedding = client.post(f"{server.url}/v1/embeddings", content=json.dumps(EMBEDDING_REQUEST, indent=3))
    models = client.get(f"{server.url}/v1/models")
    assert [r.status_code for r in (completion, embedding, models)] == [200, 200, 200]
    assert completion.content == COMPLETION.encode()  # padding, indent and \u00e0 as recorded
    assert embedding.content == EMBEDDING.encode() and models.content == MODELS.encode()
    assert server.player.played == {0, 1, 2} and not server.app.misses


def test_the_openai_sdk_reads_a_replayed_legacy_completion(serve, imported):
    openai = pytest.importorskip("openai")
    server = serve(imported)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-replay", max_retries=0)
    completion = sdk.completions.create(**COMPLETION_REQUEST)
    assert completion.choices[0].text == json.loads(COMPLETION)["choices"][0]["text"]
    assert completion.usage.total_tokens == 9


def test_a_miss_on_an_unknown_endpoint_is_a_generic_error_with_the_closest_diff(serve, client, imported):
    server = serve(imported)
    other = dict(EMBEDDING_REQUEST, input="something else")
    missed = client.post(f"{server.url}/v1/embeddings", json=other)  # a provider endpoint: OpenAI's shape
    assert missed.status_code == 400 and missed.json()["error"]["code"] == "cassette_miss"

    wrong_query = client.get(f"{server.url}/v1/models?limit=5")  # no provider rule: the generic shape
    assert wrong_query.status_code == 400 and wrong_query.headers["x-llmkit-cassette-miss"] == "1"
    error = wrong_query.json()
    assert error["error"]["code"] == "cassette_miss" and "GET /v1/models?limit=5" in error["error"]["message"]
    assert error["llmkit_miss"]["closest"] == 2 and any("limit=5" in d for d in error["llmkit_miss"]["diff"])

    nowhere = client.post(f"{server.url}/v1/fine_tuning/jobs", json={"training_file": "file-1"})
    assert nowhere.status_code == 404 and "nothing was recorded there" in nowhere.json()["error"]["message"]
    assert [type(m) for m in server.app.misses] == [CassetteMiss] * 3
    assert server.app.misses[1].closest == 2 and not server.player.played


@pytest.mark.parametrize("text", [
    pytest.param(COMPLETION, id="indented with padding"),
    pytest.param(EMBEDDING, id="compact"),
    pytest.param('{"b": 1, "a": "caf\\u00e9 \\/ \\ud83c\\udf89"}', id="escapes and key order"),
    pytest.param('{"b": 1, "a": [1, 2]}', id="what json.dumps writes"),
])
def test_a_recorded_json_body_replays_byte_exact_through_a_cassette_file(serve, client, tmp_path, text):
    body, body_text = json_or_text(text)
    assert (body_text is None) == (json.dumps(json.loads(text), ensure_ascii=False) == text)
    request = RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("exact"))
    response = RecordedResponse(200, {"content-type": "application/json"}, body=body, body_text=body_text)
    path = Cassette("exact", {"kind": "recorded"}, [Interaction(request, response)]).save(tmp_path / "c.json")
    served = client.post(f"{serve(Cassette.load(path)).url}{OPENAI_CHAT}", json=chat_body("exact"))
    assert served.status_code == 200 and served.content == text.encode()


# --- the real-traffic corpus -----------------------------------------------------------------------------
def corpus_ids() -> list:
    return [pytest.param(p, id=p.stem) for p in conformance_files()] or [pytest.param(None, id="no-corpus")]


@pytest.mark.parametrize("record_path", corpus_ids())
def test_real_recordings_replay_byte_exact(serve, client, record_path):
    require_conformance()
    rec = json.loads(Path(record_path).read_text(encoding="utf-8"))
    req, resp = rec["request"], rec["response"]
    headers = {k: [v] for k, v in resp["headers"].items() if k.lower() != "content-encoding"}
    item = {"request": {"method": req["method"], "uri": req["url"], "body": json.dumps(req["body"]), "headers": {}},
            "response": {"status": {"code": resp["status"]}, "headers": headers,
                         "body": {"string": resp["body_text"]}}}
    interaction = interaction_from_vcr(item)
    assert isinstance(interaction, Interaction)
    server = serve(Cassette("corpus", {"kind": "recorded"}, [interaction]))
    url = urlsplit(req["url"])
    target = f"{server.url}{url.path}" + (f"?{url.query}" if url.query else "")
    with client.stream(req["method"], target, json=req["body"]) as answer:
        raw = b"".join(answer.iter_raw())
    assert answer.status_code == resp["status"]
    assert raw == resp["body_text"].encode()


def test_the_corpus_holds_json_that_re_serialising_would_change():
    """The byte-exact test above is only meaningful if some recorded JSON bodies do not survive json.dumps."""
    require_conformance()
    changed = 0
    for path in conformance_files():
        text = json.loads(path.read_text(encoding="utf-8"))["response"]["body_text"]
        body, body_text = json_or_text(text)
        changed += body_text is not None and text.lstrip().startswith("{")
    assert changed > 0


# --- hostile input -----------------------------------------------------------------------------------------
PROVIDER_CALLS = {
    "openai": (OPENAI_CHAT, chat_body("hi")),
    "anthropic": (ANTHROPIC_MESSAGES, {"model": "claude-haiku-4-5", "max_tokens": 5,
                                       "messages": [{"role": "user", "content": "hi"}]}),
    "gemini": (GEMINI_GENERATE, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}


def provider_message(provider: str, error: dict) -> str:
    if provider == "anthropic":
        assert error["type"] == "error"
    return error["error"]["message"]


@pytest.mark.parametrize("provider", sorted(PROVIDER_CALLS))
@pytest.mark.parametrize("depth", [200, 100_000])
def test_json_nested_too_deeply_is_a_providers_400_and_the_server_lives_on(serve, client, provider, depth):
    path, body = PROVIDER_CALLS[provider]
    server = serve([scripted(provider, path, body, "fine")])
    hostile = b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
    answer = client.post(f"{server.url}{path}", content=hostile, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "nested deeper than 128 levels" in provider_message(provider, answer.json())
    assert client.post(f"{server.url}{path}", json=body).status_code == 200  # still serving


def test_a_body_past_the_limit_is_a_413_whether_declared_or_chunked(client):
    it = scripted("anthropic", ANTHROPIC_MESSAGES, PROVIDER_CALLS["anthropic"][1], "fine")
    app = ReplayApp(Player(Cassette("limit", {"kind": "scripted"}, [it])), max_body_bytes=1 << 20)
    thread = ServerThread(app).start()
    try:
        big = b'{"x": "' + b"a" * (3 << 20) + b'"}'
        declared = client.post(f"{thread.url}{ANTHROPIC_MESSAGES}", content=big)
        chunked = client.post(f"{thread.url}{ANTHROPIC_MESSAGES}", content=iter([big[:1 << 19]] * 6))
        fits = client.post(f"{thread.url}{ANTHROPIC_MESSAGES}", json=PROVIDER_CALLS["anthropic"][1])
    finally:
        thread.stop()
    for answer in (declared, chunked):
        assert answer.status_code == 413
        error = answer.json()
        assert error["error"]["type"] == "request_too_large"
        assert "larger than 1048576 bytes" in error["error"]["message"]
    assert fits.status_code == 200 and not app.misses


def test_an_endless_body_is_not_read_to_its_end():
    """The server stops reading an oversized body: memory stays bounded whatever the client sends."""
    app = ReplayApp(Player(Cassette("endless", {"kind": "scripted"})), max_body_bytes=1000)
    chunk = b"x" * 100
    received = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": True}  # never ends

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": OPENAI_CHAT, "query_string": b"", "headers": []}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    assert sent[0]["status"] == 413 and received * len(chunk) <= 4 * 1000 + len(chunk)


def test_the_default_limit_fits_a_lesson_sized_image_upload(serve, client):
    image = base64.b64encode(bytes(range(256)) * 16_384).decode()  # a 4 MiB image, 5.3 MiB as base64
    body = chat_body("describe")
    body["messages"][0]["content"] = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]
    server = serve([scripted("openai", OPENAI_CHAT, body, "A gradient.")])
    answer = client.post(f"{server.url}{OPENAI_CHAT}", json=body)
    assert len(json.dumps(body)) < DEFAULT_MAX_BODY_BYTES and answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "A gradient."
