"""Scripted cassettes: answers written by hand, rendered in each provider's exact wire format.

A lesson that cannot be recorded live (no keys in CI, or a failure we want on cue) gets a *script*:
a Python file with ``def reply(req: ScriptedRequest) -> Reply | str | None`` (None: leave the request
unrecorded, so replay reports a cassette miss for it). Running the lesson with
``LLMKIT_MODE=record LLMKIT_SCRIPT=cassettes/scripts/NN_name.py`` sends every request the official SDKs
make to that function and writes the cassette, with provenance ``scripted`` (never ``recorded``). The
request bodies in the cassette are therefore exactly what the SDKs send, and the responses follow the
framing documented in docs/design.md ("Facts about the wire"), with deterministic, realistic pacing.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .. import providers
from ..errors import ConfigError
from ..providers._scripted import estimate_tokens
from .cassette import Cassette, Interaction, RecordedRequest, RecordedResponse

__all__ = ["Reply", "ScriptRecorder", "ScriptedRequest", "ToolCall", "api_of", "estimate_tokens", "load_script",
           "render"]


@dataclass
class ToolCall:
    """A tool call the scripted model makes. ``arguments`` may be a dict or raw (even invalid) JSON text."""

    name: str
    arguments: dict | str = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass
class Reply:
    """What the scripted model answers. Token counts default to an estimate of ~4 characters/token."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str | None = None  # stop | length | tool_calls | content_filter (derived when None)
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: int = 200
    error: str | None = None  # with status >= 400: the provider's error message
    ttft_ms: float = 320.0
    tokens_per_s: float = 70.0
    json_body: Any = None  # a raw JSON body, served as is (embeddings, count_tokens overrides)


@dataclass
class ScriptedRequest:
    """A request as the script sees it."""

    provider: str
    api: str  # chat | responses | messages | count_tokens | generate | count_gemini | embeddings
    path: str
    body: Any
    stream: bool
    n: int  # how many requests this script has answered before this one

    @property
    def model(self) -> str:
        return providers.get(self.provider).model_of(self.path, self.body)

    def last_user_text(self) -> str:
        """The text of the newest user message, in any provider's format."""
        body = self.body or {}
        msgs = body.get("messages") or body.get("contents") or body.get("input") or []
        if isinstance(msgs, str):
            return msgs
        for m in reversed(msgs):
            if m.get("role", "user") == "user":
                text = _text_of(m.get("content", m.get("parts")))
                if text:
                    return text
        return ""

    def has_tool_results(self) -> bool:
        raw = json.dumps(self.body or {})
        return any(s in raw for s in ('"role": "tool"', '"tool_result"', '"functionResponse"',
                                      '"function_call_output"'))

    def tool_results(self) -> list[str]:
        """The contents of tool results in the newest turn (as text)."""
        body = self.body or {}
        out: list[str] = []
        for m in body.get("messages", []) or []:
            if m.get("role") == "tool":
                out.append(_text_of(m.get("content")))
            elif isinstance(m.get("content"), list):
                out += [_text_of(b.get("content")) for b in m["content"] if b.get("type") == "tool_result"]
        for c in body.get("contents", []) or []:
            for p in c.get("parts", []):
                if "functionResponse" in p:
                    out.append(json.dumps(p["functionResponse"].get("response")))
        if isinstance(body.get("input"), list):
            out += [str(i.get("output")) for i in body["input"] if i.get("type") == "function_call_output"]
        return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(filter(None, (_text_of(c) for c in content)))
    if isinstance(content, dict):
        return content.get("text") or ""
    return ""


def api_of(provider: str, path: str) -> str:
    """Which API of ``provider`` a path calls (``chat``, ``messages``, ``generate`` ...)."""
    return providers.get(provider).api_of(path)


def render(req: ScriptedRequest, reply: Reply | str, query: dict[str, str]) -> RecordedResponse:
    """Turn a scripted reply into the provider's exact response (status, headers, body or frames)."""
    if isinstance(reply, str):
        reply = Reply(text=reply)
    provider = providers.get(req.provider)
    seed = f"{req.provider}:{req.n}:{json.dumps(req.body, sort_keys=True)[:4000]}"
    if reply.status >= 400:
        body = provider.error_body(reply.status, reply.error)
        return RecordedResponse(reply.status, provider.error_headers(reply.status), body=body, t_ms=reply.ttft_ms)
    if reply.json_body is not None:
        return RecordedResponse(200, {"content-type": "application/json"}, body=reply.json_body, t_ms=reply.ttft_ms)
    response = provider.render_scripted(req, reply, seed, query)
    if response is None:
        raise ConfigError(f"scripted cassettes cannot render {req.provider} {req.path} yet; "
                          "give the Reply a json_body.")
    return response


def load_script(path: str | Path) -> Callable[[ScriptedRequest], Reply | str]:
    """Import a script file and return its ``reply`` function."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"LLMKIT_SCRIPT={path} does not exist.")
    spec = importlib.util.spec_from_file_location(f"llmkit_script_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "reply", None)):
        raise ConfigError(f"{path} must define reply(req: ScriptedRequest) -> Reply | str.")
    return module.reply


class ScriptRecorder:
    """Record mode with a script instead of a provider: same interface as :class:`Recorder`."""

    def __init__(self, cassette: Cassette, path: str | Path, script: Callable[[ScriptedRequest], Reply | str]):
        self.cassette = cassette
        self.path = Path(path)
        self.script = script
        self.errors: list[Exception] = []
        self.cassette.provenance = {"kind": "scripted", **{k: v for k, v in cassette.provenance.items()
                                                           if k != "kind"}}

    async def forward(self, request: RecordedRequest, headers: dict[str, str], raw: bytes, send: Any,
                      fault: Any = None, observe: Any = None) -> RecordedResponse | None:
        from .server import serve_response

        query = dict(parse_qsl(request.query))
        provider = providers.get(request.provider)
        stream = provider.wants_stream(request.path, query, request.body)
        sreq = ScriptedRequest(request.provider, api_of(request.provider, request.path), request.path,
                               request.body, stream, len(self.cassette.interactions))
        answer = self.script(sreq)
        if answer is None:  # the script leaves this request unrecorded: replay will report a miss
            from .server import _send_json

            message = "llmkit scripted recording: the script has no answer for this request (not recorded)."
            await _send_json(send, 400, provider.error_body(400, message))
            return None
        response = render(sreq, answer, query)
        stored = RecordedRequest(request.provider, request.method, request.path,
                                 "&".join(f"{k}={v}" for k, v in query.items() if k != "key"), request.body)
        self.cassette.interactions.append(Interaction(stored, response))
        self.cassette.save(self.path)
        def before_end(body: bytes) -> None:
            if observe is not None:
                observe(response.status, body, response.is_stream)

        await serve_response(send, request, len(self.cassette.interactions) - 1, response, fault, 0.0, None,
                             before_end=before_end)
        return response

    async def aclose(self) -> None:
        return None
