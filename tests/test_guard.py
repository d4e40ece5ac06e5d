"""The network guard: replay mode never leaves loopback, and says so clearly (lesson 0).

Introduced in lesson 0 (00_setup_and_replay). Only reserved documentation addresses (RFC 5737, RFC 3849)
and names that are refused before any lookup are used: nothing here can reach the network.
"""

from __future__ import annotations

import socket

import httpx2
import pytest

from llmkit import guard
from llmkit.errors import NetworkBlockedError

TEST_NET = "203.0.113.7"  # TEST-NET-3: never routed


@pytest.fixture
def blocked():
    guard.install()
    yield
    guard.uninstall()


@pytest.fixture
def listener():
    """A listening socket on 127.0.0.1 (a loopback peer for connect tests)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_non_loopback_connect_is_refused_with_a_clear_message(blocked):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(NetworkBlockedError) as info:
            s.connect((TEST_NET, 443))
        with pytest.raises(NetworkBlockedError):
            s.connect_ex((TEST_NET, 443))
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
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("IPv6 sockets are not available here")
    with s, pytest.raises(NetworkBlockedError):
        s.connect(("2001:db8::1", 443, 0, 0))


def test_http_clients_see_the_guard_error(blocked):
    with httpx2.Client() as client, pytest.raises(httpx2.ConnectError, match="replay mode never calls"):
        client.get("https://api.anthropic.com/v1/messages")


def test_loopback_is_allowed(blocked, listener):
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection((host, listener), timeout=2):
            pass
    assert socket.getaddrinfo("127.0.0.1", listener)
    assert all(guard.is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "[::1]", "localhost", b"127.0.0.1"))
    assert not any(guard.is_loopback(h) for h in (TEST_NET, "0.0.0.0", "api.openai.com", "2001:db8::1"))


def test_uninstall_restores_the_original_functions():
    originals = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)
    guard.install()
    guard.install()  # idempotent: a second install does not stack wrappers
    assert guard.installed() and socket.getaddrinfo is not originals[2]
    guard.uninstall()
    assert (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo) == originals
    assert not guard.installed()
    assert socket.getaddrinfo(TEST_NET, 443, type=socket.SOCK_STREAM)  # numeric: no lookup, no traffic
    guard.uninstall()  # uninstalling twice is harmless


def test_blocked_context_manager_restores_the_previous_state():
    with guard.blocked():
        assert guard.installed()
        with pytest.raises(NetworkBlockedError):
            socket.getaddrinfo("example.com", 80)
    assert not guard.installed()
    guard.install()
    with guard.blocked():
        pass
    assert guard.installed()  # it was on before, so it stays on
