"""``make lab`` as a new user runs it: the server starts (as root too), lists the lessons, runs a kernel in replay
mode, and serves the settings override that keeps the news pop-up off lesson 0.

Introduced with the README's first command (``make lab``, lesson 0, 00_setup_and_replay). The test starts
``make lab`` on a free loopback port as the current user (root in CI) with ``--no-browser``, talks to the server
only through its REST API and the kernel's websocket channels, and stops everything by process group at the end,
checking that the kernel is gone too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSON = "00_setup_and_replay"
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    proc: subprocess.Popen
    log: Path
    started: float

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"token {self.token}"}, timeout=10)

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"Authorization": f"token {self.token}"}, timeout=30)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to make's process group (make and Jupyter), then SIGKILL if it does not end in time."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            deadline = time.monotonic() + wait  # make is gone; give Jupyter, in the same group, the same time
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.2)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    port, token = _free_port(), uuid.uuid4().hex
    log = tmp_path_factory.mktemp("lab") / "make-lab.log"
    venv = Path(sys.prefix)
    # No provider key or proxy reaches the server: replay mode, loopback only.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and "proxy" not in k.lower()}
    env.update(LLMKIT_MODE="replay", LLMKIT_SPEED="0")
    started = time.perf_counter()
    with log.open("w") as out:
        # -o: use the venv the tests run in as it is, even if pyproject.toml is newer than its stamp.
        proc = subprocess.Popen(
            ["make", "-C", str(ROOT), f"VENV={venv}", "-o", str(venv / ".installed"), "lab",
             f"JUPYTER_PORT={port}", f"JUPYTER_TOKEN={token}", "LAB_ARGS=--no-browser --ServerApp.port_retries=0"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, proc, log, started)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"make lab exited with {proc.returncode}:\n{log.read_text()}"
            try:
                if lab.get("/api/status").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no /api/status within 120 s:\n{log.read_text()}"
            time.sleep(0.3)
        yield lab
    finally:
        _stop_group(proc)


def _execute(lab: Lab, kernel_id: str, code: str, timeout: float = 120) -> tuple[str, dict, str]:
    """Run code in the kernel over its websocket channels; returns (stdout, execute_result data, reply status)."""
    from websocket import create_connection

    ws = create_connection(f"ws://127.0.0.1:{lab.url.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels",
                           header=[f"Authorization: token {lab.token}"], timeout=timeout)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "channel": "shell", "buffers": [], "metadata": {}, "parent_header": {},
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    stdout, result, status, idle = "", {}, "", False
    deadline = time.monotonic() + timeout
    try:
        while not (status and idle):
            assert time.monotonic() < deadline, f"no reply within {timeout} s; stdout so far: {stdout!r}"
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                stdout += content["text"]
            elif kind == "execute_result":
                result = content["data"]
            elif kind == "error":
                stdout += "\n".join(content["traceback"])
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
    finally:
        ws.close()
    return stdout, result, status


def test_make_lab_serves_the_lessons_and_runs_lesson_0_in_replay_mode(lab: Lab) -> None:
    banner = lab.log.read_text()
    if os.geteuid() == 0:
        assert "--allow-root" in banner, banner  # said in the banner and passed to Jupyter
    listed = {item["name"] for item in lab.get("/api/contents").json()["content"]}
    assert f"{LESSON}.ipynb" in listed, sorted(listed)

    kernel = lab.post("/api/kernels", {"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    stdout, result, status = _execute(lab, kernel_id, f"import os, llmkit\nkit = llmkit.start({LESSON!r})\n"
                                      "print('kernel pid', os.getpid())\nkit.mode")
    ready = time.perf_counter() - lab.started
    print(f"make lab: a kernel ran lesson 0's first cell {ready:.1f} s after make started")
    assert status == "ok", stdout
    assert result.get("text/plain") == "'replay'", (result, stdout)
    assert "replay mode" in stdout, stdout  # what llmkit.start prints first
    pid = int(stdout.split("kernel pid", 1)[1].split()[0])
    assert psutil.pid_exists(pid)

    settings = lab.get(f"/lab/api/settings/{NOTIFICATION_PLUGIN}")
    assert settings.status_code == 200, settings.text
    served = settings.json()
    schema = served["schema"]["properties"]
    assert schema["fetchNews"]["default"] == "false" and schema["checkForUpdates"]["default"] is False
    assert served.get("settings", {}).get("fetchNews", "false") == "false"  # no user setting turns it back on

    _stop_group(lab.proc)
    assert lab.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(lab.proc.pid, 0)  # nothing left in make's process group
    deadline = time.monotonic() + 15
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"the kernel (pid {pid}) outlived the server"
        time.sleep(0.2)
