"""Benchmarks of the kit: every performance figure of the lessons, re-runnable.

Introduced in lesson 10 (10_benchmarks)::

    from llmkit import bench
    report = bench.run(["clients", "replay"], quick=True)
    report.df()                      # one row per figure: median, p90, IQR, n, ratio to the baseline
    report.save("results.json")      # stamped with machine, CPU count, Python and package versions

or from a shell: ``llmkit bench [SUITE ...] [--quick] [--out results.json]``. The harness
(``interleave``, ``summarize``) is small enough to read; suites are one module each. Lesson 10b
(10b_memory_and_resources) runs the ``memory`` suite and measures resident memory with ``rss_steps``.

Lesson 1 (01_sdk_vs_http) uses the first, smaller tools: ``serve`` (a replay server in its own process),
``time_calls`` / ``summarize_calls`` (interleaved warm timing) and ``cold_start`` (fresh interpreters).
"""

from ._client_timing import BenchServer, cold_start, serve, summarize_calls, time_calls
from ._harness import Report, Stats, interleave, percentile, round_orders, summarize
from ._rss import rss_steps
from ._run import SUITES, run, summary

__all__ = ["SUITES", "BenchServer", "Report", "Stats", "cold_start", "interleave", "percentile", "round_orders",
           "rss_steps", "run", "serve", "summarize", "summarize_calls", "summary", "time_calls"]
