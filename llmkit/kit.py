"""``llmkit.start(lesson)`` and the :class:`Kit` it returns (lesson 0).

One line at the top of every lesson::

    kit = llmkit.start("03_function_calling")

prints a banner (mode, cassette, server) and returns ready clients: ``kit.openai``, ``kit.anthropic``,
``kit.gemini`` (and ``*_async`` twins), ``kit.legacy_gemini`` (the end-of-life google-generativeai,
REST transport), ``kit.base_url(p)`` / ``kit.headers(p)`` for raw HTTP, ``kit.models``, ``kit.faults``,
``kit.speed``, ``kit.usage`` and ``kit.http_client()`` (the one configured ``httpx2`` client).
The mode comes from ``LLMKIT_MODE`` (``replay`` by default):

- replay: an embedded server on 127.0.0.1 plays ``cassettes/<lesson>.json``; dummy keys; the network
  guard refuses any other connection.
- live: the SDKs talk to the providers with keys from the environment or ``.env``.
- record: the embedded server forwards to the providers and writes the cassette, secrets scrubbed
  (with ``LLMKIT_SCRIPT=file.py``: answers come from a script and the cassette is marked scripted).

SDKs are imported on first use of a client, so ``import llmkit`` stays fast. ``kit.close()`` (or
``with llmkit.start(...) as kit:``) closes every client the kit built, stops its server and releases its
hold on the network guard.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import guard
from .errors import ConfigError, KeyMissing
from .models import KEY_VARS, PROVIDERS, UPSTREAMS, models_from_env
from .usage import UsageLedger

if TYPE_CHECKING:
    from .replay.faults import FaultPlan

MODES = ("replay", "live", "record")
# Keys that no secret scanner mistakes for real ones: replay never sends a real key anywhere.
DUMMY_KEYS = {p: f"replay-dummy-{p}-key" for p in PROVIDERS}

_current: Kit | None = None


def _cassette_dir(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("LLMKIT_CASSETTES"):
        return Path(os.environ["LLMKIT_CASSETTES"])
    if Path("cassettes").is_dir():
        return Path("cassettes")
    return Path(__file__).resolve().parent.parent / "notebooks" / "cassettes"


def _env_speed(default: float) -> float:
    raw = os.environ.get("LLMKIT_SPEED")
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"LLMKIT_SPEED={raw!r} is not a number; use 0 (instant), 1 (as recorded) "
                          "or any speed factor (2 = twice as fast).") from None


class _SdkClient:
    """A kit attribute holding one official SDK client, built on first use and closed by ``Kit.close()``."""

    def __init__(self, provider: str, *, is_async: bool = False, doc: str) -> None:
        self.provider, self.is_async, self.__doc__ = provider, is_async, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, kit: Kit | None, owner: type | None = None) -> Any:
        if kit is None:
            return self
        client = kit._sdk_clients.get(self.name)
        if client is None:
            client = kit._sdk_clients[self.name] = kit._sdk_client(self.provider, is_async=self.is_async)
        return client


class Kit:
    """Ready clients for one lesson, in one of three modes. Build it with :func:`start`."""

    def __init__(self, lesson: str, *, mode: str | None = None, speed: float | None = None,
                 cassette_dir: str | os.PathLike[str] | None = None, script: str | None = None):
        mode = (mode or os.environ.get("LLMKIT_MODE") or "replay").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"LLMKIT_MODE={mode!r} is not a mode; choose one of {', '.join(MODES)}.")
        self.lesson = lesson
        self.mode = mode
        self.usage = UsageLedger()
        self.cassette_path = _cassette_dir(cassette_dir) / f"{lesson}.json"
        self._script = script or os.environ.get("LLMKIT_SCRIPT") or None
        self._server: Any = None
        self.app: Any = None
        self._keys: dict[str, str | None] = {}
        self._closed = False
        self._holds_guard = False
        self._sdk_clients: dict[str, Any] = {}  # attribute name → client (see _SdkClient)
        self._http_sync: Any = None
        self._http_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._http_async_unbound: Any = None  # built outside any event loop (the live async SDK clients')
        self._closing: set[asyncio.Future[Any]] = set()  # async closes scheduled on a running loop
        if mode != "replay":
            self._load_dotenv()
        self.models = models_from_env()  # LLMKIT_MODEL_* overrides (a .env may set them outside replay)
        if mode == "replay":
            self._start_replay(_env_speed(1.0) if speed is None else speed)
        elif mode == "record":
            self._start_record()
        else:
            self._keys = {p: self._env_key(p) for p in PROVIDERS}
            self._upstreams = {p: os.environ.get(f"LLMKIT_UPSTREAM_{p.upper()}", UPSTREAMS[p]).rstrip("/")
                               for p in PROVIDERS}
            from . import feature_guard

            # in a notebook, a cell that needs an API this upstream lacks says so and the lesson goes on
            feature_guard.install(self._upstreams)

    # --- modes ----------------------------------------------------------------------------------------
    @staticmethod
    def _load_dotenv() -> None:
        from dotenv import find_dotenv, load_dotenv

        load_dotenv(find_dotenv(usecwd=True), override=False)

    @staticmethod
    def _env_key(provider: str) -> str | None:
        return next((os.environ[v] for v in KEY_VARS[provider] if os.environ.get(v)), None)

    def _start_replay(self, speed: float) -> None:
        from .replay.cassette import Cassette, Player
        from .replay.server import ReplayApp

        self.cassette = Cassette.load(self.cassette_path)
        self.app = ReplayApp(Player(self.cassette), speed=speed)
        self._keys = dict(DUMMY_KEYS)
        self._serve()
        guard.install()
        self._holds_guard = True  # released once, by close()

    def _start_record(self) -> None:
        from datetime import UTC, datetime

        from .replay.cassette import Cassette
        from .replay.server import ReplayApp

        created = datetime.now(UTC).isoformat(timespec="seconds")
        if self._script:
            from .replay.scripted import ScriptRecorder, load_script

            self.cassette = Cassette(self.lesson, {"kind": "scripted", "script": Path(self._script).name})
            recorder: Any = ScriptRecorder(self.cassette, self.cassette_path, load_script(self._script))
            self._keys = dict(DUMMY_KEYS)
        else:
            from .replay.recorder import Recorder

            self._keys = {p: self._env_key(p) for p in PROVIDERS}
            self.cassette = Cassette(self.lesson, {"kind": "recorded", "created": created,
                                                   "sdk_versions": _sdk_versions()})
            recorder = Recorder(self.cassette, self.cassette_path,
                                secrets=[k for k in self._keys.values() if k])
        self.app = ReplayApp(recorder=recorder)
        self._serve()

    def _serve(self) -> None:
        from .replay.server import ServerThread

        self.app.observers.append(lambda ex: self.usage.observe(ex.provider, ex.path, ex.request_body,
                                                                ex.status, ex.body, ex.stream))
        port = int(os.environ.get("LLMKIT_PORT", "0") or 0)
        self._server = ServerThread(self.app, port=port).start()

    # --- where clients connect -------------------------------------------------------------------------
    @property
    def server_url(self) -> str | None:
        """The embedded server's address (None in live mode)."""
        return self._server.url if self._server else None

    def base_url(self, provider: str) -> str:
        """The base URL raw HTTP should use for ``provider`` (OpenAI's includes ``/v1``)."""
        from . import providers

        return providers.get(provider).base_url(self.server_url or self._upstreams[provider])

    def key(self, provider: str) -> str:
        """The API key for ``provider``: a dummy in replay mode, the real one otherwise."""
        self._check_provider(provider)
        key = self._keys.get(provider)
        if not key:
            names = " or ".join(KEY_VARS[provider])
            raise KeyMissing(f"no API key for {provider} in {self.mode} mode: set {names} in .env "
                             "(never in a notebook cell), or run in replay mode (LLMKIT_MODE=replay).",
                             provider=provider)
        return key

    def headers(self, provider: str) -> dict[str, str]:
        """Auth and version headers for raw HTTP calls to ``provider``."""
        from . import providers

        return providers.get(provider).auth_headers(self.key(provider))

    @staticmethod
    def _check_provider(provider: str) -> None:
        from . import providers

        providers.get(provider)  # raises ConfigError naming the known providers

    # --- HTTP clients (one factory: llmkit._http) ---------------------------------------------------------
    def http_client(self, *, is_async: bool = False) -> Any:
        """The kit's ``httpx2.Client`` (or, with ``is_async=True``, the ``httpx2.AsyncClient`` of the running
        event loop: a client's connections belong to the loop that opened them).

        Timeouts and limits are the SDKs' own (600 s, connect 5 s); in live mode the client reports every
        response to ``kit.usage``, as the embedded server does in the other modes. Use it with
        ``kit.base_url(p)`` and ``kit.headers(p)`` for raw HTTP; ``kit.close()`` closes it.
        Introduced in lesson 0 (00_setup_and_replay); lesson 9 (09_sse_server) streams through it.
        """
        self._check_open()
        if not is_async:
            if self._http_sync is None:
                self._http_sync = self._new_http(is_async=False)
            return self._http_sync
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            return self._unbound_async_http()
        client = self._http_async.get(loop)
        if client is None or client.is_closed:
            client = self._http_async[loop] = self._new_http(is_async=True)
        return client

    async def aclose_http_client(self) -> None:
        """Close the running event loop's async client (if any), on that loop; the next
        ``http_client(is_async=True)`` on a loop builds a fresh one. Introduced in lesson 9 (09_sse_server)."""
        client = self._http_async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def aclose_async_clients(self) -> None:
        """Close the async clients (SDK and HTTP) on the running event loop, and forget them so that a later
        loop (the next server, a notebook cell) builds fresh ones. Introduced in lesson 9 (09_sse_server)."""
        for name in ("openai_async", "anthropic_async"):
            client = self._sdk_clients.pop(name, None)
            if client is not None:
                await client.close()
        gemini = self._sdk_clients.pop("gemini", None)  # its async half (.aio) lives on this loop
        if gemini is not None:
            await gemini.aio.aclose()
            gemini.close()
        await self.aclose_http_client()

    def _new_http(self, *, is_async: bool) -> Any:
        from . import _http

        if self.mode == "live":
            return _http.new_client(is_async=is_async, on_body=self._observe_live)
        # replay: the only peer is the embedded server, plain HTTP on loopback (the guard refuses any other),
        # so no certificate store is loaded: that alone costs ~3 ms vs ~180 ms per client on a busy machine
        return _http.new_client(is_async=is_async, verify=self.mode != "replay")

    def _observe_live(self, request: Any, status: int, body: bytes) -> None:
        from . import providers

        url = urlsplit(str(request.url))
        # host and port, then the path: one simulator or local server may stand in for several providers
        provider = next((p for p in PROVIDERS if urlsplit(self._upstreams[p]).netloc == url.netloc
                         and providers.get(p).owns_path(url.path)), None)
        if provider:
            import json

            import httpx2

            try:
                req_body = json.loads(request.content or b"null")
            except (ValueError, httpx2.RequestNotRead):  # not JSON, or a streamed upload (lesson 11's files)
                req_body = None
            self.usage.observe(provider, request.url.path, req_body, status, body, True)
        from . import feature_guard

        guard = feature_guard.current()
        if guard is not None and status in feature_guard.MISSING_STATUSES:
            found = feature_guard.classify_response(status, str(request.url), request, body, self._upstreams)
            if found:
                guard.note(found)

    @property
    def _live_http(self) -> tuple[Any, Any]:
        """(sync, async) clients for the SDKs in live mode: observing, so ``kit.usage`` sees their calls."""
        return self.http_client(), self._unbound_async_http()

    def _unbound_async_http(self) -> Any:
        self._check_open()
        if self._http_async_unbound is None:
            self._http_async_unbound = self._new_http(is_async=True)
        return self._http_async_unbound

    # --- SDK clients (built on first use) ------------------------------------------------------------------
    def _sdk_client(self, provider: str, *, is_async: bool) -> Any:
        """``provider``'s official SDK client pointed at the replay server (or the provider in live mode)."""
        from . import providers

        live = self._live_http if self.mode == "live" else None
        return providers.get(provider).sdk_client(self.key(provider), self.base_url(provider), live,
                                                  is_async=is_async)

    openai = _SdkClient("openai", doc="``openai.OpenAI`` pointed at the replay server (or the provider in live mode).")
    openai_async = _SdkClient("openai", is_async=True, doc="``openai.AsyncOpenAI``, likewise.")
    anthropic = _SdkClient("anthropic", doc="``anthropic.Anthropic`` pointed at the replay server (or the provider "
                           "in live mode).")
    anthropic_async = _SdkClient("anthropic", is_async=True, doc="``anthropic.AsyncAnthropic``, likewise.")
    gemini = _SdkClient("gemini", doc="``google.genai.Client`` pointed at the replay server; ``kit.gemini.aio`` is "
                        "its async twin.")

    @property
    def gemini_async(self) -> Any:
        return self.gemini.aio

    @cached_property
    def legacy_gemini(self) -> Any:
        """The end-of-life ``google.generativeai`` module, configured for REST against the kit's server.

        Lesson 1 uses it for the migration note only; new code uses ``kit.gemini`` (google-genai).
        """
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its import warns about its own end of life
            import google.generativeai as legacy

        # live mode honours LLMKIT_UPSTREAM_GEMINI (a simulator or proxy) like the other clients do
        endpoint = self.server_url or (self._upstreams["gemini"] if self._upstreams["gemini"] != UPSTREAMS["gemini"]
                                       else None)
        options = {"api_endpoint": endpoint} if endpoint else None
        legacy.configure(api_key=self.key("gemini"), transport="rest", client_options=options)
        return legacy

    # --- replay controls --------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        """Replay speed: 0 = instant, 1 = the recorded timing, 2 = twice as fast, 0.5 = half as fast."""
        return self.app.speed if self.app is not None else 1.0

    @speed.setter
    def speed(self, value: float) -> None:
        if self.app is None:
            raise ConfigError("kit.speed paces replayed traffic; in live mode the provider sets the pace.")
        if value < 0:
            raise ConfigError(f"kit.speed must be >= 0 (got {value}).")
        self.app.speed = float(value)

    @property
    def scripted(self) -> bool:
        """Whether the answers come from this lesson's script: a scripted cassette, replayed or being written.

        Introduced in lesson 0 (00_setup_and_replay). A check of an exact wording, a paced timing or a planned
        failure holds only then; in live and record mode, and on a recorded cassette, the answers are a real
        model's (or ``llmkit simulate``'s) and a lesson checks their shape instead.
        """
        cassette = getattr(self, "cassette", None)
        return cassette is not None and cassette.provenance.get("kind") == "scripted"

    @property
    def injects_faults(self) -> bool:
        """Whether :attr:`faults` works here (replay and record mode): a cell that injects a failure runs only then
        and says so in one line otherwise (lesson 8, 08_errors_and_fallbacks)."""
        return self.app is not None

    @property
    def faults(self) -> FaultPlan:
        """Fault injection (:class:`~llmkit.replay.faults.FaultPlan`); replay and record modes only."""
        if self.app is None:
            raise ConfigError("kit.faults injects failures into replayed traffic; it needs replay mode "
                              "(LLMKIT_MODE=replay). Real providers fail on their own schedule.")
        return self.app.faults

    @property
    def misses(self) -> list[Any]:
        """Cassette misses so far (each a :class:`~llmkit.errors.CassetteMiss` with its diff)."""
        return list(self.app.misses) if self.app is not None else []

    def unused(self) -> list[int]:
        """Recorded interactions this session has not played (replay mode)."""
        player = getattr(self.app, "player", None)
        return player.unused() if player else []

    def check_recording(self) -> None:
        """Raise the recorder's first error (e.g. a secret that would have leaked), if any."""
        recorder = getattr(self.app, "recorder", None)
        if recorder is not None and recorder.errors:
            raise recorder.errors[0]

    def banner(self) -> str:
        if self.mode == "replay":
            return (f"llmkit · replay mode · cassette {self.cassette_path.name} ({self.cassette.summary()}) "
                    f"· server {self.server_url} · speed {self.speed:g}")
        if self.mode == "record":
            what = f"script {Path(self._script).name}" if self._script else "real providers"
            return f"llmkit · record mode · from {what} into {self.cassette_path.name} · server {self.server_url}"
        have = ", ".join(f"{p} {'✓' if self._keys.get(p) else '✗ (no key)'}" for p in PROVIDERS)
        return f"llmkit · live mode · {have}"

    # --- lifecycle ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every client this kit built (SDK and HTTP, sync and async), stop its server and release its
        hold on the network guard. Idempotent; ``with llmkit.start(...) as kit:`` calls it on exit.

        Async clients are closed on their own event loop when it is running, else on a fresh one; inside a
        running loop (a notebook) the close is scheduled on it. Introduced in lesson 0 (00_setup_and_replay).
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._close_clients()
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self._holds_guard:
                self._holds_guard = False
                guard.uninstall()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError(f"this kit ({self.lesson!r}) is closed; start a new one with "
                              f"llmkit.start({self.lesson!r}).")

    def _close_clients(self) -> None:
        for name in ("openai", "anthropic"):
            client = self._sdk_clients.pop(name, None)
            if client is not None:
                client.close()
        for name in ("openai_async", "anthropic_async"):
            client = self._sdk_clients.pop(name, None)
            if client is not None:
                self._close_async(client.close, None)
        gemini = self._sdk_clients.pop("gemini", None)
        if gemini is not None:
            gemini.close()
            self._close_async(gemini.aio.aclose, None)
        self.__dict__.pop("legacy_gemini", None)  # a configured module: nothing to close
        if self._http_sync is not None:
            self._http_sync.close()
            self._http_sync = None
        for loop, client in list(self._http_async.items()):
            self._close_async(client.aclose, loop)
        self._http_async.clear()
        if self._http_async_unbound is not None:
            self._close_async(self._http_async_unbound.aclose, None)
            self._http_async_unbound = None

    def _close_async(self, aclose: Callable[[], Awaitable[Any]], owner: asyncio.AbstractEventLoop | None) -> None:
        """Run ``aclose()`` on the loop that owns the connections if it runs, else where we can."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if owner is not None and owner is not running and owner.is_running():
            asyncio.run_coroutine_threadsafe(_quietly(aclose), owner)  # not awaited: that loop may wait on us
        elif running is not None:
            task = running.create_task(_quietly(aclose))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            asyncio.run(_quietly(aclose))

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Kit {self.lesson!r} {self.mode}{' ' + self.server_url if self.server_url else ''}>"


async def _quietly(aclose: Callable[[], Awaitable[Any]]) -> None:
    """Close, and say nothing if the connections died with the event loop that opened them: a client
    marks itself closed before it closes its transport, so it refuses new requests either way."""
    try:
        await aclose()
    except (RuntimeError, OSError):
        pass


def _sdk_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("openai", "anthropic", "google-genai", "google-generativeai", "httpx2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def start(lesson: str, *, mode: str | None = None, speed: float | None = None,
          cassette_dir: str | os.PathLike[str] | None = None, quiet: bool = False) -> Kit:
    """Start a lesson: build the :class:`Kit` for ``lesson`` and print its banner (lesson 0).

    Calling it again (re-running the cell) stops the previous kit's server first.
    """
    global _current
    if _current is not None:
        _current.close()
        _current = None
    kit = Kit(lesson, mode=mode, speed=speed, cassette_dir=cassette_dir)
    _current = kit
    if not quiet:
        print(kit.banner())
    return kit
