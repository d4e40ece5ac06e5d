"""Run suites by name and print a summary (what ``llmkit bench`` does).

Introduced in lesson 10 (10_benchmarks).
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Collection, Sequence

from ._harness import Report
from ._suite import Context

SUITES = ("clients", "startup", "recovery", "memory", "replay")


def run(suites: Sequence[str] = SUITES, *, quick: bool = False, progress: bool = False,
        parts: Collection[str] | None = None) -> Report:
    """Run the named suites in order and return their :class:`Report`.

    ``parts`` runs only those parts of a suite made of parts (the memory suite: ``"ingestion"``, which
    loads the real embedding model, and ``"retrieval"``); suites without parts always run whole.

    A suite whose module is not available (e.g. ``llmkit.memory`` not installed) is recorded in
    ``report.skipped`` with the reason instead of failing the run.
    """
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    report = Report(quick=quick)
    ctx = Context(report, quick=quick, progress=progress, parts=parts)
    for name in suites:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"._{name}", __package__)
        except ImportError as e:
            report.skip(name, f"{e.name or name} not available")
            continue
        module.run(ctx)
        report.seconds[name] = round(time.perf_counter() - t0, 2)
    return report


def summary(report: Report) -> list[str]:
    """One line per figure: median (p90) and the ratio to the case's baseline."""
    lines = []
    for suite in dict.fromkeys(r["suite"] for r in report.rows):
        lines.append(f"== {suite} ({report.seconds.get(suite, 0):.1f} s)")
        for r in report.rows:
            if r["suite"] != suite:
                continue
            base = next((b for b in report.rows if b["suite"] == suite and b["case"] == r["case"]
                         and b["metric"] == r["metric"] and b["contender"] == r["baseline"]), None)
            ratio = ""
            if base and base is not r and base["median"] and not math.isnan(r["median"]):
                ratio = f"  ×{r['median'] / base['median']:.2f} vs {r['baseline']}"
            value = "failed" if math.isnan(r["median"]) else f"{r['median']:.4g} {r['unit']}"
            spread = f" (p90 {r['p90']:.4g})" if r["n"] > 1 else ""
            lines.append(f"  {r['case']:<32} {r['contender']:<36} {value}{spread}{ratio}")
        lines += [f"  note: {n}" for n in report.notes.get(suite, [])]
    lines += [f"== {suite}: skipped: {why}" for suite, why in report.skipped.items()]
    return lines
