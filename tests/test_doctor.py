"""``llmkit doctor``'s machine checks (llmkit/doctor_system.py): what a new user's machine lacks, and the fix.

Introduced in lesson 10 (10_benchmarks). Each check is asked about this machine and about a "fresh" one made
from a temporary PATH or user id; what it says is compared with what make, the filesystem or a socket says.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit import doctor_system as ds

ROOT = Path(__file__).resolve().parent.parent


def _executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_the_user_check_says_what_make_lab_passes_to_jupyter():
    venv = Path(sys.prefix)
    planned = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={venv}", "-o", str(venv / ".installed"), "lab"],
                             capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    passes_allow_root = "--allow-root" in planned.stdout.split("jupyter lab", 1)[1]
    assert passes_allow_root == (os.geteuid() == 0)
    assert ("--allow-root" in ds.check_user().detail and "passes" in ds.check_user().detail) == passes_allow_root
    assert "passes --allow-root" in ds.check_user(euid=0).detail
    assert "needs no --allow-root" in ds.check_user(euid=1000).detail


def test_the_torch_check_reports_the_installed_build_and_its_size():
    build = ds.torch_build()
    if build is None:
        pytest.skip("torch is not installed")
    import torch  # imported only here: the doctor itself reads metadata

    torch_dir = Path(torch.__file__).parent
    assert build.cuda == any((torch_dir / "lib").glob("libtorch_cuda*"))
    on_disk = sum(p.stat().st_size for p in torch_dir.rglob("*") if p.is_file())
    assert 0.8 * on_disk <= build.bytes_on_disk  # torch's files, plus any CUDA wheels it brought
    check = ds.check_torch(build)
    assert ("CUDA build" if build.cuda else "CPU build") in check.detail and torch.__version__ in check.detail
    # The CUDA build where no NVIDIA GPU is: a warning whose fix reinstalls from the CPU index.
    cuda = ds.TorchBuild(build.version, True, build.bytes_on_disk, build.packages)
    unused = ds.check_torch(cuda, gpu=False)
    if sys.platform.startswith("linux"):
        assert not unused.ok and unused.warning and unused.fix == ds.TO_CPU_TORCH
        assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in (ROOT / "README.md").read_text()
    assert ds.check_torch(cuda, gpu=True).ok


def test_missing_system_packages_come_with_the_command_that_installs_them(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    as_root = {c.name: c for c in ds.check_system_packages(path=str(empty), euid=0)}
    assert set(as_root) == {"chromium", "redis-server"}
    assert all(not c.ok and c.fix == "make sysdeps" for c in as_root.values())
    as_user = {c.name: c for c in ds.check_system_packages(path=str(empty), euid=1000)}
    assert as_user["chromium"].fix == "sudo apt-get install -y chromium"
    assert as_user["redis-server"].fix == "sudo apt-get install -y redis-server"

    full = tmp_path / "bin"
    full.mkdir()
    paths = {name: _executable(full, name) for name in ("chromium", "redis-server")}
    present = ds.check_system_packages(path=str(full), euid=1000)
    assert all(c.ok and c.detail == str(paths[c.name]) and not c.fix for c in present)


def test_postgres_is_checked_only_when_configured():
    assert ds.check_postgres({}) == []
    assert ds.check_postgres({"DATABASE_URL": "sqlite:///x.db"}) == []
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        [up] = ds.check_postgres({"DATABASE_URL": f"postgresql://kit:s3cret-pw@127.0.0.1:{port}/lessons"})
        assert up.ok and f"127.0.0.1:{port}" in up.detail and "s3cret-pw" not in up.line()
    [down] = ds.check_postgres({"DATABASE_URL": f"postgres://kit:s3cret-pw@127.0.0.1:{port}/lessons"}, timeout=1)
    assert not down.ok and "postgresql" in down.fix and "s3cret-pw" not in down.line()
    [tests] = ds.check_postgres({"LLMKIT_MEMORY_TEST_URL": f"postgresql://127.0.0.1:{port}/x"}, timeout=1)
    assert not tests.ok and "LLMKIT_MEMORY_TEST_URL" in tests.detail + tests.fix


def test_disk_check_compares_free_space_with_what_the_venv_needs(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    assert ds.check_disk(tmp_path, need=0).ok
    short = ds.check_disk(tmp_path, need=free * 10)
    assert not short.ok and "pip cache purge" in short.fix
    shown = re.match(r"([\d.]+) (B|KB|MB|GB) free", ds.check_disk(tmp_path, need=0).detail)
    assert shown, "the detail starts with the free space"
    value = float(shown.group(1)) * {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[shown.group(2)]
    assert abs(value - free) <= 0.01 * free + 1e8


def test_readme_commands_on_this_clone_and_on_a_machine_without_make(tmp_path):
    lab, test = ds.check_readme_commands()
    assert lab.name == "make lab" and test.name == "make test"
    if shutil.which("make") and (ROOT / ".venv" / "bin" / "jupyter").exists():
        assert lab.ok, lab.line()

    bare = tmp_path / "bin"
    bare.mkdir()
    _executable(bare, "python3")  # a python3 that "works", so only make is missing
    lab, test = ds.check_readme_commands(path=str(bare), euid=1000)
    assert not lab.ok and "make is not installed" in lab.detail and lab.fix == "sudo apt-get install -y make"
    assert not test.ok and "chromium and redis-server missing" in test.detail

    # As root, make test installs chromium and redis-server itself, given apt-get.
    _executable(bare, "make")
    _executable(bare, "apt-get")
    lab, test = ds.check_readme_commands(path=str(bare), euid=0)
    assert lab.ok and "--allow-root" in lab.detail
    assert test.ok and "installs chromium and redis-server first" in test.detail

    # Outside a clone there is no Makefile: say so instead of pretending.
    lab, test = ds.check_readme_commands(root=tmp_path)
    assert not lab.ok and lab.warning and "clone" in lab.fix


def test_llmkit_doctor_prints_the_machine_checks():
    done = subprocess.run([sys.executable, "-m", "llmkit", "doctor"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    out = done.stdout
    for name in ("user", "torch", "chromium", "redis-server", "disk", "make lab", "make test"):
        assert f" {name}: " in out, out
    broken = [ln for ln in out.splitlines() if ln.startswith("✗")]
    assert done.returncode == (1 if broken else 0), out
    fixes = [ln for ln in out.splitlines() if ln.strip().startswith("fix:")]
    assert len(fixes) == len([ln for ln in out.splitlines() if ln[:1] in "✗!"])  # every problem has its fix


def test_the_doctor_reports_which_features_the_configured_upstreams_answer() -> None:
    """Against ``llmkit simulate``: the full profile answers every feature; a Chat-Completions-only server (an
    Ollama / vLLM / llama.cpp stand-in) is reported with the Responses API, Messages and Gemini missing; an upstream
    that is not running is a failure with a fix; without LLMKIT_UPSTREAM_* nothing is probed."""
    from llmkit.doctor_upstreams import check_upstreams
    from llmkit.replay.server import ServerThread
    from llmkit.simulate.app import create_app
    from llmkit.simulate.settings import SimSettings

    full = ServerThread(create_app(SimSettings(speed=0, seed=1))).start()
    local = ServerThread(create_app(SimSettings(speed=0, seed=1, profile="chat-completions-only"))).start()
    try:
        env = {"OPENAI_API_KEY": "sk-simulated", "ANTHROPIC_API_KEY": "sk-ant-simulated", "GEMINI_API_KEY": "sim",
               **{f"LLMKIT_UPSTREAM_{p}": full.url for p in ("OPENAI", "ANTHROPIC", "GEMINI")}}
        checks = {c.name: c for c in check_upstreams(env)}
        assert sorted(checks) == ["anthropic upstream", "gemini upstream", "openai upstream"]
        assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]
        assert "sk-simulated" not in "".join(c.line() for c in checks.values())

        env = {f"LLMKIT_UPSTREAM_{p}": local.url for p in ("OPENAI", "ANTHROPIC", "GEMINI")}
        checks = {c.name: c for c in check_upstreams(env)}
        openai_check = checks["openai upstream"]
        assert openai_check.warning and "chat completions answers" in openai_check.detail
        assert "responses missing (404)" in openai_check.detail and "skip in live mode" in openai_check.fix
        assert not checks["anthropic upstream"].ok and not checks["anthropic upstream"].warning
        assert "messages missing (404)" in checks["anthropic upstream"].detail
    finally:
        full.stop()
        local.stop()
    down = check_upstreams({"LLMKIT_UPSTREAM_OPENAI": local.url}, timeout=2)
    assert not down[0].ok and "no answer" in down[0].detail and "start the server" in down[0].fix
    assert check_upstreams({}) == []
