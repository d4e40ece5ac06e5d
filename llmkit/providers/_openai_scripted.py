"""OpenAI's scripted answers: Chat Completions and Responses, in the exact wire format.

Introduced in lesson 0 (00_setup_and_replay); used by ``llmkit.replay.scripted`` and by the fault
injector of lesson 8 (08_errors_and_fallbacks).
"""

from __future__ import annotations

import json
from typing import Any

from llmkit.providers import _scripted as s
from llmkit.providers._scripted import CREATED, Clock, Frames, response

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def chat(req: Any, reply: Any, seed: str) -> tuple[Any, Frames]:
    """A ``chat.completion`` (or its stream) answering ``reply``; the frames for a stream."""
    cid = "chatcmpl-" + s.ids(seed)[:29]
    model = req.model
    inp, out = s.usage_of(req, reply)
    usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
             "prompt_tokens_details": {"cached_tokens": s.cache_of(reply)[0], "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    finish = _FINISH.get(s.finish_of(reply), s.finish_of(reply))
    calls = [{"id": tc.id or f"call_{s.ids(seed + str(i))[:24]}", "type": "function",
              "function": {"name": tc.name, "arguments": tc.arguments_text()}}
             for i, tc in enumerate(reply.tool_calls)]
    headers = {"content-type": "application/json", "openai-processing-ms": str(int(reply.ttft_ms)),
               "x-request-id": "req_" + s.ids(seed)[:32]}
    frames = Frames()
    clock = Clock(reply, seed)
    if not req.stream:
        refusal = getattr(reply, "refusal", None)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": refusal,
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
    for piece in s.text_pieces(reply):
        frames.add(clock.next(), chunk({"content": piece}), text=True)
    if getattr(reply, "refusal", None):  # a refusal streams in its own delta field
        for piece in s.pieces(reply.refusal):
            frames.add(clock.next(), chunk({"refusal": piece}))
    for i, call in enumerate(calls):
        head = {"index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        frames.add(clock.next(), chunk({"tool_calls": [head]}))
        for piece in s.arg_pieces(call["function"]["arguments"]):
            frames.add(clock.next(), chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    frames.add(clock.next(), chunk({}, finish))
    if include_usage:
        data = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_llmkit", "choices": [], "usage": usage}
        frames.add(clock.next(), f"data: {_json(data)}\n\n")
    frames.add(clock.next(0), "data: [DONE]\n\n")
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms), frames


def _echo_tool(tool: dict) -> dict:
    """A request's tool as the Responses API echoes it: a function tool is strict unless ``strict: false``.

    Real responses show ``"strict": true`` and ``"additionalProperties": false`` added to a tool sent
    without ``strict`` (recorded: a request with neither, answered with both).
    """
    if tool.get("type") != "function":
        return tool
    strict = tool.get("strict") is not False
    params = dict(tool.get("parameters") or {})
    if strict and params.get("type") == "object":
        params.setdefault("additionalProperties", False)
    return {"type": "function", "description": tool.get("description"), "name": tool.get("name"),
            "parameters": params, "strict": strict}


def _padding(delta: str, seed: str) -> str:
    """Stream obfuscation: alphanumeric padding that evens out the size of ``*.delta`` events."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = s.ids(seed)
    size = 16 - len(delta) % 16 if len(delta) % 16 else 0
    return "".join(alphabet[int(digest[2 * i:2 * i + 2], 16) % len(alphabet)] for i in range(size))


def _text_format(body: dict) -> dict:
    """The ``text.format`` a response echoes: the request's own, else plain text."""
    fmt = (body.get("text") or {}).get("format")
    return fmt if isinstance(fmt, dict) else {"type": "text"}


def responses(req: Any, reply: Any, seed: str) -> Any:
    """A Responses API ``response`` (or its event stream) answering ``reply``."""
    rid = "resp_" + s.ids(seed)[:48]
    inp, out = s.usage_of(req, reply)
    body = req.body or {}
    usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": s.cache_of(reply)[0]}, "output_tokens": out,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}
    items: list[dict] = []
    refusal = getattr(reply, "refusal", None)
    cut = s.finish_of(reply) == "length"
    if reply.text or refusal:
        part = ({"type": "refusal", "refusal": refusal} if refusal else
                {"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text})
        items.append({"id": "msg_" + s.ids(seed + "m")[:48], "type": "message",
                      "status": "incomplete" if cut else "completed", "content": [part], "role": "assistant"})
    for i, tc in enumerate(reply.tool_calls):
        items.append({"id": "fc_" + s.ids(seed + f"f{i}")[:48], "type": "function_call", "status": "completed",
                      "arguments": tc.arguments_text(), "call_id": tc.id or "call_" + s.ids(seed + str(i))[:24],
                      "name": tc.name})

    def resp(status: str, output: list, use: Any) -> dict:
        done = status == "completed"
        return {"id": rid, "object": "response", "created_at": CREATED, "status": status, "background": False,
                **({"billing": {"payer": "developer"}} if not req.stream else {}),
                "completed_at": CREATED + 1 if done else None, "error": None, "frequency_penalty": 0.0,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": body.get("max_tool_calls"),
                "model": req.model, "moderation": None, "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True), "presence_penalty": 0.0,
                "previous_response_id": body.get("previous_response_id"), "prompt_cache_key": None,
                "prompt_cache_retention": None, "reasoning": {"effort": None, "summary": None},
                "safety_identifier": None, "service_tier": "default" if done else "auto",
                "store": body.get("store", True), "temperature": 1.0,
                "text": {"format": _text_format(body), "verbosity": "medium"},
                "tool_choice": body.get("tool_choice", "auto"), "tools": [_echo_tool(t) for t in body.get("tools", [])],
                "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": use, "user": None,
                "metadata": {}}

    headers = {"content-type": "application/json", "x-request-id": "req_" + s.ids(seed)[:32]}
    clock = Clock(reply, seed)
    final = "incomplete" if cut else "completed"
    if not req.stream:
        return response(200, headers, body=resp(final, items, usage), t_ms=clock.next(out))
    seq = 0
    frames = Frames()

    obfuscate = ((body.get("stream_options") or {}).get("include_obfuscation")) is not False

    def emit(etype: str, t: float, **data: Any) -> None:
        nonlocal seq
        if obfuscate and etype.endswith(".delta"):
            data["obfuscation"] = _padding(data["delta"], seed + str(seq))
        # The real API writes "type" first, then the event's fields in alphabetical order.
        payload = {"type": etype, **dict(sorted({**data, "sequence_number": seq}.items()))}
        seq += 1
        frames.add(t, f"event: {etype}\ndata: {_json(payload)}\n\n")

    t = clock.next()
    emit("response.created", t, response=resp("in_progress", [], None))
    emit("response.in_progress", t, response=resp("in_progress", [], None))
    for idx, item in enumerate(items):
        if item["type"] == "message" and refusal:
            emit("response.output_item.added", clock.next(0), output_index=idx,
                 item={**item, "status": "in_progress", "content": []})
            part = {"type": "refusal", "refusal": ""}
            emit("response.content_part.added", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part=part)
            for piece in s.pieces(refusal):
                emit("response.refusal.delta", clock.next(), item_id=item["id"], output_index=idx,
                     content_index=0, delta=piece)
            emit("response.refusal.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, refusal=refusal)
            emit("response.content_part.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part={**part, "refusal": refusal})
        elif item["type"] == "message":
            emit("response.output_item.added", clock.next(0), output_index=idx,
                 item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit("response.content_part.added", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part=part)
            for piece in s.text_pieces(reply):
                emit("response.output_text.delta", clock.next(), item_id=item["id"], output_index=idx,
                     content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, text=reply.text, logprobs=[])
            emit("response.content_part.done", clock.next(0), item_id=item["id"], output_index=idx,
                 content_index=0, part={**part, "text": reply.text})
        else:
            emit("response.output_item.added", clock.next(), output_index=idx,
                 item={**item, "status": "in_progress", "arguments": ""})
            for piece in s.arg_pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", clock.next(), item_id=item["id"],
                     output_index=idx, delta=piece)
            emit("response.function_call_arguments.done", clock.next(0), item_id=item["id"],
                 output_index=idx, arguments=item["arguments"], name=item["name"])
        emit("response.output_item.done", clock.next(0), output_index=idx, item=item)
    emit(f"response.{final}", clock.next(0), response=resp(final, items, usage))
    headers["content-type"] = "text/event-stream; charset=utf-8"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms)


def constraints(api: str, body: dict) -> Any:
    """What a Chat Completions or Responses request forbids its reply (lesson 4, 04_structured_output).

    A strict ``json_schema`` format (Chat: ``response_format``; Responses: ``text.format``), strict function
    tools, ``tool_choice`` and the output-token limit.
    """
    from llmkit.replay.scripted import Constraints

    c = Constraints(truncated_name='finish_reason "length"' if api == "chat" else 'status "incomplete"')
    if api == "chat":
        fmt = body.get("response_format") or {}
        spec = fmt.get("json_schema") or {}
        if fmt.get("type") == "json_schema" and spec.get("strict"):
            c.schema, c.schema_name = spec.get("schema") or {}, f"response_format json_schema {spec.get('name')!r}"
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            if tool.get("type") == "function" and fn.get("name"):
                c.tools[fn["name"]] = (fn.get("parameters") or {}) if fn.get("strict") else None
        for key in ("max_completion_tokens", "max_tokens"):
            if body.get(key) is not None:
                c.max_tokens, c.max_tokens_name = body[key], key
                break
    else:
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema" and fmt.get("strict"):
            c.schema, c.schema_name = fmt.get("schema") or {}, f"text.format json_schema {fmt.get('name')!r}"
        for tool in body.get("tools") or []:  # Responses function tools are strict unless strict: false
            if tool.get("type") == "function" and tool.get("name"):
                echoed = _echo_tool(tool)
                c.tools[tool["name"]] = echoed["parameters"] if echoed["strict"] else None
        if body.get("max_output_tokens") is not None:
            c.max_tokens, c.max_tokens_name = body["max_output_tokens"], "max_output_tokens"
    choice = body.get("tool_choice")
    if choice in ("none", "required"):
        c.choice = choice
    elif isinstance(choice, dict):
        c.choice, c.forced = "required", (choice.get("function") or {}).get("name") or choice.get("name")
    return c
