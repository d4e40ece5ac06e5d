"""The network guard: in replay mode no connection leaves loopback (lesson 0).

Introduced in lesson 0 (00_setup_and_replay). ``install()`` guards ``socket.socket`` (which ``ssl``
and ``asyncio`` sockets are), the C-level class ``_socket.socket`` (a C type that cannot be patched, so
the module attribute is replaced by a checking subclass while the guard is on), Windows' overlapped
I/O event loop, and every resolver function of ``socket``/``_socket``:

- ``connect``, ``connect_ex``, ``sendto`` (UDP, and TCP with ``MSG_FASTOPEN``) and ``sendmsg`` refuse
  any address outside 127.0.0.0/8 and ::1 with :class:`~llmkit.errors.NetworkBlockedError` before the
  kernel sees the call, so asyncio datagram endpoints are covered too; raw (``SOCK_RAW``) and
  link-layer (``AF_PACKET``) sockets cannot be created.
- ``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr`` and ``getnameinfo``
  answer loopback names (``localhost``, ``localhost.localdomain``, ``ip6-localhost``,
  ``ip6-loopback``) and loopback addresses locally, without asking the system resolver, and refuse
  every other name before it is looked up (no DNS query leaves the machine either).

It is process-wide and reference-counted: each ``install()`` needs one ``uninstall()``, and the guard
stays until the last holder lets go (``with guarded():`` pairs them). pydantic-ai's
``ALLOW_MODEL_REQUESTS`` switch and pytest-recording's ``--block-network`` do a similar job.

Limits: an in-process guard only sees Python code that goes through ``socket``. Subprocesses
(``curl``, ``bash -c 'exec 3<>/dev/tcp/...'``), C extensions and ``ctypes`` calls to libc's
``connect`` bypass it, as do a class or bound method saved before ``install()`` (``from _socket import
socket``). For those the OS must
help: ``make notebooks`` runs the lessons through ``scripts/netns.sh``, a network namespace with
loopback only, when the machine allows it.
"""

from __future__ import annotations

import _socket
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import NetworkBlockedError

__all__ = ["blocked", "guarded", "holders", "install", "installed", "is_loopback", "reset", "uninstall"]

_lock = threading.Lock()
_holders = 0
_originals: dict[tuple[Any, str], Any] = {}

# Loopback names and the addresses they stand for, answered without a resolver.
_LOOPBACK_NAMES: dict[str, tuple[str, ...]] = {
    "localhost": ("127.0.0.1", "::1"),
    "localhost.localdomain": ("127.0.0.1", "::1"),
    "ip6-localhost": ("::1",),
    "ip6-loopback": ("::1",),
}
_INET = (socket.AF_INET, socket.AF_INET6)
_CSocket: type = _socket.socket  # the C class, captured before anything replaces it
_MISSING = object()


def _host_text(host: Any) -> str:
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "replace")
    return str(host).strip("[]").lower()


def _loopback_name(host: Any) -> str | None:
    """The canonical loopback name ``host`` spells (``"LocalHost."`` -> ``"localhost"``), or None."""
    if host is None:
        return None
    text = _host_text(host).rstrip(".")
    return text if text in _LOOPBACK_NAMES else None


def is_loopback(host: Any) -> bool:
    """True for loopback names and addresses (127.0.0.0/8, ::1); anything unrecognised is False.

    Introduced in lesson 0 (00_setup_and_replay).
    """
    if host is None or host == "" or host == b"":
        return True
    if _loopback_name(host):
        return True
    try:
        return ipaddress.ip_address(_host_text(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _blocked(host: Any, port: Any) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"llmkit replay mode never calls a provider: the connection to {host}:{port} was refused. "
        "Use the kit's clients (kit.openai, kit.anthropic, kit.gemini) or kit.base_url(provider), "
        "which point at the local replay server; to call the real APIs, set LLMKIT_MODE=live and put "
        "your keys in .env."
    )


def _original(owner: Any, name: str) -> Any:
    return _originals.get((owner, name), getattr(owner, name))


# --- sockets ---------------------------------------------------------------------------------


def _checked_address(sock: Any, address: Any) -> Any:
    """``address`` with a loopback name replaced by its address; refuse any other host."""
    if sock.family not in _INET or not isinstance(address, tuple) or not address:
        return address
    host = address[0]
    if not is_loopback(host):
        raise _blocked(host, address[1] if len(address) > 1 else "?")
    name = _loopback_name(host)
    if name is None:
        return address
    # a name would make the C code call the system resolver: hand it the address instead
    wanted = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
    numeric = wanted if wanted in _LOOPBACK_NAMES[name] else _LOOPBACK_NAMES[name][0]
    return (numeric, *address[1:])


def _guarded_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _CSocket.__init__(self, *args, **kwargs)
    packet = getattr(socket, "AF_PACKET", None)
    if (packet is not None and self.family == packet) or (
        self.family in _INET and self.type == socket.SOCK_RAW
    ):
        kind = "link-layer (AF_PACKET)" if self.family == packet else "raw IP (SOCK_RAW)"
        _CSocket.close(self)  # socket.socket.close needs attributes its __init__ sets later
        raise NetworkBlockedError(
            f"llmkit replay mode refuses {kind} sockets: they can send packets anywhere. "
            "Set LLMKIT_MODE=live if you really need one."
        )


def _guarded_connect(self: Any, address: Any) -> Any:
    return _CSocket.connect(self, _checked_address(self, address))


def _guarded_connect_ex(self: Any, address: Any) -> Any:
    return _CSocket.connect_ex(self, _checked_address(self, address))


def _guarded_sendto(self: Any, data: Any, *args: Any) -> Any:
    # sendto(data, address) or sendto(data, flags, address): the address is always last
    if args:
        args = (*args[:-1], _checked_address(self, args[-1]))
    return _CSocket.sendto(self, data, *args)


def _guarded_sendmsg(self: Any, buffers: Any, *args: Any) -> Any:
    # sendmsg(buffers[, ancdata[, flags[, address]]])
    if len(args) >= 3 and args[2] is not None:
        args = (*args[:2], _checked_address(self, args[2]), *args[3:])
    return _CSocket.sendmsg(self, buffers, *args)


class _GuardedMeta(type):
    """``isinstance(sock, _socket.socket)`` stays true for every socket while the guard is on."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _CSocket)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _CSocket)


class _GuardedCSocket(_CSocket, metaclass=_GuardedMeta):
    """Stands in for ``_socket.socket`` (a C type that cannot be patched) while the guard is on.

    ``socket.socket.__init__`` calls ``_socket.socket.__init__`` by name, so the raw-socket check
    covers ``socket.socket`` too; its other methods are patched on ``socket.socket`` itself.
    """

    __slots__ = ()
    __init__ = _guarded_init
    connect = _guarded_connect
    connect_ex = _guarded_connect_ex
    sendto = _guarded_sendto
    if hasattr(_CSocket, "sendmsg"):
        sendmsg = _guarded_sendmsg


def _proactor_wrappers(proactor: type) -> list[tuple[Any, str, Any]]:
    """Windows' default event loop sends through overlapped I/O, not through ``socket``."""

    def connect(self: Any, conn: Any, address: Any) -> Any:
        return _original(proactor, "connect")(self, conn, _checked_address(conn, address))

    def sendto(self: Any, conn: Any, buf: Any, flags: int = 0, addr: Any = None) -> Any:
        if addr is not None:
            addr = _checked_address(conn, addr)
        return _original(proactor, "sendto")(self, conn, buf, flags, addr)

    return [(proactor, "connect", connect), (proactor, "sendto", sendto)]


# --- resolvers -------------------------------------------------------------------------------


def _refuse_unless_loopback(host: Any, port: Any = "?") -> None:
    if not is_loopback(host):
        raise _blocked(host, port)


def _getaddrinfo(module: Any) -> Callable[..., list[tuple[Any, ...]]]:
    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> list[tuple[Any, ...]]:
        _refuse_unless_loopback(host, port)
        real = _original(module, "getaddrinfo")
        name = _loopback_name(host)
        if name is None:  # a numeric loopback address, None or "": nothing to look up
            return real(host, port, family, type, proto, flags)
        out: list[tuple[Any, ...]] = []
        for address in _LOOPBACK_NAMES[name]:
            af = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (0, af) and (af == socket.AF_INET or socket.has_ipv6):
                try:
                    out += real(address, port, af, type, proto, flags | socket.AI_NUMERICHOST)
                except socket.gaierror:
                    continue  # e.g. no IPv6 on this machine
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no loopback address of family {family}")
        return [(*info[:3], name if flags & socket.AI_CANONNAME else "", info[4]) for info in out]

    return getaddrinfo


def _gethostbyname(module: Any) -> Callable[[Any], str]:
    def gethostbyname(host: Any) -> str:
        _refuse_unless_loopback(host)
        if _loopback_name(host) or host in ("", b"", None):
            return "127.0.0.1"
        return _original(module, "gethostbyname")(host)  # numeric: no lookup

    return gethostbyname


def _gethostbyname_ex(module: Any) -> Callable[[Any], tuple[str, list[str], list[str]]]:
    def gethostbyname_ex(host: Any) -> tuple[str, list[str], list[str]]:
        _refuse_unless_loopback(host)
        if _loopback_name(host) or host in ("", b"", None):
            return "localhost", [], ["127.0.0.1"]
        return _original(module, "gethostbyname_ex")(host)  # numeric: no lookup

    return gethostbyname_ex


def _gethostbyaddr(module: Any) -> Callable[[Any], tuple[str, list[str], list[str]]]:
    def gethostbyaddr(host: Any) -> tuple[str, list[str], list[str]]:
        _refuse_unless_loopback(host)
        name = _loopback_name(host)
        address = _LOOPBACK_NAMES[name][0] if name else _host_text(host) or "127.0.0.1"
        return "localhost", [], [address]  # a loopback address is localhost: no reverse lookup

    return gethostbyaddr


def _getnameinfo(module: Any) -> Callable[[Any, int], tuple[str, str]]:
    def getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
        host = sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else sockaddr
        port = sockaddr[1] if isinstance(sockaddr, tuple) and len(sockaddr) > 1 else "?"
        _refuse_unless_loopback(host, port)
        if _loopback_name(host):
            raise socket.gaierror(socket.EAI_NONAME, "getnameinfo takes an address, not a name")
        numeric, service = _original(module, "getnameinfo")(sockaddr, flags | socket.NI_NUMERICHOST)
        return (numeric if flags & socket.NI_NUMERICHOST else "localhost"), service

    return getnameinfo


_RESOLVER_WRAPPERS: dict[str, Callable[[Any], Callable[..., Any]]] = {
    "getaddrinfo": _getaddrinfo,
    "gethostbyname": _gethostbyname,
    "gethostbyname_ex": _gethostbyname_ex,
    "gethostbyaddr": _gethostbyaddr,
    "getnameinfo": _getnameinfo,
}
# --- install / uninstall ---------------------------------------------------------------------


def _patch() -> None:
    targets: list[tuple[Any, str, Any]] = [
        (_socket, "socket", _GuardedCSocket), (_socket, "SocketType", _GuardedCSocket)
    ]
    targets += [(socket.socket, name, getattr(_GuardedCSocket, name))
                for name in ("connect", "connect_ex", "sendto", "sendmsg") if hasattr(_GuardedCSocket, name)]
    for module in (_socket, socket):
        # socket.getaddrinfo is a Python wrapper (enum families) around _socket.getaddrinfo: wrap both
        targets += [
            (module, name, wrap(module)) for name, wrap in _RESOLVER_WRAPPERS.items() if hasattr(module, name)
        ]
    if sys.platform == "win32":
        from asyncio.windows_events import IocpProactor

        targets += _proactor_wrappers(IocpProactor)
    for owner, name, replacement in targets:
        _originals[(owner, name)] = owner.__dict__.get(name, _MISSING)
        setattr(owner, name, replacement)


def _unpatch() -> None:
    for (owner, name), original in _originals.items():
        if original is _MISSING:
            delattr(owner, name)  # it was inherited, e.g. socket.socket.connect
        else:
            setattr(owner, name, original)
    _originals.clear()


def install() -> None:
    """Refuse every non-loopback connection and lookup in this process; take one hold on the guard.

    Introduced in lesson 0 (00_setup_and_replay). Thread-safe and reference-counted: the guard stays
    until :func:`uninstall` has been called once per ``install()``.
    """
    global _holders
    with _lock:
        if _holders == 0:
            _patch()
        _holders += 1


def uninstall() -> None:
    """Release one hold on the guard; the last release restores ``socket`` (extra calls are harmless).

    Introduced in lesson 0 (00_setup_and_replay).
    """
    global _holders
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            _unpatch()


def reset() -> None:
    """Lift the guard whoever holds it (test teardown; lessons call :func:`uninstall`).

    Introduced in lesson 0 (00_setup_and_replay).
    """
    global _holders
    with _lock:
        if _holders:
            _unpatch()
        _holders = 0


def installed() -> bool:
    """Whether the guard is on. Introduced in lesson 0 (00_setup_and_replay)."""
    return _holders > 0


def holders() -> int:
    """How many ``install()`` calls have not been undone yet (lesson 0, 00_setup_and_replay)."""
    return _holders


@contextmanager
def guarded() -> Iterator[None]:
    """Hold the guard inside a ``with`` block: ``install()`` on entry, ``uninstall()`` on exit.

    Introduced in lesson 0 (00_setup_and_replay).
    """
    install()
    try:
        yield
    finally:
        uninstall()


blocked = guarded  # the name tests used first
