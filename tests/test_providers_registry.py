"""The provider registry (lesson 3, 03_function_calling): every registered provider keeps the contract the
rest of llmkit relies on - its paths route back to it, its error bodies and in-stream errors parse with its
own parsers, its scripted answers parse to what was scripted, and its SDK client talks to a loopback server.
A fourth provider passes these tests by being registered, with no test edits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest

from llmkit import providers
from llmkit.errors import ConfigError
from llmkit.events import ProviderError, TextDelta, collect
from llmkit.providers import Provider
from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall, render

NAMES = providers.names()
MODEL = "test-model"
ANSWER = "Replay is deterministic: the same request, the same bytes, every time."
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
REPLY = Reply(text="Checking both cities.", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
                                                       ToolCall("get_weather", {"city": "Oslo"}, id="call_2")],
              input_tokens=42, output_tokens=17)


def _parse_stream(p: Provider, api: str, frames: list[bytes]) -> list:
    parser = p.stream_parser(api)
    events = [e for frame in frames for e in parser.feed(frame)]
    return events + list(parser.close())


def _scripted(p: Provider, reply: Reply, *, stream: bool) -> tuple[str, object]:
    """(the API, the rendered response) of ``reply`` on the provider's own chat request path."""
    request = p.raw_request(MODEL, "What is the weather in Paris and Oslo?", stream=stream)
    url = urlsplit(request.path)
    api = p.api_of(url.path)
    # declare the tool the reply calls, in the provider's own wire format (a real API calls declared tools only)
    kw = p.request(MODEL, [{"role": "user", "content": "hi"}], None, [WEATHER], 256, None)
    body = {**request.body, "tools": p.wire_request(kw).body["tools"]}
    sreq = ScriptedRequest(p.name, api, url.path, body, stream, 0)
    return api, render(sreq, reply, dict(parse_qsl(url.query)))


# --- the registry ---------------------------------------------------------------------------------------
def test_every_name_resolves_to_its_own_provider_module() -> None:
    assert len(set(NAMES)) == len(NAMES) >= 3
    for name in NAMES:
        p = providers.get(name)
        assert isinstance(p, Provider) and p.name == name
        assert providers.get(name) is p  # one instance per provider


def test_an_unknown_provider_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        providers.get("mistral")
    assert "mistral" in str(err.value) and all(name in str(err.value) for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stream", [False, True])
def test_request_paths_route_back_to_their_provider(name: str, stream: bool) -> None:
    p = providers.get(name)
    request = p.raw_request(MODEL, "hi", stream=stream)
    url = urlsplit(request.path)
    assert providers.for_path(url.path) is p
    assert p.wants_stream(url.path, dict(parse_qsl(url.query)), request.body) is stream
    if stream:  # llmkit's own requests ask for SSE (not Gemini's legacy JSON array)
        assert p.stream_kind(url.path, dict(parse_qsl(url.query))) == "sse"
    others = [providers.get(n) for n in NAMES if n != name]
    assert not any(o.owns_path(url.path) for o in others)


def test_a_path_no_provider_owns_maps_to_none() -> None:
    assert providers.for_path("/v1/not-an-api") is None
    assert providers.for_path("/") is None


# --- errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503, 529])
def test_error_bodies_parse_with_the_providers_own_error_parser(name: str, status: int) -> None:
    p = providers.get(name)
    body = json.dumps(p.error_body(status, f"status {status} here")).encode()
    error = p.parse_error_body(status, body)
    assert isinstance(error, ProviderError)
    assert error.status == status and error.message == f"status {status} here"
    assert error.type not in ("http_error", "error")  # the provider's own error type, not a fallback


@pytest.mark.parametrize("name", NAMES)
def test_fault_responses_parse_and_carry_their_status(name: str) -> None:
    p = providers.get(name)
    for fault in ("429", "429+retry-after", "500", "503", "400", "401"):
        status, headers, body = p.fault_response(fault, retry_after=3.0)
        assert headers["content-type"].startswith("application/json")
        error = p.parse_error_body(status, json.dumps(body).encode())
        assert error.status == status and error.message


@pytest.mark.parametrize("name", NAMES)
def test_an_error_inside_a_stream_parses_to_a_provider_error(name: str) -> None:
    p = providers.get(name)
    api, response = _scripted(p, Reply(text=ANSWER), stream=True)
    url = urlsplit(p.raw_request(MODEL, "hi", stream=True).path)
    frames = [f.raw.encode() for f in response.stream[:2]]
    frames.append(p.error_event(url.path, "overloaded mid-stream", 529).encode())
    errors = [e for e in _parse_stream(p, api, frames) if isinstance(e, ProviderError)]
    assert [e.message for e in errors] == ["overloaded mid-stream"]


# --- scripted answers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stream", [False, True])
def test_scripted_answers_parse_back_to_what_was_scripted(name: str, stream: bool) -> None:
    p = providers.get(name)
    api, response = _scripted(p, REPLY, stream=stream)
    assert response.status == 200 and response.is_stream is stream
    if stream:
        events = _parse_stream(p, api, [f.raw.encode() for f in response.stream])
    else:
        events = p.parse_response(response.body)
    c = collect(events)
    assert c.text == REPLY.text
    assert [(t.name, t.args()) for t in c.tool_calls] == [(t.name, t.arguments) for t in REPLY.tool_calls]
    assert (c.usage.input_tokens, c.usage.output_tokens) == (REPLY.input_tokens, REPLY.output_tokens)
    assert c.finish_reason == "tool_calls"


@pytest.mark.parametrize("name", NAMES)
def test_the_fault_injectors_stream_is_one_frame_per_chunk_and_parses_to_the_text(name: str) -> None:
    p = providers.get(name)
    chunks = ["Hello ", "there, ", "world"]
    head, texts, tail = p.scripted_stream(chunks, MODEL)
    assert len(texts) == len(chunks)
    for chunk, frame in zip(chunks, texts, strict=True):
        assert [e.text for e in _parse_stream(p, p.chat_api, [frame]) if isinstance(e, TextDelta)] == [chunk]
    assert collect(_parse_stream(p, p.chat_api, head + texts + tail)).text == "".join(chunks)
    answer = p.scripted_answer("".join(chunks), MODEL)
    assert collect(p.parse_response(answer.body)).text == "".join(chunks)


# --- the SDK against a loopback server --------------------------------------------------------------------
class _ScriptedHandler(BaseHTTPRequestHandler):
    """Answers every provider's chat request with its scripted renderer (no cassette, no replay server)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        p = providers.for_path(url.path)
        assert p is not None, url.path
        query = dict(parse_qsl(url.query))
        stream = p.wants_stream(url.path, query, body)
        self.server.seen.append((p.name, dict(self.headers)))  # type: ignore[attr-defined]
        response = render(ScriptedRequest(p.name, p.api_of(url.path), url.path, body, stream, 0),
                          Reply(text=ANSWER), query)
        payload = b"".join(f.raw.encode() for f in response.stream) if stream else json.dumps(response.body).encode()
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, list]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", NAMES)
def test_the_sdk_client_talks_to_a_loopback_base_url(name: str, loopback: tuple[str, list]) -> None:
    root, seen = loopback
    p = providers.get(name)
    client = p.sdk_client("test-key", p.base_url(root), None, is_async=False)
    kit = SimpleNamespace(**{name: client})
    kw = p.request(MODEL, [{"role": "user", "content": "Is replay deterministic?"}], "Be brief.", None, 64, None)
    before = len(seen)
    assert collect(p.complete(kit, kw)).text == ANSWER
    assert "".join(e.text for e in p.stream(kit, kw) if isinstance(e, TextDelta)) == ANSWER
    assert [who for who, _ in seen[before:]] == [name, name]
    assert any("test-key" in value for value in seen[-1][1].values())  # the key went along, in a header


@pytest.mark.parametrize("name", NAMES)
def test_the_async_sdk_client_talks_to_a_loopback_base_url(name: str, loopback: tuple[str, list]) -> None:
    import asyncio

    root, _ = loopback
    p = providers.get(name)
    kw = p.request(MODEL, [{"role": "user", "content": "Is replay deterministic?"}], None, None, 64, None)

    async def run() -> tuple[str, str]:
        client = p.sdk_client("test-key", p.base_url(root), None, is_async=True)
        kit = SimpleNamespace(**{f"{name}_async": client})
        whole = collect(await p.acomplete(kit, kw)).text
        streamed = "".join([e.text async for e in p.astream(kit, kw) if isinstance(e, TextDelta)])
        return whole, streamed

    assert asyncio.run(run()) == (ANSWER, ANSWER)
