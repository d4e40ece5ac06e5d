"""The secret gate: record mode never writes a key to disk, in any shape a reader could undo.

Introduced in lesson 0 (00_setup_and_replay). Every test drives the real recording path: the replay
server's ASGI app with a :class:`Recorder`, forwarding over loopback to a fake provider that answers
exactly the bytes a test gives it. A key either comes out scrubbed or the write is refused (a
``SecretLeakError`` in ``recorder.errors`` that names the interaction and field and never shows the
key); an answer that cannot be stored is refused loudly, never dropped. The oracle that looks for keys
on disk is written here, independently of the scanner under test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from replay_helpers import read_body

from llmkit.errors import CassetteError, SecretLeakError
from llmkit.events import TextDelta
from llmkit.replay.cassette import Cassette
from llmkit.replay.check import check_cassette
from llmkit.replay.recorder import Recorder
from llmkit.replay.server import ReplayApp, ServerThread
from llmkit.wire import stream_parser

OPENAI_CHAT = "/v1/chat/completions"
ANTHROPIC_MESSAGES = "/v1/messages"
GEMINI_GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
PATHS = {"openai": OPENAI_CHAT, "anthropic": ANTHROPIC_MESSAGES, "gemini": GEMINI_GENERATE}

KEY_CHARS = string.ascii_letters + string.digits + "_-"
B62 = string.ascii_letters + string.digits


def key_of(fmt: str, rng: random.Random) -> str:
    """A key of one of the formats the providers issue (random characters, right shape)."""
    def chars(n: int, alphabet: str = KEY_CHARS) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    return {
        "openai": lambda: "sk-" + chars(48, B62),
        "openai-project": lambda: "sk-proj-" + chars(rng.randint(40, 120)),
        "openai-service": lambda: "sk-svcacct-" + chars(rng.randint(40, 80)),
        "openai-admin": lambda: "sk-admin-" + chars(rng.randint(40, 80)),
        "anthropic": lambda: "sk-ant-api03-" + chars(93) + "AA",
        "anthropic-admin": lambda: "sk-ant-admin01-" + chars(93) + "AA",
        "google": lambda: "AIza" + chars(35),
        "google-oauth": lambda: "ya29." + chars(rng.randint(40, 100)),
        "bearer": lambda: "Bearer " + chars(rng.randint(24, 60), B62 + "._-"),
    }[fmt]()


FORMATS = ("openai", "openai-project", "openai-service", "openai-admin", "anthropic", "anthropic-admin",
           "google", "google-oauth", "bearer")


# --- the oracle: does the key reach disk in any form? ---------------------------------------------------
_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def readable_forms(text: str) -> list[str]:
    """``text`` as written, with JSON \\u escapes resolved, percent-decoded, and both."""
    unescaped = _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text).replace("\\/", "/")
    return [text, unescaped, unquote(text), unquote(unescaped)]


def base64_shapes(secret: str) -> set[str]:
    """The base64 characters ``secret`` becomes at byte offsets 0-2 whatever surrounds it (both alphabets)."""
    shapes = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\x00" * offset + secret.encode() + b"\x00\x00").decode()
        middle = encoded[(offset * 8 + 5) // 6: (offset + len(secret)) * 8 // 6]
        shapes |= {middle, middle.replace("+", "-").replace("/", "_")}
    return shapes


def client_text(provider: str, raws: list[str]) -> str:
    """The answer text a client reassembles from recorded stream frames (the lessons' wire parser)."""
    parser = stream_parser(provider)
    events = parser.feed("".join(raws).encode()) + parser.close()
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def leaks(secret: str, folder: Path, pieces: list[str] | None = None) -> list[str]:
    """Every file under ``folder`` that holds ``secret`` readably: raw, unescaped, percent-decoded,
    base64 at any alignment, its stream reassembled, or (``pieces``) its parts in order."""
    needle = secret.lower()
    shapes = base64_shapes(secret)
    found = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = file.read_bytes().decode("latin-1")
        forms = readable_forms(text)
        if any(needle in form.lower() for form in forms) or any(s in form for s in shapes for form in forms):
            found.append(str(file.relative_to(folder)))
            continue
        if pieces and min(map(len, pieces)) >= 4:
            in_order = re.compile(".*?".join(re.escape(p.lower()) for p in pieces), re.S)
            if any(in_order.search(form.lower()) for form in forms):
                found.append(f"{file.relative_to(folder)} (in pieces)")
                continue
        if file.suffix == ".json":
            doc = json.loads(file.read_text(encoding="utf-8"))
            for n, it in enumerate(doc.get("interactions", [])):
                frames = it["response"].get("stream")
                if frames and needle in client_text(it["request"]["provider"], [f["raw"] for f in frames]).lower():
                    found.append(f"{file.relative_to(folder)} interaction {n} (reassembled stream)")
    return found


def shows(secret: str, message: str) -> bool:
    """Does an error message show the secret in any readable form?"""
    return any(secret.lower() in form.lower() for form in readable_forms(message)) or \
        any(s in message for s in base64_shapes(secret))


# --- the fake provider and the recording proxy --------------------------------------------------------
@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("content-type", "application/json")])
    chunks: list[bytes] = field(default_factory=lambda: [b'{"ok": true}'])
    pause: float = 0.0  # between chunks, so that each arrives as its own network read
    break_off: bool = False  # drop the connection instead of ending the body


class FakeProvider:
    """Answers every request with ``answer``, chunk by chunk; remembers what it was sent."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.received: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = await read_body(receive)
        self.received.append((scope["path"], scope["query_string"].decode(), raw))
        answer = self.answer
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(k.encode(), v.encode()) for k, v in answer.headers]})
        for chunk in answer.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(answer.pause)
        if answer.break_off:
            raise ConnectionAbortedError("the fake provider drops the connection")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class Proxy:
    """The replay server's app in record mode, forwarding to :class:`FakeProvider` on loopback."""

    def __init__(self, upstream_url: str, folder: Path) -> None:
        self.folder = folder
        self.recorder = Recorder(Cassette("gate", {"kind": "recorded"}), folder / "gate.json", secrets=[],
                                 upstreams={p: upstream_url for p in ("openai", "anthropic", "gemini")})
        self.server = ServerThread(ReplayApp(recorder=self.recorder)).start()
        self.http = httpx2.Client(base_url=self.server.url, timeout=10)

    def reset(self, folder: Path, secrets: list[str]) -> None:
        """A fresh cassette in ``folder``, with ``secrets`` as the configured keys."""
        self.folder = folder
        self.recorder.cassette = Cassette("gate", {"kind": "recorded"})
        self.recorder.path = folder / "gate.json"
        self.recorder.secrets = list(secrets)
        self.recorder.errors.clear()

    def post(self, path: str, content: bytes, *, query: str = "", headers: dict[str, str] | None = None
             ) -> httpx2.Response:
        return self.http.post(path + (f"?{query}" if query else ""), content=content,
                              headers={"content-type": "application/json", **(headers or {})})

    def written(self) -> list[dict]:
        path = self.folder / "gate.json"
        return json.loads(path.read_text(encoding="utf-8"))["interactions"] if path.exists() else []

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def fake() -> Any:
    provider = FakeProvider()
    server = ServerThread(provider).start()
    yield provider, server.url
    server.stop()


@pytest.fixture
def proxy(fake, tmp_path) -> Any:
    provider, url = fake
    provider.answer = Answer()
    p = Proxy(url, tmp_path)
    yield p
    p.close()


def to_json(value: Any, escape: bool = False) -> str:
    """JSON text; with ``escape`` every character of every string is written as a \\u escape."""
    if not escape:
        return json.dumps(value)
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(k, True)}:{to_json(v, True)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, True) for v in value) + "]"
    return json.dumps(value)


def sse(frames: list[dict], sep: str = "\n\n", event: str | None = None, escape: bool = False) -> list[bytes]:
    head = f"event: {event}\n" if event else ""
    return [f"{head}data: {to_json(f, escape)}{sep}".encode() for f in frames]


def openai_deltas(pieces: list[str], escape: bool = False) -> list[bytes]:
    frames = [{"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}}]}
              for p in pieces]
    return sse(frames, escape=escape) + [b"data: [DONE]\n\n"]


def anthropic_deltas(pieces: list[str], escape: bool = False) -> list[bytes]:
    start = [b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","type":"message",'
             b'"role":"assistant","content":[],"model":"c","usage":{"input_tokens":1,"output_tokens":0}}}\n\n',
             b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
             b'"content_block":{"type":"text","text":""}}\n\n']
    deltas = sse([{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
                  for p in pieces], event="content_block_delta", escape=escape)
    return start + deltas + [b'event: message_stop\ndata: {"type":"message_stop"}\n\n']


def gemini_items(pieces: list[str]) -> list[dict]:
    return [{"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}]} for p in pieces]


def stream_answer(provider: str, pieces: list[str], *, json_array: bool = False, escape: bool = False
                  ) -> tuple[str, str, bytes, Answer]:
    """(path, query, request body, the provider's stream of ``pieces`` as text deltas)."""
    event_stream = [("content-type", "text/event-stream")]
    if provider == "openai":
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        return OPENAI_CHAT, "", json.dumps(body).encode(), Answer(200, event_stream, openai_deltas(pieces, escape))
    if provider == "anthropic":
        body = {"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        answer = Answer(200, event_stream, anthropic_deltas(pieces, escape))
        return ANTHROPIC_MESSAGES, "", json.dumps(body).encode(), answer
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    if json_array:
        payload = ("[" + ",\r\n".join(to_json(i, escape) for i in gemini_items(pieces)) + "]").encode()
        return GEMINI_STREAM, "", body, Answer(200, [("content-type", "application/json")], [payload], pause=0.001)
    return GEMINI_STREAM, "alt=sse", body, Answer(200, event_stream, sse(gemini_items(pieces), "\r\n\r\n",
                                                                          escape=escape))


def refused(proxy: Proxy, secret: str, index: int = 0) -> SecretLeakError:
    """The one error the recorder holds: a SecretLeakError naming the interaction, not showing the secret."""
    [error] = proxy.recorder.errors
    assert isinstance(error, SecretLeakError)
    assert error.field.startswith(f"interactions[{index}]") and error.field in str(error)
    assert not shows(secret, str(error))
    return error


KEY = "sk-proj-" + "Qw3_rT5-yU7iO9pA1sD2fG4hJ6kL8zX0cV"
GOOGLE = "AIza" + "Sy0123456789abcdefghijklmnopqrstu"


# --- the attacks that got through ------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("configured", [True, False], ids=["configured", "pattern"])
def test_a_key_streamed_four_characters_per_delta_is_refused(proxy, fake, provider, configured):
    pieces = [KEY[i:i + 4] for i in range(0, len(KEY), 4)]
    path, query, body, fake[0].answer = stream_answer(provider, pieces)
    proxy.reset(proxy.folder, [KEY] if configured else [])
    reply = proxy.post(path, body, query=query)
    assert reply.status_code == 200 and client_text(provider, [reply.text]) == KEY  # the client got its stream
    assert "joined across events" in refused(proxy, KEY).field
    assert proxy.written() == [] and leaks(KEY, proxy.folder, pieces) == []


def test_a_key_cut_at_a_chunk_boundary_in_a_gemini_json_array_is_refused(proxy, fake):
    path, _, body, answer = stream_answer("gemini", [f"here it is: {GOOGLE} ok"], json_array=True)
    payload = answer.chunks[0]
    cut = payload.index(GOOGLE.encode()) + 17
    answer.chunks = [payload[:cut], payload[cut:]]  # each network read becomes a frame
    fake[0].answer = answer
    reply = proxy.post(path, body)
    assert reply.content == payload
    refused(proxy, GOOGLE)
    assert proxy.written() == [] and leaks(GOOGLE, proxy.folder) == []


def test_a_key_as_a_json_object_key_is_scrubbed_in_request_and_response(proxy, fake):
    proxy.reset(proxy.folder, [KEY])
    fake[0].answer = Answer(chunks=[json.dumps({"choices": [], "echo": {KEY: 1, GOOGLE.lower(): 2}}).encode()])
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {KEY.upper(): "x"},
            "tools": [{GOOGLE: {"type": "object"}}]}
    reply = proxy.post(OPENAI_CHAT, json.dumps(body).encode())
    assert reply.status_code == 200 and proxy.recorder.errors == []
    [written] = proxy.written()
    assert written["request"]["body"]["tools"] == [{"REDACTED": {"type": "object"}}]
    assert set(written["response"]["body"]["echo"]) == {"REDACTED"}
    assert leaks(KEY, proxy.folder) == [] and leaks(GOOGLE, proxy.folder) == []


@pytest.mark.parametrize("offset", [0, 1, 2, 4, 5])
@pytest.mark.parametrize("configured", [True, False], ids=["configured", "pattern"])
def test_a_key_in_a_base64_upload_never_reaches_the_blob_file(proxy, fake, offset, configured):
    proxy.reset(proxy.folder, [KEY] if configured else [])
    upload = b"%PDF-1.7 " + bytes(range(256))[:offset] + KEY.encode() + bytes(range(256)) * 3
    data = base64.b64encode(upload).decode()
    body = {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "application/pdf", "data": data}},
                                                    {"text": "summarise"}]}]}
    reply = proxy.post(GEMINI_GENERATE, json.dumps(body).encode())
    if configured:  # scrubbed: the upload keeps its size, zeros where the key was
        assert reply.status_code == 200 and proxy.recorder.errors == []
        [blob] = (proxy.folder / "blobs").iterdir()
        assert len(blob.read_bytes()) == len(upload) and KEY[10:30].encode() not in blob.read_bytes()
    else:
        assert reply.status_code == 400 and "refusing to write" in reply.text and not shows(KEY, reply.text)
        assert "blobs/" in refused(proxy, KEY).field
        assert not (proxy.folder / "blobs").exists()
    assert leaks(KEY, proxy.folder) == []


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "pattern"])
def test_a_key_with_unicode_escapes_in_an_sse_frame(proxy, fake, configured):
    proxy.reset(proxy.folder, [KEY] if configured else [])
    escaped = "".join(f"\\u{ord(c):04x}" if i % 3 == 0 else c for i, c in enumerate(KEY))
    frame = ('data: {"choices":[{"index":0,"delta":{"content":"key: ' + escaped + '"}}]}\n\n').encode()
    path, _, body, answer = stream_answer("openai", [])
    answer.chunks = [frame, b"data: [DONE]\n\n"]
    fake[0].answer = answer
    assert proxy.post(path, body).status_code == 200
    if configured:
        assert proxy.recorder.errors == [] and "REDACTED" in proxy.written()[0]["response"]["stream"][0]["raw"]
    else:
        assert refused(proxy, KEY).field == "interactions[0].response.stream[0].raw"
    assert leaks(KEY, proxy.folder) == []


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "pattern"])
def test_a_key_percent_encoded_character_by_character(proxy, fake, configured):
    proxy.reset(proxy.folder, [GOOGLE] if configured else [])
    encoded = "".join(f"%{ord(c):02X}" for c in GOOGLE)
    fake[0].answer = Answer(chunks=[json.dumps({"candidates": [], "note": f"see {encoded}"}).encode()])
    body = {"contents": [{"role": "user", "parts": [{"text": f"url: https://x.test/?k={encoded}"}]}]}
    reply = proxy.post(GEMINI_GENERATE, json.dumps(body).encode(), query=f"note={quote(encoded)}")
    if configured:
        assert reply.status_code == 200 and proxy.recorder.errors == []
        assert "REDACTED" in json.dumps(proxy.written())
    else:
        assert reply.status_code == 400
        assert refused(proxy, GOOGLE).field == "interactions[0].request.query"
    assert leaks(GOOGLE, proxy.folder) == []


def test_a_key_as_a_response_header_name_is_dropped(proxy, fake):
    proxy.reset(proxy.folder, [KEY])
    fake[0].answer = Answer(headers=[("content-type", "application/json"), (f"x-{KEY.lower()}", "1"),
                                     (GOOGLE.lower(), "2"), ("x-request-id", "req_1")])
    assert proxy.post(OPENAI_CHAT, b'{"model":"m","messages":[]}').status_code == 200
    assert proxy.recorder.errors == []
    kept = set(proxy.written()[0]["response"]["headers"])
    assert {"content-type", "x-request-id"} <= kept and not any(KEY.lower() in k or "aiza" in k for k in kept)
    assert leaks(KEY, proxy.folder) == [] and leaks(GOOGLE, proxy.folder) == []


def write_cassette(folder: Path, interaction: dict, blobs: dict[str, bytes] | None = None) -> Path:
    for digest, data in (blobs or {}).items():
        (folder / "blobs").mkdir(exist_ok=True)
        (folder / "blobs" / digest).write_bytes(data)
    path = folder / "c.json"
    doc = {"llmkit_cassette": 1, "name": "c", "provenance": {"kind": "recorded"}, "interactions": [interaction]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def plain(request_body: Any = None, **response: Any) -> dict:
    return {"request": {"provider": "openai", "method": "POST", "path": OPENAI_CHAT, "body": request_body or {}},
            "response": {"status": 200, "headers": {}, "body": {}, **response}}


TOKEN = "ya29.a0AfB_byC" + "x9Yz" * 10
DIGEST = "ab" * 32
CHECK_CASES = {
    "BEARER": lambda: (plain({"note": "BEARER " + "Qw3rT5yU7iO9pA1sD2fG4hJ6"}), None),
    "ya29": lambda: (plain(headers={"x-debug": f"token {TOKEN}"}), None),
    "blob": lambda: (plain({"file": f"blob:sha256:{DIGEST}"}), {DIGEST: b"\x89PNG..." + KEY.encode()}),
    "split stream": lambda: ({**plain(), "response": {"status": 200, "headers": {}, "stream": [
        {"t_ms": 1.0, "raw": b.decode()} for b in openai_deltas([KEY[i:i + 5] for i in range(0, len(KEY), 5)])]}},
        None),
    "object key": lambda: (plain({"metadata": {KEY: 1}}), None),
    "header name": lambda: (plain(headers={GOOGLE: "1"}), None),
}


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_check_finds_what_it_missed(tmp_path, case):
    interaction, blobs = CHECK_CASES[case]()
    report = check_cassette(write_cassette(tmp_path, interaction, blobs))
    assert not report.ok and report.secret_field and report.secret_field.startswith("interactions[0]")
    assert not any(shows(s, "\n".join(report.lines())) for s in (KEY, GOOGLE, TOKEN))


def test_check_passes_every_committed_cassette():
    folder = Path(__file__).parent.parent / "notebooks" / "cassettes"
    for path in sorted(folder.glob("*.json")):
        assert check_cassette(path).secret_field is None, path.name


def test_an_undecodable_stream_is_passed_through_and_refused_loudly(proxy, fake):
    path, _, body, answer = stream_answer("openai", ["fine ", "then \ufffd"])
    answer.chunks[1] = answer.chunks[1].replace(b"\\ufffd", b"\xff\xfe")
    fake[0].answer = answer
    with pytest.warns(RuntimeWarning, match="not UTF-8"):
        reply = proxy.post(path, body)
    assert reply.status_code == 200 and reply.content == b"".join(answer.chunks)  # the stream is not cut
    [error] = proxy.recorder.errors
    assert isinstance(error, CassetteError) and "not UTF-8" in str(error) and OPENAI_CHAT in str(error)
    assert proxy.written() == []


def test_an_undecodable_body_is_refused_to_the_client(proxy, fake):
    fake[0].answer = Answer(headers=[("content-type", "text/plain")], chunks=[b"caf\xe9"])
    with pytest.warns(RuntimeWarning, match="not UTF-8"):
        reply = proxy.post(OPENAI_CHAT, b'{"model":"m","messages":[]}')
    assert reply.status_code == 400 and "not UTF-8" in reply.json()["error"]["message"]
    assert [type(e) for e in proxy.recorder.errors] == [CassetteError] and proxy.written() == []


def test_a_stream_the_provider_breaks_off_is_reported(proxy, fake):
    path, _, body, answer = stream_answer("openai", ["half an ", "answer"])
    answer.break_off = True
    fake[0].answer = answer
    with pytest.raises(httpx2.HTTPError):
        proxy.post(path, body)
    [error] = proxy.recorder.errors
    assert isinstance(error, CassetteError) and OPENAI_CHAT in str(error) and proxy.written() == []


def test_a_refused_write_leaves_the_cassette_as_it_was(proxy, fake):
    proxy.reset(proxy.folder, [KEY])
    assert proxy.post(OPENAI_CHAT, b'{"model":"m","messages":[]}').status_code == 200
    before = (proxy.folder / "gate.json").read_bytes()
    path, _, body, fake[0].answer = stream_answer("openai", [KEY[:20], KEY[20:]])
    assert proxy.post(path, body).status_code == 200
    assert (proxy.folder / "gate.json").read_bytes() == before
    assert sorted(p.name for p in proxy.folder.iterdir()) == ["gate.json"]  # no temp file left behind
    refused(proxy, KEY, index=1)


# --- the property: whatever the shape, no key reaches disk ----------------------------------------------
POSITIONS = ("request body", "request object key", "request query", "request header", "request path",
             "request upload", "response body", "response object key", "response header",
             "response header name", "response stream", "response json-array")
ENCODINGS = ("plain", "json-escaped", "percent", "base64")


@dataclass
class Case:
    fmt: str
    configured: bool
    position: str
    encoding: str
    offset: int
    split: int
    seed: int


def encode(secret: str, encoding: str, offset: int, urlsafe: bool) -> str:
    """``secret`` as placed in a text field (JSON \\u escapes are applied when the JSON is written)."""
    if encoding == "percent":
        return "".join(f"%{ord(c):02X}" for c in secret)
    if encoding == "base64":
        data = bytes(range(65, 65 + offset)) + secret.encode() + b"!tail"
        return (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode()
    return secret


def run_case(proxy: Proxy, upstream: FakeProvider, case: Case, folder: Path) -> None:
    """Place one key as ``case`` says, record the exchange through the proxy into ``folder``, then look
    for the key in every file there."""
    rng = random.Random(case.seed)
    secret = key_of(case.fmt, rng)
    token = secret.removeprefix("Bearer ")  # for a bearer token, the token is the secret
    proxy.reset(folder, [token] if case.configured else [])
    escape = case.encoding == "json-escaped"
    text = encode(secret, case.encoding, case.offset, urlsafe=case.position == "request path" or rng.random() < .5)
    filler = "".join(rng.choice(string.ascii_letters + " ") for _ in range(case.offset * 3))
    value = f"{filler}{text} and more"
    path, query, headers = OPENAI_CHAT, "", {}
    request: Any = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    response: Any = {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    answer = Answer()
    where = case.position
    if where == "request body":
        request["messages"][0]["content"] = value
    elif where == "request object key":
        request["metadata"] = {value: "v"}
    elif where == "request query":
        query = f"q={quote(value)}"
    elif where == "request header":
        headers = {"x-note": quote(value)}
    elif where == "request path":
        path = f"/v1beta/models/{quote(value, safe='')}:generateContent"
        request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    elif where == "request upload":
        upload = rng.randbytes(300 + case.offset) + secret.encode() + rng.randbytes(200)
        part = {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(upload).decode()}}
        path, request = GEMINI_GENERATE, {"contents": [{"role": "user", "parts": [part]}]}
    elif where == "response body":
        response["choices"][0]["message"]["content"] = value
    elif where == "response object key":
        response["echo"] = {value: 1}
    elif where == "response header":
        answer.headers = [("content-type", "application/json"), ("x-note", quote(value))]
    elif where == "response header name":
        answer.headers = [("content-type", "application/json"), (f"x-{secret.replace(' ', '-').lower()}", "1")]
    elif where == "response stream":  # the encoded key cut into pieces of `split` characters, one per delta
        provider = rng.choice(("openai", "anthropic", "gemini"))
        pieces = [text[i:i + case.split] for i in range(0, len(text), case.split)]
        path, query, body, answer = stream_answer(provider, [filler, *pieces, " done"], escape=escape)
        request = json.loads(body)
    else:  # a legacy Gemini JSON array, cut into network reads of `split` bytes across the key
        path, query, body, answer = stream_answer("gemini", [filler, text, " done"], json_array=True, escape=escape)
        payload = answer.chunks[0]
        at = payload.index(to_json(text, escape)[1:-1].encode())
        answer.chunks = [payload[:at], *(payload[i:i + case.split] for i in range(at, at + 40, case.split)),
                         payload[at + 40:]]
        request = json.loads(body)
    if where.startswith("response") and "stream" not in where and "json-array" not in where:
        answer.chunks = [to_json(response, escape).encode()]
    upstream.answer = answer
    reply = proxy.post(path, to_json(request, escape).encode(), query=query, headers=headers)

    written, errors = proxy.written(), proxy.recorder.errors
    # Recorded (scrubbed) or refused: never both, never neither (no interaction is dropped silently).
    assert (len(written), len(errors)) in ((1, 0), (0, 1)), (reply.status_code, reply.text[:300], errors)
    for error in errors:
        assert isinstance(error, SecretLeakError) and error.field.startswith("interactions[0]")
        assert not shows(token, str(error))
    assert not shows(token, reply.text) or where.startswith("response")  # the client may get its own answer
    pieces = [token[i:i + case.split] for i in range(0, len(token), case.split)]
    assert leaks(token, proxy.folder, pieces if case.encoding == "plain" else None) == [], case


cases = st.builds(
    Case,
    fmt=st.sampled_from(FORMATS),
    configured=st.booleans(),
    position=st.just(""),  # each test run fixes it
    encoding=st.sampled_from(ENCODINGS),
    offset=st.integers(0, 7),
    split=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)


@pytest.mark.parametrize("position", POSITIONS)
def test_no_key_reaches_disk_in_any_shape(fake, tmp_path, position):
    """Keys of every format at random offsets, splits and encodings, configured or only key-shaped."""
    upstream, url = fake
    proxy = Proxy(url, tmp_path)
    count = iter(range(10**6))

    @settings(derandomize=True, max_examples=16, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cases)
    def check(case: Case) -> None:
        case.position = position
        # A bare token in a header name has no "Bearer" to be recognised by: only its configured value can be.
        assume(case.configured or case.fmt != "bearer" or position != "response header name")
        folder = tmp_path / f"case{next(count)}"
        folder.mkdir()
        run_case(proxy, upstream, case, folder)

    try:
        check()
    finally:
        proxy.close()
