"""The benchmark harness: warm-up, repeated runs, interleaved contenders, statistics, a stamped report.

Introduced in lesson 10 (10_benchmarks). Two rules make a comparison on a laptop believable:

- **interleave**: contenders A and B run round by round (A B, then B A, ...) instead of all A then all B,
  so a slow drift of the machine (a browser tab waking up, the CPU clock settling) lands on both alike;
- **report the spread**: the median says what is typical, p90 and the interquartile range say how
  much one run can differ. A ratio of medians is meaningful only when the spreads do not swallow it.

Production benchmarking tools (pytest-benchmark, pyperf) do the same with more care (CPU pinning,
calibrated loops, outlier analysis); this harness is small enough to read in the lesson.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Timer = Callable[[], float]

# The packages whose versions decide the numbers (stamped into every result file).
STAMPED_PACKAGES = ("llmkit", "openai", "anthropic", "google-genai", "httpx", "httpx2", "requests", "uvicorn",
                    "numpy", "pandas", "torch", "sentence-transformers")


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements (in the unit they were taken in)."""

    n: int
    median: float
    p90: float
    iqr: float
    min: float
    max: float

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.1 = the middle half lies within ±5%)."""
        return self.iqr / self.median if self.median else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values: run at least one repeat")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> Stats:
    """Median, p90, interquartile range, min and max of ``values``."""
    if not values:
        raise ValueError("no measurements to summarize: run at least one repeat")
    return Stats(len(values), statistics.median(values), percentile(values, 90),
                 percentile(values, 75) - percentile(values, 25), min(values), max(values))


def round_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of contenders in each round: rotated by one every round, reversed every other round.

    With two contenders this is A B, B A, A B, ...; with more, each contender takes each position
    equally often, so neither a warm cache after a rival nor a slow drift favours one of them.
    """
    k = len(names)
    orders = []
    for r in range(rounds):
        shift = (r // 2) % k if k else 0
        order = list(names[shift:]) + list(names[:shift])
        orders.append(order[::-1] if r % 2 else order)
    return orders


def interleave(contenders: Mapping[str, Callable[[], Any]], *, rounds: int, warmup: int = 1, number: int = 1,
               timer: Timer = time.perf_counter, on_round: Callable[[], Any] | None = None,
               self_timed: bool = False) -> dict[str, list[float]]:
    """Time each contender ``rounds`` times, interleaved round by round; seconds per call.

    Each contender is first called ``warmup`` times untimed (connections opened, code paths warmed).
    A sample is the time of ``number`` back-to-back calls divided by ``number`` (use >1 for operations
    far below a millisecond, where the timer's own cost would show). With ``self_timed`` each call
    returns its own measurement in seconds (e.g. time to first token) and that is the sample.
    """
    if rounds < 1 or number < 1 or warmup < 0:
        raise ValueError("rounds and number must be >= 1 and warmup >= 0")
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for order in round_orders(list(contenders), rounds):
        for name in order:
            fn = contenders[name]
            if self_timed:
                samples[name].append(sum(float(fn()) for _ in range(number)) / number)
                continue
            t0 = timer()
            for _ in range(number):
                fn()
            samples[name].append((timer() - t0) / number)
        if on_round is not None:
            on_round()
    return samples


def repeat(fn: Callable[[], Any], *, repeats: int, warmup: int = 1, timer: Timer = time.perf_counter) -> list[float]:
    """Time one contender ``repeats`` times after ``warmup`` untimed calls; seconds per call."""
    return interleave({"_": fn}, rounds=repeats, warmup=warmup, timer=timer)["_"]


def stamp() -> dict[str, Any]:
    """Where the numbers were measured: machine, CPU count, Python and the packages that matter."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in STAMPED_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "in_venv": sys.prefix != sys.base_prefix},  # no path: results files are shared
        "packages": packages,
    }


@dataclass
class Report:
    """Every row a benchmark run measured, why suites were skipped, and where it ran.

    Each row is one figure: ``suite``, ``case`` (what was done), ``contender`` (who did it),
    ``metric`` and ``unit``, then ``median``, ``p90``, ``iqr``, ``min``, ``max`` and ``n``; a
    single-valued figure (bytes on disk) has ``n == 1``. ``baseline`` names the contender of the
    same case the ``ratio`` column divides by.
    """

    quick: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=stamp)

    def add(self, suite: str, case: str, contender: str, values: float | Iterable[float], *, metric: str = "time",
            unit: str = "ms", baseline: str | None = None, **extra: Any) -> dict[str, Any]:
        """Add one figure; ``values`` are already in ``unit`` (a list is summarized, a number kept as is)."""
        vals = [float(values)] if isinstance(values, int | float) else [float(v) for v in values]
        s = summarize(vals)
        row = {"suite": suite, "case": case, "contender": contender, "metric": metric, "unit": unit,
               "median": s.median, "p90": s.p90, "iqr": s.iqr, "min": s.min, "max": s.max, "n": s.n,
               "baseline": baseline, **extra}
        self.rows.append(row)
        return row

    def add_samples(self, suite: str, case: str, samples: Mapping[str, Sequence[float]], *, scale: float = 1000.0,
                    unit: str = "ms", metric: str = "time", baseline: str | None = None, **extra: Any) -> None:
        """Add the output of :func:`interleave` (seconds), scaled to ``unit``."""
        for name, secs in samples.items():
            self.add(suite, case, name, [s * scale for s in secs], unit=unit, metric=metric, baseline=baseline,
                     **extra)

    def note(self, suite: str, text: str) -> None:
        self.notes.setdefault(suite, []).append(text)

    def skip(self, suite: str, reason: str) -> None:
        self.skipped[suite] = reason

    def df(self, suite: str | None = None) -> Any:
        """The rows as a pandas DataFrame, with ``ratio`` = median / the baseline's median in that case."""
        import pandas as pd

        rows = [r for r in self.rows if suite is None or r["suite"] == suite]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        base = {(r["suite"], r["case"], r["metric"], r["contender"]): r["median"] for r in rows}
        frame["ratio"] = [
            (r["median"] / base[(r["suite"], r["case"], r["metric"], r["baseline"])]
             if r.get("baseline") and base.get((r["suite"], r["case"], r["metric"], r["baseline"])) else float("nan"))
            for r in rows
        ]
        return frame

    def get(self, suite: str, case: str, contender: str, metric: str | None = None) -> dict[str, Any]:
        """The one row for (suite, case, contender[, metric]); KeyError naming what exists otherwise."""
        for r in self.rows:
            if (r["suite"], r["case"], r["contender"]) == (suite, case, contender) and metric in (None, r["metric"]):
                return r
        have = sorted({(r["case"], r["contender"]) for r in self.rows if r["suite"] == suite})
        raise KeyError(f"no figure for {suite}/{case}/{contender}; this report has {have}")

    def to_dict(self) -> dict[str, Any]:
        return {"meta": {**self.meta, "quick": self.quick, "seconds": self.seconds}, "skipped": self.skipped,
                "notes": self.notes, "rows": self.rows}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON (stamped with machine, Python and package versions)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        meta = dict(data["meta"])
        quick, seconds = meta.pop("quick", False), meta.pop("seconds", {})
        return cls(quick=quick, rows=data["rows"], skipped=data.get("skipped", {}), notes=data.get("notes", {}),
                   seconds=seconds, meta=meta)

    def merge(self, other: Report) -> None:
        self.rows += other.rows
        self.skipped.update(other.skipped)
        self.seconds.update(other.seconds)
        for k, v in other.notes.items():
            self.notes.setdefault(k, []).extend(v)
