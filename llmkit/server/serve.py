"""``llmkit serve-chat``: run the relay server with uvicorn in the foreground (lesson 9, 09_sse_server).

Introduced in lesson 9 (09_sse_server). The upstream is a kit for ``lesson`` (replay by default: the
lesson's cassette; ``LLMKIT_MODE=live`` with keys: the providers). The first line printed is the base
URL, flushed, once the socket listens - so a script or a test can start several processes and read it.
"""

from __future__ import annotations

import os
from typing import Any


def serve_chat(*, lesson: str = "09_sse_server", cassettes: str | None = None, port: int = 0,
               host: str = "127.0.0.1", redis_url: str | None = None, origins: list[str] | None = None,
               speed: float | None = None, ttl_s: float = 600.0, ping_s: float = 15.0,
               upstream_via: str = "wire", hosts: list[str] | None = None) -> int:
    """Serve the relay until Ctrl-C / SIGTERM; returns the exit status.

    The relay answers requests whose ``Host`` is a loopback name, ``host`` (unless it is a wildcard
    address such as ``0.0.0.0``) or one of ``hosts`` (the names clients reach it by).
    """
    import socket

    import uvicorn

    from ..kit import Kit
    from .app import LOOPBACK_HOSTS, create_app
    from .buffers import InProcessBuffer
    from .redis_buffer import RedisStreamBuffer

    kit = Kit(lesson, cassette_dir=cassettes, speed=speed)
    buffer: Any = RedisStreamBuffer(redis_url, ttl_s=ttl_s) if redis_url else InProcessBuffer(ttl_s=ttl_s)
    allowed_hosts = [*LOOPBACK_HOSTS, *([] if host in ("0.0.0.0", "::", "") else [host]), *(hosts or [])]
    app = create_app(kit, buffer=buffer, allowed_origins=origins or [], allowed_hosts=allowed_hosts, ping_s=ping_s,
                     upstream_via=upstream_via)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    print(f"http://{host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level=os.environ.get("LLMKIT_LOG_LEVEL", "warning"), access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        kit.close()
    return 0
