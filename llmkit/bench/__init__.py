"""Benchmarks of the kit: every performance figure of the lessons, re-runnable.

Introduced in lesson 10 (10_benchmarks)::

    from llmkit import bench
    report = bench.run(["clients", "replay"], quick=True)
    report.df()                      # one row per figure: median, p90, IQR, n, ratio to the baseline
    report.save("results.json")      # stamped with machine, CPU count, Python and package versions

or from a shell: ``llmkit bench [SUITE ...] [--quick] [--out results.json]``. The harness
(``interleave``, ``summarize``) is small enough to read; suites are one module each.
"""

from ._harness import Report, Stats, interleave, percentile, repeat, round_orders, stamp, summarize
from ._run import SUITES, run, summary

__all__ = ["SUITES", "Report", "Stats", "interleave", "percentile", "repeat", "round_orders", "run", "stamp",
           "summarize", "summary"]
