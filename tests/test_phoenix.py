"""Phoenix, the trace UI of lesson 12 (12_observability_and_evals), run from its own venv by ``llmkit.phoenix``.

One real Phoenix (``.venv/phoenix``, ``make venv-phoenix``) serves the module: spans exported by the
OpenTelemetry SDK over OTLP/HTTP come back through its REST API with their names, links and attributes, and
``stop()`` leaves no process, port or folder behind. Small stand-in executables cover what a real Phoenix
cannot be made to do on demand: be missing, exit at once, never answer, or outlive a killed parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmkit.phoenix import Phoenix, TraceUIError

PROJECT = "llmkit-tests"


@pytest.fixture(scope="module")
def ui() -> Iterator[Phoenix]:
    with Phoenix.start(project=PROJECT) as phoenix:
        yield phoenix


def export(ui: Phoenix, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Send one small agent trace to Phoenix; return its trace id and each span's id by name."""
    provider = TracerProvider(resource=Resource.create({"service.name": "llmkit-tests"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ui.otlp_traces_url, headers=headers)))
    tracer = provider.get_tracer("tests.phoenix")
    ids: dict[str, str] = {}
    with tracer.start_as_current_span("invoke_agent support-bot", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-bot"}) as agent:
        with tracer.start_as_current_span("chat gpt-4.1-mini", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4.1-mini", "gen_ai.request.temperature": 0.25,
                "gen_ai.usage.input_tokens": 42, "gen_ai.usage.output_tokens": 7,
                "gen_ai.response.finish_reasons": ["tool_calls"], "gen_ai.request.stream": False}) as chat:
            chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls"})
            ids["chat"] = format(chat.get_span_context().span_id, "016x")
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}) as tool:
            tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
            ids["tool"] = format(tool.get_span_context().span_id, "016x")
        ids["agent"] = format(agent.get_span_context().span_id, "016x")
        trace_id = format(agent.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()
    return trace_id, ids


def test_exported_spans_come_back_with_their_names_links_and_attributes(ui: Phoenix) -> None:
    trace_id, ids = export(ui, ui.otlp_headers)
    found = [s for s in ui.wait_for_spans(n=3, timeout=20) if s["context"]["trace_id"] == trace_id]
    by_name = {s["name"]: s for s in found}
    assert sorted(by_name) == ["chat gpt-4.1-mini", "execute_tool lookup_order", "invoke_agent support-bot"]
    agent, chat, tool = (by_name[n] for n in ("invoke_agent support-bot", "chat gpt-4.1-mini",
                                              "execute_tool lookup_order"))
    assert agent["context"]["span_id"] == ids["agent"] and agent["parent_id"] is None
    assert chat["context"]["span_id"] == ids["chat"] and chat["parent_id"] == ids["agent"]
    assert tool["context"]["span_id"] == ids["tool"] and tool["parent_id"] == ids["agent"]

    attributes = chat["attributes"]
    assert attributes["gen_ai.request.model"] == "gpt-4.1-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 42 and attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.request.temperature"] == 0.25
    assert attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attributes["gen_ai.request.stream"] is False
    assert [e["name"] for e in chat["events"]] == ["gen_ai.choice"]
    assert chat["events"][0]["attributes"]["finish_reason"] == "tool_calls"
    assert tool["attributes"]["gen_ai.tool.name"] == "lookup_order"
    assert (tool["status_code"], tool["status_message"]) == ("ERROR", "order 42 not found")
    # Phoenix reads the GenAI conventions into its own span kinds (the UI's badges and icons)
    assert (agent["span_kind"], chat["span_kind"], tool["span_kind"]) == ("AGENT", "LLM", "TOOL")
    assert chat["start_time"] >= agent["start_time"] and chat["end_time"] <= agent["end_time"]

    # oldest first, and limit is honoured
    assert [s["name"] for s in ui.spans(limit=1)] == [ui.spans()[0]["name"]]
    assert ui.trace_url(trace_id) == f"{ui.project_url()}/traces/{trace_id}"
    assert httpx.get(ui.trace_url(trace_id), trust_env=False).status_code == 200  # the UI's page


def test_spans_go_to_the_project_their_exporter_names(ui: Phoenix) -> None:
    trace_id, _ = export(ui, {"x-project-name": "elsewhere"})
    found = ui.wait_for_spans("elsewhere", n=3, timeout=20)
    assert {s["context"]["trace_id"] for s in found} == {trace_id}
    assert trace_id not in {s["context"]["trace_id"] for s in ui.spans()}
    assert ui.project_url("elsewhere") != ui.project_url()
    assert ui.trace_url(trace_id, "elsewhere").startswith(ui.project_url("elsewhere") + "/traces/")


def test_a_project_without_spans_is_empty_and_waiting_for_it_says_what_to_check(ui: Phoenix) -> None:
    assert ui.spans("nobody-sends-here") == []
    with pytest.raises(TraceUIError, match="force_flush") as raised:
        ui.wait_for_spans("nobody-sends-here", n=1, timeout=0.5)
    assert "0 of 1 spans" in str(raised.value) and ui.otlp_traces_url in str(raised.value)
    with pytest.raises(TraceUIError, match="no project 'nobody-sends-here'"):
        ui.trace_url("0" * 32, "nobody-sends-here")


# --- stand-ins for a Phoenix that misbehaves -----------------------------------------------------------
def stand_in(folder: Path, body: str) -> Path:
    """An executable shell script that Phoenix.start() runs as ``<script> serve``."""
    script = folder / "phoenix"
    script.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): it has exited, only its parent has not reaped it yet
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_missing_phoenix_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMKIT_PHOENIX", str(tmp_path / "no-such-phoenix"))
    with pytest.raises(TraceUIError, match="make venv-phoenix") as raised:
        Phoenix.start()
    assert "LLMKIT_PHOENIX" in str(raised.value) and "no-such-phoenix" in str(raised.value)

    monkeypatch.delenv("LLMKIT_PHOENIX")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # a venv without .venv/phoenix inside
    with pytest.raises(TraceUIError, match="make venv-phoenix") as raised:
        Phoenix.start()
    assert str(tmp_path / "phoenix" / "bin" / "phoenix") in str(raised.value)


def test_a_phoenix_that_exits_at_once_shows_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHOENIX_SQL_DATABASE_URL", "postgresql://somewhere/else")  # not passed on
    monkeypatch.setenv("LLMKIT_PHOENIX", str(stand_in(tmp_path, """\
        echo "args: $*"
        echo "host=$PHOENIX_HOST telemetry=$PHOENIX_TELEMETRY_ENABLED db=${PHOENIX_SQL_DATABASE_URL:-none}"
        echo "dir=$PHOENIX_WORKING_DIR"
        echo "sqlite3.OperationalError: unable to open database file" >&2
        exit 1
        """)))
    with pytest.raises(TraceUIError) as raised:
        Phoenix.start(timeout=30)
    message = str(raised.value)
    assert "exited with code 1" in message and "make venv-phoenix" in message
    assert "sqlite3.OperationalError: unable to open database file" in message  # stderr is in the log too
    assert "args: serve" in message and "host=127.0.0.1 telemetry=false db=none" in message
    working_dir = Path(message.split("dir=")[1].split()[0])
    assert working_dir.name.startswith("llmkit-phoenix-") and not working_dir.exists()


def test_a_phoenix_that_never_answers_is_stopped_with_its_children(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("LLMKIT_PHOENIX", str(stand_in(tmp_path, f"""\
        echo "loading a very large model"
        sleep 60 &
        echo "$$ $!" > {pids}
        exec sleep 60
        """)))
    started = time.monotonic()
    with pytest.raises(TraceUIError, match=r"did not answer .*/healthz within 1 s") as raised:
        Phoenix.start(timeout=1)
    assert time.monotonic() - started < 15
    assert "loading a very large model" in str(raised.value) and "timeout=" in str(raised.value)
    for pid in map(int, pids.read_text().split()):  # the server and the child it started: one process group
        assert gone_within(pid, 5), f"process {pid} outlived Phoenix.start()"


FAKE_SERVER = """\
import http.server, os

class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass

http.server.HTTPServer((os.environ["PHOENIX_HOST"], int(os.environ["PHOENIX_PORT"])), Healthy).serve_forever()
"""


@pytest.fixture
def healthy_stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A 'Phoenix' that answers /healthz at once: a few lines of http.server."""
    (tmp_path / "server.py").write_text(FAKE_SERVER)
    script = stand_in(tmp_path, f'exec "{sys.executable}" "{tmp_path / "server.py"}"\n')
    monkeypatch.setenv("LLMKIT_PHOENIX", str(script))
    return script


def test_a_with_block_stops_phoenix_and_removes_its_folder(healthy_stand_in: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Phoenix.start(port=port) as ui:
        assert ui.port == port and ui.url == f"http://127.0.0.1:{port}" and ui.running
        assert ui.otlp_traces_url == f"http://127.0.0.1:{port}/v1/traces" and ui.grpc_port != port
        assert ui.working_dir.is_dir() and "running" in repr(ui)
    assert not ui.running and not ui.working_dir.exists() and not alive(ui.pid)


CHILD = """\
import json, os, signal, sys
from llmkit.phoenix import Phoenix
ui = Phoenix.start()
print(json.dumps({"pid": ui.pid, "dir": str(ui.working_dir)}), flush=True)
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["exits", "killed"])
def test_phoenix_does_not_outlive_the_python_that_started_it(healthy_stand_in: Path, how: str) -> None:
    if how == "killed" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux only")
    done = subprocess.run([sys.executable, "-c", CHILD, how], capture_output=True, text=True, timeout=60)
    started = json.loads(done.stdout.splitlines()[0])
    try:
        assert gone_within(started["pid"], 5), f"Phoenix outlived a Python that {how}"
        if how == "exits":  # atexit ran: the folder is gone too
            assert not Path(started["dir"]).exists()
    finally:
        if alive(started["pid"]):  # the test failed: leave nothing running
            os.kill(started["pid"], signal.SIGKILL)
        shutil.rmtree(started["dir"], ignore_errors=True)  # a SIGKILL leaves it in the temporary directory


def test_stop_ends_the_process_frees_its_ports_and_removes_its_folder(ui: Phoenix) -> None:
    """Runs last: it stops the module's Phoenix."""
    pid, ports, working_dir = ui.pid, (ui.port, ui.grpc_port), ui.working_dir
    assert alive(pid) and (working_dir / "phoenix.db").is_file()
    ui.stop()
    assert not alive(pid) and not ui.running and not working_dir.exists()
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    ui.stop()  # twice is fine
    with pytest.raises(TraceUIError, match="It was stopped"):
        ui.spans()
