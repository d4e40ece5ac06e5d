"""The network guard: in replay mode no connection leaves loopback (lesson 0).

``install()`` wraps ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo`` so that any
attempt to reach a host other than 127.0.0.0/8, ::1 or ``localhost`` raises
:class:`~llmkit.errors.NetworkBlockedError` before a packet is sent. It is process-wide (every
library, SDK or raw, goes through ``socket``), idempotent, and undone by ``uninstall()``.
pydantic-ai's ``ALLOW_MODEL_REQUESTS`` switch and pytest-recording's ``--block-network`` do the same job.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import NetworkBlockedError

_lock = threading.Lock()
_originals: dict[str, Any] = {}

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: Any) -> bool:
    if host is None or host == "":
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _blocked(host: Any, port: Any) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"llmkit replay mode never calls a provider: the connection to {host}:{port} was refused. "
        "Use the kit's clients (kit.openai, kit.anthropic, kit.gemini) or kit.base_url(provider), "
        "which point at the local replay server; to call the real APIs, set LLMKIT_MODE=live and put "
        "your keys in .env."
    )


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not is_loopback(address[0]):
            raise _blocked(address[0], address[1] if len(address) > 1 else "?")


def install() -> None:
    """Refuse every non-loopback connection in this process (idempotent)."""
    with _lock:
        if _originals:
            return
        _originals["connect"] = socket.socket.connect
        _originals["connect_ex"] = socket.socket.connect_ex
        _originals["getaddrinfo"] = socket.getaddrinfo

        def connect(self: socket.socket, address: Any) -> None:
            _check_address(self, address)
            return _originals["connect"](self, address)

        def connect_ex(self: socket.socket, address: Any) -> int:
            _check_address(self, address)
            return _originals["connect_ex"](self, address)

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(host):
                raise _blocked(host, port)
            return _originals["getaddrinfo"](host, port, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo


def uninstall() -> None:
    with _lock:
        if not _originals:
            return
        socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]
        socket.getaddrinfo = _originals.pop("getaddrinfo")


def installed() -> bool:
    return bool(_originals)


@contextmanager
def blocked() -> Iterator[None]:
    """Block the network inside a ``with`` block (tests use this)."""
    was = installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()
