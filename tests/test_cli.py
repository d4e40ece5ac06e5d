"""The ``llmkit`` command: serve, cassette import-vcr, cassette check.

Introduced in lesson 0 (00_setup_and_replay). ``serve`` runs as a real subprocess (its first line is the
URL; it answers; a signal stops it and the play log is written); the other commands run in process.
"""

from __future__ import annotations

import base64
import gzip
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import httpx2
import pytest
from replay_helpers import OPENAI_CHAT, cassette_of, chat_body, scripted

from llmkit import cli
from llmkit.replay.cassette import Cassette
from llmkit.replay.scripted import Reply

REPO = Path(__file__).resolve().parents[1]


def lines_of(proc: subprocess.Popen) -> queue.Queue:
    """Read a process's stdout in a thread, so the test can wait for a line with a timeout."""
    out: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            out.put(line.rstrip("\n"))
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


@pytest.fixture
def two_interactions(tmp_path) -> Path:
    cassette = cassette_of(scripted("openai", OPENAI_CHAT, chat_body("hi"), "Hello from the CLI."),
                           scripted("openai", OPENAI_CHAT, chat_body("bye", stream=True), "Goodbye."))
    return cassette.save(tmp_path / "cli.json")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_its_url_first_answers_and_stops_on_a_signal(two_interactions, tmp_path, stop):
    log = tmp_path / "played.json"
    proc = subprocess.Popen([sys.executable, "-m", "llmkit.cli", "serve", "--cassette", str(two_interactions),
                             "--speed", "0", "--play-log", str(log)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = lines_of(proc)
        first = out.get(timeout=30)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first), first
        response = httpx2.post(f"{first}{OPENAI_CHAT}", json=chat_body("hi"), timeout=10)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "Hello from the CLI."
        miss = httpx2.post(f"{first}{OPENAI_CHAT}", json=chat_body("something new"), timeout=10)
        assert miss.status_code == 400 and miss.json()["error"]["code"] == "cassette_miss"
        with httpx2.Client() as client:  # TCP_NODELAY is on: no ~40 ms Nagle/delayed-ACK stall per call
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                client.post(f"{first}{OPENAI_CHAT}", json=chat_body("hi"), timeout=10)
                times.append(time.perf_counter() - t0)
        assert sorted(times)[2] < 0.025, times
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = []
    while (line := out.get(timeout=5)) is not None:
        rest.append(line)
    text = "\n".join(rest)
    assert "cli.json (2 interactions" in text and "interaction #0 (200)" in text and "MISS (400)" in text
    assert "stopped · played 1 of 2 interactions · 1 misses" in text
    assert json.loads(log.read_text())["played"] == [0]
    assert cli.main(["cassette", "check", str(two_interactions), "--played", str(log)]) == 0


def test_the_console_script_is_declared():
    try:
        scripts = {ep.name: ep.value for ep in distribution("llmkit").entry_points if ep.group == "console_scripts"}
    except PackageNotFoundError:
        pytest.skip("llmkit is not installed (pip install -e .)")
    assert scripts["llmkit"] == "llmkit.cli:main"


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    assert "serve" in usage and "cassette" in usage
    with pytest.raises(SystemExit) as info:
        cli.main([])  # a command is required
    assert info.value.code == 2


def test_python_dash_m_llmkit_is_the_same_command(tmp_path, monkeypatch):
    """``python -m llmkit`` runs cli.main in a fresh interpreter: same help, same exit codes."""
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help to the terminal width: the same on both sides

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "llmkit", *args], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    shown = run("--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == cli.build_parser().format_help()
    assert run().returncode == 2  # a command is required, as for the console script
    missing = run("cassette", "check", str(tmp_path / "absent.json"))
    assert missing.returncode != 0 and "absent.json" in missing.stdout + missing.stderr


# --- cassette import-vcr ------------------------------------------------------------------------------
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8t"
GEMINI_KEY = "AIzaSy" + "Dk4Lq9Zx2Wv7Tn5Rm8Hb3Jc6Gf1Ps0Y"
CHAT_SSE = ('data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
            'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Bonjour "}}],"obfuscation":"x1"}\n\n'
            'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"à tous"}}]}\n\n'
            'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            "data: [DONE]\n\n")
GEMINI_SSE = ('data: {"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}]}\r\n\r\n'
              'data: {"candidates": [{"content": {"parts": [{"text": " there"}],"role": "model"},'
              '"finishReason": "STOP","index": 0}]}\r\n\r\n')
LEGACY_ARRAY = '[{\n  "candidates": [{"content": {"parts": [{"text": "Old"}]}}]\n}\r\n,\r\n{\n  "candidates": []\n}\n]'


def vcr_yaml() -> str:
    """A pytest-recording style cassette, written the way vcrpy writes it."""
    gz = base64.encodebytes(gzip.compress(CHAT_SSE.encode())).decode()
    binary = "\n".join("        " + line for line in gz.strip().splitlines())
    legacy = base64.b64encode(gzip.compress(LEGACY_ARRAY.encode())).decode()
    return f"""interactions:
- request:
    body: '{{"messages":[{{"role":"user","content":"Salut"}}],"model":"gpt-4o-mini","stream":true}}'
    headers:
      accept:
      - application/json
      authorization:
      - Bearer {OPENAI_KEY}
      x-stainless-os:
      - Linux
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body:
      string: !!binary |
{binary}
    headers:
      Content-Encoding:
      - gzip
      Content-Type:
      - text/event-stream; charset=utf-8
      Set-Cookie:
      - __cf_bm=abc; path=/
      openai-organization:
      - user-xyz
      x-request-id:
      - req_123
    status:
      code: 200
      message: OK
- request:
    body: !!python/unicode '{{"contents": [{{"parts": [{{"text": "Hello"}}], "role": "user"}}]}}'
    headers: {{}}
    method: POST
    uri: https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={GEMINI_KEY}
  response:
    body:
      string: {json.dumps(GEMINI_SSE)}
    headers:
      Content-Type:
      - text/event-stream
    status:
      code: 200
      message: OK
- request:
    body: null
    headers: {{}}
    method: GET
    uri: https://telemetry.example.com/v1/models
  response:
    body:
      string: '{{"data": []}}'
    headers: {{}}
    status:
      code: 200
      message: OK
- request:
    body: '{{"contents": [{{"parts": [{{"text": "Old times"}}]}}]}}'
    headers: {{}}
    method: POST
    uri: https://generativelanguage.googleapis.com/v1beta/models/gemini-pro:streamGenerateContent?%24alt=json%3Benum-encoding%3Dint
  response:
    body:
      string: {legacy}
    headers:
      Content-Encoding:
      - gzip
      Content-Type:
      - application/json; charset=UTF-8
    status:
      code: 200
      message: OK
version: 1
"""


def test_import_vcr_converts_a_vcrpy_cassette(tmp_path, capsys):
    source = tmp_path / "test_chat.yaml"
    source.write_text(vcr_yaml(), encoding="utf-8")
    target = tmp_path / "out" / "imported.json"
    assert cli.main(["cassette", "import-vcr", str(source), str(target)]) == 0
    printed = capsys.readouterr().out
    assert "3 interactions (gemini 2, openai 1)" in printed
    assert "skipped #2: GET telemetry.example.com/v1/models" in printed  # not a provider's host

    text = target.read_text(encoding="utf-8")
    assert OPENAI_KEY not in text and GEMINI_KEY not in text and "user-xyz" not in text and "Linux" not in text
    data = json.loads(text)
    assert data["provenance"]["kind"] == "recorded"
    assert data["provenance"]["source"] == "vcr import of test_chat.yaml"
    chat, gemini, legacy = data["interactions"]
    assert chat["request"]["body"]["messages"][0]["content"] == "Salut"
    assert set(chat["response"]["headers"]) == {"content-type", "x-request-id"}  # no gzip, cookie, org
    assert [f["raw"] for f in chat["response"]["stream"]] == [e + "\n\n" for e in CHAT_SSE.split("\n\n")[:-1]]
    assert gemini["request"]["query"] == "alt=sse"  # the key is gone from the query
    assert "".join(f["raw"] for f in gemini["response"]["stream"]) == GEMINI_SSE
    assert all(f["raw"].endswith("\r\n\r\n") for f in gemini["response"]["stream"])
    assert [f["raw"] for f in legacy["response"]["stream"]] == [LEGACY_ARRAY]  # one frame, as sent

    cassette = Cassette.load(target)
    assert cassette.interactions[0].response.stream[2].raw.endswith('"à tous"}}]}\n\n')
    assert cli.main(["cassette", "check", str(target)]) == 0


def test_import_vcr_reports_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [unclosed", encoding="utf-8")
    assert cli.main(["cassette", "import-vcr", str(bad), str(tmp_path / "x.json")]) == 1
    assert "not a readable VCR cassette" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


# --- cassette check -----------------------------------------------------------------------------------
def test_check_fails_on_a_planted_secret_and_names_the_field(tmp_path, capsys):
    cassette = cassette_of(scripted("openai", OPENAI_CHAT, chat_body("hi", stream=True), Reply("Fine words.")))
    path = cassette.save(tmp_path / "clean.json")
    assert cli.main(["cassette", "check", str(path)]) == 0
    assert "clean.json: ok" in capsys.readouterr().out

    data = json.loads(path.read_text())
    frame = data["interactions"][0]["response"]["stream"][2]
    assert "words" in frame["raw"]
    frame["raw"] = frame["raw"].replace("words", f"words {OPENAI_KEY}")
    path.write_text(json.dumps(data))
    assert cli.main(["cassette", "check", str(path)]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "interactions[0].response.stream[2].raw" in printed

    data["interactions"][0]["response"]["stream"][2]["raw"] = "data: {}\n\n"
    data["interactions"][0]["response"]["headers"]["x-goog-echo"] = GEMINI_KEY
    path.write_text(json.dumps(data))
    assert cli.main(["cassette", "check", str(path)]) == 1
    assert "interactions[0].response.headers.x-goog-echo" in capsys.readouterr().out


def test_check_reports_structural_problems(tmp_path, capsys):
    path = cassette_of(scripted("openai", OPENAI_CHAT, chat_body("hi", stream=True), "ok")).save(tmp_path / "c.json")
    data = json.loads(path.read_text())
    data["interactions"][0]["request"]["provider"] = "anthropic"
    data["interactions"][0]["response"]["stream"][1]["raw"] = "data: {}"  # the blank line is missing
    data["interactions"][0]["request"]["body"]["messages"][0]["content"] = "blob:sha256:" + "ab" * 32
    path.write_text(json.dumps(data))
    assert cli.main(["cassette", "check", str(path)]) == 1
    printed = capsys.readouterr().out
    assert "belongs to openai, but the request says anthropic" in printed
    assert "image blob abababababab… is missing" in printed
    assert "warning: #0: SSE frame(s) [1] lack the blank line" in printed
    path.write_text("{not json")
    assert cli.main(["cassette", "check", str(path)]) == 1
    assert "not valid JSON" in capsys.readouterr().out


def test_bench_full_and_quick_together_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["bench", "memory", "--full", "--quick", "--out", str(tmp_path / "r.json")]) == 1
    assert "--full and --quick contradict each other" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
