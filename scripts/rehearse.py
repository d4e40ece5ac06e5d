"""Rehearse every lesson in live and record mode against the provider simulator (``llmkit simulate``).

    .venv/bin/python scripts/rehearse.py [--notebooks notebooks/03_*.ipynb ...] [--modes live,record]
                                         [--seed 20261206] [--profile full|chat-completions-only] [--keep]

What a passing run proves, for each notebook:

- **live**: run top to bottom with ``LLMKIT_MODE=live``, the three ``LLMKIT_UPSTREAM_*`` at one simulator and
  fake keys in each provider's real format, every cell executes: no cell depends on the cassette's scripted
  answer, on replay-only controls, or on a feature only the replay server has.
- **record**: run with ``LLMKIT_MODE=record`` into a fresh temporary cassette, then once more in replay mode
  from that cassette, every cell executes in both, the replay has 0 misses (the lesson's requests are
  deterministic for its answers), the recorder refused nothing, and no fake key (raw, base64, percent-encoded
  or JSON-escaped) is in the cassette, its blobs or any executed notebook.
- with ``--profile chat-completions-only`` (what an OpenAI-compatible local server answers), live mode only:
  every cell still executes without error; a cell that needs a missing API, or uses what such a cell would
  have made, prints one "Skipped: ..." line instead (``llmkit.feature_guard``), and each is listed. Under
  the full profile a skipped cell is a failure.

The committed notebooks and cassettes are never written: each run executes a copy of ``notebooks/`` in a
temporary folder (``--keep`` leaves it there and prints where). Exit status 1 on any failure.
Introduced with lesson 0's simulator (``llmkit simulate``, docs/design.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_SEED = 20261206
PROVIDERS = ("openai", "anthropic", "gemini")
KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
# The kernel's view of every embedded server (replay or record) the notebook started: misses and recorder
# refusals are read from them after the last cell, so a miss a cell caught and printed is still counted.
PRELUDE = """\
import llmkit.replay.server as _rehearse_server
_rehearse_apps = []
_rehearse_init = _rehearse_server.ReplayApp.__init__
def _rehearse_track(self, *args, **kwargs):
    _rehearse_init(self, *args, **kwargs)
    _rehearse_apps.append(self)
_rehearse_server.ReplayApp.__init__ = _rehearse_track
"""
EPILOGUE = """\
import json as _rehearse_json
print("REHEARSE-REPORT " + _rehearse_json.dumps({
    "misses": [str(m).splitlines()[0] for a in _rehearse_apps for m in a.misses],
    "recorder_errors": [str(e).splitlines()[0] for a in _rehearse_apps
                        for e in getattr(a.recorder, "errors", None) or []]}))
"""


SKIP_MARK = "Skipped: this cell "  # the first words of llmkit.feature_guard's one-line messages


@dataclass
class CellFailure:
    index: int  # the cell's index in the committed notebook
    source: str  # its first source line
    error: str  # the error's first line, or the skip message


@dataclass
class Run:
    notebook: str
    mode: str
    cells_run: int = 0
    failures: list[CellFailure] = field(default_factory=list)
    skipped: list[CellFailure] = field(default_factory=list)  # a missing feature's one-line message
    problems: list[str] = field(default_factory=list)  # misses, recorder refusals, leaked keys, crashes
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failures


def fake_keys() -> dict[str, str]:
    """New fake keys for this run, each in its provider's real format (so pattern scrubbing is exercised)."""
    b62 = string.ascii_letters + string.digits
    b64url = b62 + "-_"

    def pick(alphabet: str, n: int) -> str:
        return "".join(secrets.choice(alphabet) for _ in range(n))

    return {"openai": f"sk-proj-{pick(b64url, 74)}T3BlbkFJ{pick(b64url, 74)}",
            "anthropic": f"sk-ant-api03-{pick(b64url, 93)}AA",
            "gemini": f"AIza{pick(b64url, 35)}"}


def encodings(key: str) -> set[bytes]:
    """``key`` as it could appear in a file: raw, JSON-escaped, percent-encoded, and the part of its base64
    (standard and URL-safe) that does not depend on where in a longer encoded string it starts."""
    raw = key.encode()
    out = {raw, json.dumps(key).encode()[1:-1], quote(key, safe="").encode(),
           "".join(f"%{b:02X}" for b in raw).encode(), "".join(f"\\u{b:04x}" for b in raw).encode()}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw)
            out.add(text[4 if shift else 0:-4])  # the first and last groups also hold neighbouring bytes
    return out


def find_keys(paths: Iterable[Path], keys: dict[str, str]) -> list[str]:
    """Every (file, provider) where a fake key, in any encoding of :func:`encodings`, is in the file's bytes."""
    needles = {p: encodings(k) for p, k in keys.items()}
    found = []
    for path in paths:
        data = path.read_bytes()
        lowered = data.lower()
        for provider, forms in needles.items():
            if any(f in data or (f.startswith(b"%") and f.lower() in lowered) for f in forms):
                found.append(f"{path.name}: the fake {provider} key")
    return found


@contextmanager
def simulator(seed: int, profile: str) -> Iterator[str]:
    """One ``llmkit simulate`` subprocess on a free port; yields its URL and always stops it."""
    cmd = [sys.executable, "-m", "llmkit", "simulate", "--port", "0", "--seed", str(seed), "--speed", "0",
           "--quiet", "--profile", profile]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "export LLMKIT_UPSTREAM_OPENAI=http://127.0.0.1:PORT", once listening
        if "=" not in first:
            raise RuntimeError(f"the simulator did not start (exit {proc.poll()}): {first!r}")
        url = first.strip().split("=", 1)[1]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def base_env() -> dict[str, str]:
    """The current environment without any llmkit setting or provider key of the developer's."""
    drop = {"GOOGLE_API_KEY", *KEY_VARS.values()}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LLMKIT_")}


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def execute(copy: Path, env: dict[str, str], timeout: int, run: Run, *, profile: str) -> nbformat.NotebookNode:
    """Execute the notebook at ``copy`` (a temporary copy) in place with ``env``; fill ``run``'s findings."""
    nb = nbformat.read(copy, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PRELUDE))
    nb.cells.append(nbformat.v4.new_code_cell(EPILOGUE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(copy.parent)}})
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except Exception as e:  # a dead kernel or a timeout: the cell in flight is reported below
        run.problems.append(f"execution stopped: {type(e).__name__}: {first_line(str(e))}")
    run.seconds += time.perf_counter() - start
    for i, cell in enumerate(nb.cells[1:-1]):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is not None or cell.get("outputs"):
            run.cells_run += 1
        if "raises-exception" in cell.metadata.get("tags", []):
            continue  # an error the lesson shows on purpose
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                run.failures.append(CellFailure(i, first_line(cell.source),
                                                f"{out.get('ename')}: {first_line(out.get('evalue', ''))}"))
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            skip = next((line for line in text.splitlines() if line.startswith(SKIP_MARK)), None)
            if skip:
                (run.skipped if profile != "full" else run.failures).append(
                    CellFailure(i, first_line(cell.source), skip))
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if "REHEARSE-REPORT " in text:
            report = json.loads(text.split("REHEARSE-REPORT ", 1)[1])
            run.problems += [f"cassette miss: {m}" for m in report["misses"]]
            run.problems += [f"recorder refused: {e}" for e in report["recorder_errors"]]
    nb.cells = nb.cells[1:-1]
    nbformat.write(nb, copy.with_name(f"{copy.stem}.{run.mode}.ipynb"))
    return nb


def rehearse(notebook: Path, modes: list[str], sim_url: str, keys: dict[str, str], work: Path, *,
             timeout: int, profile: str) -> list[Run]:
    """All requested modes for one notebook, each in its own fresh copy of ``notebooks/`` under ``work``
    (of the notebook's own folder for one outside ``notebooks/``)."""
    notebook = notebook.resolve()
    root = NOTEBOOKS if notebook.is_relative_to(NOTEBOOKS) else notebook.parent
    rel = notebook.relative_to(root)
    name = str(rel.with_suffix(""))
    env = base_env() | {"LLMKIT_SPEED": "0", "PYTHONUNBUFFERED": "1"}
    env |= {f"LLMKIT_UPSTREAM_{p.upper()}": sim_url for p in PROVIDERS}
    env |= {KEY_VARS[p]: keys[p] for p in PROVIDERS}
    runs = []
    for mode in modes:
        tree = work / f"{name.replace('/', '-')}.{mode}"
        shutil.copytree(root, tree, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        copy = tree / rel
        cassettes = tree / "rehearsal-cassettes"
        if mode == "live":
            run = Run(name, "live")
            execute(copy, env | {"LLMKIT_MODE": "live"}, timeout, run, profile=profile)
            runs.append(run)
            scanned = [copy.with_name(f"{copy.stem}.live.ipynb")]
        else:
            record = Run(name, "record")
            execute(copy, env | {"LLMKIT_MODE": "record", "LLMKIT_CASSETTES": str(cassettes)}, timeout,
                    record, profile=profile)
            # replay from the fresh cassette only: no provider key in the environment, as under the tests
            replay = Run(name, "replay")
            execute(copy, base_env() | {"LLMKIT_MODE": "replay", "LLMKIT_SPEED": "0",
                                        "LLMKIT_CASSETTES": str(cassettes)}, timeout, replay, profile=profile)
            runs += [record, replay]
            scanned = [p for p in cassettes.rglob("*") if p.is_file()]
            scanned += [copy.with_name(f"{copy.stem}.{m}.ipynb") for m in ("record", "replay")]
        leaks = find_keys(scanned, keys)
        runs[-1].problems += [f"fake key found: {leak}" for leak in leaks]
    return runs


def default_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("[0-9][0-9]*_*.ipynb"))


def _more(items: list) -> str:
    return f" (+{len(items) - 1} more)" if len(items) > 1 else ""


def print_table(runs: list[Run]) -> None:
    print(f"\n{'notebook':36} {'mode':7} {'cells':>5} {'secs':>7}  result")
    for r in runs:
        bad = r.failures
        result = "ok" if r.ok else "FAIL"
        if bad:
            result += f" · cell {bad[0].index}: {bad[0].error[:90]}" + _more(bad)
        if r.problems:
            result += f" · {r.problems[0][:90]}" + _more(r.problems)
        if r.skipped:
            result += f" · {len(r.skipped)} cell(s) skipped: a missing feature"
        print(f"{r.notebook:36} {r.mode:7} {r.cells_run:5d} {r.seconds:7.1f}  {result}")
    print("\nEvery failing or skipped cell (index in the committed notebook, first source line, first line):")
    for r in runs:
        for tag, cells in (("FAIL", r.failures), ("skipped", r.skipped)):
            for f in cells:
                print(f"  {r.notebook} [{r.mode}] cell {f.index} ({tag}): {f.source[:70]!r} -> {f.error[:160]}")
        for p in r.problems:
            print(f"  {r.notebook} [{r.mode}]: {p[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="+", type=Path, default=None,
                        help="notebooks to rehearse (default: every lesson and solution)")
    parser.add_argument("--modes", default="live,record", help="comma-separated: live, record (default: both)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"simulator seed (default: {DEFAULT_SEED})")
    parser.add_argument("--profile", choices=("full", "chat-completions-only"), default="full")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default: 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies and print where")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"live", "record"}:
        parser.error(f"--modes takes live and/or record, not {args.modes!r}")
    if args.profile != "full" and modes != ["live"]:
        parser.error(f"--profile {args.profile} rehearses live mode only (--modes live): a cassette recorded from "
                     "a server without some APIs would hold its 404s, and replay mode has no guard for them")
    notebooks = args.notebooks or default_notebooks()
    keys = fake_keys()
    work = Path(tempfile.mkdtemp(prefix="llmkit-rehearse-"))
    print(f"rehearsal · seed {args.seed} · profile {args.profile} · modes {','.join(modes)} · "
          f"{len(notebooks)} notebook(s)", flush=True)
    runs: list[Run] = []
    started = time.perf_counter()
    try:
        with simulator(args.seed, args.profile) as url:
            for nb in notebooks:
                for run in rehearse(nb, modes, url, keys, work, timeout=args.timeout, profile=args.profile):
                    runs.append(run)
                    print(f"  {run.notebook} {run.mode}: {'ok' if run.ok else 'FAIL'} ({run.seconds:.1f} s)",
                          flush=True)
    finally:
        if args.keep:
            print(f"temporary copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(runs)
    leaks = [p for r in runs for p in r.problems if p.startswith("fake key found")]
    print(f"\nfake-key scan: {'no fake key found' if not leaks else f'{len(leaks)} leak(s)'} · seed {args.seed} · "
          f"{time.perf_counter() - started:.0f} s in all")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
