"""Suite ``startup``: import time and memory of each SDK and of ``import llmkit``, each in a fresh process.

Introduced in lesson 10 (10_benchmarks). A module is imported once per process, so the only honest way
to time an import is a new interpreter per sample. Each child reports the seconds its import took and
its resident memory (RSS) after it; the bare interpreter is measured the same way, so "what the import
adds" is the difference.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ._harness import interleave
from ._suite import Context

# label -> the import statement
TARGETS = {
    "python (nothing imported)": "pass",
    "import llmkit": "import llmkit",
    "import requests": "import requests",
    "import httpx": "import httpx",
    "import httpx2": "import httpx2",
    "import openai": "import openai",
    "import anthropic": "import anthropic",
    "from google import genai": "from google import genai",
}

_CHILD = """
import time, resource
t0 = time.perf_counter()
{stmt}
dt = time.perf_counter() - t0
rss = None
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
if rss is None:  # not Linux: peak RSS (KiB on Linux, bytes on macOS)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if __import__("sys").platform == "darwin" else 1024)
print(__import__("json").dumps({{"seconds": dt, "rss": rss}}))
"""


def measure_import(stmt: str) -> dict[str, float]:
    """Run ``stmt`` in a fresh interpreter; its import seconds and RSS bytes afterwards."""
    out = subprocess.run([sys.executable, "-c", _CHILD.format(stmt=stmt)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{stmt!r} failed in a fresh interpreter: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> None:
    # Quick mode skips the warm-up child: the clients suite has already pulled the SDKs into the page cache.
    rounds, warmup = ctx.pick(quick=(2, 0), full=(10, 1))
    rss: dict[str, list[float]] = {name: [] for name in TARGETS}

    def child(name: str):
        def go() -> float:
            got = measure_import(TARGETS[name])
            rss[name].append(got["rss"] / 2**20)
            return got["seconds"]
        return go

    with ctx.bar(rounds, "startup") as bar:
        samples = interleave({name: child(name) for name in TARGETS}, rounds=rounds, warmup=warmup,
                             self_timed=True, on_round=lambda: bar.update(1))
    base = "python (nothing imported)"
    ctx.report.add_samples("startup", "import time", samples, baseline="import llmkit", metric="import time")
    for name, values in rss.items():
        timed = values[warmup:]  # warm-up children are not counted, as for the times
        ctx.report.add("startup", "RSS after import", name, timed, metric="RSS", unit="MB", baseline=base)
