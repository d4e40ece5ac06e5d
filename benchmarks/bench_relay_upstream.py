"""Benchmark (not a test): what one streamed chunk costs the relay's event loop, SDK path vs wire path.

Introduced in lesson 9 (09_sse_server). Run it with::

    .venv/bin/python benchmarks/bench_relay_upstream.py [--rounds 7] [--streams 10] [--providers openai anthropic]

A cassette is recorded through the official SDKs (scripted answers, many chunks each) in a temporary
folder and replayed at speed 0. Each round runs ``--streams`` concurrent ``llmkit.chat.astream`` calls via
"sdk" and via "wire", in alternating order (A B, B A, ...) so drift in machine load hits both alike. The
cost is the CPU time of the thread running the event loop (``time.thread_time``) - the replay server runs
in another thread and is not counted - divided by the chunks received. It prints, per provider, the
median microseconds per chunk of both paths and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from llmkit import chat
from llmkit.events import TextDelta
from llmkit.kit import Kit

SCRIPT = '''
from llmkit.replay.scripted import Reply

def reply(req):
    return Reply(text=" ".join(f"word{i}" for i in range(400)), ttft_ms=10.0, tokens_per_s=1000.0)
'''
MESSAGES = [chat.user("Stream a long answer.")]


async def _one_round(kit: Kit, provider: str, via: str, streams: int) -> tuple[float, int]:
    async def one() -> int:
        return sum([isinstance(e, TextDelta) async for e in chat.astream(kit, provider, MESSAGES, via=via)])

    t0 = time.thread_time()
    chunks = sum(await asyncio.gather(*(one() for _ in range(streams))))
    return time.thread_time() - t0, chunks


async def measure(kit: Kit, provider: str, rounds: int, streams: int) -> dict[str, float]:
    """Median CPU microseconds per chunk for each path, from interleaved rounds."""
    per_chunk: dict[str, list[float]] = {"sdk": [], "wire": []}
    for via in ("sdk", "wire"):  # warm-up: imports, clients, connections
        await _one_round(kit, provider, via, 2)
    for r in range(rounds):
        for via in (("sdk", "wire") if r % 2 == 0 else ("wire", "sdk")):
            cpu, chunks = await _one_round(kit, provider, via, streams)
            per_chunk[via].append(cpu / chunks * 1e6)
    sdk, wire = statistics.median(per_chunk["sdk"]), statistics.median(per_chunk["wire"])
    return {"sdk_us": sdk, "wire_us": wire, "ratio": sdk / wire}


async def _measure_all(kit: Kit, providers: list[str], rounds: int, streams: int) -> dict[str, dict[str, float]]:
    results = {}
    try:
        for provider in providers:
            results[provider] = m = await measure(kit, provider, rounds, streams)
            print(f"{provider:9s}  sdk {m['sdk_us']:7.1f} µs/chunk   wire {m['wire_us']:6.1f} µs/chunk   "
                  f"sdk/wire = {m['ratio']:.1f}x", flush=True)
    finally:
        await _close_clients(kit)
    return results


async def _close_clients(kit: Kit) -> None:
    """The async clients belong to the running event loop: close them on it (not at garbage collection)."""
    await kit.aclose_async_clients()


def record(folder: Path, providers: list[str]) -> None:
    script = folder / "script.py"
    script.write_text(SCRIPT)
    kit = Kit("bench_relay", mode="record", script=str(script), cassette_dir=folder)

    async def run() -> None:
        for provider in providers:
            async for _ in chat.astream(kit, provider, MESSAGES, via="sdk"):
                pass
        await _close_clients(kit)

    try:
        asyncio.run(run())
        kit.check_recording()
    finally:
        kit.close()


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--providers", nargs="+", default=list(chat.PROVIDERS), choices=chat.PROVIDERS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        record(folder, args.providers)
        kit = Kit("bench_relay", mode="replay", speed=0.0, cassette_dir=folder)
        try:
            results = asyncio.run(_measure_all(kit, args.providers, args.rounds, args.streams))
            if kit.misses:
                sys.exit(f"cassette misses: {kit.misses[0]}")
        finally:
            kit.close()
    return results


if __name__ == "__main__":
    main()
