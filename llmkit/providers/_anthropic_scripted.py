"""Anthropic's scripted answers (lesson 0, 00_setup_and_replay; lesson 8's fault injector too).

A ``message`` body, or its named events: ``message_start``, a ``ping`` after the first block starts,
``content_block_*`` per text or ``tool_use`` block (arguments as ``input_json_delta`` fragments, the
first one empty, as the API sends them), ``message_delta`` with the stop reason, ``message_stop``.
"""

from __future__ import annotations

import json
from typing import Any

from llmkit.providers import _scripted as s
from llmkit.providers._scripted import Clock, Frames, response

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def messages(req: Any, reply: Any, seed: str) -> tuple[Any, Frames]:
    """A ``message`` (or its stream) answering ``reply``; the frames for a stream."""
    mid = "msg_01" + s.ids(seed)[:22]
    inp, out = s.usage_of(req, reply)
    refusal = getattr(reply, "refusal", None)
    # A refusal: Claude's streaming classifier stops the message with stop_reason "refusal"
    stop = "refusal" if refusal else _STOP.get(s.finish_of(reply), s.finish_of(reply))
    blocks: list[dict] = []
    if refusal:
        blocks.append({"type": "text", "text": refusal})
    elif reply.text or getattr(reply, "chunks", None):
        blocks.append({"type": "text", "text": reply.text})
    for i, tc in enumerate(reply.tool_calls):
        args = tc.arguments if isinstance(tc.arguments, dict) else s.loose_json(tc.arguments)
        blocks.append({"type": "tool_use", "id": tc.id or "toolu_01" + s.ids(seed + str(i))[:22],
                       "name": tc.name, "input": args, "_raw": tc.arguments_text()})
    read, written = s.cache_of(reply)  # Anthropic's input_tokens leaves out what the cache read or wrote
    usage = {"input_tokens": inp - read - written, "cache_creation_input_tokens": written,
             "cache_read_input_tokens": read, "output_tokens": out, "service_tier": "standard"}
    headers = {"content-type": "application/json", "request-id": "req_011" + s.ids(seed)[:21],
               "anthropic-ratelimit-requests-limit": "4000"}
    clock = Clock(reply, seed)
    frames = Frames()
    public_blocks = [{k: v for k, v in b.items() if k != "_raw"} for b in blocks]
    if not req.stream:
        body = {"id": mid, "type": "message", "role": "assistant", "model": req.model, "content": public_blocks,
                "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return response(200, headers, body=body, t_ms=clock.next(out)), frames

    def emit(etype: str, t: float, data: dict, *, text: bool = False) -> None:
        payload = json.dumps({"type": etype, **data}, separators=(",", ":"))
        frames.add(t, f"event: {etype}\ndata: {payload}\n\n", text=text)

    start_usage = {**usage, "output_tokens": 1}
    emit("message_start", clock.next(), {"message": {"id": mid, "type": "message", "role": "assistant",
                                                     "model": req.model, "content": [], "stop_reason": None,
                                                     "stop_sequence": None, "usage": start_usage}})
    for idx, block in enumerate(blocks):
        if block["type"] == "text":
            emit("content_block_start", clock.next(0), {"index": idx, "content_block": {"type": "text", "text": ""}})
            if idx == 0:
                emit("ping", clock.next(0), {})
            for piece in s.pieces(refusal) if refusal else s.text_pieces(reply):
                delta = {"type": "text_delta", "text": piece}
                emit("content_block_delta", clock.next(), {"index": idx, "delta": delta}, text=True)
        else:
            emit("content_block_start", clock.next(), {"index": idx, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            if idx == 0:
                emit("ping", clock.next(0), {})
            for piece in [""] + s.arg_pieces(block["_raw"]):
                emit("content_block_delta", clock.next(), {"index": idx, "delta": {
                    "type": "input_json_delta", "partial_json": piece}})
        emit("content_block_stop", clock.next(0), {"index": idx})
    emit("message_delta", clock.next(0), {"delta": {"stop_reason": stop, "stop_sequence": None},
                                          "usage": {"output_tokens": out}})
    emit("message_stop", clock.next(0), {})
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms), frames


def constraints(api: str, body: dict) -> Any:
    """What a Messages request forbids its reply (lesson 4, 04_structured_output).

    Structured outputs (``output_config.format``, what ``messages.parse(output_format=...)`` sends, or the
    older ``output_format``), strict tools (``strict: true``), ``tool_choice`` and ``max_tokens``.
    """
    from llmkit.replay.scripted import Constraints

    c = Constraints(truncated_name='stop_reason "max_tokens"', max_tokens=body.get("max_tokens"))
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
    if fmt.get("type") == "json_schema":
        c.schema, c.schema_name = fmt.get("schema") or {}, "output_config.format json_schema"
    for tool in body.get("tools") or []:
        if tool.get("name") and "input_schema" in tool:
            c.tools[tool["name"]] = tool["input_schema"] if tool.get("strict") else None
    choice = body.get("tool_choice") or {}
    kind = choice.get("type")
    if kind == "none":
        c.choice = "none"
    elif kind in ("any", "tool"):
        c.choice, c.forced = "required", choice.get("name") if kind == "tool" else None
    return c
