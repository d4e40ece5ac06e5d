"""A bounded load test of the relay server (lesson 9, 09_sse_server): many concurrent streams over loopback
on each buffer (in-process, and Redis on a redis-server of its own), each client hanging up at random points
and resuming with Last-Event-ID; every final text must equal the recorded answer. Prints streams/s, p50/p99
time to first event and peak RSS (run with ``-s`` to see them); ``LLMKIT_LOAD_STREAMS`` changes the count.

The client's timeouts grow with the count (30 s up to 200 streams, 120 s at 1,000). All streams start in the
same instant on a 2-core machine that also runs every client (about 25 s of CPU for 1,000), so the last POSTs
wait for the server to work through the events of the ones before them. On a shared machine at load average
~10 that wait passed 30 s on both buffers (in-process: 44 s to the first event) while every stream still
ended with the exact text: a fixed 30 s measured the burst and the machine, not the relay. The test still
fails on any wrong or unfinished text, a non-201 answer, a stream that ends in ``error``, or a run over
``TIME_LIMIT_S``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest
from server_helpers import REDIS_SERVER, ROOT, answers, body, record_cassette, start_redis

# 1,000 (LLMKIT_LOAD_STREAMS=1000) is the target; ``make test`` runs 200 per buffer to stay quick.
STREAMS = int(os.environ.get("LLMKIT_LOAD_STREAMS", "200"))
CLIENTS = 50
CLIENT_TIMEOUT_S = max(30.0, 0.12 * STREAMS)
TIME_LIMIT_S = max(150.0, 0.3 * STREAMS)


async def _one(client: httpx.AsyncClient, rng: random.Random, key: str) -> tuple[str, float, int]:
    t0 = time.monotonic()
    r = await client.post("/api/streams", json=body(key))
    assert r.status_code == 201, r.text
    info = r.json()
    headers = {"authorization": f"Bearer {info['token']}"}
    text: list[str] = []
    last = None
    first_event = None
    reconnects = 0
    while True:
        hang_up_after = rng.choice([None, rng.randint(1, 12), rng.randint(1, 12)]) if reconnects < 4 else None
        h = dict(headers, **({"last-event-id": last} if last else {}))
        seen = 0
        ended = False
        try:
            async with client.stream("GET", info["events_url"], headers=h) as resp:
                assert resp.status_code == 200
                event = data = None
                async for line in resp.aiter_lines():
                    if line.startswith("id:"):
                        last = line[4:]
                    elif line.startswith("event:"):
                        event = line[7:]
                    elif line.startswith("data:"):
                        data = json.loads(line[6:])
                    elif line == "" and event:
                        first_event = first_event or time.monotonic()
                        if event == "delta":
                            text.append(data["text"])
                            seen += 1
                        if event in ("done", "error", "cancelled"):
                            assert event == "done", data
                            ended = True
                            break
                        event = None
                        if hang_up_after is not None and seen >= hang_up_after:
                            break
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass  # the connection dropped under load (e.g. a keep-alive the server had closed): resume
        if ended:
            return "".join(text), first_event - t0, reconnects
        reconnects += 1


class _PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process(self.pid)
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, proc.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("buffer", ["memory", "redis"])
def test_1000_concurrent_streams_with_random_reconnects(tmp_path, buffer):
    record_cassette(tmp_path)
    expected = answers()
    redis = None
    extra: list[str] = []
    if buffer == "redis":
        if not os.path.exists(REDIS_SERVER):
            pytest.skip("redis-server is not installed (bash scripts/sysdeps.sh installs it)")
        redis = start_redis(tmp_path)
        extra = ["--redis", redis.url]
    # The server runs in its own process (as in production), so the clients here do not share its GIL.
    env = {**os.environ, "LLMKIT_MODE": "replay", "LLMKIT_SPEED": "5"}
    server = subprocess.Popen([sys.executable, "-m", "llmkit.cli", "serve-chat", "--lesson", "relay",
                               "--cassettes", str(tmp_path), *extra], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=ROOT)
    url = server.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), "serve-chat did not start"
    rng = random.Random(9)
    keys = [rng.choice(["long", "resume", "cancel"]) for _ in range(STREAMS)]

    async def run() -> list[tuple[str, float, int]]:
        # Readers are spread over several clients, as real browsers are: one httpx pool holding hundreds of
        # connections scans them all for every request (quadratic), which made the *client* the bottleneck.
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S))
                       for _ in range(CLIENTS)]
            return await asyncio.gather(*(_one(clients[i % CLIENTS], random.Random(i), k)
                                          for i, k in enumerate(keys)))

    try:
        rss_before = psutil.Process(server.pid).memory_info().rss
        with _PeakRss(server.pid) as rss:
            t0 = time.monotonic()
            results = asyncio.run(asyncio.wait_for(run(), TIME_LIMIT_S))
            wall = time.monotonic() - t0
    finally:
        server.terminate()
        server.wait(timeout=10)
        if redis is not None:
            redis.stop()
    wrong = [i for i, ((text, _, _), k) in enumerate(zip(results, keys, strict=True)) if text != expected[k]]
    assert not wrong, f"{len(wrong)} streams ended with a different text, e.g. #{wrong[0]}"
    ttfe = sorted(r[1] * 1000 for r in results)
    reconnects = sum(r[2] for r in results)
    p50, p99 = statistics.median(ttfe), ttfe[min(len(ttfe) - 1, round(0.99 * len(ttfe)) - 1)]
    print(f"\nrelay load ({buffer}): {STREAMS} streams in {wall:.2f} s = {STREAMS / wall:.1f} streams/s; "
          f"{reconnects} reconnects; time to first event p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
          f"server peak RSS {rss.peak / 2**20:.0f} MiB (+{(rss.peak - rss_before) / 2**20:.0f} MiB during the run); "
          f"load average {os.getloadavg()[0]:.1f}")
    assert reconnects > STREAMS / 2, "the test must actually exercise resume"
    assert wall < TIME_LIMIT_S


if __name__ == "__main__":
    pytest.main([__file__, "-s", "-q"])
