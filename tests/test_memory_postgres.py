"""The PostgreSQL backend of llmkit.memory (lesson 7): processes sharing one store, doctor's check.

The rest of the memory suite already runs on both backends (the ``memory_path`` fixture); these
tests are about what only a server store offers or needs.
"""

from __future__ import annotations

import multiprocessing

from llmkit.doctor import check_memory_store
from llmkit.memory import HashEmbedder, Memory

SPAWN = multiprocessing.get_context("spawn")


def _writer(url: str, worker: int, batches: int, results) -> None:
    """Write batches of 5 while searching the store; report what was searched and seen."""
    from llmkit.memory import HashEmbedder, Memory

    with Memory(url, embedder=HashEmbedder(64)) as mem:
        seen = 0
        for b in range(batches):
            mem.add_many([{"session_id": f"w{worker}", "role": "user", "content": f"worker{worker} batch{b} item{i}"}
                          for i in range(5)])
            hits = mem.search(f"worker{worker} batch{b}", k=5, mode="lexical", session_id=f"w{worker}")
            seen += all(h.session_id == f"w{worker}" for h in hits) and len(hits) == 5
        results.put((worker, seen))


def test_processes_write_and_search_one_store_at_the_same_time(postgres_url):
    Memory(postgres_url, embedder=HashEmbedder(64)).close()
    workers, batches = 3, 20
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=_writer, args=(postgres_url, w, batches, results)) for w in range(workers)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=300) for _ in range(workers))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert outcomes == {w: batches for w in range(workers)}  # each saw its own batch right after writing
    with Memory(postgres_url, embedder=HashEmbedder(64)) as mem:
        assert len(mem) == workers * batches * 5 and all(mem.check().values())
        ids = sorted(r.id for w in range(workers) for r in mem.window(f"w{w}"))
        assert len(set(ids)) == len(ids)
        for w in range(workers):
            for b in (0, batches - 1):
                hits = mem.search(f"worker{w} batch{b} item3", k=1, mode="lexical")
                assert hits[0].content == f"worker{w} batch{b} item3"


def test_doctor_checks_the_memory_server_only_when_configured(postgres_url):
    assert check_memory_store({}) == []
    [ok] = check_memory_store({"LLMKIT_MEMORY_URL": postgres_url})
    assert ok.ok and "pgvector" in ok.detail and "PostgreSQL" in ok.detail
    [bad] = check_memory_store({"LLMKIT_MEMORY_URL": "postgresql://llmkit:secret@127.0.0.1:1/none"})
    assert not bad.ok and "secret" not in bad.detail and "pgvector/pgvector" in bad.fix
