"""Kits for benchmarks: record the suite's calls once against the bench script, then replay at speed 0.

Introduced in lesson 10 (10_benchmarks). Recording first means the cassette holds exactly the requests
each client sends (SDK or raw), so the timed runs are pure replays, the same path every lesson uses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import guard
from . import _script


@contextmanager
def scripted_kit(name: str, calls: Callable[[Any], Any], *, speed: float = 0.0) -> Iterator[Any]:
    """Record ``calls(kit)`` against the bench script, then yield a replay :class:`~llmkit.Kit` of it.

    ``calls`` must make every distinct request the benchmark will make. The network guard is left as
    it was found (a lesson's own kit keeps its guard).
    """
    from ..kit import Kit

    was_guarded = guard.installed()
    with tempfile.TemporaryDirectory(prefix="llmkit-bench-") as tmp:
        recorder = Kit(name, mode="record", speed=0, cassette_dir=tmp, script=str(Path(_script.__file__)))
        try:
            calls(recorder)
            recorder.check_recording()
        finally:
            recorder.close()
        kit = Kit(name, mode="replay", speed=speed, cassette_dir=tmp)
        try:
            yield kit
        finally:
            kit.close()
            if was_guarded:
                guard.install()
