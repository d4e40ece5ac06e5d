"""``llmkit.start(lesson)`` and the :class:`Kit` it returns (lesson 0).

One line at the top of every lesson::

    kit = llmkit.start("03_function_calling")

prints a banner (mode, cassette, server) and returns ready clients: ``kit.openai``, ``kit.anthropic``,
``kit.gemini`` (and ``*_async`` twins), ``kit.legacy_gemini`` (the end-of-life google-generativeai,
REST transport), ``kit.base_url(p)`` / ``kit.headers(p)`` for raw HTTP, ``kit.models``, ``kit.faults``,
``kit.speed`` and ``kit.usage``. The mode comes from ``LLMKIT_MODE`` (``replay`` by default):

- replay: an embedded server on 127.0.0.1 plays ``cassettes/<lesson>.json``; dummy keys; the network
  guard refuses any other connection.
- live: the SDKs talk to the providers with keys from the environment or ``.env``.
- record: the embedded server forwards to the providers and writes the cassette, secrets scrubbed
  (with ``LLMKIT_SCRIPT=file.py``: answers come from a script and the cassette is marked scripted).

SDKs are imported on first use of a client, so ``import llmkit`` stays fast.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import guard
from .errors import ConfigError
from .models import KEY_VARS, MODELS, PROVIDERS, UPSTREAMS
from .usage import UsageLedger

MODES = ("replay", "live", "record")
DUMMY_KEYS = {"openai": "replay-dummy-openai-key", "anthropic": "replay-dummy-anthropic-key",
              "gemini": "replay-dummy-gemini-key"}

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
                          "or any factor.") from None


class Kit:
    """Ready clients for one lesson, in one of three modes. Build it with :func:`start`."""

    def __init__(self, lesson: str, *, mode: str | None = None, speed: float | None = None,
                 cassette_dir: str | os.PathLike[str] | None = None, script: str | None = None):
        mode = (mode or os.environ.get("LLMKIT_MODE") or "replay").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"LLMKIT_MODE={mode!r} is not a mode; choose one of {', '.join(MODES)}.")
        self.lesson = lesson
        self.mode = mode
        self.models = dict(MODELS)
        self.usage = UsageLedger()
        self.cassette_path = _cassette_dir(cassette_dir) / f"{lesson}.json"
        self._script = script or os.environ.get("LLMKIT_SCRIPT") or None
        self._server: Any = None
        self.app: Any = None
        self._keys: dict[str, str | None] = {}
        if mode != "replay":
            self._load_dotenv()
        if mode == "replay":
            self._start_replay(_env_speed(1.0) if speed is None else speed)
        elif mode == "record":
            self._start_record()
        else:
            self._keys = {p: self._env_key(p) for p in PROVIDERS}
            self._upstreams = {p: os.environ.get(f"LLMKIT_UPSTREAM_{p.upper()}", UPSTREAMS[p]).rstrip("/")
                               for p in PROVIDERS}

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
        self._check_provider(provider)
        root = self.server_url or self._upstreams[provider]
        return f"{root}/v1" if provider == "openai" else root

    def key(self, provider: str) -> str:
        """The API key for ``provider``: a dummy in replay mode, the real one otherwise."""
        self._check_provider(provider)
        key = self._keys.get(provider)
        if not key:
            names = " or ".join(KEY_VARS[provider])
            raise ConfigError(f"no API key for {provider} in {self.mode} mode: set {names} in .env "
                              "(never in a notebook cell), or run in replay mode (LLMKIT_MODE=replay).")
        return key

    def headers(self, provider: str) -> dict[str, str]:
        """Auth and version headers for raw HTTP calls to ``provider``."""
        key = self.key(provider)
        if provider == "openai":
            return {"authorization": f"Bearer {key}", "content-type": "application/json"}
        if provider == "anthropic":
            return {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
        return {"x-goog-api-key": key, "content-type": "application/json"}

    @staticmethod
    def _check_provider(provider: str) -> None:
        if provider not in PROVIDERS:
            raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}.")

    # --- SDK clients (built on first use) ------------------------------------------------------------------
    @cached_property
    def _live_http(self) -> tuple[Any, Any]:
        from ._transport import observing_clients

        def on_body(request: Any, status: int, body: bytes) -> None:
            host = urlsplit(str(request.url)).hostname or ""
            provider = next((p for p in PROVIDERS if urlsplit(self._upstreams[p]).hostname == host), None)
            if provider:
                import json

                try:
                    req_body = json.loads(request.content or b"null")
                except ValueError:
                    req_body = None
                self.usage.observe(provider, request.url.path, req_body, status, body, True)

        return observing_clients(on_body)

    def _http_kwargs(self, is_async: bool) -> dict[str, Any]:
        return {"http_client": self._live_http[int(is_async)]} if self.mode == "live" else {}

    @cached_property
    def openai(self) -> Any:
        """``openai.OpenAI`` pointed at the replay server (or the provider in live mode)."""
        import openai

        return openai.OpenAI(api_key=self.key("openai"), base_url=self.base_url("openai"), **self._http_kwargs(False))

    @cached_property
    def openai_async(self) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=self.key("openai"), base_url=self.base_url("openai"),
                                  **self._http_kwargs(True))

    @cached_property
    def anthropic(self) -> Any:
        """``anthropic.Anthropic`` pointed at the replay server (or the provider in live mode)."""
        import anthropic

        return anthropic.Anthropic(api_key=self.key("anthropic"), base_url=self.base_url("anthropic"),
                                   **self._http_kwargs(False))

    @cached_property
    def anthropic_async(self) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(api_key=self.key("anthropic"), base_url=self.base_url("anthropic"),
                                        **self._http_kwargs(True))

    @cached_property
    def gemini(self) -> Any:
        """``google.genai.Client`` pointed at the replay server; ``kit.gemini.aio`` is its async twin."""
        from google import genai
        from google.genai import types

        opts: dict[str, Any] = {"base_url": self.base_url("gemini")}
        if self.mode == "live":
            opts["httpx_client"], opts["httpx_async_client"] = self._live_http
        return genai.Client(api_key=self.key("gemini"), http_options=types.HttpOptions(**opts))

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

        options = {"api_endpoint": self.server_url} if self.server_url else None
        legacy.configure(api_key=self.key("gemini"), transport="rest", client_options=options)
        return legacy

    # --- replay controls --------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        """Replay pacing: 0 = instant, 1 = the recorded timing, any factor in between or beyond."""
        return self.app.speed if self.app is not None else 1.0

    @speed.setter
    def speed(self, value: float) -> None:
        if self.app is None:
            raise ConfigError("kit.speed paces replayed traffic; in live mode the provider sets the pace.")
        if value < 0:
            raise ConfigError(f"kit.speed must be >= 0 (got {value}).")
        self.app.speed = float(value)

    @property
    def faults(self) -> Any:
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

    def close(self) -> None:
        """Stop the embedded server and lift the network guard."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.mode == "replay":
            guard.uninstall()

    def __repr__(self) -> str:
        return f"<Kit {self.lesson!r} {self.mode}{' ' + self.server_url if self.server_url else ''}>"


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
