"""Benchmark: pgvector's ``hnsw.ef_search`` against recall and latency, on one PostgreSQL store.

Introduced with lesson 7b (07b_memory_at_scale), which moves ``Memory`` to PostgreSQL. ``ef_search`` is the
size of the candidate list one HNSW scan keeps: larger finds more of the exact nearest neighbours and costs
more time. This script loads N clustered synthetic memories (the vectors of ``llmkit bench memory --full``),
builds the HNSW index once, then for each ``ef_search`` opens a fresh ``Memory`` and times 200 dense searches
(k=10, query vectors passed in), with recall@10 against an exact scan. Not a test: it prints a table.

    python benchmarks/bench_pg_ef_search.py                    # 1,000,000 memories: ~12 min here, ~6 GB RAM
    python benchmarks/bench_pg_ef_search.py --size 100000 --ef 40 100 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import llmkit.memory._pg_store as pg_store
from llmkit.bench._harness import percentile
from llmkit.bench._memory import ClusteredEmbedder, bulk_load_postgres, messages
from llmkit.memory import Memory, Weights
from llmkit.memory._local_postgres import local_postgres


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="memories to load (default: 1,000,000)")
    ap.add_argument("--ef", type=int, nargs="+", default=[100, 200, 400], help="ef_search values to try")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--m", type=int, default=pg_store.HNSW_M, help="HNSW links per node")
    ap.add_argument("--ef-construction", type=int, default=pg_store.HNSW_EF_CONSTRUCTION)
    args = ap.parse_args(argv)
    pg_store.HNSW_M, pg_store.HNSW_EF_CONSTRUCTION = args.m, args.ef_construction

    emb = ClusteredEmbedder()
    texts = messages(args.size, seed=args.size)
    vecs = emb.embed(texts)
    queries = messages(args.queries, seed=args.size + 1)
    qvecs = emb.embed(queries)
    truth = np.argsort(-(qvecs @ vecs.T), axis=1)[:, :10] + 1  # ids are 1..size in insertion order
    plain = Weights(recency=0, importance=0, hubness=0)  # rank by cosine alone: comparable to exact

    with local_postgres() as url:
        with Memory(url, embedder=emb, auto_summarise=False) as mem:
            load, build = bulk_load_postgres(mem, texts)
        print(f"{args.size:,} memories: load {args.size / load:,.0f}/s, HNSW build {build:.0f} s "
              f"(m={pg_store.HNSW_M}, ef_construction={pg_store.HNSW_EF_CONSTRUCTION})")
        print(f"{'ef_search':>9} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9}")
        for ef in args.ef:
            pg_store.EF_SEARCH = ef  # read when a pooled connection is configured, and per query
            with Memory(url, embedder=emb, auto_summarise=False) as mem:
                for q, v in zip(queries[:20], qvecs[:20], strict=True):  # warm the index pages
                    mem.search(q, k=10, mode="dense", embedding=v, weights=plain)
                lat, recall = [], []
                for q, v, t in zip(queries, qvecs, truth, strict=True):
                    t0 = time.perf_counter()
                    hits = mem.search(q, k=10, mode="dense", embedding=v, weights=plain)
                    lat.append((time.perf_counter() - t0) * 1000)
                    recall.append(len({h.id for h in hits} & set(t.tolist())) / 10)
            print(f"{ef:>9} {percentile(lat, 50):>7.2f} {percentile(lat, 99):>7.2f} {statistics.mean(recall):>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
