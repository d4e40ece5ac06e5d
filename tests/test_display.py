"""llmkit.display (lesson 2, 02_streaming): the live StreamView and its safe markdown rendering.

The view is driven the way the lesson drives it: by the official SDK streaming from a real replay server on
loopback, paced as recorded; Stop must close the connection so that the server sees the client leave.
"""

from __future__ import annotations

import threading
import time

import pytest
from replay_helpers import OPENAI_CHAT, chat_body, scripted

from llmkit.display import StreamView, hang_up, render_markdown
from llmkit.events import Finish, ProviderError, TextDelta, ToolCallComplete, ToolCallDelta, ToolCallStart, Usage
from llmkit.replay.cassette import Cassette, Player
from llmkit.replay.scripted import Reply
from llmkit.replay.server import ReplayApp, ServerThread

LONG = " ".join(f"word{i}" for i in range(120)) + "."


# --- rendering ----------------------------------------------------------------------------------------------
def test_markdown_is_rendered() -> None:
    out = render_markdown("# Title\n\n- **bold** and `code`\n\n```py\nx = 1 < 2\n```\n")
    assert "<h1>Title</h1>" in out and "<strong>bold</strong>" in out and "<code>code</code>" in out
    assert "x = 1 &lt; 2" in out


@pytest.mark.parametrize("payload", [
    '<img src="x" onerror="alert(1)">',
    "<script>alert(1)</script>",
    '<a href="https://example.com" onclick="alert(1)">x</a>',
    "<iframe src=javascript:alert(1)></iframe>",
])
def test_model_html_is_escaped_never_markup(payload: str) -> None:
    out = render_markdown(f"before {payload} after")
    assert "<" + payload[1:] not in out
    assert payload.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in out


@pytest.mark.parametrize("link", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "vbscript:msgbox(1)",
                                  "data:text/html,<script>alert(1)</script>"])
def test_unsafe_link_schemes_are_not_links(link: str) -> None:
    out = render_markdown(f"[click]({link}) ![img]({link})")
    assert "href=" not in out and "src=" not in out


def test_safe_links_stay_links() -> None:
    assert '<a href="https://example.com/a?b=1&amp;c=2">x</a>' in render_markdown("[x](https://example.com/a?b=1&c=2)")


# --- reading a stream -----------------------------------------------------------------------------------------
def test_text_chunks_are_read_back_whole() -> None:
    view = StreamView(iter(["Hel", "lo, ", "**world**"])).start()
    assert view.result(timeout=5) == "Hello, **world**"
    assert view.done and not view.stopped and view.error is None
    assert "<strong>world</strong>" in view.html
    assert "done" in view.status.value and view.stop_button.disabled


def test_events_fill_text_tools_usage_and_finish() -> None:
    events = [
        TextDelta("Let me check."),
        ToolCallStart(0, "call_1", "get_weather"),
        ToolCallDelta(0, '{"city": "<Par'),
        ToolCallDelta(0, 'is>"}'),
        ToolCallComplete(0, "call_1", "get_weather", '{"city": "<Paris>"}'),
        Usage(10, 7, 17),
        Finish("tool_calls", "tool_calls"),
    ]
    view = StreamView(events).start()
    assert view.result(timeout=5) == "Let me check."
    assert view.finish_reason == "tool_calls" and view.usage == Usage(10, 7, 17)
    assert [c.args() for c in view.tool_calls] == [{"city": "<Paris>"}]
    assert "get_weather" in view.html and "&lt;Paris&gt;" in view.html and "<Paris>" not in view.html


def test_provider_error_in_stream_is_reported_not_raised() -> None:
    view = StreamView([TextDelta("partial"), ProviderError(None, "overloaded_error", "Overloaded")]).start()
    assert view.result(timeout=5) == "partial"
    assert view.errors[0].type == "overloaded_error"
    assert "Overloaded" in view.status.value


def test_wrong_item_type_fails_with_a_hint() -> None:
    view = StreamView([{"choices": []}]).start()
    with pytest.raises(TypeError, match="sdk_events"):
        view.result(timeout=5)
    assert "failed" in view.status.value


def test_exception_from_the_source_is_reraised() -> None:
    def broken():
        yield "ok "
        raise ConnectionError("network went away")

    view = StreamView(broken()).start()
    with pytest.raises(ConnectionError):
        view.result(timeout=5)
    assert view.text == "ok " and not view.stopped


def test_result_before_start_and_double_start_are_errors() -> None:
    view = StreamView(["x"])
    with pytest.raises(RuntimeError, match="start"):
        view.result()
    view.start()
    with pytest.raises(RuntimeError, match="already started"):
        view.start()


# --- throttling -------------------------------------------------------------------------------------------
def test_renders_are_throttled_but_progressive() -> None:
    def fast(n: int = 400):
        for i in range(n):
            time.sleep(0.001)  # ~1000 chunks/s: far more than a browser should be sent
            yield f"t{i} "

    seen: list[int] = []
    view = StreamView(fast(), min_interval=0.05)
    view.body.observe(lambda change: seen.append(len(change["new"])), names="value")
    view.start().result(timeout=30)
    assert view.renders <= view.elapsed_s / 0.05 + 2
    assert len(seen) >= 3, "the text should grow on screen, not appear only at the end"
    assert seen == sorted(seen) and "t399" in view.html


# --- stopping ---------------------------------------------------------------------------------------------
def test_stop_without_cancel_takes_effect_at_the_next_chunk_and_closes_the_source() -> None:
    closed = threading.Event()

    def slow():
        try:
            for i in range(1000):
                time.sleep(0.01)
                yield f"{i} "
        finally:
            closed.set()

    view = StreamView(slow()).start()
    assert view.wait_for(chars=20, timeout=10)
    view.stop_button.click()  # what a click in the browser runs
    text = view.result(timeout=5)
    assert view.stopped and closed.is_set()
    assert text.startswith("0 1 2 ") and "999" not in text
    assert "stopped" in view.status.value and view.stop_button.description == "Stopped"


class _Watch:
    """ASGI wrapper: records, per request, whether the client disconnected before the body was complete."""

    def __init__(self, app):
        self.app = app
        self.requests: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"disconnected": False, "complete": False, "frames": 0}
        self.requests.append(state)

        async def watched_receive():
            message = await receive()
            if message["type"] == "http.disconnect":
                state["disconnected"] = True
            return message

        async def watched_send(message):
            if message["type"] == "http.response.body":
                state["frames"] += 1
                if not message.get("more_body"):
                    state["complete"] = True
            await send(message)

        await self.app(scope, watched_receive, watched_send)


def _serve(interaction, watchers: list):
    app = ReplayApp(Player(Cassette("display", {"kind": "scripted"}, [interaction])), speed=1.0)
    watch = _Watch(app)
    thread = ServerThread(watch).start()
    watchers.append(thread)
    return thread.url, app, watch


def _long_story(pause_after: int | None = None):
    body = chat_body("Tell me a long story.", stream=True)
    interaction = scripted("openai", OPENAI_CHAT, body, Reply(text=LONG, ttft_ms=100.0, tokens_per_s=80.0))
    if pause_after is not None:  # the provider goes quiet for 5 s after a few frames
        for frame in interaction.response.stream[pause_after:]:
            frame.t_ms += 5000
    return interaction


@pytest.fixture
def paced_server():
    """A replay server at the recorded pace (speed 1) with one long OpenAI stream (~3 s of tokens)."""
    threads: list = []
    yield lambda pause_after=None: _serve(_long_story(pause_after), threads)
    for thread in threads:
        thread.stop()


def _openai_stream(url: str):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key="test", base_url=url + "/v1", max_retries=0)
    return client.chat.completions.create(model="gpt-4.1-mini", stream=True,
                                          messages=[{"role": "user", "content": "Tell me a long story."}])


def test_sdk_stream_grows_and_completes(paced_server) -> None:
    from llmkit.wire.sdk_events import openai_chat_events

    url, app, watch = paced_server()
    stream = _openai_stream(url)
    view = StreamView(openai_chat_events(stream), cancel=stream).start()
    assert view.wait_for(chars=10, timeout=10)
    early = view.text
    assert not view.done and len(early) < len(LONG), "at speed 1 the answer should still be arriving"
    assert view.result(timeout=30) == LONG
    assert view.finish_reason == "stop" and not view.stopped
    assert watch.requests[-1]["complete"] and not app.disconnects


def test_stop_closes_the_sdk_stream_and_the_server_sees_the_disconnect(paced_server) -> None:
    from llmkit.wire.sdk_events import openai_chat_events

    url, app, watch = paced_server()
    stream = _openai_stream(url)
    view = StreamView(openai_chat_events(stream), cancel=stream).start()
    assert view.wait_for(chars=40, timeout=10)
    t_stop = time.perf_counter()
    view.stop_button.click()
    text = view.result(timeout=5)
    assert time.perf_counter() - t_stop < 1.0, "Stop must end the stream at once, not when the answer ends"
    assert view.stopped and view.error is None
    assert LONG.startswith(text) and 40 <= len(text) < len(LONG)
    # The server noticed the client leave: it stopped sending and recorded the disconnect.
    deadline = time.monotonic() + 5
    while not app.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.path for r in app.disconnects] == [OPENAI_CHAT]
    assert watch.requests[-1]["disconnected"] and not watch.requests[-1]["complete"]
    assert stream.response.is_closed


def _raw_stream(url: str, module: str):
    """A raw streaming request (httpx or httpx2) parsed by llmkit.wire: (events, response, client)."""
    http = pytest.importorskip(module)
    from llmkit import wire

    req = wire.openai.chat_request("gpt-4.1-mini", "Tell me a long story.", stream=True, api_key="test")
    client = http.Client(timeout=30)
    response = client.send(client.build_request("POST", req.url(url), headers=req.headers,
                                                content=req.content()), stream=True)

    def events():
        parser = wire.stream_parser("openai")
        for piece in response.iter_raw():
            yield from parser.feed(piece)
        yield from parser.close()

    return events(), response, client


@pytest.mark.parametrize("path", ["openai SDK", "httpx2", "httpx"])
def test_stop_cancels_at_once_while_the_provider_is_silent(paced_server, path: str) -> None:
    """While no byte arrives the reader is blocked in recv(): Stop must still end the request at once."""
    from llmkit.wire.sdk_events import openai_chat_events

    url, app, watch = paced_server(pause_after=4)  # a few tokens, then 5 s of silence
    if path == "openai SDK":
        stream = _openai_stream(url)
        view = StreamView(openai_chat_events(stream), cancel=stream).start()
    else:
        events, response, client = _raw_stream(url, path)
        view = StreamView(events, cancel=response).start()
    assert view.wait_for(chars=1, timeout=5)
    time.sleep(0.3)  # the reader now waits for bytes that come only in 5 s
    t_stop = time.perf_counter()
    view.stop()
    text = view.result(timeout=5)
    assert time.perf_counter() - t_stop < 1.0, "Stop must not wait for the provider's next bytes"
    assert view.stopped and text and LONG.startswith(text) and len(text) < 40
    deadline = time.monotonic() + 5
    while not app.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.requests[-1]["disconnected"] and not watch.requests[-1]["complete"] and app.disconnects


def test_hang_up_accepts_a_callable_and_objects_without_a_connection() -> None:
    calls: list[str] = []
    view = StreamView(iter(()), cancel=lambda: calls.append("cancel"))
    view._cancel()
    assert calls == ["cancel"]

    class Closable:
        def close(self) -> None:
            calls.append("closed")

    hang_up(Closable())()
    assert calls == ["cancel", "closed"]


def test_widget_shows_as_the_cell_value() -> None:
    view = StreamView(["x"], title="demo")
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("<StreamView 'demo': a live widget")
    assert repr(view) == "<StreamView not started, 0 characters>"
    view.start().result(timeout=5)
    assert repr(view) == "<StreamView done, 1 characters>"
