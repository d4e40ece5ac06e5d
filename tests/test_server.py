"""The SSE relay server over real sockets (lesson 9, 09_sse_server): uvicorn on loopback, the official
openai SDK against the replay server upstream, and both event buffers through the same suite."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import (
    REDIS_SERVER,
    ROOT,
    CutEvents,
    answers,
    body,
    read_events,
    read_to_end,
    record_cassette,
    start_redis,
)

from llmkit.errors import ConfigError
from llmkit.kit import Kit
from llmkit.replay.server import ServerThread
from llmkit.server import InProcessBuffer, RedisStreamBuffer, create_app, kit_upstream
from llmkit.server.app import Relay

ANSWERS = answers()


@pytest.fixture(scope="module")
def cassettes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cassettes")
    record_cassette(folder)
    return folder


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (bash scripts/sysdeps.sh installs it)")
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def make_buffer(request: pytest.FixtureRequest):
    if request.param == "memory":
        return lambda **kw: InProcessBuffer(**kw)
    url = request.getfixturevalue("redis_url")
    prefix = f"t{time.monotonic_ns()}"
    return lambda **kw: RedisStreamBuffer(url, prefix=prefix, **kw)


@pytest.fixture
def kit_factory(cassettes: Path):
    kits: list[Kit] = []

    def make(speed: float = 0.0) -> Kit:
        kit = Kit("relay", mode="replay", speed=speed, cassette_dir=cassettes)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        kit.close()


@pytest.fixture
def relay(make_buffer):
    """``relay(upstream, **create_app_kwargs)`` runs the app on loopback; returns (url, Relay)."""
    started: list[tuple[ServerThread, Relay]] = []

    def start(upstream, **kw):
        kw.setdefault("buffer", make_buffer())
        app = create_app(upstream, **kw)
        thread = ServerThread(app).start()
        started.append((thread, app.state.relay))
        return thread.url, app.state.relay

    yield start
    for thread, state in started:
        state.shutdown()
        thread.stop()


def post(client: httpx.Client, payload: dict) -> dict:
    r = client.post("/api/streams", json=payload)
    assert r.status_code == 201, r.text
    return r.json()


# --- streaming and resume --------------------------------------------------------------------------------
def test_full_stream_has_ids_and_the_recorded_answer(relay, kit_factory):
    url, _ = relay(kit_factory())
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        read = read_events(client, info["events_url"], info["token"])
    assert read.headers["content-type"].startswith("text/event-stream")
    assert read.text == ANSWERS["long"]
    assert all(e.id for e in read.events), "every event carries an id"
    assert len({e.id for e in read.events}) == len(read.events)
    assert read.events[-1].event == "done" and read.events[-1].data["chars"] == len(ANSWERS["long"])
    assert len(info["stream_id"]) >= 22 and len(info["token"]) >= 43  # >= 128 and 256 random bits


def test_resume_after_dropped_connections_has_no_gap_and_no_duplicate(relay, kit_factory):
    url, _ = relay(kit_factory(speed=3.3))
    with httpx.Client(base_url=url) as client:
        info = post(client, body("resume"))
        text, events, connections = read_to_end(client, info["events_url"], info["token"], drops=[3, 1, 7, 5])
    assert connections == 5
    assert text == ANSWERS["resume"]
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "no event delivered twice"


def test_resume_after_the_stream_ended_returns_the_rest_from_the_buffer(relay, kit_factory):
    url, _ = relay(kit_factory())
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        first = read_events(client, info["events_url"], info["token"], stop_after_deltas=4)
        time.sleep(0.3)  # the producer finishes while nobody is connected
        rest = read_events(client, info["events_url"], info["token"], last=first.events[-1].id)
    assert first.text + rest.text == ANSWERS["long"]
    assert rest.events[-1].event == "done"


def test_server_side_cut_is_resumed(make_buffer, kit_factory):
    app = create_app(kit_factory(speed=3.3), buffer=make_buffer())
    thread = ServerThread(CutEvents(app, 6)).start()
    try:
        with httpx.Client(base_url=thread.url) as client:
            info = post(client, body("long"))
            text, events, connections = read_to_end(client, info["events_url"], info["token"])
    finally:
        app.state.relay.shutdown()
        thread.stop()
    assert connections > 3
    assert text == ANSWERS["long"]
    assert len({e.id for e in events}) == len(events)


def test_heartbeat_comments_while_the_upstream_is_silent(relay):
    async def slow(_request):
        await asyncio.sleep(0.5)
        yield "late"

    url, _ = relay(slow, ping_s=0.1)
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        read = read_events(client, info["events_url"], info["token"])
    assert read.text == "late"
    assert len([c for c in read.comments if c.startswith(": ping")]) >= 2


# --- cancellation ----------------------------------------------------------------------------------------
def test_delete_cancels_the_upstream_within_100_ms(relay, kit_factory):
    kit = kit_factory(speed=1.0)
    inner = kit_upstream(kit)
    closed: list[float] = []
    first_text = asyncio.Event

    async def tracked(request):
        try:
            async for event in inner(request):
                yield event
        finally:
            closed.append(time.monotonic())  # after the SDK response was closed (chat.astream's finally)

    url, state = relay(tracked)
    del first_text
    with httpx.Client(base_url=url) as client:
        info = post(client, body("cancel"))
        head = read_events(client, info["events_url"], info["token"], stop_after_deltas=3)
        assert head.text and not closed
        t0 = time.monotonic()
        r = client.delete(f"/api/streams/{info['stream_id']}", headers={"authorization": f"Bearer {info['token']}"})
        assert r.status_code == 200, r.text
        assert closed, "the upstream generator was closed before DELETE answered"
        latency = closed[0] - t0
        rest = read_events(client, info["events_url"], info["token"], last=head.events[-1].id)
    assert latency < 0.1, f"upstream closed {latency * 1000:.1f} ms after DELETE"
    assert rest.events[-1].event == "cancelled"
    assert len(head.text + rest.text) < len(ANSWERS["cancel"])
    assert state.tasks == {}


# --- security --------------------------------------------------------------------------------------------
def test_only_the_token_holder_can_read_or_cancel(relay, kit_factory):
    url, _ = relay(kit_factory(speed=3.3))
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        other = post(client, body("resume"))
        events = info["events_url"]
        assert client.get(events).status_code == 401
        assert client.get(events, headers={"authorization": f"Bearer {other['token']}"}).status_code == 403
        assert client.get(events, headers={"authorization": "Bearer x" * 3}).status_code == 403
        assert client.get("/api/streams/nope/events", headers={"authorization": "Bearer x"}).status_code == 404
        r = client.delete(f"/api/streams/{info['stream_id']}", headers={"authorization": f"Bearer {other['token']}"})
        assert r.status_code == 403 and "does not belong" in r.json()["error"]["message"]
        text, _, _ = read_to_end(client, events, info["token"])
    assert text == ANSWERS["long"], "a refused cancel left the stream running"


@pytest.mark.parametrize(("payload", "status", "says"), [
    ({"messages": []}, 422, "messages: List should have at least 1 item"),
    ({"messages": [{"role": "user", "content": "x" * 16_001}]}, 422, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "hi"}] * 41}, 422, "at most 40 items"),
    ({"messages": [{"role": "system", "content": "hi"}]}, 422, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"}, 422, "model: Extra inputs"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6}, 422, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "provider": "acme"}, 422, "provider"),
])
def test_invalid_requests_get_a_clear_4xx(relay, payload, status, says):
    async def never(_request):
        raise AssertionError("an invalid request reached the upstream")
        yield ""

    url, state = relay(never)
    with httpx.Client(base_url=url) as client:
        r = client.post("/api/streams", json=payload)
    assert r.status_code == status
    assert says in r.json()["error"]["message"]
    assert state.tasks == {}


def test_oversized_malformed_and_non_json_bodies(relay):
    async def never(_request):
        raise AssertionError("unreachable")
        yield ""

    url, _ = relay(never, max_body_bytes=10_000)
    with httpx.Client(base_url=url) as client:
        big = client.post("/api/streams", content=b"{" + b" " * 20_000 + b"}",
                          headers={"content-type": "application/json"})
        bad = client.post("/api/streams", content=b'{"messages": [', headers={"content-type": "application/json"})
        text = client.post("/api/streams", content=b"hello", headers={"content-type": "text/plain"})
        chunked = client.post("/api/streams", content=iter([b"{" + b" " * 6_000] * 3),
                              headers={"content-type": "application/json"})
    assert big.status_code == 413 and "limit is 10000" in big.json()["error"]["message"]
    assert chunked.status_code == 413, "a body without Content-Length is counted as it arrives"
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    assert text.status_code == 415


def test_a_forged_last_event_id_is_refused(relay, kit_factory):
    url, _ = relay(kit_factory())
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        read = read_events(client, info["events_url"], info["token"], last="../../etc")
    assert read.status == 400


def test_cors_allows_only_configured_origins(relay, kit_factory):
    url, _ = relay(kit_factory(), allowed_origins=["https://chat.example.com"])
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    with httpx.Client(base_url=url) as client:
        ok = client.options("/api/streams", headers={"origin": "https://chat.example.com", **preflight})
        evil = client.options("/api/streams", headers={"origin": "https://evil.example", **preflight})
    assert ok.headers.get("access-control-allow-origin") == "https://chat.example.com"
    assert "access-control-allow-origin" not in evil.headers
    with pytest.raises(ConfigError, match="exact origins"):
        create_app(lambda r: None, allowed_origins=["*"])


def test_a_text_plain_body_is_refused_even_if_it_says_json(relay):
    async def one(_request):
        yield "ok"

    url, state = relay(one)
    payload = json.dumps(body("long")).encode()
    with httpx.Client(base_url=url) as client:
        # Browsers send text/plain cross-origin without a CORS preflight: it must never start a stream.
        sneaky = [client.post("/api/streams", content=payload, headers={"content-type": ct})
                  for ct in ("text/plain;charset=json", "text/plain; x=application/json", "application/jsonx")]
        ok = client.post("/api/streams", content=payload, headers={"content-type": "Application/JSON; charset=utf-8"})
    assert [r.status_code for r in sneaky] == [415, 415, 415]
    assert ok.status_code == 201


def test_only_allowed_host_names_are_answered(relay):
    async def one(_request):
        yield "ok"

    url, _ = relay(one)
    port = url.rsplit(":", 1)[1]
    with httpx.Client(base_url=url) as client:
        rebound = client.post("/api/streams", json=body("long"), headers={"host": f"evil.example:{port}"})
        health = client.get("/api/health", headers={"host": "attacker.test"})
        local = client.get("/api/health", headers={"host": f"localhost:{port}"})
    assert rebound.status_code == 400 and health.status_code == 400, "DNS rebinding: a foreign Host is refused"
    assert local.status_code == 200
    url, _ = relay(one, allowed_hosts=["chat.example.com"])
    with httpx.Client(base_url=url) as client:
        assert client.get("/api/health", headers={"host": "chat.example.com"}).status_code == 200
        assert client.get("/api/health").status_code == 400  # 127.0.0.1 is no longer listed
    with pytest.raises(ConfigError, match="DNS rebinding"):
        create_app(lambda r: None, allowed_hosts=["*"])


def test_running_streams_are_capped_with_429_and_retry_after(relay):
    async def slow(_request):
        await asyncio.sleep(30)
        yield "late"

    url, state = relay(slow, max_streams=2)
    with httpx.Client(base_url=url) as client:
        started = [client.post("/api/streams", json=body("long")).status_code for _ in range(2)]
        refused = client.post("/api/streams", json=body("long"))
    assert started == [201, 201] and refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert len(state.tasks) == 2


def test_kept_streams_are_capped_with_429_until_the_oldest_expires(kit_factory):
    buffer = InProcessBuffer(ttl_s=60, max_streams=3)
    app = create_app(kit_factory(), buffer=buffer)
    thread = ServerThread(app).start()
    try:
        with httpx.Client(base_url=thread.url) as client:
            for _ in range(3):
                info = post(client, body("long"))
                assert read_to_end(client, info["events_url"], info["token"])[0] == ANSWERS["long"]
            refused = client.post("/api/streams", json=body("long"))
    finally:
        app.state.relay.shutdown()
        thread.stop()
    assert refused.status_code == 429 and "keeps 3 streams" in refused.json()["error"]["message"]
    assert 50 <= int(refused.headers["retry-after"]) <= 60, "retry when the oldest finished stream expires"


def test_an_empty_buffer_passed_in_is_the_one_used():
    buffer = InProcessBuffer(ttl_s=3)
    assert len(buffer) == 0 and not buffer  # empty: falsy
    assert create_app(lambda r: None, buffer=buffer).state.relay.buffer is buffer


def test_last_event_ids_that_are_not_ascii_digits_in_range_are_refused(relay, kit_factory):
    url, state = relay(kit_factory())
    if isinstance(state.buffer, RedisStreamBuffer):
        forged = ["99999999999999999999-0", "1-18446744073709551616", "\u00b2-0", "1-\u00b9"]
    else:
        forged = ["\u00b2", "1\u00b3", "\u00b9\u00b2", "-1", "+1", "1_0"]  # "\u00b2".isdigit() is True
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        # Header bytes arrive as latin-1: b"\xb2" is "\u00b2" to the server.
        statuses = {last: read_events(client, info["events_url"], info["token"], last=last.encode("latin-1")).status
                    for last in forged}
        whole = read_events(client, info["events_url"], info["token"])
    assert set(statuses.values()) == {400}, statuses
    assert whole.text == ANSWERS["long"], "the refused reads did not cut the stream"


def test_deeply_nested_json_is_a_clear_400(relay):
    async def never(_request):
        raise AssertionError("unreachable")
        yield ""

    url, _ = relay(never)
    with httpx.Client(base_url=url) as client:
        deep = client.post("/api/streams", content=b"[" * 100_000 + b"]" * 100_000,
                           headers={"content-type": "application/json"})
        quoted = client.post("/api/streams", json={"messages": [{"role": "user", "content": "[" * 5000}]})
    assert deep.status_code == 400 and "nests deeper than" in deep.json()["error"]["message"]
    assert quoted.status_code == 201, "brackets inside strings are text, not nesting"


def test_a_producer_whose_buffer_fails_ends_its_readers_with_an_error(relay):
    class FailingBuffer(InProcessBuffer):
        async def append(self, stream_id, event, data):
            if event == "delta" and data["text"] == "three":
                raise ConnectionError("the buffer went away")
            return await super().append(stream_id, event, data)

    async def words(_request):
        for word in ("one", "two", "three", "four"):
            yield word

    url, state = relay(words, buffer=FailingBuffer())
    with httpx.Client(base_url=url, timeout=10) as client:
        info = post(client, body("long"))
        t0 = time.monotonic()
        read = read_events(client, info["events_url"], info["token"])
    assert time.monotonic() - t0 < 8, "the reader was told, not left waiting for the TTL"
    assert read.text == "onetwo"
    assert read.terminal is not None and read.terminal.event == "error"
    assert read.terminal.data["kind"] == "buffer_unavailable" and read.terminal.data["partial_text"] == "onetwo"


# --- upstream failures -----------------------------------------------------------------------------------
def test_retries_before_the_first_token_and_says_so(relay, kit_factory):
    from llmkit.resilience import TRANSIENT_KINDS, BackoffPolicy

    kit = kit_factory()
    # The openai SDK retries twice on its own (honouring retry-after-ms): 3 faults fail one relay attempt.
    kit.faults.status(503, provider="openai", retry_after_ms=5, times=3)
    url, _ = relay(kit, retry_policy=BackoffPolicy(base=0.01, cap=0.05, max_attempts=3))
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        read = read_events(client, info["events_url"], info["token"])
    kinds = [(e.event, e.data.get("state")) for e in read.events if e.event == "status"]
    assert kinds == [("status", "retrying"), ("status", "streaming")]
    retry = read.events[0].data
    assert retry["attempt"] == 2 and retry["reason"] in {k.value for k in TRANSIENT_KINDS}
    assert read.text == ANSWERS["long"] and read.events[-1].event == "done"


def test_failure_after_the_first_token_ends_with_what_is_known(relay, kit_factory):
    kit = kit_factory()
    kit.faults.drop_stream(after=6, provider="openai")
    url, _ = relay(kit)
    with httpx.Client(base_url=url) as client:
        info = post(client, body("long"))
        read = read_events(client, info["events_url"], info["token"])
    error = read.terminal
    assert error is not None and error.event == "error"
    assert error.data["retrying"] is False
    assert error.data["partial_text"] == read.text and read.text
    assert ANSWERS["long"].startswith(read.text) and read.text != ANSWERS["long"]
    assert error.data["kind"] == "connection_lost"


# --- several processes on Redis --------------------------------------------------------------------------
def test_redis_resume_and_cancel_through_a_second_server_process(redis_url, kit_factory, cassettes, tmp_path):
    kit = kit_factory(speed=2.0)
    buffer = RedisStreamBuffer(redis_url, prefix="multi")
    app_a = create_app(kit, buffer=buffer)
    a = ServerThread(app_a).start()
    env = {**os.environ, "LLMKIT_MODE": "replay", "LLMKIT_SPEED": "2"}
    cmd = [sys.executable, "-m", "llmkit.cli", "serve-chat", "--lesson", "relay", "--cassettes", str(cassettes),
           "--redis", redis_url]
    # serve-chat keys its Redis streams under the default prefix; point A at the same one for this test.
    buffer.prefix = "llmkit:sse"
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        b_url = b.stdout.readline().strip()
        assert b_url.startswith("http://127.0.0.1:"), b.stderr.read() if b.poll() is not None else b_url
        with httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b_url, timeout=10) as cb:
            info = post(ca, body("long"))
            head = read_events(ca, info["events_url"], info["token"], stop_after_deltas=5)
            rest = read_events(cb, info["events_url"], info["token"], last=head.events[-1].id)
            assert head.text + rest.text == ANSWERS["long"]
            assert rest.events[-1].event == "done"

            # A cancel must cross processes (B publishes, A's producer stops) before this answer ends: play it
            # slowly, so a loaded machine cannot finish the whole answer first.
            kit.speed = 0.25
            other = post(ca, body("cancel"))
            first = read_events(ca, other["events_url"], other["token"], stop_after_deltas=2)
            r = cb.delete(f"/api/streams/{other['stream_id']}", headers={"authorization": f"Bearer {other['token']}"})
            assert r.status_code == 200 and r.json()["where"] == "published"
            tail = read_events(cb, other["events_url"], other["token"], last=first.events[-1].id)
            assert tail.events[-1].event == "cancelled"
            assert app_a.state.relay.tasks == {}
    finally:
        b.terminate()
        b.wait(timeout=10)
        app_a.state.relay.shutdown()
        a.stop()


# --- Redis under many streams ----------------------------------------------------------------------------
async def _read_all(client: httpx.AsyncClient, payload: dict) -> str:
    r = await client.post("/api/streams", json=payload)
    assert r.status_code == 201, r.text
    info = r.json()
    text, event = [], None
    async with client.stream("GET", info["events_url"], headers={"authorization": f"Bearer {info['token']}"}) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[7:]
            elif line.startswith("data:") and event == "delta":
                text.append(json.loads(line[6:])["text"])
            elif line.startswith("data:") and event in ("done", "error", "cancelled"):
                assert event == "done", line
                return "".join(text)
    raise AssertionError("the stream ended without a terminal event")


def test_redis_cold_start_with_simultaneous_first_posts_subscribes_once(redis_url, kit_factory):
    import redis as sync_redis

    prefix = f"cold{time.monotonic_ns()}"
    app = create_app(kit_factory(), buffer=RedisStreamBuffer(redis_url, prefix=prefix))
    thread = ServerThread(app).start()

    async def burst() -> list[str]:
        async with httpx.AsyncClient(base_url=thread.url, timeout=30) as client:
            return await asyncio.gather(*(_read_all(client, body("resume")) for _ in range(30)))

    try:
        texts = asyncio.run(burst())
        subscribers = dict(sync_redis.Redis.from_url(redis_url).pubsub_numsub(f"{prefix}:cancel"))
    finally:
        app.state.relay.shutdown()
        thread.stop()
    assert texts == [ANSWERS["resume"]] * 30
    assert subscribers[f"{prefix}:cancel".encode()] == 1, "one cancel listener per process, not one per first POST"


def test_redis_serves_more_streams_than_its_pool_has_connections(redis_url):
    import redis as sync_redis

    async def words(_request):
        for i in range(10):
            await asyncio.sleep(0.05)
            yield f"w{i} "

    expected = "".join(f"w{i} " for i in range(10))
    pool = 16
    app = create_app(words, buffer=RedisStreamBuffer(redis_url, prefix=f"pool{time.monotonic_ns()}",
                                                     max_connections=pool))
    thread = ServerThread(app).start()
    probe = sync_redis.Redis.from_url(redis_url)
    baseline = probe.info("clients")["connected_clients"]
    peak = 0

    async def run() -> list[str]:
        nonlocal peak
        async with httpx.AsyncClient(base_url=thread.url, timeout=30,
                                     limits=httpx.Limits(max_connections=300, max_keepalive_connections=0)) as client:
            # More readers at once than redis-py's default pool (100) has connections.
            readers = asyncio.gather(*(_read_all(client, body("long")) for _ in range(120)))
            while not readers.done():
                peak = max(peak, await asyncio.to_thread(lambda: probe.info("clients")["connected_clients"]))
                await asyncio.sleep(0.05)
            return await readers

    try:
        texts = asyncio.run(run())
    finally:
        app.state.relay.shutdown()
        thread.stop()
    assert texts == [expected] * 120, "every reader got the whole text: no producer died for want of a connection"
    assert peak - baseline <= pool + 1, f"{peak - baseline} connections to Redis for a pool of {pool}"


def test_redis_readers_far_behind_near_behind_and_waiting_get_exact_events(redis_url):
    # More events than the buffer keeps in memory per stream: old ones come from Redis, recent ones from memory.
    async def run() -> tuple[list[str], dict[str, list[str]], list[str]]:
        buffer = RedisStreamBuffer(redis_url, prefix=f"exact{time.monotonic_ns()}")
        try:
            await buffer.create("s", {"token_sha256": "x"})
            waiting = asyncio.create_task(buffer.read("s", None, wait=5.0))
            ids = [await buffer.append("s", "delta", {"text": f"t{i}"}) for i in range(300)]
            first = [e.id for e in await waiting]
            reads = {}
            for start in (None, ids[10], ids[150], ids[250], ids[298]):
                got: list[str] = []
                after = start
                while len(got) < 300 and (batch := await buffer.read("s", after, wait=0)):
                    got += [e.data["text"] for e in batch]
                    after = batch[-1].id
                reads[start or "start"] = got
            return ids, reads, first
        finally:
            await buffer.aclose()

    ids, reads, first = asyncio.run(run())
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == 300
    assert first and first == ids[:len(first)], "the waiting reader got the first events, in order"
    texts = [f"t{i}" for i in range(300)]
    assert reads["start"] == texts
    assert reads[ids[10]] == texts[11:] and reads[ids[150]] == texts[151:]
    assert reads[ids[250]] == texts[251:] and reads[ids[298]] == texts[299:]


def test_redis_connection_killed_mid_stream_ends_the_stream_with_an_error_not_a_hang(redis_url):
    # The batches do not retry on their own (a resent batch could store its events twice): the producer's
    # next event fails, and it ends the stream with an error event once Redis answers again.
    import redis as sync_redis

    async def words(_request):
        for i in range(8):
            if i == 4:
                await asyncio.to_thread(lambda: sync_redis.Redis.from_url(redis_url).client_kill_filter(_type="normal"))
            yield f"w{i} "

    app = create_app(words, buffer=RedisStreamBuffer(redis_url, prefix=f"kill{time.monotonic_ns()}"))
    thread = ServerThread(app).start()
    try:
        with httpx.Client(base_url=thread.url, timeout=20) as client:
            info = post(client, body("long"))
            read = read_events(client, info["events_url"], info["token"])
    finally:
        app.state.relay.shutdown()
        thread.stop()
    texts = [e.data["text"] for e in read.events if e.event == "delta"]
    assert texts == [f"w{i} " for i in range(len(texts))], "no gap, no duplicate"
    assert read.terminal is not None, "the reader was told, not left waiting"
    if read.terminal.event != "error":
        # redis-py checks a pooled connection before lending it: when the kill's FIN arrives first, it reconnects
        # silently (nothing was in flight, so nothing can be stored twice) and the stream simply completes.
        assert read.terminal.event == "done" and len(texts) == 8
        return
    # The producer does not wait for each event to be stored, so the kill may hit events it sent before it.
    assert len(texts) <= 4
    assert read.terminal.data["kind"] == "buffer_unavailable"
    # The text the producer had read when it noticed: what was stored, and maybe the events it had sent since.
    partial = read.terminal.data["partial_text"]
    assert partial.startswith("w0 w1 w2 w3 ") and "".join(f"w{i} " for i in range(8)).startswith(partial)
    assert partial.startswith("".join(texts))
