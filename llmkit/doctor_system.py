"""``llmkit doctor``'s machine checks: who runs it, which PyTorch build, system packages, disk, the README commands.

Introduced in lesson 10 (10_benchmarks), next to :mod:`llmkit.doctor`. Every check takes what it inspects as
arguments (user id, ``PATH``, environment, folder) with the running machine as the default, so a test can ask
"what would a fresh machine say" without changing this one. Each missing piece comes with the one command that
fixes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .doctor import Check

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TO_CPU_TORCH = f"make clean-venv && make venv TORCH_INDEX_URL={CPU_INDEX}"
MIN_FREE_BYTES = 2 * 1024**3  # a venv with the CPU build of PyTorch takes about 1.5 GB; the CUDA build several
SYSTEM_PACKAGES = {"chromium": "the browser tests (make test)", "redis-server": "the relay's Redis backend (lesson 9)"}
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg")
# Where a PostgreSQL server is configured: the memory tests' server (lesson 7), else the usual DATABASE_URL.
POSTGRES_VARS = ("LLMKIT_MEMORY_TEST_URL", "DATABASE_URL")


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1  # -1: not a POSIX user (Windows)


def _apt(packages: str, euid: int) -> str:
    return f"{'' if euid == 0 else 'sudo '}apt-get install -y {packages}"


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_user(euid: int | None = None) -> Check:
    """Root or not: as root, ``make lab`` passes ``--allow-root`` to Jupyter (lesson 0, 00_setup_and_replay)."""
    euid = _euid() if euid is None else euid
    if euid == 0:
        return Check("user", True, "root: make lab passes --allow-root to Jupyter (normal in a container)")
    return Check("user", True, f"uid {euid}, not root: Jupyter needs no --allow-root" if euid >= 0 else
                 "not a POSIX user: Jupyter needs no --allow-root")


@dataclass(frozen=True)
class TorchBuild:
    version: str
    cuda: bool
    bytes_on_disk: int  # torch and the CUDA wheels it pulled in (nvidia-*, triton, cuda-*), from their RECORDs
    packages: tuple[str, ...]


def _dist_bytes(dist) -> int:
    total = 0
    for f in dist.files or []:
        if f.size is not None:
            total += f.size
        else:  # a RECORD line without a size (the RECORD itself, .pyc files): measure the file
            path = Path(dist.locate_file(f))
            total += path.stat().st_size if path.is_file() else 0
    return total


def torch_build() -> TorchBuild | None:
    """The installed PyTorch: version, CPU or CUDA build, and its size on disk; None if it is not installed.

    Read from the package metadata, without importing torch (lesson 7, 07_memory_systems, uses it).
    """
    import re
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        torch = distribution("torch")
    except PackageNotFoundError:
        return None
    names = [torch.metadata["Name"]]
    total = _dist_bytes(torch)
    for req in torch.requires or []:
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        if not re.match(r"(nvidia-|triton$|cuda-)", name):
            continue
        try:
            dep = distribution(name)
        except PackageNotFoundError:
            continue  # a requirement for another platform, or an optional one
        names.append(dep.metadata["Name"])
        total += _dist_bytes(dep)
    cuda = any(str(f).startswith("torch/lib/libtorch_cuda") for f in torch.files or [])
    return TorchBuild(torch.version, cuda, total, tuple(names))


def _has_nvidia_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def check_torch(build: TorchBuild | None = None, gpu: bool | None = None) -> Check:
    """Which PyTorch build is installed and what it weighs; the CUDA build without a GPU is a warning."""
    build = torch_build() if build is None else build
    if build is None:
        return Check("torch", False, "PyTorch is not installed: lesson 7's embeddings need it",
                     f"make venv TORCH_INDEX_URL={CPU_INDEX}")
    gpu = _has_nvidia_gpu() if gpu is None else gpu
    kind = "CUDA" if build.cuda else "CPU"
    detail = f"torch {build.version}, {kind} build, {_human(build.bytes_on_disk)} on disk"
    if len(build.packages) > 1:
        detail += f" with {len(build.packages) - 1} CUDA packages"
    if build.cuda and not gpu and sys.platform.startswith("linux"):
        return Check("torch", False, detail + "; no NVIDIA GPU here, so the CPU build does the same work in a "
                     "fraction of the space", TO_CPU_TORCH, warning=True)
    return Check("torch", True, detail)


def check_system_packages(path: str | None = None, euid: int | None = None) -> list[Check]:
    """chromium and redis-server on ``PATH``; ``make sysdeps`` (as root) or apt-get installs what is missing."""
    euid = _euid() if euid is None else euid
    out = []
    for program, why in SYSTEM_PACKAGES.items():
        found = shutil.which(program, path=path)
        out.append(Check(program, bool(found), found or f"not installed: needed for {why}; the lessons run without it",
                         "" if found else ("make sysdeps" if euid == 0 else _apt(program, euid)),
                         warning=not found))
    return out


def check_postgres(environ: dict[str, str] | None = None, timeout: float = 2.0) -> list[Check]:
    """PostgreSQL, only when ``LLMKIT_MEMORY_TEST_URL`` or ``DATABASE_URL`` names one: does it accept connections?"""
    env = os.environ if environ is None else environ
    var = next((v for v in POSTGRES_VARS if urlsplit(env.get(v, "")).scheme in POSTGRES_SCHEMES), None)
    if var is None:
        return []
    parts = urlsplit(env[var])
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    where = f"{host}:{port}"  # never the whole URL: it may carry a password
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return [Check("postgresql", True, f"{var}'s server at {where} accepts connections")]
    except OSError as e:
        return [Check("postgresql", False, f"{var} names {where}, which refused or did not answer "
                      f"({type(e).__name__})", f"sudo service postgresql start (or unset {var})")]


def check_disk(folder: Path | None = None, need: int = MIN_FREE_BYTES) -> Check:
    """Free space where the venv lives (the repository's folder)."""
    folder = ROOT if folder is None else folder
    free = shutil.disk_usage(folder).free
    ok = free >= need
    return Check("disk", ok, f"{_human(free)} free at {folder}" + ("" if ok else f", less than {_human(need)}"),
                 "" if ok else f"{sys.executable} -m pip cache purge  (pip's download cache; then check again)")


def _venv_python_ok(python: str) -> str:
    """Empty if ``python`` can create the venv (3.11+, with venv and ensurepip), else what is wrong."""
    probe = "import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 3)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python} did not run ({type(e).__name__})"
    if done.returncode == 3:
        return f"{python} is older than 3.11"
    return "" if done.returncode == 0 else f"{python} has no venv/ensurepip module"


def check_readme_commands(root: Path | None = None, path: str | None = None, euid: int | None = None,
                          venv: Path | None = None) -> list[Check]:
    """Would ``make lab`` and ``make test`` work here, as the README says? (lesson 0, 00_setup_and_replay)."""
    root = ROOT if root is None else root
    euid = _euid() if euid is None else euid
    venv = root / ".venv" if venv is None else venv
    if not (root / "Makefile").is_file():
        note = "llmkit is installed without its repository: clone it to use make lab and make test"
        return [Check(name, False, note, "git clone the llmkit repository and cd into it", warning=True)
                for name in ("make lab", "make test")]
    problems, fix = [], ""
    if not shutil.which("make", path=path):
        problems.append("make is not installed")
        fix = _apt("make", euid)
    if not (venv / "bin" / "jupyter").exists():
        python = shutil.which(os.environ.get("PYTHON", "python3"), path=path)
        wrong = "python3 is not installed" if not python else _venv_python_ok(python)
        if wrong:
            problems.append(wrong + " (needed to create .venv)")
            fix = fix or _apt("python3 python3-venv", euid)
    lab = Check("make lab", not problems, "; ".join(problems) or
                ("would work" + (" (as root, with --allow-root)" if euid == 0 else "")), fix)
    missing = [p for p in SYSTEM_PACKAGES if not shutil.which(p, path=path)]
    test_problems, test_fix = list(problems), fix
    if missing and euid != 0:  # as root, make test installs them itself (scripts/sysdeps.sh)
        test_problems.append(f"{' and '.join(missing)} missing, and only root can install them")
        test_fix = test_fix or _apt(" ".join(missing), euid)
    elif missing and not shutil.which("apt-get", path=path):
        test_problems.append(f"{' and '.join(missing)} missing, and there is no apt-get to install them")
        test_fix = test_fix or f"install {' and '.join(missing)} with this system's package manager"
    detail = "; ".join(test_problems) or ("would work" + (f" (it installs {' and '.join(missing)} first)"
                                                          if missing else ""))
    return [lab, Check("make test", not test_problems, detail, test_fix)]


def machine_checks() -> list[Check]:
    """Every machine check, in the order ``llmkit doctor`` prints them (lesson 10, 10_benchmarks)."""
    return [check_user(), check_torch(), *check_system_packages(), *check_postgres(), check_disk(),
            *check_readme_commands()]
