"""The network guard: replay mode never leaves loopback, and says so clearly (lesson 0).

Introduced in lesson 0 (00_setup_and_replay). Only reserved documentation addresses (RFC 5737, RFC 3849)
and names that are refused before any lookup are used: nothing here can reach the network. A refused
call must not reach the kernel: an unbound socket that the kernel had used would have been given a local
port, so ``getsockname()`` still showing port 0 proves no packet was sent.
"""

from __future__ import annotations

import _socket
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx2
import pytest

from llmkit import guard
from llmkit.errors import NetworkBlockedError

TEST_NET = "203.0.113.7"  # TEST-NET-3: never routed
TEST_NET_V4 = "192.0.2.1"  # TEST-NET-1
TEST_NET_V6 = "2001:db8::1"  # IPv6 documentation prefix
ROOT = Path(__file__).resolve().parents[1]
NETNS = ROOT / "scripts" / "netns.sh"


@pytest.fixture
def blocked():
    with guard.guarded():
        yield


@pytest.fixture
def listener():
    """A listening socket on 127.0.0.1 (a loopback peer for connect tests)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _unused(sock) -> bool:
    """The kernel never used this socket: it still has no local port."""
    return sock.getsockname()[1] == 0


def _ipv6_socket(kind: int):
    try:
        return socket.socket(socket.AF_INET6, kind)
    except OSError:
        pytest.skip("IPv6 sockets are not available here")


def test_non_loopback_connect_is_refused_with_a_clear_message(blocked):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(NetworkBlockedError) as info:
            s.connect((TEST_NET, 443))
        with pytest.raises(NetworkBlockedError):
            s.connect_ex((TEST_NET, 443))
        assert _unused(s)
    message = str(info.value)
    assert f"{TEST_NET}:443" in message and "replay mode never calls a provider" in message
    assert "LLMKIT_MODE=live" in message and "kit.openai" in message  # says what to do instead
    assert isinstance(info.value, ConnectionError)  # code that handles connection errors handles this


def test_name_lookups_for_other_hosts_are_refused(blocked):
    with pytest.raises(NetworkBlockedError, match="api.openai.com:443"):
        socket.getaddrinfo("api.openai.com", 443)
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("generativelanguage.googleapis.com", 443), timeout=1)


def test_ipv6_non_loopback_is_refused(blocked):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    s = _ipv6_socket(socket.SOCK_STREAM)
    with s, pytest.raises(NetworkBlockedError):
        s.connect((TEST_NET_V6, 443, 0, 0))


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda s, a: s.sendto(b"x", a), id="sendto"),
        pytest.param(lambda s, a: s.sendto(b"x", 0, a), id="sendto-flags"),
        pytest.param(lambda s, a: s.sendmsg([b"x"], [], 0, a), id="sendmsg"),
    ],
)
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_udp_datagrams_to_other_hosts_are_refused_before_sending(blocked, send, family):
    if family == socket.AF_INET6:
        s, target = _ipv6_socket(socket.SOCK_DGRAM), (TEST_NET_V6, 9, 0, 0)
    else:
        s, target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), (TEST_NET_V4, 9)
    with s:
        with pytest.raises(NetworkBlockedError, match="replay mode never calls a provider"):
            send(s, target)
        assert _unused(s)


def test_tcp_fast_open_cannot_carry_data_to_another_host(blocked):
    if not hasattr(socket, "MSG_FASTOPEN"):
        pytest.skip("no TCP Fast Open on this platform")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(NetworkBlockedError):
            s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, (TEST_NET_V4, 80))
        assert _unused(s)


def test_the_c_level_socket_class_is_guarded_too(blocked, listener):
    raw = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkBlockedError):
            raw.connect((TEST_NET_V4, 80))
        with pytest.raises(NetworkBlockedError):
            raw.connect_ex((TEST_NET_V4, 80))
        assert _unused(raw)
    finally:
        raw.close()
    with socket.socket() as s:  # the unbound C method called on a Python socket
        with pytest.raises(NetworkBlockedError):
            _socket.socket.connect(s, (TEST_NET_V4, 80))
        assert _unused(s)
    assert isinstance(socket.socket(), _socket.socket)  # isinstance checks keep working
    ok = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ok.connect(("localhost", listener))  # a loopback name, resolved without the resolver
    finally:
        ok.close()


def test_raw_and_link_layer_sockets_cannot_be_created(blocked):
    with pytest.raises(NetworkBlockedError, match="SOCK_RAW"):
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if hasattr(socket, "AF_PACKET"):
        with pytest.raises(NetworkBlockedError, match="AF_PACKET"):
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.received: list[bytes] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.append(data)


def test_asyncio_datagram_endpoints_cannot_reach_other_hosts(blocked):
    async def scenario() -> tuple[_Datagrams, _Datagrams, int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
        transport.sendto(b"x", (TEST_NET_V4, 9))  # asyncio hands socket errors to the protocol
        transport.sendto(b"loop", transport.get_extra_info("sockname"))  # loopback still works
        await asyncio.sleep(0.05)
        transport.close()
        # allow_broadcast skips connect(): every datagram then goes through sendto()
        t2, p2 = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(TEST_NET_V4, 9), allow_broadcast=True)
        t2.sendto(b"x")
        await asyncio.sleep(0)
        port = t2.get_extra_info("socket").getsockname()[1]
        t2.close()
        with pytest.raises(NetworkBlockedError):
            await loop.create_datagram_endpoint(_Datagrams, remote_addr=(TEST_NET_V4, 9))
        return proto, p2, port

    proto, broadcast, port = asyncio.run(scenario())
    assert [type(e) for e in proto.errors] == [NetworkBlockedError] and proto.received == [b"loop"]
    assert [type(e) for e in broadcast.errors] == [NetworkBlockedError] and port == 0


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param(lambda: socket.gethostbyname("api.openai.com"), id="gethostbyname"),
        pytest.param(lambda: socket.gethostbyname_ex("api.openai.com"), id="gethostbyname_ex"),
        pytest.param(lambda: socket.gethostbyaddr(TEST_NET_V4), id="gethostbyaddr"),
        pytest.param(lambda: socket.gethostbyaddr("api.openai.com"), id="gethostbyaddr-name"),
        pytest.param(lambda: socket.getnameinfo((TEST_NET_V4, 443), 0), id="getnameinfo"),
        pytest.param(lambda: socket.getnameinfo((TEST_NET_V6, 443, 0, 0), 0), id="getnameinfo-v6"),
        pytest.param(lambda: _socket.getaddrinfo("api.openai.com", 443), id="_socket.getaddrinfo"),
        pytest.param(lambda: _socket.gethostbyname("api.openai.com"), id="_socket.gethostbyname"),
    ],
)
def test_every_resolver_refuses_other_hosts(blocked, lookup):
    with pytest.raises(NetworkBlockedError, match="replay mode never calls a provider"):
        lookup()


def test_loopback_names_resolve_locally(blocked, listener):
    v4 = socket.getaddrinfo("localhost.localdomain", 80, socket.AF_INET, socket.SOCK_STREAM)
    assert [info[4] for info in v4] == [("127.0.0.1", 80)]
    v6 = socket.getaddrinfo("ip6-localhost", 80, type=socket.SOCK_STREAM)
    assert [info[4][0] for info in v6] == ["::1"] and v6[0][0] is socket.AF_INET6
    assert {info[4][0] for info in socket.getaddrinfo("LocalHost.", 80)} <= {"127.0.0.1", "::1"}
    assert socket.gethostbyname("localhost.localdomain") == "127.0.0.1"
    assert socket.gethostbyname_ex("localhost")[2] == ["127.0.0.1"]
    assert socket.gethostbyaddr("127.0.0.1")[2] == ["127.0.0.1"]
    assert socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == ("127.0.0.1", "80")
    with socket.create_connection(("localhost.localdomain", listener), timeout=2):
        pass


def test_the_resolver_is_never_asked(tmp_path):
    """In a namespace whose resolver is a local recorder, guarded lookups send it no query.

    The control half (the same lookup unguarded) proves the recorder would have seen one."""
    if not _unshare_works("-rnm") or shutil.which("ip") is None:
        pytest.skip("needs unshare with network and mount namespaces")
    (tmp_path / "hosts").write_text("")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        import json, socket, threading
        from llmkit import guard
        queries = []
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 53))
        def record():
            while True:
                queries.append(server.recvfrom(4096)[0])
        threading.Thread(target=record, daemon=True).start()
        guarded = {}
        with guard.guarded():
            for name in ("ip6-localhost", "localhost.localdomain", "localhost", "api.openai.com"):
                for call in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
                    args = (name, 80) if call == "getaddrinfo" else (name,)
                    try:
                        getattr(socket, call)(*args)
                        guarded[f"{call}({name})"] = "answered"
                    except guard.NetworkBlockedError:
                        guarded[f"{call}({name})"] = "refused"
                    except OSError as exc:
                        guarded[f"{call}({name})"] = f"failed: {exc}"
        import time; time.sleep(0.2)
        during = len(queries)
        try:
            socket.gethostbyname("ip6-localhost")
        except OSError:
            pass
        time.sleep(0.2)
        print(json.dumps({"guarded": guarded, "during": during, "control": len(queries) - during}))
    """))
    script = (f"mount --bind {tmp_path / 'hosts'} /etc/hosts && "
              f"mount --bind {tmp_path / 'resolv.conf'} /etc/resolv.conf && ip link set lo up && "
              f"exec {sys.executable} {probe}")
    done = subprocess.run(["unshare", "-rnm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    if report["control"] == 0:
        pytest.skip("this system's resolver does not use /etc/resolv.conf: the recorder cannot see it")
    assert report["during"] == 0, report
    outcomes = report["guarded"]
    assert all(v == "refused" for k, v in outcomes.items() if "api.openai.com" in k), outcomes
    assert all(v == "answered" for k, v in outcomes.items() if "api.openai.com" not in k), outcomes


def test_http_clients_see_the_guard_error(blocked):
    with httpx2.Client() as client, pytest.raises(httpx2.ConnectError, match="replay mode never calls"):
        client.get("https://api.anthropic.com/v1/messages")


def test_loopback_is_allowed(blocked, listener):
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection((host, listener), timeout=2):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        tx.sendto(b"ping", ("localhost", rx.getsockname()[1]))
        assert rx.recvfrom(16)[0] == b"ping"
    assert socket.getaddrinfo("127.0.0.1", listener)
    assert all(guard.is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "[::1]", "localhost", b"127.0.0.1",
                                              "ip6-localhost", "localhost.localdomain"))
    assert not any(guard.is_loopback(h) for h in (TEST_NET, "0.0.0.0", "api.openai.com", "2001:db8::1",
                                                  "localhost.example.com", "127.1"))


def _originals() -> tuple:
    return (_socket.socket, dict(vars(socket.socket)), socket.getaddrinfo, _socket.getaddrinfo,
            socket.gethostbyname, socket.gethostbyname_ex, socket.gethostbyaddr, socket.getnameinfo)


def test_install_is_reference_counted_and_uninstall_restores_everything():
    before = _originals()
    guard.install()
    guard.install()  # a second holder (e.g. a second kit): no second layer of wrappers
    assert guard.installed() and guard.holders() == 2 and socket.getaddrinfo is not before[2]
    guard.uninstall()  # the first kit closes: the second still relies on the guard
    assert guard.installed()
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("example.com", 80)
    guard.uninstall()
    assert _originals() == before and not guard.installed()
    assert socket.getaddrinfo(TEST_NET, 443, type=socket.SOCK_STREAM)  # numeric: no lookup, no traffic
    guard.uninstall()  # uninstalling once too often is harmless
    assert guard.holders() == 0


def test_reset_lifts_every_hold():
    before = _originals()
    for _ in range(3):
        guard.install()
    guard.reset()
    assert not guard.installed() and _originals() == before


def test_holders_in_many_threads_never_lift_anothers_guard():
    before = _originals()
    guard.install()  # the main thread holds the guard throughout
    leaks: list[str] = []
    start = threading.Barrier(8)

    def churn() -> None:
        start.wait()
        for _ in range(200):
            with guard.guarded():
                pass
            try:  # after every release the main thread's hold must still be in force
                socket.getaddrinfo("example.com", 80)
                leaks.append("lookup allowed")
            except NetworkBlockedError:
                pass

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert leaks == [] and guard.holders() == 1
    guard.uninstall()
    assert _originals() == before


def test_guarded_context_manager_keeps_an_outer_hold():
    with guard.guarded():
        assert guard.installed()
        with pytest.raises(NetworkBlockedError):
            socket.getaddrinfo("example.com", 80)
    assert not guard.installed()
    guard.install()
    with guard.blocked():  # the older name
        pass
    assert guard.installed()  # it was on before, so it stays on


# --- the OS-level guard: scripts/netns.sh ----------------------------------------------------------


def _unshare_works(flags: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", flags, "true"], capture_output=True).returncode == 0


def _netns(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(NETNS), *command], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


CTYPES_CONNECT = textwrap.dedent(f"""
    import ctypes, errno, socket, struct
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 80) + socket.inet_aton("{TEST_NET_V4}") + bytes(8)
    rc = libc.connect(fd, ctypes.c_char_p(addr), len(addr))
    print(rc, errno.errorcode.get(ctypes.get_errno(), "OK"))
""")
LOOPBACK_ROUND_TRIP = textwrap.dedent("""
    import socket
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=2) as c, server.accept()[0] as peer:
            c.sendall(b"ping")
            print(peer.recv(4).decode())
""")


def test_netns_script_cuts_every_route_but_loopback():
    if not (_unshare_works("-n") or _unshare_works("-rn")) or shutil.which("ip") is None:
        pytest.skip("unshare --net is not permitted here: netns.sh runs commands plainly")
    t0 = time.monotonic()
    bash = _netns("bash", "-c", f"exec 3<>/dev/tcp/{TEST_NET_V4}/80")
    assert bash.returncode != 0 and "Network is unreachable" in bash.stderr
    c = _netns(sys.executable, "-c", CTYPES_CONNECT)  # below Python's socket module
    assert c.returncode == 0 and c.stdout.split() == ["-1", "ENETUNREACH"], c.stdout + c.stderr
    assert time.monotonic() - t0 < 10  # refused at once, not a connect timeout
    loop = _netns(sys.executable, "-c", LOOPBACK_ROUND_TRIP)
    assert loop.returncode == 0 and loop.stdout.strip() == "ping", loop.stderr
    assert loop.stderr.splitlines()[0].startswith("netns.sh: network namespace with loopback only")
    assert _netns("sh", "-c", "exit 7").returncode == 7  # the command's exit status comes through


def test_netns_script_runs_plainly_when_told_or_unable():
    plain = _netns(sys.executable, "-c", LOOPBACK_ROUND_TRIP, env={"LLMKIT_NETNS": "off"})
    assert plain.returncode == 0 and plain.stdout.strip() == "ping"
    said = "netns.sh: no network namespace available here: running with the normal network"
    assert plain.stderr.splitlines() == [said]
    assert _netns().returncode == 2  # no command: usage


def test_windows_event_loop_paths_are_checked():
    """Windows' proactor connects and sends through overlapped I/O: its two entry points are wrapped."""

    class Proactor:  # the shape of asyncio.windows_events.IocpProactor, which exists only on Windows
        calls: list = []

        def connect(self, conn, address):
            self.calls.append(address)

        def sendto(self, conn, buf, flags=0, addr=None):
            self.calls.append(addr)

    wrapped = {name: fn for _, name, fn in guard._proactor_wrappers(Proactor)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(NetworkBlockedError):
            wrapped["connect"](Proactor(), s, (TEST_NET_V4, 9))
        with pytest.raises(NetworkBlockedError):
            wrapped["sendto"](Proactor(), s, b"x", 0, (TEST_NET_V4, 9))
        wrapped["connect"](Proactor(), s, ("localhost", 9))
        wrapped["sendto"](Proactor(), s, b"x")
    assert Proactor.calls == [("127.0.0.1", 9), None]
    if sys.platform == "win32":
        from asyncio.windows_events import IocpProactor

        before = IocpProactor.connect
        with guard.guarded():
            assert IocpProactor.connect is not before
        assert IocpProactor.connect is before
