"""``kit.speed`` means speed: 2 plays a recording twice as fast, 0.5 half as fast, 0 at once.

Introduced in lesson 0 (00_setup_and_replay); lesson 2 (02_streaming) measures it in the notebook.
The README, the ``llmkit serve --speed`` help, the banner and the lessons all make this claim; these
tests time the replay server through a real socket to hold them to it.
"""

from __future__ import annotations

import json
import time

import httpx2
from replay_helpers import OPENAI_CHAT, chat_body

from llmkit.kit import Kit
from llmkit.replay.cassette import Cassette, Frame, Interaction, RecordedRequest, RecordedResponse

RECORDED_S = 3.0  # the recorded stream's last frame arrives 3 s after the request


def three_second_stream() -> Interaction:
    frames = [Frame(i * 100.0, f"data: {json.dumps({'n': i, 'delta': 'token '})}\n\n")
              for i in range(int(RECORDED_S * 10) + 1)]
    return Interaction(RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("three seconds", stream=True)),
                       RecordedResponse(200, {"content-type": "text/event-stream"}, stream=frames, headers_ms=50))


def three_second_body() -> Interaction:
    body = {"id": "x", "object": "chat.completion", "choices": []}
    return Interaction(RecordedRequest("openai", "POST", OPENAI_CHAT, "", chat_body("a slow answer")),
                       RecordedResponse(200, {"content-type": "application/json"}, body=json.dumps(body),
                                        t_ms=RECORDED_S * 1000))


def play(url: str, it: Interaction) -> float:
    """Seconds from sending the request to the end of the response (stream or body)."""
    with httpx2.Client(timeout=30) as client:
        client.get(f"{url}/__llmkit/health")  # connection warm, so only the pacing is timed
        t0 = time.perf_counter()
        with client.stream("POST", f"{url}{OPENAI_CHAT}", json=it.request.body) as response:
            for _ in response.iter_raw():
                pass
            assert response.status_code == 200
        return time.perf_counter() - t0


def test_speed_2_plays_a_stream_twice_as_fast(serve):
    it = three_second_stream()
    served = serve(it, speed=2.0)
    fast = play(served.url, it)
    served.app.speed = 1.0
    recorded = play(served.url, it)
    print(f"\n3 s recorded stream: speed 2 took {fast:.2f} s, speed 1 took {recorded:.2f} s "
          f"(ratio {recorded / fast:.2f})")
    assert 1.2 <= fast <= 2.4, "speed 2 should play a 3 s stream in about 1.5 s"
    assert recorded >= RECORDED_S - 0.1, "speed 1 never plays faster than recorded"
    assert recorded / fast > 1.5


def test_speed_half_plays_twice_as_slow_and_0_at_once(serve):
    it = three_second_stream()
    it.response.stream = it.response.stream[:11]  # the first second of it, so the test stays short
    served = serve(it, speed=0.5)
    slow = play(served.url, it)
    served.app.speed = 0.0
    instant = play(served.url, it)
    assert 1.9 <= slow <= 3.0, "speed 0.5 should play a 1 s stream in about 2 s"
    assert instant < 0.5


def test_speed_scales_a_paced_body_too(serve):
    it = three_second_body()
    served = serve(it, speed=2.0)
    assert 1.2 <= play(served.url, it) <= 2.4


def test_kit_speed_drives_the_server(tmp_path):
    it = three_second_stream()
    Cassette("speedy", {"kind": "scripted", "note": "built by tests"}, [it]).save(tmp_path / "speedy.json")
    with Kit("speedy", mode="replay", speed=4.0, cassette_dir=tmp_path) as kit:
        assert kit.speed == 4.0 and kit.app is not None
        elapsed = play(kit.server_url, it)
    assert 0.6 <= elapsed <= 1.5, "kit.speed = 4 should play a 3 s stream in about 0.75 s"
