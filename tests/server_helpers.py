"""Helpers for the relay server tests (lesson 9, 09_sse_server): a scripted cassette recorded through the
official SDK, a real redis-server on loopback, relay servers on loopback and a small SSE client."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "notebooks" / "cassettes" / "scripts" / "09_sse_server.py"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PROMPTS = {"long": "Explain SSE, please.", "resume": "How does resume work?", "cancel": "How does cancel work?",
           "html": "Repeat this html."}


def answers() -> dict[str, str]:
    """The answers the lesson's script gives, keyed like ``PROMPTS``."""
    spec = importlib.util.spec_from_file_location("script09", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"long": module.ANSWERS["sse"], "resume": module.ANSWERS["resume"], "cancel": module.ANSWERS["cancel"],
            "html": module.ANSWERS["html"]}


def body(key: str, provider: str = "openai") -> dict:
    return {"provider": provider, "messages": [{"role": "user", "content": PROMPTS[key]}]}


def record_cassette(folder: Path, name: str = "relay", providers: tuple[str, ...] = ("openai",)) -> None:
    """Record the prompts through ``llmkit.chat.astream`` against the lesson's script (scripted provenance)."""
    import asyncio

    from llmkit import chat
    from llmkit.kit import Kit
    from llmkit.server import ChatRequest

    kit = Kit(name, mode="record", script=str(SCRIPT), cassette_dir=folder)

    async def run() -> None:
        for provider in providers:
            for key in PROMPTS:
                req = ChatRequest.model_validate(body(key, provider))
                async for _ in chat.astream(kit, provider, req.neutral_messages(), max_tokens=req.max_tokens):
                    pass

    try:
        asyncio.run(run())
    finally:
        kit.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


def start_redis(folder: Path) -> RedisServer:
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", proc)
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@dataclass
class SSE:
    id: str | None
    event: str
    data: Any


@dataclass
class Read:
    """What one GET connection delivered."""

    status: int
    events: list[SSE] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "delta")

    @property
    def terminal(self) -> SSE | None:
        return next((e for e in self.events if e.event in ("done", "error", "cancelled")), None)


def read_events(client: httpx.Client, url: str, token: str, *, last: str | bytes | None = None,
                stop_after_deltas: int | None = None) -> Read:
    """Read a stream's events; hang up after ``stop_after_deltas`` text events (a dropped connection)."""
    headers = {"authorization": f"Bearer {token}"}
    if last is not None:
        headers["last-event-id"] = last
    with client.stream("GET", url, headers=headers) as resp:
        out = Read(resp.status_code, headers=dict(resp.headers))
        if resp.status_code != 200:
            resp.read()
            return out
        fields: dict[str, Any] = {}
        deltas = 0
        try:
            for line in resp.iter_lines():
                if line.startswith(":"):
                    out.comments.append(line)
                elif line == "":
                    if "data" in fields:
                        out.events.append(SSE(fields.get("id"), fields.get("event", "message"),
                                              json.loads(fields["data"])))
                        deltas += out.events[-1].event == "delta"
                    fields = {}
                    if stop_after_deltas is not None and deltas >= stop_after_deltas:
                        return out
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except httpx.RemoteProtocolError:
            pass  # the server cut the connection: what was read so far counts
    return out


def read_to_end(client: httpx.Client, url: str, token: str, *, drops: list[int] = (),
                last: str | None = None) -> tuple[str, list[SSE], int]:
    """Read a stream to its end, hanging up after each count in ``drops`` and resuming with Last-Event-ID;
    a connection the server cuts is resumed too. Returns the text, all events and the connections made."""
    events: list[SSE] = []
    plan = list(drops)
    connections = 0
    while True:
        connections += 1
        read = read_events(client, url, token, last=last, stop_after_deltas=plan.pop(0) if plan else None)
        assert read.status == 200, read.status
        events += read.events
        if events and events[-1].id is not None:
            last = events[-1].id
        if read.terminal is not None:
            return "".join(e.data["text"] for e in events if e.event == "delta"), events, connections
        assert connections < 50, "the stream never ended"


class CutEvents:
    """ASGI middleware that cuts an events connection after ``n`` body messages, as a proxy timing out or
    a deploy would. ``times`` limits how many connections it cuts (None: every one); ``cuts`` counts them."""

    def __init__(self, app, n: int, *, times: int | None = None):
        self.app, self.n, self.times, self.cuts = app, n, times, 0

    async def __call__(self, scope, receive, send):
        exhausted = self.times is not None and self.cuts >= self.times
        if scope["type"] != "http" or not scope["path"].endswith("/events") or exhausted:
            return await self.app(scope, receive, send)
        sent = 0

        async def cutting_send(message):
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += 1
                if sent > self.n:
                    self.cuts += 1
                    raise ConnectionResetError("cut by the test proxy")
            await send(message)

        return await self.app(scope, receive, cutting_send)
