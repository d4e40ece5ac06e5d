"""Kits for benchmarks: record the suite's calls once against the bench script, then replay at speed 0.

Introduced in lesson 10 (10_benchmarks). Recording first means the cassette holds exactly the requests
each client sends (SDK or raw), so the timed runs are pure replays, the same path every lesson uses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import _script

if TYPE_CHECKING:
    from ..kit import Kit


@contextmanager
def scripted_kit(name: str, calls: Callable[[Kit], object], *, speed: float = 0.0) -> Iterator[Kit]:
    """Record ``calls(kit)`` against the bench script, then yield a replay :class:`~llmkit.Kit` of it.

    ``calls`` must make every distinct request the benchmark will make. Each kit releases only its own
    hold on the network guard when it closes, so a lesson's own kit keeps its guard.
    """
    from ..kit import Kit

    with tempfile.TemporaryDirectory(prefix="llmkit-bench-") as tmp:
        with Kit(name, mode="record", speed=0, cassette_dir=tmp, script=str(Path(_script.__file__))) as recorder:
            calls(recorder)
            recorder.check_recording()
        with Kit(name, mode="replay", speed=speed, cassette_dir=tmp) as kit:
            yield kit
