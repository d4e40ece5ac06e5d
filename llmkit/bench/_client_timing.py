"""Measure HTTP clients and SDKs against a local replay server (lesson 1, 01_sdk_vs_http).

Public through ``llmkit.bench``: ``from llmkit import bench``; ``bench.serve(...)``, ``bench.time_calls(...)``,
``bench.summarize_calls(...)``, ``bench.cold_start(...)``.

Three measurements, each done so that the number means what its label says:

- :func:`serve` runs the replay server in a *separate process* at speed 0, so the server never competes
  with the client under test for the GIL and no model time is included: what is left is the client.
- :func:`time_calls` times warm per-request latency **interleaved**: each round calls every path once, in
  a shuffled order, so a slow moment of the machine hits all paths alike instead of one.
- :func:`cold_start` runs each path in a fresh interpreter (import, build a client, first call) and reads
  the process's peak resident memory; a bare interpreter is measured too, as the baseline.

Lesson 10 grows the general harness (``_harness.py`` and the suites) from these; this module stays small on
purpose.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["BenchServer", "cold_start", "serve", "summarize_calls", "time_calls"]

# The server process exits when its stdin closes, i.e. when the process that started it is gone (a kernel
# restart must not leave servers behind).
_SERVE = textwrap.dedent("""
    import os, sys, threading
    from llmkit.replay.server import serve_cassette
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    serve_cassette(sys.argv[1], speed=0, quiet=True)
""")


class BenchServer:
    """A replay server in its own process, serving one cassette at speed 0 (lesson 1).

    ``url`` is its base URL; ``models`` maps each provider to the model id its recorded requests name, the id a
    benchmark call must use to match (a live run may override ``kit.models``). ``close()`` (or leaving a
    ``with`` block) stops the process.
    """

    def __init__(self, cassette: str | os.PathLike[str], *, timeout: float = 20.0):
        path = Path(cassette).resolve()
        if not path.exists():
            raise ConfigError(f"no cassette at {path}; run the lesson's earlier cells first "
                              "(record mode writes it as it goes).")
        self.models: dict[str, str] = _recorded_models(path)
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(path)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self._proc.stdout is not None
        # serve_cassette prints its URL first, once the socket is listening.
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self._proc.stdout.readline().strip()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].startswith("http://"):
            self.close()
            raise ConfigError(f"the benchmark replay server did not start within {timeout:g} s.")
        self.url: str = ready[0]

    def close(self) -> None:
        """Stop the server process (idempotent)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._proc.poll() is None else "stopped"
        return f"<BenchServer {getattr(self, 'url', '?')} {state}>"


def _recorded_models(path: Path) -> dict[str, str]:
    from .. import providers

    try:
        interactions = json.loads(path.read_text())["interactions"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a readable cassette ({e}); `llmkit cassette check {path}` says why.") from e
    models: dict[str, str] = {}
    for interaction in interactions:
        request = interaction["request"]
        model = providers.get(request["provider"]).model_of(request["path"], request.get("body"))
        if model:
            models.setdefault(request["provider"], model)
    return models


def serve(cassette: str | os.PathLike[str], *, timeout: float = 20.0) -> BenchServer:
    """Serve ``cassette`` from a separate Python process at speed 0 (lesson 1). See :class:`BenchServer`."""
    return BenchServer(cassette, timeout=timeout)


def time_calls(calls: Mapping[str, Callable[[], Any]], *, rounds: int = 40, warmup: int = 3,
               seed: int = 0) -> Any:
    """Time warm calls, interleaved: ``rounds`` rounds, each calling every path once in a shuffled order.

    ``calls`` maps a label to a function making one complete request (and reading its answer). Returns a
    pandas DataFrame with one row per call: ``path``, ``round``, ``ms``. Introduced in lesson 1.
    """
    import pandas as pd

    names = list(calls)
    for _ in range(warmup):  # connections opened, lazy imports done, caches warm
        for name in names:
            calls[name]()
    rng = random.Random(seed)
    rows = []
    for r in range(rounds):
        rng.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            calls[name]()
            rows.append((name, r, (time.perf_counter() - t0) * 1000))
    return pd.DataFrame(rows, columns=["path", "round", "ms"])


def summarize_calls(times: Any) -> Any:
    """Median, 10th and 90th percentile per path (ms), fastest first. Introduced in lesson 1."""
    g = times.groupby("path")["ms"]
    out = g.median().to_frame("median_ms")
    out["p10_ms"] = g.quantile(0.1)
    out["p90_ms"] = g.quantile(0.9)
    return out.sort_values("median_ms")


# The program each cold-start process runs: time the import, then the first call, then report as JSON.
_CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    scope = {"URL": sys.argv[1], **json.loads(sys.argv[4])}
    exec(sys.argv[2], scope)
    t1 = time.perf_counter()
    exec(sys.argv[3], scope)
    t2 = time.perf_counter()
    def peak_rss():
        try:  # Linux: this process's high-water mark (ru_maxrss would include the parent's, kept across exec)
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
        except OSError:
            pass
        try:  # macOS reports bytes
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except ImportError:  # Windows
            import psutil
            return psutil.Process().memory_info().peak_wset
    peak = peak_rss()
    print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "peak_rss_mb": peak / 2**20,
                      "text": scope.get("text")}))
""")


def _run_child(url: str, setup: str, call: str, variables: str, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, url, setup, call, variables], capture_output=True,
                          text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise ConfigError(f"a cold-start process failed:\n{done.stderr.strip()[-800:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": wall}


def cold_start(paths: Mapping[str, tuple[str, str]], url: str, *, variables: Mapping[str, Any] | None = None,
               repeats: int = 1, workers: int = 1, timeout: float = 60.0) -> Any:
    """Run each path in fresh interpreters: ``paths`` maps a label to ``(setup, call)`` source code.

    ``setup`` is timed as the import; ``call`` builds a client, makes the first request to ``URL`` and
    stores the answer in ``text``. Both can read ``URL`` and the JSON-able ``variables``. A bare
    interpreter (label ``python alone``) is added as the baseline. Each path runs ``repeats`` times and its
    fastest run is kept (the others met a colder disk cache or a busy core); ``workers`` processes run at a
    time — one by default, because an import is CPU-bound and two side by side slow each other.

    Returns a pandas DataFrame indexed by label: ``import_s``, ``first_call_s``, ``process_s`` (the whole
    process, as a user waits for it), ``peak_rss_mb`` (peak resident memory) and ``text``. Introduced in
    lesson 1.
    """
    import pandas as pd

    jobs = {"python alone": ("pass", "text = None"), **paths}
    order = [name for _ in range(repeats) for name in jobs]
    encoded = json.dumps(dict(variables or {}))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda n: (n, _run_child(url, *jobs[n], encoded, timeout)), order))
    best: dict[str, dict[str, Any]] = {}
    for name, res in results:
        if name not in best or res["process_s"] < best[name]["process_s"]:
            best[name] = res
    df = pd.DataFrame.from_dict(best, orient="index")
    return df[["import_s", "first_call_s", "process_s", "peak_rss_mb", "text"]]
