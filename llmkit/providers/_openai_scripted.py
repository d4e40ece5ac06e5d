"""OpenAI's scripted answers: Chat Completions and Responses, in the exact wire format.

Introduced in lesson 0 (00_setup_and_replay); used by ``llmkit.replay.scripted`` and by the fault
injector of lesson 8 (08_errors_and_fallbacks).
"""

from __future__ import annotations

import json
from typing import Any

from llmkit.providers._scripted import (
    CREATED,
    Clock,
    Frames,
    arg_pieces,
    finish_of,
    ids,
    response,
    text_pieces,
    usage_of,
)

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def chat(req: Any, reply: Any, seed: str) -> tuple[Any, Frames]:
    """A ``chat.completion`` (or its stream) answering ``reply``; the frames for a stream."""
    cid = "chatcmpl-" + ids(seed)[:29]
    model = req.model
    inp, out = usage_of(req, reply)
    usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    finish = _FINISH.get(finish_of(reply), finish_of(reply))
    calls = [{"id": tc.id or f"call_{ids(seed + str(i))[:24]}", "type": "function",
              "function": {"name": tc.name, "arguments": tc.arguments_text()}}
             for i, tc in enumerate(reply.tool_calls)]
    headers = {"content-type": "application/json", "openai-processing-ms": str(int(reply.ttft_ms)),
               "x-request-id": "req_" + ids(seed)[:32]}
    frames = Frames()
    clock = Clock(reply, seed)
    if not req.stream:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None,
                                   "annotations": []}
        if calls:
            message["tool_calls"] = calls
        body = {"id": cid, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_llmkit"}
        return response(200, headers, body=body, t_ms=clock.next(out)), frames
    include_usage = bool(((req.body or {}).get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        data = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_llmkit",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                **({"usage": None} if include_usage else {})}
        return f"data: {_json(data)}\n\n"

    frames.add(clock.next(), chunk({"role": "assistant", "content": "", "refusal": None}))
    for piece in text_pieces(reply):
        frames.add(clock.next(), chunk({"content": piece}), text=True)
    for i, call in enumerate(calls):
        head = {"index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        frames.add(clock.next(), chunk({"tool_calls": [head]}))
        for piece in arg_pieces(call["function"]["arguments"]):
            frames.add(clock.next(), chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    frames.add(clock.next(), chunk({}, finish))
    if include_usage:
        data = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_llmkit", "choices": [], "usage": usage}
        frames.add(clock.next(), f"data: {_json(data)}\n\n")
    frames.add(clock.next(0), "data: [DONE]\n\n")
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms), frames


def responses(req: Any, reply: Any, seed: str) -> Any:
    """A Responses API ``response`` (or its event stream) answering ``reply``."""
    rid = "resp_" + ids(seed)[:48]
    inp, out = usage_of(req, reply)
    body = req.body or {}
    usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}
    items: list[dict] = []
    if reply.text:
        items.append({"id": "msg_" + ids(seed + "m")[:48], "type": "message", "status": "completed",
                      "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text}],
                      "role": "assistant"})
    for i, tc in enumerate(reply.tool_calls):
        items.append({"id": "fc_" + ids(seed + f"f{i}")[:48], "type": "function_call", "status": "completed",
                      "arguments": tc.arguments_text(), "call_id": tc.id or "call_" + ids(seed + str(i))[:24],
                      "name": tc.name})

    def resp(status: str, output: list, use: Any) -> dict:
        return {"id": rid, "object": "response", "created_at": CREATED, "status": status, "background": False,
                "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": req.model, "output": output,
                "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
                "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto", "tools": body.get("tools", []), "top_p": 1.0, "truncation": "disabled",
                "usage": use, "user": None, "metadata": {}}

    headers = {"content-type": "application/json", "x-request-id": "req_" + ids(seed)[:32]}
    clock = Clock(reply, seed)
    if not req.stream:
        return response(200, headers, body=resp("completed", items, usage), t_ms=clock.next(out))
    seq = 0
    frames = Frames()

    def emit(etype: str, t: float, **data: Any) -> None:
        nonlocal seq
        payload = {"type": etype, **data, "sequence_number": seq}
        seq += 1
        frames.add(t, f"event: {etype}\ndata: {_json(payload)}\n\n")

    t = clock.next()
    emit("response.created", t, response=resp("in_progress", [], None))
    emit("response.in_progress", t, response=resp("in_progress", [], None))
    for idx, item in enumerate(items):
        if item["type"] == "message":
            emit("response.output_item.added", clock.next(0), output_index=idx,
                 item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit("response.content_part.added", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part=part)
            for piece in text_pieces(reply):
                emit("response.output_text.delta", clock.next(), item_id=item["id"], output_index=idx,
                     content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, text=reply.text, logprobs=[])
            emit("response.content_part.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part={**part, "text": reply.text})
        else:
            emit("response.output_item.added", clock.next(), output_index=idx,
                 item={**item, "status": "in_progress", "arguments": ""})
            for piece in arg_pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", clock.next(), item_id=item["id"],
                     output_index=idx, delta=piece)
            emit("response.function_call_arguments.done", clock.next(0), item_id=item["id"],
                 output_index=idx, arguments=item["arguments"], name=item["name"])
        emit("response.output_item.done", clock.next(0), output_index=idx, item=item)
    emit("response.completed", clock.next(0), response=resp("completed", items, usage))
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms)
