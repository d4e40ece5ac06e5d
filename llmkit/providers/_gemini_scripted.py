"""Gemini's scripted answers: a ``GenerateContentResponse`` or its stream (SSE or JSON array).

Introduced in lesson 0 (00_setup_and_replay); used by ``llmkit.replay.scripted`` and by the fault
injector of lesson 8 (08_errors_and_fallbacks).
"""

from __future__ import annotations

import json
from typing import Any

from llmkit.providers._scripted import Clock, Frames, finish_of, ids, loose_json, response, text_pieces, usage_of

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def generate(req: Any, reply: Any, seed: str, kind: str) -> tuple[Any, Frames]:
    """A ``GenerateContentResponse`` (or its ``kind`` stream: "sse" | "json-array") answering ``reply``.

    Gemini streams a few tokens per chunk (four pieces here; the fault injector's own chunks one each),
    and repeats the running usage on every chunk.
    """
    inp, out = usage_of(req, reply)
    finish = _FINISH.get(finish_of(reply), finish_of(reply))
    model = req.model
    rid = ids(seed)[:22]

    def usage(out_tokens: int) -> dict:
        return {"promptTokenCount": inp, "candidatesTokenCount": out_tokens, "totalTokenCount": inp + out_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inp}]}

    def chunk(parts: list[dict], finish_reason: str | None, out_tokens: int) -> dict:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason:
            cand["finishReason"] = finish_reason
        return {"candidates": [cand], "usageMetadata": usage(out_tokens), "modelVersion": model, "responseId": rid}

    call_parts = [{"functionCall": {"name": tc.name, "args": tc.arguments if isinstance(tc.arguments, dict)
                                    else loose_json(tc.arguments)}} for tc in reply.tool_calls]
    headers = {"content-type": "application/json; charset=UTF-8", "server": "scaffolding on HTTPServer2"}
    clock = Clock(reply, seed)
    frames = Frames()
    if not req.stream:
        parts = ([{"text": reply.text}] if reply.text else []) + call_parts
        return response(200, headers, body=chunk(parts, finish, out), t_ms=clock.next(out)), frames
    pieces = text_pieces(reply)
    size = 1 if getattr(reply, "chunks", None) is not None else 4
    groups = [pieces[i:i + size] for i in range(0, len(pieces), size)]
    bodies: list[tuple[float, dict, bool]] = []
    done = 0
    for gi, group in enumerate(groups):
        done += len(group)
        last = gi == len(groups) - 1 and not call_parts
        bodies.append((clock.next(len(group)), chunk([{"text": "".join(group)}], finish if last else None,
                                                      max(1, round(out * done / max(len(pieces), 1)))), True))
    if call_parts:
        bodies.append((clock.next(), chunk(call_parts, finish, out), False))
    if not bodies:
        bodies.append((clock.next(), chunk([{"text": ""}], finish, out), False))
    for i, (t, b, is_text) in enumerate(bodies):
        if kind == "sse":
            raw = f"data: {json.dumps(b, separators=(',', ':'))}\r\n\r\n"
        else:
            raw = ("[" if i == 0 else ",\r\n") + json.dumps(b, indent=2) + ("]" if i == len(bodies) - 1 else "")
        frames.add(t, raw, text=is_text)
    if kind == "sse":
        headers["content-type"] = "text/event-stream"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms), frames
