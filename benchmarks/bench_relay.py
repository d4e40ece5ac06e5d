"""Benchmark (not a test): the relay's CPU cost per event against a bare FastAPI + sse-starlette passthrough.

Introduced in lesson 9 (09_sse_server). Run it with::

    .venv/bin/python benchmarks/bench_relay.py [--rounds 7] [--streams 20] [--events 400] [--redis auto|URL]

Servers run side by side, each in its own process on loopback, reading the same in-memory upstream (an
async generator of ``--events`` short texts, no network and no provider): the relay
(``llmkit.server.create_app``: event buffer, ids, resume, heartbeats, retries) and a minimal passthrough
(one ``EventSourceResponse`` per request, no buffer, no ids, no resume). With ``--redis`` a third server
runs the relay on ``RedisStreamBuffer`` (``auto`` starts a throwaway ``redis-server`` on loopback). Each
round reads ``--streams`` concurrent streams from each server, rotating the order (A B C, B C A, ...) so
drift in machine load hits all alike. The cost is the server process's CPU time (user + system) divided by
the text events the client received; Redis's own CPU is not counted (it is another process, and in
production another machine). It prints the median microseconds per event of each and the ratio of each
relay to the passthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
from typing import Any

import httpx
import psutil

WORD = "token "


async def upstream(request: Any, events: int) -> Any:
    """The shared upstream: ``events`` texts, yielding to the event loop between them as a socket read would."""
    for _ in range(events):
        await asyncio.sleep(0)
        yield WORD


def passthrough_app(events: int) -> Any:
    """The baseline: FastAPI + sse-starlette relaying the upstream straight to the socket."""
    from fastapi import FastAPI
    from sse_starlette import EventSourceResponse, ServerSentEvent

    app = FastAPI()

    @app.get("/stream")
    async def stream() -> Any:
        async def sse() -> Any:
            async for text in upstream(None, events):
                yield ServerSentEvent(data=json.dumps({"text": text}), event="delta")
            yield ServerSentEvent(data="{}", event="done")

        return EventSourceResponse(sse(), ping=15)

    return app


def relay_app(events: int, redis_url: str | None = None) -> Any:
    from llmkit.server import RedisStreamBuffer, create_app

    buffer = RedisStreamBuffer(redis_url, prefix=f"bench{os.getpid()}") if redis_url else None
    return create_app(lambda request: upstream(request, events), buffer=buffer, static=False)


def serve(kind: str, events: int, redis_url: str | None = None) -> None:
    import uvicorn

    app = passthrough_app(events) if kind == "passthrough" else relay_app(events, redis_url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(sockets=[sock])


async def _read(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> int:
    deltas = 0
    async with client.stream("GET", url, headers=headers) as resp:
        async for line in resp.aiter_lines():
            if line == "event: delta":
                deltas += 1
            elif line in ("event: done", "event: error"):
                break
    return deltas


async def _relay_stream(client: httpx.AsyncClient) -> int:
    r = await client.post("/api/streams", json={"messages": [{"role": "user", "content": "hi"}]})
    r.raise_for_status()
    info = r.json()
    return await _read(client, info["events_url"], {"authorization": f"Bearer {info['token']}"})


async def _round(client: httpx.AsyncClient, kind: str, pid: int, streams: int) -> tuple[float, int]:
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    if kind != "passthrough":
        counts = await asyncio.gather(*(_relay_stream(client) for _ in range(streams)))
    else:
        counts = await asyncio.gather(*(_read(client, "/stream") for _ in range(streams)))
    await asyncio.sleep(0.05)  # let the server finish the requests' tails
    return sum(proc.cpu_times()[:2]) - before, sum(counts)


async def measure(servers: dict[str, tuple[str, int]], rounds: int, streams: int) -> dict[str, float]:
    per_event: dict[str, list[float]] = {kind: [] for kind in servers}
    limits = httpx.Limits(max_connections=streams * 2)
    clients = {kind: httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for kind, (url, _) in servers.items()}
    try:
        for kind, (_, pid) in servers.items():  # warm-up: imports, connections
            await _round(clients[kind], kind, pid, 2)
        kinds = list(servers)
        for r in range(rounds):
            for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                cpu, events = await _round(clients[kind], kind, servers[kind][1], streams)
                per_event[kind].append(cpu / events * 1e6)
    finally:
        for client in clients.values():
            await client.aclose()
    us = {kind: statistics.median(values) for kind, values in per_event.items()}
    result = {"relay_us": us["relay"], "passthrough_us": us["passthrough"], "ratio": us["relay"] / us["passthrough"]}
    if "relay-redis" in us:
        result.update(redis_us=us["relay-redis"], redis_ratio=us["relay-redis"] / us["passthrough"])
    return result


def start_redis() -> tuple[str, subprocess.Popen]:
    """A throwaway ``redis-server`` on a free loopback port, without persistence."""
    import shutil
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("--redis auto needs redis-server (bash scripts/sysdeps.sh installs it)")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tempfile.gettempdir()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"redis://127.0.0.1:{port}/0", proc
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--redis", metavar="auto|URL", help="also measure the relay on RedisStreamBuffer")
    parser.add_argument("--serve", choices=["relay", "relay-redis", "passthrough"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.events, args.redis if args.serve == "relay-redis" else None)
        return {}
    procs: dict[str, subprocess.Popen] = {}
    redis_url = args.redis
    try:
        if redis_url == "auto":
            redis_url, procs["redis-server"] = start_redis()
        servers = {}
        for kind in ("relay", "passthrough", *(["relay-redis"] if redis_url else [])):
            cmd = [sys.executable, __file__, "--serve", kind, "--events", str(args.events),
                   *(["--redis", redis_url] if kind == "relay-redis" else [])]
            procs[kind] = p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
            servers[kind] = (p.stdout.readline().strip(), p.pid)
        result = asyncio.run(measure(servers, args.rounds, args.streams))
    finally:
        for p in reversed(procs.values()):
            p.terminate()
            p.wait(timeout=10)
    line = (f"relay {result['relay_us']:6.1f} µs/event   passthrough {result['passthrough_us']:6.1f} µs/event   "
            f"relay/passthrough = {result['ratio']:.2f}x")
    if "redis_us" in result:
        line += f"   relay on Redis {result['redis_us']:6.1f} µs/event = {result['redis_ratio']:.2f}x"
    print(line, flush=True)
    return result


if __name__ == "__main__":
    main()
