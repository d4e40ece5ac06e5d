"""Scripted cassettes: answers written by hand, rendered in each provider's exact wire format.

A lesson that cannot be recorded live (no keys in CI, or a failure we want on cue) gets a *script*:
a Python file with ``def reply(req: ScriptedRequest) -> Reply | str | None`` (None: leave the request
unrecorded, so replay reports a cassette miss for it). Running the lesson with
``LLMKIT_MODE=record LLMKIT_SCRIPT=cassettes/scripts/NN_name.py`` sends every request the official SDKs
make to that function and writes the cassette, with provenance ``scripted`` (never ``recorded``). The
request bodies in the cassette are therefore exactly what the SDKs send, and the responses follow the
framing documented in DESIGN.md "Facts about the wire", with deterministic, realistic pacing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError
from . import providers
from .cassette import Cassette, Frame, Interaction, RecordedRequest, RecordedResponse

CREATED = 1767225600  # 2026-01-01T00:00:00Z, a fixed timestamp so scripted cassettes are stable


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
        if self.provider == "gemini":
            return self.path.split("/models/")[1].split(":")[0]
        return (self.body or {}).get("model", "")

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


def estimate_tokens(text: str) -> int:
    """A documented estimate: about four characters per token (OpenAI's rule of thumb for English)."""
    return max(1, math.ceil(len(text) / 4))


def _pieces(text: str) -> list[str]:
    """Split text the way tokens arrive: a word with its leading space, punctuation apart."""
    return re.findall(r"\s*[\w'’]+|\s*[^\w\s]+|\s+", text) or ([text] if text else [])


def _arg_pieces(args: str, size: int = 12) -> list[str]:
    return [args[i:i + size] for i in range(0, len(args), size)] or [""]


class _Clock:
    """Deterministic frame times: first token at ttft, then one token per 1/tokens_per_s with jitter."""

    def __init__(self, reply: Reply, seed: str):
        self.t = reply.ttft_ms
        self.step = 1000.0 / max(reply.tokens_per_s, 1e-3)
        self._h = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
        self.headers_ms = round(reply.ttft_ms * 0.85, 2)

    def next(self, tokens: int = 1) -> float:
        now = self.t
        self._h = (self._h * 1103515245 + 12345) & 0x7FFFFFFF
        jitter = 0.6 + 0.8 * (self._h % 1000) / 1000
        self.t += self.step * max(tokens, 1) * jitter
        return round(now, 2)


def _finish(reply: Reply) -> str:
    return reply.finish or ("tool_calls" if reply.tool_calls else "stop")


def _usage(req: ScriptedRequest, reply: Reply) -> tuple[int, int]:
    inp = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(json.dumps(req.body or {}))
    out_text = reply.text + "".join(tc.name + tc.arguments_text() for tc in reply.tool_calls)
    out = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(out_text) if out_text else 1
    return inp, out


def _ids(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


# --- OpenAI chat completions ---------------------------------------------------------------------
_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def openai_chat(req: ScriptedRequest, reply: Reply, seed: str) -> RecordedResponse:
    cid = "chatcmpl-" + _ids(seed)[:29]
    model = req.model
    inp, out = _usage(req, reply)
    usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    finish = _OPENAI_FINISH.get(_finish(reply), _finish(reply))
    calls = [{"id": tc.id or f"call_{_ids(seed + str(i))[:24]}", "type": "function",
              "function": {"name": tc.name, "arguments": tc.arguments_text()}}
             for i, tc in enumerate(reply.tool_calls)]
    headers = {"content-type": "application/json", "openai-processing-ms": str(int(reply.ttft_ms)),
               "x-request-id": "req_" + _ids(seed)[:32]}
    if not req.stream:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None,
                                   "annotations": []}
        if calls:
            message["tool_calls"] = calls
        body = {"id": cid, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_llmkit"}
        clock = _Clock(reply, seed)
        return RecordedResponse(200, headers, body=body, t_ms=clock.next(out))
    clock = _Clock(reply, seed)
    include_usage = bool((req.body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
        data = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_llmkit",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                **({"usage": None} if include_usage else {}), **extra}
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

    frames = [Frame(clock.next(), chunk({"role": "assistant", "content": "", "refusal": None}))]
    for piece in _pieces(reply.text):
        frames.append(Frame(clock.next(), chunk({"content": piece})))
    for i, call in enumerate(calls):
        head = {"index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        frames.append(Frame(clock.next(), chunk({"tool_calls": [head]})))
        for piece in _arg_pieces(call["function"]["arguments"]):
            frames.append(Frame(clock.next(), chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})))
    frames.append(Frame(clock.next(), chunk({}, finish)))
    if include_usage:
        data = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_llmkit", "choices": [], "usage": usage}
        frames.append(Frame(clock.next(), f"data: {json.dumps(data, separators=(',', ':'))}\n\n"))
    frames.append(Frame(clock.next(0), "data: [DONE]\n\n"))
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return RecordedResponse(200, headers, stream=frames, headers_ms=clock.headers_ms)


# --- OpenAI Responses ------------------------------------------------------------------------------
def openai_responses(req: ScriptedRequest, reply: Reply, seed: str) -> RecordedResponse:
    rid = "resp_" + _ids(seed)[:48]
    inp, out = _usage(req, reply)
    body = req.body or {}
    usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}
    items: list[dict] = []
    if reply.text:
        items.append({"id": "msg_" + _ids(seed + "m")[:48], "type": "message", "status": "completed",
                      "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text}],
                      "role": "assistant"})
    for i, tc in enumerate(reply.tool_calls):
        items.append({"id": "fc_" + _ids(seed + f"f{i}")[:48], "type": "function_call", "status": "completed",
                      "arguments": tc.arguments_text(), "call_id": tc.id or "call_" + _ids(seed + str(i))[:24],
                      "name": tc.name})

    def response(status: str, output: list, use: Any) -> dict:
        return {"id": rid, "object": "response", "created_at": CREATED, "status": status, "background": False,
                "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": req.model, "output": output,
                "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
                "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto", "tools": body.get("tools", []), "top_p": 1.0, "truncation": "disabled",
                "usage": use, "user": None, "metadata": {}}

    headers = {"content-type": "application/json", "x-request-id": "req_" + _ids(seed)[:32]}
    clock = _Clock(reply, seed)
    if not req.stream:
        return RecordedResponse(200, headers, body=response("completed", items, usage), t_ms=clock.next(out))
    seq = 0
    frames: list[Frame] = []

    def emit(etype: str, t: float, **data: Any) -> None:
        nonlocal seq
        payload = {"type": etype, **data, "sequence_number": seq}
        seq += 1
        frames.append(Frame(t, f"event: {etype}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"))

    t = clock.next()
    emit("response.created", t, response=response("in_progress", [], None))
    emit("response.in_progress", t, response=response("in_progress", [], None))
    for idx, item in enumerate(items):
        if item["type"] == "message":
            emit("response.output_item.added", clock.next(0), output_index=idx,
                 item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit("response.content_part.added", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part=part)
            for piece in _pieces(reply.text):
                emit("response.output_text.delta", clock.next(), item_id=item["id"], output_index=idx,
                     content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, text=reply.text, logprobs=[])
            emit("response.content_part.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part={**part, "text": reply.text})
        else:
            emit("response.output_item.added", clock.next(), output_index=idx,
                 item={**item, "status": "in_progress", "arguments": ""})
            for piece in _arg_pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", clock.next(), item_id=item["id"],
                     output_index=idx, delta=piece)
            emit("response.function_call_arguments.done", clock.next(0), item_id=item["id"],
                 output_index=idx, arguments=item["arguments"], name=item["name"])
        emit("response.output_item.done", clock.next(0), output_index=idx, item=item)
    emit("response.completed", clock.next(0), response=response("completed", items, usage))
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return RecordedResponse(200, headers, stream=frames, headers_ms=clock.headers_ms)


# --- Anthropic messages ----------------------------------------------------------------------------
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def anthropic_messages(req: ScriptedRequest, reply: Reply, seed: str) -> RecordedResponse:
    mid = "msg_01" + _ids(seed)[:22]
    inp, out = _usage(req, reply)
    stop = _ANTHROPIC_STOP.get(_finish(reply), _finish(reply))
    blocks: list[dict] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for i, tc in enumerate(reply.tool_calls):
        args = tc.arguments if isinstance(tc.arguments, dict) else _loose_json(tc.arguments)
        blocks.append({"type": "tool_use", "id": tc.id or "toolu_01" + _ids(seed + str(i))[:22],
                       "name": tc.name, "input": args, "_raw": tc.arguments_text()})
    usage = {"input_tokens": inp, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": out, "service_tier": "standard"}
    headers = {"content-type": "application/json", "request-id": "req_011" + _ids(seed)[:21],
               "anthropic-ratelimit-requests-limit": "4000"}
    clock = _Clock(reply, seed)
    public_blocks = [{k: v for k, v in b.items() if k != "_raw"} for b in blocks]
    if not req.stream:
        body = {"id": mid, "type": "message", "role": "assistant", "model": req.model, "content": public_blocks,
                "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return RecordedResponse(200, headers, body=body, t_ms=clock.next(out))
    frames: list[Frame] = []

    def emit(etype: str, t: float, data: dict) -> None:
        payload = json.dumps({"type": etype, **data}, separators=(",", ":"))
        frames.append(Frame(t, f"event: {etype}\ndata: {payload}\n\n"))

    start_usage = {**usage, "output_tokens": 1}
    emit("message_start", clock.next(), {"message": {"id": mid, "type": "message", "role": "assistant",
                                                     "model": req.model, "content": [], "stop_reason": None,
                                                     "stop_sequence": None, "usage": start_usage}})
    for idx, block in enumerate(blocks):
        if block["type"] == "text":
            emit("content_block_start", clock.next(0), {"index": idx, "content_block": {"type": "text", "text": ""}})
            if idx == 0:
                emit("ping", clock.next(0), {})
            for piece in _pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                emit("content_block_delta", clock.next(), {"index": idx, "delta": delta})
        else:
            emit("content_block_start", clock.next(), {"index": idx, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            if idx == 0:
                emit("ping", clock.next(0), {})
            for piece in [""] + _arg_pieces(block["_raw"]):
                emit("content_block_delta", clock.next(), {"index": idx, "delta": {
                    "type": "input_json_delta", "partial_json": piece}})
        emit("content_block_stop", clock.next(0), {"index": idx})
    emit("message_delta", clock.next(0), {"delta": {"stop_reason": stop, "stop_sequence": None},
                                          "usage": {"output_tokens": out}})
    emit("message_stop", clock.next(0), {})
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return RecordedResponse(200, headers, stream=frames, headers_ms=clock.headers_ms)


def _loose_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


# --- Gemini ----------------------------------------------------------------------------------------
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def gemini_generate(req: ScriptedRequest, reply: Reply, seed: str, query: dict[str, str]) -> RecordedResponse:
    inp, out = _usage(req, reply)
    finish = _GEMINI_FINISH.get(_finish(reply), _finish(reply))
    model = req.model
    rid = _ids(seed)[:22]

    def usage(out_tokens: int) -> dict:
        return {"promptTokenCount": inp, "candidatesTokenCount": out_tokens, "totalTokenCount": inp + out_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inp}]}

    def chunk(parts: list[dict], finish_reason: str | None, out_tokens: int) -> dict:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason:
            cand["finishReason"] = finish_reason
        return {"candidates": [cand], "usageMetadata": usage(out_tokens), "modelVersion": model, "responseId": rid}

    call_parts = [{"functionCall": {"name": tc.name, "args": tc.arguments if isinstance(tc.arguments, dict)
                                    else _loose_json(tc.arguments)}} for tc in reply.tool_calls]
    headers = {"content-type": "application/json; charset=UTF-8", "server": "scaffolding on HTTPServer2"}
    clock = _Clock(reply, seed)
    if not req.stream:
        parts = ([{"text": reply.text}] if reply.text else []) + call_parts
        return RecordedResponse(200, headers, body=chunk(parts, finish, out), t_ms=clock.next(out))
    # Gemini streams a few tokens per chunk; usage is repeated on every chunk.
    pieces = _pieces(reply.text)
    groups = [pieces[i:i + 4] for i in range(0, len(pieces), 4)]
    bodies: list[tuple[float, dict]] = []
    done = 0
    for gi, group in enumerate(groups):
        done += len(group)
        last = gi == len(groups) - 1 and not call_parts
        bodies.append((clock.next(len(group)), chunk([{"text": "".join(group)}], finish if last else None,
                                                      max(1, round(out * done / max(len(pieces), 1))))))
    if call_parts:
        bodies.append((clock.next(), chunk(call_parts, finish, out)))
    if not bodies:
        bodies.append((clock.next(), chunk([{"text": ""}], finish, out)))
    if providers.stream_kind("gemini", req.path, query) == "sse":
        frames = [Frame(t, f"data: {json.dumps(b, separators=(',', ':'))}\r\n\r\n") for t, b in bodies]
        headers["content-type"] = "text/event-stream"
    else:
        frames = [Frame(t, ("[" if i == 0 else ",\r\n") + json.dumps(b, indent=2)) for i, (t, b) in enumerate(bodies)]
        frames[-1].raw += "]"
    return RecordedResponse(200, headers, stream=frames, headers_ms=clock.headers_ms)


# --- dispatch --------------------------------------------------------------------------------------
def api_of(provider: str, path: str) -> str:
    if provider == "openai":
        return {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}.get(path, "responses")
    if provider == "anthropic":
        return "count_tokens" if path.endswith("count_tokens") else "messages"
    method = providers.gemini_method(path) or ""
    return {"countTokens": "count_gemini", "embedContent": "embeddings",
            "batchEmbedContents": "embeddings"}.get(method, "generate")


def render(req: ScriptedRequest, reply: Reply | str, query: dict[str, str]) -> RecordedResponse:
    """Turn a scripted reply into the provider's exact response (status, headers, body or frames)."""
    if isinstance(reply, str):
        reply = Reply(text=reply)
    seed = f"{req.provider}:{req.n}:{json.dumps(req.body, sort_keys=True)[:4000]}"
    if reply.status >= 400:
        body = providers.error_body(req.provider, reply.status, reply.error)
        return RecordedResponse(reply.status, providers.error_headers(req.provider, reply.status), body=body,
                                t_ms=reply.ttft_ms)
    if reply.json_body is not None:
        return RecordedResponse(200, {"content-type": "application/json"}, body=reply.json_body, t_ms=reply.ttft_ms)
    if req.api == "count_tokens":
        return RecordedResponse(200, {"content-type": "application/json"},
                                body={"input_tokens": _usage(req, reply)[0]}, t_ms=90.0)
    if req.api == "count_gemini":
        return RecordedResponse(200, {"content-type": "application/json"},
                                body={"totalTokens": _usage(req, reply)[0]}, t_ms=90.0)
    if req.api == "chat":
        return openai_chat(req, reply, seed)
    if req.api == "responses":
        return openai_responses(req, reply, seed)
    if req.api == "messages":
        return anthropic_messages(req, reply, seed)
    if req.api == "generate":
        return gemini_generate(req, reply, seed, query)
    raise ConfigError(f"scripted cassettes cannot render {req.provider} {req.path} yet; "
                      "give the Reply a json_body.")


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
        stream = providers.wants_stream(request.provider, request.path, query, request.body)
        sreq = ScriptedRequest(request.provider, api_of(request.provider, request.path), request.path,
                               request.body, stream, len(self.cassette.interactions))
        answer = self.script(sreq)
        if answer is None:  # the script leaves this request unrecorded: replay will report a miss
            from .server import _send_json

            message = "llmkit scripted recording: the script has no answer for this request (not recorded)."
            await _send_json(send, 400, providers.error_body(request.provider, 400, message))
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
