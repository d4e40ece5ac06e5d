"""Helpers for the replay tests: cassettes rendered by the scripted renderer, servers on loopback.

Introduced in lesson 0 (00_setup_and_replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from llmkit.replay import providers
from llmkit.replay.cassette import Cassette, Interaction, Player, RecordedRequest
from llmkit.replay.scripted import Reply, ScriptedRequest, api_of, render
from llmkit.replay.server import ReplayApp, ServerThread

OPENAI_CHAT = "/v1/chat/completions"
OPENAI_RESPONSES = "/v1/responses"
ANTHROPIC_MESSAGES = "/v1/messages"
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
GEMINI_GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI request (the fake upstreams of the recorder tests read it this way)."""
    raw, more = b"", True
    while more:
        message = await receive()
        raw, more = raw + message.get("body", b""), message.get("more_body", False)
    return raw


def scripted(provider: str, path: str, body: Any, reply: Reply | str, *, query: str = "",
             n: int = 0) -> Interaction:
    """One interaction whose response the scripted renderer writes in ``provider``'s wire format."""
    q = dict(parse_qsl(query))
    stream = providers.wants_stream(provider, path, q, body)
    request = ScriptedRequest(provider, api_of(provider, path), path, body, stream, n)
    return Interaction(RecordedRequest(provider, "POST", path, query, body), render(request, reply, q))


def cassette_of(*interactions: Interaction, name: str = "test") -> Cassette:
    return Cassette(name, {"kind": "scripted", "note": "built by tests"}, list(interactions))


@dataclass
class Served:
    """A replay server running in a background thread."""

    url: str
    app: ReplayApp
    player: Player
    thread: ServerThread

    def stop(self) -> None:
        self.thread.stop()


def start_server(source: Cassette | Interaction | list[Interaction], *, speed: float = 0.0) -> Served:
    if isinstance(source, Interaction):
        source = [source]
    cassette = source if isinstance(source, Cassette) else cassette_of(*source)
    player = Player(cassette)
    app = ReplayApp(player, speed=speed)
    thread = ServerThread(app).start()
    return Served(thread.url, app, player, thread)


# Request bodies the way the SDKs would send them, for raw-HTTP tests.
def chat_body(text: str, *, stream: bool = False) -> dict:
    body: dict[str, Any] = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return body


def responses_body(text: str, *, stream: bool = False) -> dict:
    return {"model": "gpt-4.1-mini", "input": text, **({"stream": True} if stream else {})}


def anthropic_body(text: str, *, stream: bool = False) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": text}],
            **({"stream": True} if stream else {})}


def gemini_body(text: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}
