"""Gemini's scripted answers: a ``GenerateContentResponse`` or its stream (SSE or JSON array).

Introduced in lesson 0 (00_setup_and_replay); used by ``llmkit.replay.scripted`` and by the fault
injector of lesson 8 (08_errors_and_fallbacks).
"""

from __future__ import annotations

import json
from typing import Any

from llmkit.providers._scripted import (
    Clock,
    Frames,
    cache_of,
    finish_of,
    ids,
    loose_json,
    response,
    text_pieces,
    usage_of,
)

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
# A blocked answer's ratings, in the shape of a real SAFETY response (the blocking category says blocked)
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "MEDIUM", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


def generate(req: Any, reply: Any, seed: str, kind: str) -> tuple[Any, Frames]:
    """A ``GenerateContentResponse`` (or its ``kind`` stream: "sse" | "json-array") answering ``reply``.

    Gemini streams a few tokens per chunk (four pieces here; the fault injector's own chunks one each),
    and repeats the running usage on every chunk.
    """
    inp, out = usage_of(req, reply)
    finish = _FINISH.get(finish_of(reply), finish_of(reply))
    model = req.model
    rid = ids(seed)[:22]

    cached = cache_of(reply)[0]

    def usage(out_tokens: int) -> dict:
        use = {"promptTokenCount": inp, "candidatesTokenCount": out_tokens, "totalTokenCount": inp + out_tokens,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inp}]}
        if cached:  # the API leaves the cache fields out when nothing was cached
            use |= {"cachedContentTokenCount": cached, "cacheTokensDetails": [{"modality": "TEXT",
                                                                               "tokenCount": cached}]}
        return use

    def chunk(parts: list[dict], finish_reason: str | None, out_tokens: int) -> dict:
        if finish_reason == "SAFETY" and not parts:  # blocked: empty content, the blocking category flagged
            return {"candidates": [{"content": {}, "finishReason": "SAFETY", "index": 0,
                                    "safetyRatings": _SAFETY_RATINGS}],
                    "usageMetadata": {k: v for k, v in usage(0).items() if k != "candidatesTokenCount"},
                    "modelVersion": model, "responseId": rid}
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
        bodies.append((clock.next(), chunk([] if finish == "SAFETY" else [{"text": ""}], finish, out), False))
    for i, (t, b, is_text) in enumerate(bodies):
        if kind == "sse":
            raw = f"data: {json.dumps(b, separators=(',', ':'))}\r\n\r\n"
        else:
            raw = ("[" if i == 0 else ",\r\n") + json.dumps(b, indent=2) + ("]" if i == len(bodies) - 1 else "")
        frames.add(t, raw, text=is_text)
    if kind == "sse":
        headers["content-type"] = "text/event-stream"
    return response(200, headers, stream=frames.frames, headers_ms=clock.headers_ms), frames


def _json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style ``response_schema`` (``type: "OBJECT"``, ``nullable``) as JSON Schema."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _json_schema(v) for k, v in schema.items() if k not in ("nullable", "propertyOrdering")}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
        if schema.get("nullable"):
            out["type"] = [out["type"], "null"]
    if "anyOf" in out and schema.get("nullable"):
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def constraints(api: str, body: dict) -> Any:
    """What a ``generateContent`` request forbids its reply (lesson 4, 04_structured_output).

    ``responseJsonSchema`` / ``responseSchema`` with a JSON MIME type (Gemini constrains decoding to it),
    declared functions, ``toolConfig.functionCallingConfig.mode`` and ``maxOutputTokens``.
    """
    from llmkit.replay.scripted import Constraints

    config = body.get("generationConfig") or {}
    c = Constraints(truncated_name='finishReason "MAX_TOKENS"', max_tokens_name="maxOutputTokens",
                    max_tokens=config.get("maxOutputTokens"), choice_name="functionCallingConfig.mode")
    if config.get("responseMimeType") == "application/json":
        if config.get("responseJsonSchema") is not None:
            c.schema, c.schema_name = config["responseJsonSchema"], "responseJsonSchema"
        elif config.get("responseSchema") is not None:
            c.schema, c.schema_name = _json_schema(config["responseSchema"]), "responseSchema"
    for tool in body.get("tools") or []:
        for fn in tool.get("functionDeclarations") or []:
            if fn.get("name"):
                c.tools[fn["name"]] = None  # declared; Gemini does not promise schema-exact arguments
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode")
    if mode == "NONE":
        c.choice = "none"
    elif mode == "ANY":
        allowed = calling.get("allowedFunctionNames") or []
        c.choice, c.forced = "required", allowed[0] if len(allowed) == 1 else None
    return c


def cached_content(req: Any, reply: Any, seed: str) -> Any:
    """A ``CachedContent`` resource answering ``POST /v1beta/cachedContents`` (lesson 6, 06_conversations).

    The resource as the API returns it: ``name`` (``cachedContents/{id}``), ``model``, ``displayName`` if one
    was given, ``createTime``/``updateTime``/``expireTime`` (from ``ttl`` or ``expireTime``, one hour by
    default) and ``usageMetadata.totalTokenCount``, the cache's size (the reply's ``input_tokens``, else an
    estimate of what the request caches). The cached contents themselves are input only and not echoed.
    A request for one cache by id is answered with the empty JSON object ``DELETE`` returns: the script
    sees no HTTP method, so ``GET`` and ``PATCH`` of one cache are not scripted.
    """
    from datetime import UTC, datetime, timedelta

    from llmkit.replay.scripted import estimate_tokens

    headers = {"content-type": "application/json; charset=UTF-8", "server": "scaffolding on HTTPServer2"}
    body = req.body if isinstance(req.body, dict) else {}
    if not req.path.endswith("/cachedContents"):
        return response(200, headers, body={}, t_ms=Clock(reply, seed).next())
    cached = {k: body[k] for k in ("systemInstruction", "contents", "tools", "toolConfig") if k in body}
    size = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(json.dumps(cached))
    now = datetime.now(UTC)
    if body.get("expireTime"):
        expire = datetime.fromisoformat(str(body["expireTime"]).replace("Z", "+00:00"))
    else:
        expire = now + timedelta(seconds=float(str(body.get("ttl") or "3600s").rstrip("s")))
    stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
    resource: dict[str, Any] = {"name": "cachedContents/" + format(int(ids(seed)[:16], 16), "x")[:12],
                                "model": body.get("model", f"models/{req.model}")}
    if body.get("displayName"):
        resource["displayName"] = body["displayName"]
    resource |= {"createTime": now.strftime(stamp), "updateTime": now.strftime(stamp),
                 "expireTime": expire.strftime(stamp), "usageMetadata": {"totalTokenCount": size}}
    return response(200, headers, body=resource, t_ms=Clock(reply, seed).next())
