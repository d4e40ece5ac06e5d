"""Arize Phoenix, the local trace UI of lesson 12 (12_observability_and_evals).

Phoenix is an application llmkit talks to over HTTP, not a library it imports: it lives in a virtual
environment of its own (``.venv/phoenix``, built by ``make venv-phoenix``) because it pins ``anthropic<2`` and
the lessons use anthropic 2. :class:`Phoenix` runs one ``phoenix serve`` on loopback; spans go in over
OTLP/HTTP and come back out through Phoenix's REST API::

    from llmkit.phoenix import Phoenix

    with Phoenix.start() as ui:          # ~15 s: Phoenix imports a lot and creates its SQLite database
        exporter = OTLPSpanExporter(endpoint=ui.otlp_traces_url)
        ...                              # traced calls, then tracer_provider.force_flush()
        spans = ui.wait_for_spans(n=4)
        print(ui.trace_url(spans[0]["context"]["trace_id"]))

The executable is ``$LLMKIT_PHOENIX`` when that is set, else ``phoenix/bin/phoenix`` inside the running venv.
Each server gets free ports and a fresh temporary working directory (its database and its log), removed by
``stop()``. ``import llmkit.phoenix`` imports nothing heavy; httpx loads on the first request.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from .errors import TraceUIError

__all__ = ["Phoenix", "TraceUIError"]

HOST = "127.0.0.1"
LOG_NAME = "phoenix.log"
LOG_LINES = 25  # how much of Phoenix's log an error message shows
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
PAGE = 1000  # the most spans Phoenix's REST API returns in one page
INSTALL_FIX = ("run `make venv-phoenix` in the llmkit repository (it builds .venv/phoenix), or set LLMKIT_PHOENIX "
               "to the path of a `phoenix` executable")

# Linux: the child asks the kernel for SIGTERM when the thread that started it dies, then becomes Phoenix (same
# pid). A notebook kernel killed with SIGKILL runs no atexit hook; this still ends its Phoenix.
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("llmkit: the process that started Phoenix is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


class Phoenix:
    """One Phoenix server process on 127.0.0.1 (lesson 12, 12_observability_and_evals).

    Start it with :meth:`start`; stop it with :meth:`stop` or a ``with`` block. It is also stopped when this
    object is garbage-collected, when Python exits, and (on Linux) when the process that started it dies.
    ``project`` is the Phoenix project that :meth:`spans`, :meth:`wait_for_spans` and :meth:`trace_url` read by
    default, and that exporters sending :attr:`otlp_headers` write to.
    """

    def __init__(self, process: subprocess.Popen[bytes], port: int, grpc_port: int, working_dir: Path,
                 log: IO[bytes], project: str) -> None:
        self.pid = process.pid
        self.port = port
        self.grpc_port = grpc_port
        self.working_dir = working_dir
        self.project = project
        self._process = process
        self._stop = weakref.finalize(self, _shutdown, process, working_dir, log)

    # --- starting and stopping --------------------------------------------------------------------------
    @classmethod
    def start(cls, *, port: int | None = None, project: str | None = None, timeout: float = 60) -> Phoenix:
        """Start ``phoenix serve`` on 127.0.0.1 and return once it answers ``/healthz``.

        Introduced in lesson 12 (12_observability_and_evals). ``port`` is the HTTP port (UI, REST API and
        OTLP/HTTP); a free one is picked when it is None, and the gRPC port is always picked free. Raises
        :class:`TraceUIError` when Phoenix is not installed, exits early or does not answer within ``timeout``
        seconds; the message names the fix and ends with Phoenix's log.
        """
        executable = _executable()
        http_port, grpc_port = _free_ports(port)
        working_dir = Path(tempfile.mkdtemp(prefix="llmkit-phoenix-"))
        log = (working_dir / LOG_NAME).open("wb")
        try:
            process = subprocess.Popen(_command(executable), env=_environment(http_port, grpc_port, working_dir),
                                       cwd=working_dir, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            log.close()
            shutil.rmtree(working_dir, ignore_errors=True)
            raise TraceUIError(f"could not run Phoenix ({executable}): {e}. To fix it, {INSTALL_FIX}.") from e
        ui = cls(process, http_port, grpc_port, working_dir, log, project or "default")
        try:
            ui._wait_until_healthy(timeout)
        except BaseException:
            ui.stop()
            raise
        return ui

    def stop(self) -> None:
        """SIGTERM Phoenix's process group, SIGKILL it after 10 s, and delete the working directory. Idempotent."""
        self._stop()

    @property
    def running(self) -> bool:
        """Whether the Phoenix process is still alive (False once :meth:`stop` ran)."""
        return self._stop.alive and self._process.poll() is None

    def __enter__(self) -> Phoenix:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Phoenix {self.url} pid={self.pid} project={self.project!r} {state}>"

    # --- where things are ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The web UI (and the REST API under ``/v1``): ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def otlp_traces_url(self) -> str:
        """Where an OTLP/HTTP span exporter sends spans (``OTLPSpanExporter(endpoint=...)``)."""
        return f"{self.url}/v1/traces"

    @property
    def otlp_headers(self) -> dict[str, str]:
        """Headers that put exported spans in :attr:`project` (``OTLPSpanExporter(headers=...)``).

        Without them Phoenix files spans under the resource attribute ``openinference.project.name``, else
        under "default"."""
        return {"x-project-name": self.project}

    def project_url(self, project: str | None = None) -> str:
        """The UI page of a project (its traces), once a span has reached it."""
        return f"{self.url}/projects/{quote(self._project_id(project), safe='')}"

    def trace_url(self, trace_id: str, project: str | None = None) -> str:
        """The UI page of one trace: ``/projects/<project id>/traces/<trace id>``.

        Introduced in lesson 12 (12_observability_and_evals). ``trace_id`` is the 32 hex digits of
        ``span["context"]["trace_id"]`` (or ``format(span.get_span_context().trace_id, "032x")``).
        """
        return f"{self.project_url(project)}/traces/{quote(trace_id, safe='')}"

    # --- reading spans back ------------------------------------------------------------------------------
    def spans(self, project: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Up to ``limit`` spans of a project, oldest first, as Phoenix's REST API gives them.

        Introduced in lesson 12 (12_observability_and_evals). Each is a dict with ``name``, ``context``
        (``trace_id``, ``span_id``), ``parent_id``, ``span_kind``, ``start_time``, ``end_time``, ``status_code``,
        ``attributes`` (flat, dotted keys such as ``gen_ai.request.model``) and ``events``. A project no span
        has reached yet has none: the list is empty.
        """
        name = project or self.project
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < limit:
            params: dict[str, Any] = {"limit": min(PAGE, limit - len(found)), "sort": "start_time", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            response = self._get(f"/v1/projects/{quote(name, safe='')}/spans", params)
            if response.status_code == 404:
                return []
            body = response.json()
            found.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
        return found

    def wait_for_spans(self, project: str | None = None, n: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """Poll :meth:`spans` until the project has at least ``n`` spans, and return them all.

        Export is asynchronous (a batch processor sends every few seconds, and Phoenix inserts in the
        background), so a span read right after a call may not be there yet. Raises :class:`TraceUIError`
        after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.spans(project, limit=max(n, PAGE))
            if len(found) >= n:
                return found
            if time.monotonic() > deadline:
                raise TraceUIError(
                    f"only {len(found)} of {n} spans reached Phoenix project {project or self.project!r} within "
                    f"{timeout:g} s. Flush the tracer provider first (tracer_provider.force_flush()), and check "
                    f"that its exporter sends to {self.otlp_traces_url} (with headers=ui.otlp_headers for a "
                    "project other than 'default').")
            time.sleep(0.2)

    # --- internals ---------------------------------------------------------------------------------------
    def _project_id(self, project: str | None) -> str:
        name = project or self.project
        response = self._get(f"/v1/projects/{quote(name, safe='')}")
        if response.status_code == 404:
            raise TraceUIError(f"Phoenix has no project {name!r} yet: it appears with its first span. Send one "
                               f"(and flush), or wait for it with ui.wait_for_spans({name!r}).")
        return str(response.json()["data"]["id"])

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET on Phoenix; a 404 is returned, other failures raise :class:`TraceUIError`."""
        import httpx

        try:
            response = httpx.get(self.url + path, params=params, timeout=10, trust_env=False)
        except httpx.HTTPError as e:
            raise TraceUIError(f"Phoenix at {self.url} did not answer GET {path}: {e}. "
                               f"{self._state()}" + _log_tail(self.working_dir)) from e
        if response.status_code != 404 and response.is_error:
            raise TraceUIError(f"Phoenix answered GET {path} with {response.status_code}: {response.text[:500]}")
        return response

    def _state(self) -> str:
        if not self._stop.alive:
            return "It was stopped: start another with Phoenix.start()."
        code = self._process.poll()
        if code is not None:
            return f"It exited with code {code}: start another with Phoenix.start()."
        return f"It is still running (pid {self.pid}); try again, or stop it and start another."

    def _wait_until_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise TraceUIError(
                        f"Phoenix exited with code {code} before it answered on {self.url}. Its log says why; "
                        f"a broken install is fixed the usual way: {INSTALL_FIX}." + _log_tail(self.working_dir))
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TraceUIError(
                        f"Phoenix did not answer {self.url}/healthz within {timeout:g} s, so it was stopped. On a "
                        "slow or busy machine (or its very first start) give it longer: Phoenix.start(timeout=180)."
                        + _log_tail(self.working_dir))
                time.sleep(0.1)


def _executable() -> Path:
    """``$LLMKIT_PHOENIX``, else ``phoenix/bin/phoenix`` in the running venv (where ``make venv-phoenix`` puts it)."""
    configured = os.environ.get("LLMKIT_PHOENIX")
    path = Path(configured) if configured else Path(sys.prefix) / "phoenix" / "bin" / "phoenix"
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"LLMKIT_PHOENIX={configured} is" if configured else f"{path} is"
        raise TraceUIError(f"Phoenix, the trace UI of lesson 12, is not installed: {where} not an executable "
                           f"file. To fix it, {INSTALL_FIX}.")
    return path


def _command(executable: Path) -> list[str]:
    argv = [str(executable), "serve"]
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        # the parent-death signal follows the starting *thread*: only the main thread lives as long as Python
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), *argv]
    return argv


def _free_ports(port: int | None) -> tuple[int, int]:
    """The HTTP port (``port``, or a free one on 127.0.0.1) and a free gRPC port. Phoenix binds gRPC on every
    interface whatever PHOENIX_HOST says, so that one is checked there."""
    with socket.socket() as http, socket.socket() as grpc:
        grpc.bind(("", 0))
        if port is None:
            http.bind((HOST, 0))
            port = http.getsockname()[1]
        return port, grpc.getsockname()[1]


def _environment(port: int, grpc_port: int, working_dir: Path) -> dict[str, str]:
    """This process's environment without Phoenix, OpenTelemetry or venv settings, plus ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PHOENIX_", "OTEL_")) and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update({
        "PHOENIX_HOST": HOST,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_TELEMETRY_ENABLED": "false",  # no FullStory or Scarf pixels in the UI
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # no web fonts or downloads from the internet
    })
    return env


def _log_tail(working_dir: Path) -> str:
    try:
        lines = (working_dir / LOG_NAME).read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    if not lines:
        return "\nPhoenix's log is empty."
    return "\nThe last lines of Phoenix's log:\n" + "\n".join(lines[-LOG_LINES:])


def _shutdown(process: subprocess.Popen[bytes], working_dir: Path, log: IO[bytes]) -> None:
    """Stop the process group Phoenix leads and delete its working directory (the finalizer of a Phoenix)."""
    if process.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
    log.close()
    shutil.rmtree(working_dir, ignore_errors=True)
