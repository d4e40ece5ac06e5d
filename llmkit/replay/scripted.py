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
from ..errors import ConfigError, ScriptedReplyRejected
from ..providers._scripted import estimate_tokens
from .cassette import Cassette, CassetteWriter, Interaction, RecordedRequest, RecordedResponse

__all__ = ["Constraints", "Reply", "ScriptRecorder", "ScriptedRequest", "ToolCall", "api_of", "check_reply",
           "check_script", "estimate_tokens", "load_script", "render", "violations"]


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
    refusal: str | None = None  # the model declines: OpenAI's message.refusal / refusal item, Anthropic's "refusal"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None  # of input_tokens, read from the prompt cache (only where the request qualifies)
    cache_write_tokens: int | None = None  # of input_tokens, written to the cache (Anthropic's cache_control)
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
    method: str = "POST"  # GET / DELETE for a resource such as Gemini's cachedContents/{id}

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


@dataclass
class Constraints:
    """What a request forbids its reply, read from the body by the provider's scripted module.

    Introduced in lesson 4 (04_structured_output). ``schema`` is a strict response format's JSON schema;
    ``tools`` maps each declared tool to its schema when the tool is strict (None: not enforced);
    ``choice`` is ``auto`` | ``none`` | ``required`` and ``forced`` the one tool a request forces.
    The ``*_name`` fields say how the provider spells each setting, for the error message.
    """

    schema: dict | None = None
    schema_name: str = "response format"
    tools: dict[str, dict | None] = field(default_factory=dict)
    choice: str = "auto"
    forced: str | None = None
    choice_name: str = "tool_choice"
    max_tokens: int | None = None
    max_tokens_name: str = "max_tokens"
    truncated_name: str = 'finish "length"'


def _constraints(req: ScriptedRequest) -> Constraints:
    try:
        module = importlib.import_module(f"llmkit.providers._{req.provider}_scripted")
    except ModuleNotFoundError:
        return Constraints()
    read = getattr(module, "constraints", None)
    body = req.body if isinstance(req.body, dict) else {}
    return read(req.api, body) if read else Constraints()


def _schema_errors(schema: dict, value: Any) -> list[str]:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - pinned in constraints.txt
        raise ConfigError("checking scripted replies against strict schemas needs the jsonschema package: "
                          "pip install -e '.[test]'.") from exc
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))][:5]


def violations(req: ScriptedRequest, reply: Reply | str) -> list[str]:
    """Why the real API could not send ``reply`` for ``req`` (empty: it could).

    Introduced in lesson 4 (04_structured_output). A refusal, a truncated reply (finish ``length``) and a
    content-filter stop stay allowed: they are what the real API sends when it cannot comply.
    """
    if isinstance(reply, str):
        reply = Reply(text=reply)
    if reply.status >= 400 or reply.json_body is not None or req.api not in ("chat", "responses", "messages",
                                                                             "generate"):
        return []
    c = _constraints(req)
    finish = reply.finish or ("tool_calls" if reply.tool_calls else "stop")
    cut = finish in ("length", "content_filter") or bool(reply.refusal)
    out: list[str] = []
    out_tokens = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(
        reply.text + "".join(tc.name + tc.arguments_text() for tc in reply.tool_calls))
    if c.max_tokens is not None and out_tokens > c.max_tokens and finish != "length":
        out.append(f"{c.max_tokens_name}={c.max_tokens}: the reply is ~{out_tokens} tokens but not marked truncated. "
                   f"Shorten it, or cut it and mark it Reply(finish=\"length\") ({c.truncated_name}).")
    if c.schema is not None and reply.text and not reply.tool_calls and not cut:
        try:
            problems = _schema_errors(c.schema, json.loads(reply.text))
        except json.JSONDecodeError as exc:
            problems = [f"not JSON ({exc.msg} at character {exc.pos})"]
        if problems:
            out.append(f"strict {c.schema_name}: constrained decoding cannot produce this text ("
                       + "; ".join(problems) + "). Answer valid JSON for the schema, or send a refusal "
                       "(Reply(refusal=...)) or a truncated reply (finish=\"length\").")
    for tc in reply.tool_calls:
        if tc.name not in c.tools:
            declared = ", ".join(sorted(c.tools)) or "none"
            out.append(f"tool call {tc.name!r}: the request declares no such tool (declared: {declared}). "
                       "Call a declared tool, or answer with text.")
        elif c.tools[tc.name] is not None and not cut:
            try:
                args = json.loads(tc.arguments_text())
                problems = _schema_errors(c.tools[tc.name], args)
            except json.JSONDecodeError as exc:
                problems = [f"not JSON ({exc.msg})"]
            if problems:
                out.append(f"strict tool {tc.name!r}: its arguments break the tool's schema ("
                           + "; ".join(problems) + "). Send arguments that fit the schema.")
    if not cut:
        if c.choice == "none" and reply.tool_calls:
            out.append(f"{c.choice_name} forbids tool calls, the reply makes {len(reply.tool_calls)}. Answer "
                       "with text.")
        elif c.choice == "required" and not reply.tool_calls:
            what = f"a call to {c.forced!r}" if c.forced else "a tool call"
            out.append(f"{c.choice_name} requires {what}, the reply makes none. Reply with "
                       f"tool_calls=[ToolCall({(c.forced or 'name')!r}, ...)].")
        elif c.forced and any(tc.name != c.forced for tc in reply.tool_calls):
            out.append(f"{c.choice_name} forces {c.forced!r}, the reply calls "
                       f"{sorted({tc.name for tc in reply.tool_calls})}. Call {c.forced!r} only.")
    return out


def check_reply(req: ScriptedRequest, reply: Reply | str) -> None:
    """Raise :class:`ScriptedReplyRejected` when the real API could not send ``reply`` for ``req``.

    Introduced in lesson 4 (04_structured_output); :func:`render` calls it for every scripted reply.
    """
    problems = violations(req, reply)
    if problems:
        model = req.model if isinstance(req.body, dict) else ""
        raise ScriptedReplyRejected(
            f"scripted reply #{req.n} to {req.provider} {req.api} (POST {req.path}, model {model!r}, asking "
            f"{req.last_user_text()[:60]!r}) is one the real API could not send:\n- " + "\n- ".join(problems)
            + "\nFix the script's reply() for this request.")


def check_script(script: str | Path, cassette: str | Path) -> list[str]:
    """Ask ``script`` again for every request recorded in ``cassette``; list the replies it would reject.

    Introduced in lesson 4 (04_structured_output): a sweep before re-recording, so a script whose
    answers break their requests' constraints is found without running its notebook.
    """
    reply_of = load_script(script)
    recorded = Cassette.load(Path(cassette))
    found: list[str] = []
    for i, interaction in enumerate(recorded.interactions):
        request = interaction.request
        query = dict(parse_qsl(request.query))
        provider = providers.get(request.provider)
        sreq = ScriptedRequest(request.provider, api_of(request.provider, request.path), request.path,
                               request.body, provider.wants_stream(request.path, query, request.body), i,
                               request.method)
        answer = reply_of(sreq)
        if answer is not None:
            found += [f"interaction {i} ({request.provider} {sreq.api}): {p}" for p in violations(sreq, answer)]
    return found


def render(req: ScriptedRequest, reply: Reply | str, query: dict[str, str]) -> RecordedResponse:
    """Turn a scripted reply into the provider's exact response (status, headers, body or frames).

    A reply the real API could not send for this request raises :class:`ScriptedReplyRejected` (lesson 4).
    """
    if isinstance(reply, str):
        reply = Reply(text=reply)
    check_reply(req, reply)
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
        self._writer = CassetteWriter()
        self.errors: list[Exception] = []
        self._desks: dict[str, Any] = {}
        self.cassette.provenance = {"kind": "scripted", **{k: v for k, v in cassette.provenance.items()
                                                           if k != "kind"}}

    async def forward(self, request: RecordedRequest, headers: dict[str, str], raw: bytes, send: Any,
                      fault: Any = None, observe: Any = None) -> RecordedResponse | None:
        from .server import _replay_headers, _send_json, serve_response

        query = dict(parse_qsl(request.query))
        provider = providers.get(request.provider)
        desk = self._desk(request.provider)
        try:
            if desk is not None and desk.handles(request.method, request.path):
                response = desk.handle(request.method, request.path, query, request.body).response()
            else:
                response = self._answer(request, provider, query, len(self.cassette.interactions))
        except ScriptedReplyRejected as exc:  # a 400 the SDK raises at once (no retries), saying what to fix
            self.errors.append(exc)
            await _send_json(send, 400, provider.error_body(400, f"llmkit scripted recording: {exc}"))
            return None
        if response is None:  # the script leaves this request unrecorded: replay will report a miss
            message = "llmkit scripted recording: the script has no answer for this request (not recorded)."
            await _send_json(send, 400, provider.error_body(400, message))
            return None
        stored = RecordedRequest(request.provider, request.method, request.path,
                                 "&".join(f"{k}={v}" for k, v in query.items() if k != "key"), request.body)
        self._writer.append(self.cassette, self.path, Interaction(stored, response))
        def before_end(body: bytes) -> None:
            if observe is not None:
                observe(response.status, body, response.is_stream)

        index = len(self.cassette.interactions) - 1
        prepared = None
        if not response.is_stream:  # the cassette keeps the provider's own URLs; the client gets local ones
            prepared = (_replay_headers(response, index),
                        provider.localize(response.body_bytes(), f"http://{headers.get('host', '')}"))
        await serve_response(send, request, index, response, fault, 0.0, None, before_end=before_end,
                             prepared=prepared)
        return response

    def _answer(self, request: RecordedRequest, provider: Any, query: dict[str, str],
                n: int) -> RecordedResponse | None:
        stream = provider.wants_stream(request.path, query, request.body)
        sreq = ScriptedRequest(request.provider, api_of(request.provider, request.path), request.path,
                               request.body, stream, n, request.method)
        answer = self.script(sreq)
        return None if answer is None else render(sreq, answer, query)

    def _desk(self, name: str) -> Any:
        """The provider's batch desk for this recording (lesson 11); each request in a batch is answered
        by the script like one sent alone."""
        if name not in self._desks:
            def inner(path: str, body: dict) -> tuple[int, Any]:
                response = self._answer(RecordedRequest(name, "POST", path, "", body), providers.get(name), {},
                                        len(self.cassette.interactions))
                if response is None:
                    raise ScriptedReplyRejected(f"the script has no answer for a {name} batch request to "
                                                f"{path} asking {str(body)[:80]!r}; give one in reply().")
                return response.status, response.body
            self._desks[name] = providers.get(name).batch_desk(inner, seed=self.cassette.name)
        return self._desks[name]

    async def aclose(self) -> None:
        return None

