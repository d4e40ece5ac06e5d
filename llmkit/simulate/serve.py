"""``llmkit simulate``: run the simulator in the foreground on 127.0.0.1 (lesson 0).

The first lines printed are the ``export LLMKIT_UPSTREAM_*=...`` lines to paste (flushed, and the socket
is listening before they are printed), then how to run a lesson against it.
"""

from __future__ import annotations

import socket
from typing import Any

from .settings import SimSettings

#: Fake keys a rehearsal can use: the simulator checks that a key is sent, never which.
FAKE_KEYS = {"OPENAI_API_KEY": "sk-simulated", "ANTHROPIC_API_KEY": "sk-ant-simulated",
             "GEMINI_API_KEY": "simulated"}


def export_lines(url: str, settings: SimSettings) -> list[str]:
    """The shell lines that point live mode at a simulator at ``url``."""
    from ..models import PROVIDERS

    names = PROVIDERS if settings.profile == "full" else ("openai",)
    return [f"export LLMKIT_UPSTREAM_{p.upper()}={url}" for p in names]


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPPROTO_TCP, so asyncio sets TCP_NODELAY on its connections)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(settings: SimSettings, *, port: int = 0, quiet: bool = False) -> int:
    """Serve the simulator until Ctrl-C; 127.0.0.1 only."""
    import uvicorn

    from . import schemas
    from .app import create_app

    schemas.instance({"type": "string"}, "warm-up")  # import Hypothesis now, not on the first request
    app = create_app(settings)
    sock = listen("127.0.0.1", port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for line in export_lines(url, settings):
        print(line, flush=True)
    keys = " ".join(f"{k}={v}" for k, v in FAKE_KEYS.items())
    print(f"# llmkit simulate · seed {settings.seed} · profile {settings.profile} · refusal {settings.refusal_rate:g}"
          f" · cut {settings.cut_rate:g} · error {settings.error_rate:g} · Ctrl-C stops it", flush=True)
    print(f"# then: export LLMKIT_MODE=live {keys}", flush=True)
    config: Any = uvicorn.Config(app, log_level="warning", access_log=not quiet, lifespan="off",
                                 timeout_graceful_shutdown=1)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
