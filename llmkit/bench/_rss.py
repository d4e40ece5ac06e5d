"""Resident memory (RSS) of a fresh interpreter, read after each of a sequence of statements.

Introduced in lesson 10b (10b_memory_and_resources), to check the source lesson's memory table ("~50 MB
SDK", "~200 MB with embeddings", "~300 MB full system") on your machine. A module's memory is paid once per
process, so each measurement starts a new interpreter; statements run in order in one namespace, so
the figure after a step includes everything before it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from ..errors import LlmkitError

_CHILD = """
import json, sys
import psutil
process = psutil.Process()
out = [process.memory_info().rss / 2**20]
for statement in json.loads(sys.argv[1]):
    exec(statement, globals())
    out.append(process.memory_info().rss / 2**20)
print(json.dumps(out))
"""


def rss_steps(steps: Sequence[str], *, timeout: float = 300.0) -> list[float]:
    """RSS in MB of a fresh interpreter before any step, then after each statement of ``steps``.

    Returns ``len(steps) + 1`` values; the first is the bare interpreter (with psutil, which reads the
    figure). Introduced in lesson 10b (10b_memory_and_resources).
    """
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(list(steps))], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise LlmkitError(f"a step failed in a fresh interpreter; run it alone to see why: "
                          f"{out.stderr.strip()[-500:]}")
    return [float(x) for x in json.loads(out.stdout.strip().splitlines()[-1])]
