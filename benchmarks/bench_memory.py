"""Benchmark: llmkit.memory beside the source lesson's design, measured in one run.

Introduced in lesson 7 (07_memory_systems); lesson 10 shows the figures. Not a test: it prints a
table. What it measures, on synthetic chat turns (templates, Zipf-like word use):

- ingestion with the real all-MiniLM-L6-v2 (batched ``add_many`` vs one ``encode`` per
  message and a new connection per call), interleaved chunk by chunk;
- ``search`` latency (p50/p99, the query's embedding passed in, so it is excluded; the
  embedding itself is timed apart) at 1k / 10k / 100k memories, and the naive design's
  search at 1k and 10k, query by query in alternation;
- bytes per memory on disk, and recall of the projected dense index against an exact scan.

From 100,000 memories on a SQLite store also builds its HNSW graph (usearch, ``_ann.py``) when it
is opened. Both backends side by side (SQLite + HNSW, PostgreSQL + pgvector) at 10k and 100k
clustered synthetic vectors are the ``scale`` part of ``llmkit bench memory --full``.

    python benchmarks/bench_memory.py            # full: ~15-25 min here (embeds 100k turns once,
                                                 # cached in ~/.cache/llmkit/bench_memory)
    python benchmarks/bench_memory.py --quick    # ~2 min: 1k and 10k, fewer queries
    python benchmarks/bench_memory.py --hash     # no model: the hashing embedder everywhere

One full run on the 2-core machine (load average 0.2 at start; the figures roughly triple when
other jobs share the cores, so the script prints the load):

    ingestion: llmkit.memory 183.6 memories/s (embedding alone 167.6/s), naive 35.1/s (5.2x)
    query embedding p50 15.1 ms (excluded below)
     memories | p50 ms  p99 ms  dense lexical  B/mem proj recall  scan | naive p50   p99  B/mem
        1,000 |   1.83    3.12   0.26    0.74   2294    0  1.000   0.1 |      16.7  25.8   2109
       10,000 |   3.82    5.87   1.09    1.77   1986    0  1.000   1.1 |     128.9 177.0   2059
      100,000 |   6.11   12.17   3.58    1.26   1955   64  1.000  10.5 |   (not run)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmkit.memory import HashEmbedder, Memory, MiniLMEmbedder  # noqa: E402
from llmkit.memory._index import DenseIndex  # noqa: E402
from llmkit.memory.naive import NaiveMemory  # noqa: E402

TARGETS = {"search_p50_ms": 10.0, "ingest_per_s": 150.0, "bytes_per_memory": 2500.0}

NAMES = """Maya Jonas Lena Tom Sophie Ravi Aiko Carlos Nadia Omar Greta Liam Zoe Ibrahim Elena
Mateo Priya Hugo Chloe Felix Amara Noah Ines Tobi Yusuf Hana Marco Freya Diego Leila Kenji
Olga Samir Wren Ada Bruno Clara Dmitri Esme Farid""".split()
ACTIVITIES = """hiking pottery sailing baking running climbing painting chess gardening cycling
swimming knitting photography surfing yoga birdwatching woodworking kayaking skiing fishing
camping dancing singing journaling meditation volunteering archery fencing rowing
calligraphy""".split()
PLACES = """Lisbon Berlin Porto Reykjavik Kyoto Hamburg Valencia Oslo Krakow Dublin Vienna Seville
Bergen Lyon Tallinn Naples Ghent Bologna Utrecht Galway the-lake the-harbour the-mountains
the-library the-market the-coast the-forest the-old-town the-river the-island""".split()
OBJECTS = """bike laptop guitar camera kayak tent teapot dishwasher router espresso-machine
backpack telescope sewing-machine drone piano sourdough-starter lawnmower scooter boots
watch headphones printer blender microscope canoe""".split()
RELATIONS = """sister brother mother father neighbour colleague boss cousin friend grandmother
uncle aunt niece nephew roommate""".split()
TIMES = """yesterday last-weekend on-Tuesday in-March two-weeks-ago this-morning next-Friday
over-the-holidays last-summer tonight in-October after-work""".split()
FEELINGS = """exhausted thrilled nervous proud frustrated relieved curious grateful anxious
delighted""".split()
TEMPLATES = [
    "I went {a} with my {r} {n} near {p} {t}.",
    "My {r} finally fixed the {o} {t}, I was so {f}.",
    "{n} says {p} is the best place for {a}.",
    "Did you ever try {a}? I started {t} and I'm {f} about it.",
    "We're planning a trip to {p} {t} to do some {a}.",
    "The {o} broke again {t}; I ordered a new one, order {c}.",
    "I'm {f} about the presentation {t}, {n} is helping me prepare.",
    "Remember the {o} from {p}? {n} still has it in the garage.",
    "{n} and I spent the whole afternoon {a} {t}, it was lovely.",
    "My {r} is moving to {p} {t} and I'm a bit {f}.",
    "Can you remind me to call {n} about the {o} {t}?",
    "I booked flight {c} to {p} for {t}.",
    "The doctor said I should stop {a} for a while, I'm {f}.",
    "{n} lent me a {o} so I can try {a} {t}.",
    "We celebrated my {r}'s birthday in {p} {t}.",
    "I finally finished the {a} course, {n} came to watch.",
    "Honestly the {o} was a terrible purchase, never again.",
    "Our team in {p} shipped the release {t}; ticket {c} is closed.",
    "{n} recommended a book about {a}, I'm halfway through.",
    "It rained all day in {p}, so we stayed in and fixed the {o}.",
    "We walked {k} km around {p} {t} and my feet still hurt.",
    "{n} got a new {o} for {k}0 euros, what a bargain.",
    "I have been {a} {k} times since {t} and I'm getting better.",
    "My {r} called at {k} pm to ask about the {o}.",
    "Tickets for {p} are sold out, {n} is {f}.",
    "Let's meet at the cafe near {p} at {k} o'clock, bring the {o}.",
]
ASIDES = [
    "", "", "", "Anyway.", "By the way, how are you?", "Long story.", "Ha!", "No regrets.",
    "I'll tell you more later.", "It was a {f} kind of day.", "{n} says hi.",
    "Don't tell {n}.", "Also the {o} is still broken.", "Next time: {p}.",
]
QUESTIONS = [
    "Who went {a} near {p}?",
    "What happened to the {o} {t}?",
    "Where is {n} moving?",
    "What did my {r} fix?",
    "When is the trip to {p}?",
    "Which flight did I book to {p}?",
    "Who is helping me prepare the presentation?",
    "What does {n} think about {a}?",
]


def _pick(rng: random.Random, words: list[str]) -> str:
    # Zipf-like: a few values are common, most are rare
    return words[min(int(rng.paretovariate(0.8)) - 1, len(words) - 1)].replace("-", " ")


def _fill(rng: random.Random, template: str, w: dict[str, list[str]]) -> str:
    code = f"{rng.choice('ABCDEFGHKLMNPRSTXZ')}{rng.choice('ABCDEFGHKLMNPRSTXZ')}-{rng.randint(100, 99999)}"
    return template.format(
        a=_pick(rng, w["a"]), n=_pick(rng, w["n"]), p=_pick(rng, w["p"]), o=_pick(rng, w["o"]),
        r=_pick(rng, RELATIONS), t=_pick(rng, TIMES), f=_pick(rng, FEELINGS), c=code,
        k=rng.randint(2, 40),
    )


def _words() -> dict[str, list[str]]:
    """The slot values, each list in its own fixed random order (which ones are common)."""
    rng = random.Random(0)
    out = {"n": list(NAMES), "a": list(ACTIVITIES), "p": list(PLACES), "o": list(OBJECTS)}
    for words in out.values():
        rng.shuffle(words)
    return out


def turns(n: int, seed: int = 0) -> list[str]:
    rng, w = random.Random(seed), _words()
    out = []
    for _ in range(n):
        second = rng.choice(TEMPLATES) if rng.random() < 0.6 else ""
        out.append(_fill(rng, " ".join(f"{rng.choice(TEMPLATES)} {second} {rng.choice(ASIDES)}"
                                       .split()), w))
    return out


def questions(n: int, seed: int = 99) -> list[str]:
    rng, w = random.Random(seed), _words()
    return [_fill(rng, rng.choice(QUESTIONS), w) for _ in range(n)]


# --- embedding, cached across runs --------------------------------------------------------------


def embed_cached(embedder, texts: list[str], label: str) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + embedder.name).encode()).hexdigest()[:16]
    cache = Path.home() / ".cache" / "llmkit" / "bench_memory" / f"{label}-{key}.npy"
    if cache.exists():
        return np.load(cache)
    t0 = time.perf_counter()
    out = np.concatenate([embedder.embed(texts[i : i + 4096]) for i in range(0, len(texts), 4096)])
    print(f"  embedded {len(texts):,} {label} texts in {time.perf_counter() - t0:.0f} s "
          f"(cached in {cache.parent})", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


class Precomputed:
    """An embedder that returns vectors computed beforehand (so search timing excludes them)."""

    def __init__(self, name: str, texts: list[str], vecs: np.ndarray):
        self.name, self.dim = name, vecs.shape[1]
        self._vecs = dict(zip(texts, vecs, strict=False))

    def embed(self, texts):
        return np.stack([self._vecs[t] for t in texts])

    def encode(self, text: str) -> np.ndarray:  # the naive design's interface
        return self._vecs[text]


# --- measurements -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ingestion(embedder, tmp: Path, n_ours: int, n_naive: int) -> dict[str, float]:
    """Both designs from the same texts, alternating chunks so both see the same machine."""
    texts = turns(n_ours, seed=7)
    mem = Memory(tmp / "ingest.db", embedder=embedder, auto_summarise=False)
    naive = NaiveMemory(str(tmp / "ingest-naive.db"), encoder=_Encoder(embedder))
    chunks = 5
    ours_t = naive_t = 0.0
    step, nstep = n_ours // chunks, max(1, n_naive // chunks)
    for c in range(chunks):
        part = texts[c * step : (c + 1) * step]
        t0 = time.perf_counter()
        mem.add_many({"session_id": f"s{i % 20}", "role": "user", "content": t}
                     for i, t in enumerate(part))
        ours_t += time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in part[:nstep]:
            naive.add_to_short_term("s1", "user", t)
        naive_t += time.perf_counter() - t0
    t0 = time.perf_counter()
    embedder.embed(texts[:step])
    embed_only = step / (time.perf_counter() - t0)
    mem.close()
    return {"ours": step * chunks / ours_t, "naive": nstep * chunks / naive_t,
            "embed_only": embed_only}


class _Encoder:
    def __init__(self, embedder):
        self.embedder = embedder

    def encode(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]


def db_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def search_at(size: int, texts: list[str], vecs: np.ndarray, qtexts: list[str], qvecs: np.ndarray,
              tmp: Path, name: str, naive_queries: int) -> dict[str, float]:
    emb = Precomputed(name, texts + qtexts, np.concatenate([vecs, qvecs]))
    path = tmp / f"mem-{size}.db"
    mem = Memory(path, embedder=emb, auto_summarise=False)
    for i in range(0, size, 10_000):
        mem.add_many({"session_id": f"s{j % 50}", "role": "user", "content": texts[j]}
                     for j in range(i, min(size, i + 10_000)))
    mem.close()
    mem = Memory(path, embedder=emb, auto_summarise=False)  # as an app would: reopened
    t0 = time.perf_counter()
    len(mem)
    naive = None
    if naive_queries:
        npath = tmp / f"naive-{size}.db"
        naive = NaiveMemory(str(npath), encoder=emb)
        # its own insert path is timed in ingestion(); here rows go in as it stores them
        conn = sqlite3.connect(npath)
        conn.executemany(
            "INSERT INTO long_term_memory (concept, content, importance, embedding) VALUES (?,?,?,?)",
            [(", ".join(naive._extract_concepts(t)), t, 0.5, v.tobytes())
             for t, v in zip(texts[:size], vecs[:size], strict=True)])
        conn.executemany(
            "INSERT INTO short_term_memory (session_id, role, content, embedding) VALUES (?,?,?,?)",
            [("s1", "user", t, v.tobytes()) for t, v in zip(texts[:20], vecs[:20], strict=True)])
        conn.commit()
        conn.close()
    for q, v in zip(qtexts[:5], qvecs[:5], strict=True):  # warm-up
        mem.search(q, k=10, embedding=v)
    lat, dense_ms, lex_ms, naive_lat, found = [], [], [], [], []
    for i, (q, v) in enumerate(zip(qtexts, qvecs, strict=True)):
        t0 = time.perf_counter()
        mem.search(q, k=10, embedding=v)
        lat.append((time.perf_counter() - t0) * 1e3)
        dense_ms.append(mem.last_timings["dense_ms"])
        lex_ms.append(mem.last_timings["lexical_ms"])
        if naive is not None and i < naive_queries:
            t0 = time.perf_counter()
            found.append(len(naive.retrieve_relevant_memories(q, session_id="s1", limit=10)))
            naive_lat.append((time.perf_counter() - t0) * 1e3)
    # the projected pre-selection against an exact scan over the same vectors
    recall, exact_ms = [], []
    matrix = vecs[:size]
    scan = DenseIndex(matrix.shape[1], exact=True)
    scan.append(np.arange(1, size + 1), matrix, [0] * size, [0] * size, [0.0] * size, [0.5] * size)
    for v in qvecs[:50]:
        scores = matrix @ v
        tenth = np.partition(scores, -10)[-10]  # duplicates tie: compare scores, not ids
        got = mem.index.search(v, 10)[0] - 1
        recall.append(float(np.mean(scores[got] >= tenth - 1e-6)))
        t0 = time.perf_counter()
        scan.search(v, 50)
        exact_ms.append((time.perf_counter() - t0) * 1e3)
    out = {
        "size": size, "p50": pct(lat, 50), "p99": pct(lat, 99),
        "dense_p50": pct(dense_ms, 50), "lexical_p50": pct(lex_ms, 50),
        "exact_p50": pct(exact_ms, 50),
        "bytes": db_bytes(path) / size, "proj_dims": mem.index.projected_dims or 0,
        "dense_recall": float(np.mean(recall)),
    }
    mem.close()
    if naive is not None:
        out |= {"naive_p50": pct(naive_lat, 50), "naive_p99": pct(naive_lat, 99),
                "naive_bytes": db_bytes(tmp / f"naive-{size}.db") / size,
                "naive_empty": sum(1 for f in found if f == 0) / len(found)}
    return out


def query_embedding_ms(embedder, qtexts: list[str]) -> float:
    embedder.embed([qtexts[0]])
    times = []
    for q in qtexts[:30]:
        t0 = time.perf_counter()
        embedder.embed([q])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k and 10k only, fewer queries")
    ap.add_argument("--hash", action="store_true", help="use the hashing embedder (no model)")
    args = ap.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    n_queries = 60 if args.quick else 200
    n_naive_q = 10 if args.quick else 30
    n_ingest, n_ingest_naive = (500, 50) if args.quick else (3_000, 250)

    embedder = HashEmbedder(dim=384) if args.hash else MiniLMEmbedder()
    if not args.hash:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
    print(f"llmkit.memory benchmark — embedder {embedder.name}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    t_start = time.perf_counter()
    texts = turns(max(sizes), seed=1)
    qtexts = questions(n_queries)
    vecs = embed_cached(embedder, texts, f"turns{max(sizes)}")
    qvecs = embed_cached(embedder, qtexts, f"questions{n_queries}")
    q_ms = query_embedding_ms(embedder, qtexts)

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        print("  ingestion …", flush=True)
        ing = ingestion(embedder, Path(tmp), n_ingest, n_ingest_naive)
        results = []
        for size in sizes:
            print(f"  search at {size:,} …", flush=True)
            naive_q = n_naive_q if size <= 10_000 else 0
            results.append(search_at(size, texts[:size], vecs[:size], qtexts, qvecs, Path(tmp),
                                     embedder.name, naive_q))

    print()
    print(f"ingestion ({embedder.name}, batched add_many vs one encode + one connection per call)")
    print(f"  llmkit.memory {ing['ours']:8.1f} memories/s   (embedding alone: "
          f"{ing['embed_only']:.1f}/s)")
    print(f"  naive         {ing['naive']:8.1f} memories/s   ratio {ing['ours'] / ing['naive']:.1f}x")
    print(f"query embedding (one query, {embedder.name}): p50 {q_ms:.1f} ms — not included below")
    print()
    head = (f"{'memories':>9} | {'p50 ms':>7} {'p99 ms':>7} {'dense':>6} {'lexical':>7} "
            f"{'B/mem':>6} {'proj':>4} {'recall':>6} {'scan':>5} | {'naive p50':>9} {'p99':>8} "
            f"{'B/mem':>6} "
            f"{'empty':>5} | {'speed-up':>8}")
    print(head)
    print("-" * len(head))
    for r in results:
        line = (f"{r['size']:>9,} | {r['p50']:7.2f} {r['p99']:7.2f} {r['dense_p50']:6.2f} "
                f"{r['lexical_p50']:7.2f} {r['bytes']:6.0f} {r['proj_dims']:>4} "
                f"{r['dense_recall']:6.3f} {r['exact_p50']:5.1f} | ")
        if "naive_p50" in r:
            line += (f"{r['naive_p50']:9.1f} {r['naive_p99']:8.1f} {r['naive_bytes']:6.0f} "
                     f"{r['naive_empty']:5.0%} | {r['naive_p50'] / r['p50']:7.0f}x")
        else:
            line += f"{'(not run: seconds per query)':>34} |"
        print(line)
    print()
    print("columns: p50/p99 = Memory.search (k=10, hybrid) with the query vector given; "
          "dense/lexical = p50 of each path;")
    print("  B/mem = database bytes per memory; proj = projected dims (0 = exact scan); recall = "
          "dense top-10 vs an exact scan;")
    print("  scan = p50 ms of an exact scan of every vector (what the projection saves)")
    print("  naive = the source design's search over the same rows (query vector given too); "
          "empty = share of queries it answered with nothing")
    big = results[-1]
    checks = [
        (f"search p50 at {big['size']:,} <= {TARGETS['search_p50_ms']} ms", big["p50"],
         big["p50"] <= TARGETS["search_p50_ms"]),
        (f"ingestion >= {TARGETS['ingest_per_s']:.0f}/s", ing["ours"],
         ing["ours"] >= TARGETS["ingest_per_s"]),
        (f"storage <= {TARGETS['bytes_per_memory']:.0f} B/memory", big["bytes"],
         big["bytes"] <= TARGETS["bytes_per_memory"]),
    ]
    print()
    for label, value, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {value:.1f}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s, load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
