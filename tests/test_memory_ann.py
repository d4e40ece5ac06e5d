"""The HNSW graph of large SQLite memories (lesson 7): same answers as the exact scan, saved safely.

SQLite only (PostgreSQL searches with pgvector's own HNSW index). ``ann_above`` is lowered so a
few hundred rows cross the threshold; the graph proposes candidates that are re-scored exactly,
so a damaged or stale file may only cost recall, and is rebuilt instead of being trusted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("usearch")

from llmkit.memory import HashEmbedder, Memory, _ann  # noqa: E402

N = 400


def texts(n: int, user: str = "u") -> list[dict]:
    rng = np.random.default_rng(len(user))
    words = [f"w{i}" for i in range(300)]
    return [{"session_id": f"s{i % 4}", "role": "user",
             "content": f"{user} " + " ".join(rng.choice(words, 8))} for i in range(n)]


def dense_ids(mem: Memory, queries: list[str], k: int = 10) -> list[list[int]]:
    return [[h.id for h in mem.search(q, k=k, mode="dense")] for q in queries]


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    return float(np.mean([len(set(x) & set(y)) / max(1, len(y)) for x, y in zip(a, b, strict=True)]))


QUERIES = [f"w{i} w{i + 7} w{i + 19}" for i in range(0, 200, 10)]


@pytest.fixture
def big(tmp_path) -> str:
    path = str(tmp_path / "m.db")
    with Memory(path, embedder=HashEmbedder(), ann_above=N // 2) as mem:
        mem.add_many(texts(N))
        assert mem.ann is not None and len(mem.ann) == N
    return path


def saved(path: str) -> list[Path]:
    return sorted(Path(path).parent.glob(Path(path).name + ".ann-*"))


def test_the_graph_answers_like_the_exact_scan_and_is_saved(big):
    assert len(saved(big)) == 1 and not saved(big)[0].name.endswith(".tmp")
    with Memory(big, embedder=HashEmbedder(), exact=True) as exact:
        assert exact.ann is None
        truth = dense_ids(exact, QUERIES)
    loads = []
    real_load = _ann.AnnIndex.load
    _ann.AnnIndex.load = classmethod(lambda cls, *a: loads.append(real_load(*a)) or loads[-1])
    try:
        with Memory(big, embedder=HashEmbedder(), ann_above=N // 2) as mem:
            assert loads and loads[0] is not None  # opened from the file, not rebuilt
            assert overlap(dense_ids(mem, QUERIES), truth) >= 0.95
            mem.add("s0", "user", "u w1 w2 w3 fresh")  # extends the graph
            assert len(mem.ann) == N + 1
    finally:
        _ann.AnnIndex.load = real_load


@pytest.mark.parametrize("damage", ["truncated", "missing", "half-written-tmp", "crash-before-rename"])
def test_a_damaged_or_unfinished_save_is_rebuilt_not_trusted(big, damage, monkeypatch):
    with Memory(big, embedder=HashEmbedder(), exact=True) as exact:
        truth = dense_ids(exact, QUERIES)
    [file] = saved(big)
    if damage == "truncated":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
    elif damage == "missing":
        file.unlink()
    elif damage == "half-written-tmp":  # a crash while writing the next save: meta never named it
        Path(str(file).replace(file.name.split(".ann-")[1], "feedbeef") + ".tmp").write_bytes(b"\0" * 100)
    else:  # the process dies between writing the file and renaming it
        with Memory(big, embedder=HashEmbedder(), ann_above=N // 2) as mem:
            mem.add_many(texts(N // 2, user="v"))  # enough new rows to save again

            def crash(*args):
                raise OSError("simulated crash")

            monkeypatch.setattr(os, "replace", crash)
            with pytest.raises(OSError):
                mem._ann_save()
            monkeypatch.undo()
            mem._ann_dirty = False  # the crash: nothing more is written
        with Memory(big, embedder=HashEmbedder(), exact=True) as exact:
            truth = dense_ids(exact, QUERIES)
    with Memory(big, embedder=HashEmbedder(), ann_above=N // 2) as mem:
        assert len(mem.ann) == len(mem)  # rebuilt, or the old file plus the rows it lacked
        assert overlap(dense_ids(mem, QUERIES), truth) >= 0.95
        assert mem.check() == {"sqlite": True, "fts": True, "index": True}
    names = [p.name for p in saved(big)]
    assert len(names) == 1 or damage in ("half-written-tmp", "crash-before-rename"), names


def test_forget_removes_the_vector_from_the_graph_and_its_file(big):
    with Memory(big, embedder=HashEmbedder(), ann_above=N // 2) as mem:
        victim = mem.search(QUERIES[0], k=1, mode="dense")[0].id
        stored = mem.ann.index.get(victim, dtype=np.int8).tobytes()  # the graph's copy of it
        [file] = saved(big)
        assert file.read_bytes().count(stored) == 1
        mem.forget(victim)
        assert victim not in mem.ann.index
        assert victim not in [h.id for h in mem.search(QUERIES[0], k=10, mode="dense")]
        info = json.loads(mem.store.get_meta("ann"))
    reloaded = _ann.AnnIndex(HashEmbedder().dim)
    reloaded.index.load(f"{big}.ann-{info['token']}")
    assert victim not in reloaded.index and len(reloaded) == N - 1
    assert [p.read_bytes().count(stored) for p in saved(big)] == [0]  # its bytes left the file too


def test_users_stay_apart_on_the_graph_path(tmp_path):
    path = str(tmp_path / "m.db")
    with Memory(path, embedder=HashEmbedder(), user_id="big", ann_above=N // 2) as big:
        big.add_many(texts(N, user="big"))
        with Memory(path, embedder=HashEmbedder(), user_id="small", ann_above=N // 2) as small:
            small.add_many(texts(N // 10, user="small"))
            assert small.ann is not None
            small.index.exact_subset_below = 0  # a small user's rows would be scanned exactly
            calls = []
            real = small.ann.search
            small.ann.search = lambda q, n: calls.append(n) or real(q, n)
            for q in QUERIES:
                hits = small.search(q, k=10, mode="dense")
                assert len(hits) == 10 and all(h.content.startswith("small ") for h in hits)
            assert calls and max(calls) > 10 * 10  # the graph was asked, for a widened pool
