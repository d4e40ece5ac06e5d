"""Benchmark of the replay server (a benchmark, not a test): what does replaying cost, how true is its pace?

Introduced in lesson 0 (00_setup_and_replay); lesson 10 shows the figures. Run it with::

    .venv/bin/python benchmarks/bench_replay.py [--rounds 15] [--per-round 40]

It reports, from one run:

1. round-trip time of a tiny non-streamed call with raw httpx 0.28 against the replay server (strict
   matching, canonical JSON, observers) and against a bare ASGI app under the same uvicorn settings that
   returns the same bytes - median, p90, the ratio and the overhead in microseconds. The two are measured
   in interleaved rounds (A B, B A, ...) so drift in machine load hits both alike;
2. the same call made in-process (the ASGI app called directly, no socket, no uvicorn): the CPU time per
   call of the replay app and of the bare app, from ``time.process_time`` in interleaved batches - the
   app's own cost, which other processes loading the machine hardly disturb;
3. pacing fidelity at speed 1: how far each frame's arrival is from its recorded time (mean/max, ms);
4. the time to serve a 200-frame stream (recorded over ~10 s) at speed 0;
5. the cost of recording: a recorder saves the cassette after every interaction, so that a crash loses
   nothing. Saving n interactions with ``Cassette.save`` each time re-encodes the whole cassette (n²/2
   encodes); ``CassetteWriter`` encodes only the new one. Both write the same bytes, timed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from llmkit.replay.cassette import (
    Cassette,
    CassetteWriter,
    Frame,
    Interaction,
    Player,
    RecordedRequest,
    RecordedResponse,
)
from llmkit.replay.scripted import Reply, ScriptedRequest, render
from llmkit.replay.server import ReplayApp, ServerThread

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class BareApp:
    """The least an ASGI app can do: read the request, answer fixed JSON."""

    def __init__(self, body: bytes):
        self.body = body
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def chat_interaction() -> Interaction:
    request = ScriptedRequest("openai", "chat", CHAT, BODY, False, 0)
    return Interaction(RecordedRequest("openai", "POST", CHAT, "", BODY), render(request, Reply("pong"), {}))


def stream_interaction(t_ms: list[float], body: dict) -> Interaction:
    frames = [Frame(t, f"data: {json.dumps({'n': i, 'delta': 'token '})}\n\n") for i, t in enumerate(t_ms)]
    return Interaction(RecordedRequest("openai", "POST", CHAT, "", body),
                       RecordedResponse(200, {"content-type": "text/event-stream"}, stream=frames, headers_ms=40.0))


def round_trips(rounds: int, per_round: int) -> dict[str, list[float]]:
    it = chat_interaction()
    replay = ServerThread(ReplayApp(Player(Cassette("bench", {"kind": "scripted"}, [it])), speed=0)).start()
    bare = ServerThread(BareApp(it.response.body_bytes())).start()
    payload = json.dumps(BODY).encode()
    headers = {"content-type": "application/json"}
    samples: dict[str, list[float]] = {"replay": [], "bare": []}
    try:
        with httpx.Client() as client:
            targets = {"replay": f"{replay.url}{CHAT}", "bare": f"{bare.url}{CHAT}"}
            for url in targets.values():  # connect and warm up both
                for _ in range(20):
                    assert client.post(url, content=payload, headers=headers).status_code == 200
            for r in range(rounds):
                order = ("replay", "bare") if r % 2 == 0 else ("bare", "replay")
                for name in order:
                    for _ in range(per_round):
                        t0 = time.perf_counter()
                        response = client.post(targets[name], content=payload, headers=headers)
                        samples[name].append((time.perf_counter() - t0) * 1e6)
                        assert response.status_code == 200
    finally:
        replay.stop()
        bare.stop()
    return samples


def in_process(rounds: int, per_round: int) -> dict[str, list[float]]:
    """CPU µs per call of each app called directly through ASGI, in interleaved batches."""
    it = chat_interaction()
    apps = {"replay": ReplayApp(Player(Cassette("bench", {"kind": "scripted"}, [it])), speed=0),
            "bare": BareApp(it.response.body_bytes())}
    payload = json.dumps(BODY).encode()
    scope = {"type": "http", "method": "POST", "path": CHAT, "query_string": b"", "http_version": "1.1",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]}
    message = {"type": "http.request", "body": payload, "more_body": False}

    def receiver() -> Any:
        """The request body, then a disconnect (what uvicorn hands an app that reads on)."""
        messages = [{"type": "http.disconnect"}, message]

        async def receive() -> dict:
            return messages.pop() if len(messages) > 1 else messages[0]
        return receive

    async def send(_: dict) -> None:
        return None

    async def run() -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {"replay": [], "bare": []}
        for app in apps.values():
            for _ in range(200):
                await app(scope, receiver(), send)
        for r in range(rounds):
            for name in (("replay", "bare") if r % 2 == 0 else ("bare", "replay")):
                t0 = time.process_time()
                for _ in range(per_round):
                    await apps[name](scope, receiver(), send)
                samples[name].append((time.process_time() - t0) / per_round * 1e6)
        return samples

    return asyncio.run(run())


def pacing(repeats: int) -> list[float]:
    t_ms = [60.0, 90.0, 170.0, 215.0, 260.0, 340.0, 380.0, 430.0, 470.0, 550.0]
    it = stream_interaction(t_ms, {**BODY, "stream": True})
    server = ServerThread(ReplayApp(Player(Cassette("bench", {"kind": "scripted"}, [it])), speed=1.0)).start()
    errors: list[float] = []
    try:
        with httpx.Client() as client:
            client.get(f"{server.url}/__llmkit/health")
            for _ in range(repeats):
                t0 = time.perf_counter()
                arrivals, buffer = [], b""
                with client.stream("POST", f"{server.url}{CHAT}", json=it.request.body) as response:
                    for chunk in response.iter_raw():
                        buffer += chunk
                        while b"\n\n" in buffer:
                            _, buffer = buffer.split(b"\n\n", 1)
                            arrivals.append((time.perf_counter() - t0) * 1000)
                errors += [abs(a - t) for a, t in zip(arrivals, t_ms, strict=True)]
    finally:
        server.stop()
    return errors


def long_stream(repeats: int) -> list[float]:
    it = stream_interaction([i * 50.0 for i in range(200)], {**BODY, "stream": True, "n": 200})
    server = ServerThread(ReplayApp(Player(Cassette("bench", {"kind": "scripted"}, [it])), speed=0.0)).start()
    times = []
    try:
        with httpx.Client() as client:
            client.get(f"{server.url}/__llmkit/health")
            for _ in range(repeats):
                t0 = time.perf_counter()
                with client.stream("POST", f"{server.url}{CHAT}", json=it.request.body) as response:
                    raw = b"".join(response.iter_raw())
                times.append((time.perf_counter() - t0) * 1000)
                assert raw.count(b"\n\n") == 200
    finally:
        server.stop()
    return times


def recording(n: int) -> dict[str, float]:
    """Seconds to record ``n`` interactions (a chat answer and a 40-event stream, alternating), saving after
    each: the whole cassette every time, and the incremental writer. The two files must come out equal."""
    items = [chat_interaction() if i % 2 else stream_interaction([25.0 * k for k in range(40)], {**BODY, "n": i})
             for i in range(n)]
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        whole, writer = Cassette("bench"), CassetteWriter()
        t0 = time.perf_counter()
        for it in items:
            whole.interactions.append(it)
            whole.save(Path(folder) / "whole.json")
        seconds["save whole cassette"] = time.perf_counter() - t0
        incremental = Cassette("bench")
        t0 = time.perf_counter()
        for it in items:
            writer.append(incremental, Path(folder) / "incremental.json", it)
        seconds["CassetteWriter"] = time.perf_counter() - t0
        same = (Path(folder) / "whole.json").read_bytes() == (Path(folder) / "incremental.json").read_bytes()
        assert same, "the two ways of saving wrote different cassettes"
        seconds["MB"] = (Path(folder) / "whole.json").stat().st_size / 1e6
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--pacing-repeats", type=int, default=5)
    parser.add_argument("--record-interactions", type=int, default=400)
    args = parser.parse_args(argv)

    samples = round_trips(args.rounds, args.per_round)
    rows = {name: (statistics.median(v), percentile(v, 0.9), len(v)) for name, v in samples.items()}
    cpu = {name: statistics.median(v) for name, v in in_process(args.rounds, 500).items()}
    errors = pacing(args.pacing_repeats)
    served = long_stream(args.pacing_repeats)
    recorded = recording(args.record_interactions)

    print(f"replay server benchmark · raw httpx {httpx.__version__} · {args.rounds} interleaved rounds "
          f"x {args.per_round} calls")
    print(f"{'target':<28}{'median µs':>12}{'p90 µs':>12}{'n':>7}")
    for name, label in (("replay", "replay server (speed 0)"), ("bare", "bare ASGI app")):
        median, p90, n = rows[name]
        print(f"{label:<28}{median:>12.0f}{p90:>12.0f}{n:>7}")
    overhead = rows["replay"][0] - rows["bare"][0]
    print(f"{'replay / bare (median)':<28}{rows['replay'][0] / rows['bare'][0]:>12.2f}x   "
          f"overhead {overhead:+.0f} µs per call")
    print(f"{'in-process CPU per call':<28}replay app {cpu['replay']:.1f} µs, bare app {cpu['bare']:.1f} µs "
          f"(app cost +{cpu['replay'] - cpu['bare']:.1f} µs, {args.rounds} rounds x 500 calls)")
    print(f"{'pacing at speed 1':<28}mean |error| {statistics.mean(errors):.2f} ms, max {max(errors):.2f} ms "
          f"({len(errors)} frames, gaps 30-80 ms)")
    print(f"{'200-frame stream, speed 0':<28}median {statistics.median(served):.1f} ms, "
          f"max {max(served):.1f} ms (recorded over 10 s)")
    whole, incremental = recorded["save whole cassette"], recorded["CassetteWriter"]
    print(f"{'record, save after each':<28}{args.record_interactions} interactions ({recorded['MB']:.1f} MB): "
          f"whole cassette {whole:.2f} s, CassetteWriter {incremental:.2f} s, {whole / incremental:.1f}x")


if __name__ == "__main__":
    main()
