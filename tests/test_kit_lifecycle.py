"""A Kit owns what it builds (lesson 0, 00_setup_and_replay): ``close()`` closes every SDK and HTTP client
it made, stops its server and releases exactly its own hold on the network guard; ``http_client()`` is the
one configured httpx2 client, reused per event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest

from llmkit import guard
from llmkit.errors import ConfigError
from llmkit.kit import Kit

SCRIPT = '''
from llmkit.replay.scripted import Reply

def reply(req):
    return Reply(text="hello from the script")
'''

ASK = [{"role": "user", "content": "hi"}]


def _ask_openai(client) -> str:
    return client.chat.completions.create(model="gpt-4.1-mini", messages=ASK).choices[0].message.content


def _ask_anthropic(client) -> str:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=ASK).content[0].text


def _raw_openai(kit: Kit, client: httpx2.Client, base_url: str | None = None) -> int:
    response = client.post(f"{base_url or kit.base_url('openai')}/chat/completions", headers=kit.headers("openai"),
                           json={"model": "gpt-4.1-mini", "messages": ASK})
    return response.status_code


@pytest.fixture(scope="module")
def cassettes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cassette recorded through the SDKs and raw HTTP against a scripted model."""
    folder = tmp_path_factory.mktemp("lifecycle")
    (folder / "script.py").write_text(SCRIPT)
    with Kit("life", mode="record", script=str(folder / "script.py"), cassette_dir=folder) as kit:
        assert _ask_openai(kit.openai) == "hello from the script"
        assert _ask_anthropic(kit.anthropic) == "hello from the script"
        assert _raw_openai(kit, kit.http_client()) == 200
        kit.check_recording()
    return folder


def _refused(call) -> None:
    """``call()`` fails because its client is closed (not because the server is gone: no socket is opened)."""
    with pytest.raises(Exception) as info:
        call()
    assert "client has been closed" in f"{info.value} {info.value.__cause__}"


def _replay(folder: Path) -> Kit:
    return Kit("life", mode="replay", speed=0, cassette_dir=folder)


def test_close_closes_every_client_it_built_and_the_server(cassettes: Path) -> None:
    kit = _replay(cassettes)
    openai, anthropic, http = kit.openai, kit.anthropic, kit.http_client()
    openai_async, gemini = kit.openai_async, kit.gemini
    assert _ask_openai(openai) == _ask_anthropic(anthropic) == "hello from the script"
    url, base_url = kit.server_url, kit.base_url("openai")
    kit.close()

    _refused(lambda: _ask_openai(openai.with_options(max_retries=0)))
    _refused(lambda: _ask_anthropic(anthropic.with_options(max_retries=0)))
    _refused(lambda: _raw_openai(kit, http, base_url))
    _refused(lambda: asyncio.run(openai_async.with_options(max_retries=0).chat.completions.create(
        model="gpt-4.1-mini", messages=ASK)))
    assert gemini._api_client._httpx_client.is_closed
    with httpx2.Client() as probe, pytest.raises(httpx2.ConnectError):
        probe.get(url)  # the server is gone too
    with pytest.raises(ConfigError, match="closed"):
        kit.http_client()
    kit.close()  # idempotent


def test_async_clients_close_from_inside_a_running_loop(cassettes: Path) -> None:
    """In a notebook a loop is running while ``kit.close()`` runs: the close is scheduled on it."""
    kit = _replay(cassettes)

    async def use_then_close() -> tuple[object, object]:
        http = kit.http_client(is_async=True)
        response = await http.post(f"{kit.base_url('openai')}/chat/completions", headers=kit.headers("openai"),
                                   json={"model": "gpt-4.1-mini", "messages": ASK})
        assert response.status_code == 200
        sdk = kit.anthropic_async
        kit.close()
        await asyncio.sleep(0.05)  # the scheduled closes run
        return http, sdk

    http, sdk = asyncio.run(use_then_close())
    assert http.is_closed and sdk._client.is_closed


def test_the_guard_is_held_once_per_kit(cassettes: Path) -> None:
    before = guard.holders()
    a, b = _replay(cassettes), _replay(cassettes)
    assert guard.holders() == before + 2
    a.close()
    a.close()  # a second close must not release b's hold
    assert guard.installed() and guard.holders() == before + 1
    with pytest.raises(Exception, match="replay mode never calls"):
        httpx2.get("http://example.com", timeout=1)
    b.close()
    assert guard.holders() == before


def test_a_kit_is_a_context_manager(cassettes: Path) -> None:
    before = guard.holders()
    with _replay(cassettes) as kit:
        assert guard.holders() == before + 1 and _ask_openai(kit.openai) == "hello from the script"
    assert kit.closed and kit.server_url is None and guard.holders() == before


def test_http_client_is_one_per_event_loop(cassettes: Path) -> None:
    with _replay(cassettes) as kit:
        assert kit.http_client() is kit.http_client()
        assert _raw_openai(kit, kit.http_client()) == 200

        async def twice() -> tuple[object, object]:
            return kit.http_client(is_async=True), kit.http_client(is_async=True)

        first, again = asyncio.run(twice())
        assert first is again
        other, _ = asyncio.run(twice())
        assert other is not first  # a new loop gets its own client (connections belong to their loop)

        async def close_then_get() -> tuple[object, object]:
            before = kit.http_client(is_async=True)
            await kit.aclose_http_client()
            return before, kit.http_client(is_async=True)

        closed, fresh = asyncio.run(close_then_get())
        assert closed.is_closed and not fresh.is_closed and fresh is not closed
        timeout = kit.http_client().timeout
        assert (timeout.read, timeout.connect) == (600.0, 5.0)  # the SDKs' own defaults, in one place


def test_live_mode_http_client_reports_usage(monkeypatch: pytest.MonkeyPatch, serve) -> None:
    """In live mode no embedded server sees the traffic: the client's transport shows it to ``kit.usage``."""
    from replay_helpers import OPENAI_CHAT, chat_body, scripted

    served = serve(scripted("openai", OPENAI_CHAT, chat_body("hi"), "hello"))
    monkeypatch.setenv("LLMKIT_UPSTREAM_OPENAI", served.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with Kit("live-usage", mode="live") as kit:
        response = kit.http_client().post(f"{kit.base_url('openai')}/chat/completions",
                                          headers=kit.headers("openai"), json=chat_body("hi"))
        assert response.status_code == 200
        assert len(kit.usage) == 1


def test_scripted_and_injects_faults_say_what_a_cell_may_rely_on(tmp_path, monkeypatch) -> None:
    """Scripted cassette: exact wordings and faults hold; a recorded one: faults only; live mode: neither."""
    import json

    from llmkit.kit import Kit

    for kind in ("scripted", "recorded"):
        (tmp_path / f"{kind}.json").write_text(json.dumps(
            {"llmkit_cassette": 1, "name": kind, "provenance": {"kind": kind}, "interactions": []}))
        kit = Kit(kind, mode="replay", speed=0, cassette_dir=tmp_path)
        try:
            assert kit.scripted is (kind == "scripted") and kit.injects_faults
        finally:
            kit.close()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    kit = Kit("live", mode="live")
    try:
        assert not kit.scripted and not kit.injects_faults
    finally:
        kit.close()
