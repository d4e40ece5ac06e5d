"""Lesson 2 (02_streaming) in JupyterLab, in headless Chromium: the StreamView widget shows the answer growing
and then complete, and its Stop button ends the stream early.

JupyterLab runs on a free loopback port with a random token, on a temporary copy of the lesson and its
cassette, in replay mode at the recorded pace. The browser is Debian's chromium driven by Playwright (never a
downloaded browser); the test skips when it is absent. Everything is bounded: the whole test takes well under
a minute, and each wait fails with what it was waiting for.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import ARGS, CHROMIUM, needs_chromium

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "02_streaming.ipynb"
CASSETTE = ROOT / "notebooks" / "cassettes" / "02_streaming.json"
SETUP_CELL = 'kit = llmkit.start("02_streaming")'
STREAM_CELL = "view = StreamView("

pytestmark = needs_chromium


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _full_answer() -> str:
    """The answer the streaming cell's request is recorded with (the lesson's cassette)."""
    cassette = json.loads(CASSETTE.read_text())
    for interaction in cassette["interactions"]:
        if "Server-Sent Events in a short markdown" in json.dumps(interaction["request"]["body"]):
            text = ""
            for frame in interaction["response"]["stream"]:
                data = frame["raw"].removeprefix("data: ").strip()
                if data and data != "[DONE]":
                    for choice in json.loads(data).get("choices", []):
                        text += choice["delta"].get("content") or ""
            return text
    raise AssertionError("the lesson's cassette has no recording of the streaming cell's request")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """JupyterLab on a copy of lesson 2; yields the notebook's URL (with token) and the log file."""
    if not LESSON.exists() or not CASSETTE.exists():
        pytest.skip("lesson 2 or its cassette is missing")
    root = tmp_path_factory.mktemp("lab")
    (root / "cassettes").mkdir()
    shutil.copy(LESSON, root / LESSON.name)
    shutil.copy(CASSETTE, root / "cassettes" / CASSETTE.name)
    home = tmp_path_factory.mktemp("jupyter-home")  # Jupyter's own files, apart from the notebook folder
    settings = home / "user-settings"
    # No cell virtualisation (every cell stays in the DOM), no news or update pop-ups over the notebook.
    for name, value in {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                              "checkForUpdates": False},
    }.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), os.urandom(16).hex()
    env = {**os.environ, "LLMKIT_MODE": "replay", "LLMKIT_SPEED": "1",
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython")}
    log = home / "jupyterlab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
             f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"{base}/lab/tree/{LESSON.name}?token={token}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page(lab, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    url, log = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        pg.goto(url)
        try:
            yield pg
        except BaseException:
            raise
        finally:
            shot = tmp_path / "lesson2.png"
            try:
                pg.screenshot(path=str(shot), full_page=False)
                print(f"screenshot: {shot}; JupyterLab log: {log}")
            except Exception:  # noqa: BLE001 - a failed screenshot must not hide the test's own failure
                pass
            context.close()
            browser.close()


def _run_cell(pg, text: str, ran) -> object:
    """Select the code cell containing ``text`` (click its prompt), run it with Shift+Enter, and wait until
    ``ran(cell)`` says it did. A key press that lands while the kernel is still settling can be lost, so the
    run is retried, a bounded number of times."""
    cell = pg.locator(".jp-Notebook .jp-CodeCell").filter(has_text=text).first
    for _ in range(3):
        cell.locator(".jp-InputPrompt").first.click()
        pg.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if ran(cell):
                return cell
            time.sleep(0.05)
    raise AssertionError(f"the cell containing {text!r} did not run")


def _wait(what: str, predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _view_state(cell) -> tuple[str, str, bool]:
    """(text shown, status line, whether the Stop button is enabled) of the cell's StreamView, if any."""
    view = cell.locator(".llmkit-stream-view")
    if view.count() == 0:
        return "", "", False
    text = view.locator(".llmkit-stream-text").first.inner_text()
    status = view.locator(".llmkit-stream-status").first.inner_text()
    button = view.locator(".llmkit-stream-stop button, button.llmkit-stream-stop").first
    return text, status, button.is_enabled()


def test_stream_view_grows_completes_and_stops(page) -> None:
    pg = page
    full = _full_answer()
    last_sentence = full.strip().splitlines()[-1].strip()
    pg.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=45_000)
    _wait("the kernel to be connected and idle",
          lambda: any("| Idle" in t for t in pg.locator(".jp-StatusBar-Widget").all_inner_texts()), timeout=45)

    # The banner of a fresh run says speed 1 (the saved output was made at speed 0).
    _run_cell(pg, SETUP_CELL, lambda c: "replay mode" in (out := c.locator(".jp-OutputArea").inner_text())
              and "speed 1" in out)

    # 1. Run the streaming cell: the text grows in several steps, then the view says done.
    cell = _run_cell(pg, STREAM_CELL, lambda c: c.locator(".llmkit-stream-view").count() > 0)
    lengths: list[int] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        text, status, _ = _view_state(cell)
        if text and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
        if "done" in status:
            break
        time.sleep(0.05)
    text, status, enabled = _view_state(cell)
    assert "done" in status, f"the view never said done: {status!r}"
    # Growing, step by step (a render can briefly show "**bold" before its closing "**" arrives, so a length
    # may dip by a character or two; what matters is many steps from little to all).
    steps_up = sum(b > a for a, b in zip(lengths, lengths[1:], strict=False))
    assert steps_up >= 5 and lengths[0] < lengths[-1] / 3, f"the text should grow step by step: {lengths}"
    assert last_sentence.split("—")[0].strip()[:40] in text, "the complete answer should be shown"
    assert cell.locator(".llmkit-stream-text h2").count() == 1, "markdown should be rendered (the heading)"
    assert cell.locator(".llmkit-stream-text pre code").count() == 2, "both code blocks should be rendered"
    assert not enabled, "Stop is disabled once the stream is over"
    complete_length = len(text)

    # 2. Run it again and press Stop part-way: the stream ends early and stops growing.
    cell = _run_cell(pg, STREAM_CELL, lambda c: any(s in _view_state(c)[1] for s in ("waiting", "streaming")))
    _wait("some streamed text before pressing Stop",
          lambda: len(_view_state(cell)[0]) > 150 and _view_state(cell)[2], timeout=30)
    cell.locator(".llmkit-stream-view button").first.click()
    _wait("the view to report it was stopped", lambda: "stopped" in _view_state(cell)[1], timeout=10)
    text_after_stop = _view_state(cell)[0]
    time.sleep(1.0)  # had it not been cancelled, another ~60 tokens would arrive in this second
    text, status, enabled = _view_state(cell)
    assert text == text_after_stop, "the text must not grow after Stop"
    assert 150 < len(text) < complete_length - 200, (len(text), complete_length)
    assert not enabled and "stopped by you" in status
