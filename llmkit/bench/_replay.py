"""Suite ``replay``: what the replay server itself costs, and how faithfully it keeps the recorded pace.

Introduced in lesson 10 (10_benchmarks), measuring lesson 0's server (00_setup_and_replay).

- overhead: the same small JSON answer from a bare ASGI app (no matching, no cassette) and from the
  replay server at speed 0 (canonical matching, recorded headers, observers), both under uvicorn on
  loopback, timed from httpx; the difference is what replaying adds to every call in every lesson;
- pacing fidelity: a recorded stream (first token at 300 ms, 60 tokens/s) replayed at speed 1 and 0.5;
  each frame's arrival is compared with its recorded time scaled by the speed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..replay.cassette import Cassette, Interaction, Player, RecordedRequest
from ..replay.scripted import Reply, ScriptedRequest, render
from ..replay.server import ReplayApp, ServerThread
from ._harness import interleave, percentile
from ._script import COUNT, COUNT_TEXT, PING, TOKENS_PER_S, TTFT_MS
from ._suite import Context

PATH = "/v1/chat/completions"


def _interaction(text: str, reply: Reply, *, stream: bool) -> Interaction:
    body: dict[str, Any] = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    req = ScriptedRequest("openai", "chat", PATH, body, stream, 0)
    return Interaction(RecordedRequest("openai", "POST", PATH, "", body), render(req, reply, {}))


class BareApp:
    """The least an ASGI server can do: answer every request with the same bytes."""

    def __init__(self, body: bytes):
        self.body = body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body})


def run(ctx: Context) -> None:
    import httpx

    ping = _interaction(PING, Reply(text="pong"), stream=False)
    count = _interaction(COUNT, Reply(text=COUNT_TEXT, ttft_ms=TTFT_MS, tokens_per_s=TOKENS_PER_S), stream=True)
    app = ReplayApp(Player(Cassette("bench_replay", {"kind": "scripted"}, [ping, count])), speed=0.0)
    replay = ServerThread(app).start()
    bare = ServerThread(BareApp(ping.response.body_bytes())).start()
    payload = json.dumps(ping.request.body).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer replay-dummy-openai-key"}
    client = httpx.Client(timeout=30)
    try:
        rounds = ctx.pick(quick=100, full=1000)
        contenders = {"bare ASGI app": lambda: client.post(bare.url + PATH, content=payload, headers=headers),
                      "replay server": lambda: client.post(replay.url + PATH, content=payload, headers=headers)}
        with ctx.bar(rounds, "replay") as bar:
            samples = interleave(contenders, rounds=rounds, warmup=5, on_round=lambda: bar.update(1))
        ctx.report.add_samples("replay", "small JSON answer", samples, baseline="bare ASGI app",
                               metric="time per call")
        frames = count.response.stream or []
        recorded = [f.t_ms for f in frames]
        stream_body = json.dumps(count.request.body).encode()
        for speed in ctx.pick(quick=(1.0,), full=(1.0, 0.5, 2.0)):
            app.speed = speed
            errors, totals = [], []
            for _ in range(ctx.pick(quick=2, full=5)):
                arrivals = []
                t0 = time.perf_counter()
                with client.stream("POST", replay.url + PATH, content=stream_body, headers=headers) as r:
                    for _chunk in r.iter_raw():
                        arrivals.append((time.perf_counter() - t0) * 1000)
                # frames may coalesce in the socket: compare the last frame's arrival and the first
                errors.append(arrivals[0] - recorded[0] * speed)
                totals.append(arrivals[-1] / (recorded[-1] * speed))
            ctx.report.add("replay", f"pacing at speed {speed:g}", "first frame lateness", errors,
                           metric="lateness", unit="ms", speed=speed, recorded_ms=recorded[0] * speed)
            ctx.report.add("replay", f"pacing at speed {speed:g}", "whole stream, replayed / recorded", totals,
                           metric="duration ratio", unit="x", speed=speed, recorded_ms=recorded[-1] * speed)
        ctx.report.note("replay", f"p99 per-call: bare {percentile(samples['bare ASGI app'], 99) * 1000:.2f} ms, "
                                  f"replay {percentile(samples['replay server'], 99) * 1000:.2f} ms")
    finally:
        client.close()
        replay.stop()
        bare.stop()
