"""Gemini's batch mode on loopback, with inline requests (lesson 11, 11_cost_and_latency).

The flow the ``google-genai`` SDK drives: ``batches.create(model=..., src=[...])`` posts
``{"batch": {"displayName"?, "inputConfig": {"requests": {"requests": [{"request", "metadata"?}]}}}}`` to
``models/{model}:batchGenerateContent`` and gets back a long-running operation ``{"name": "batches/{id}",
"metadata": {..., "state": "BATCH_STATE_PENDING"}}``; ``batches.get`` is polled until the state is
``BATCH_STATE_SUCCEEDED``, when ``metadata.output.inlinedResponses.inlinedResponses`` holds one
``{"response"} | {"error"}`` per request, in order, with the request's ``metadata`` echoed. The SDK reads
only ``metadata.output``; the finished operation also carries ``done`` and ``response`` as the API's do.
The SDK's default version with a custom base URL is ``v1``; the public docs use ``v1beta``: both are served.
An input *file* (``src="files/..."``) is not: llmkit does not emulate Gemini's upload protocol.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmkit.providers._batch import Batch, BatchAnswer, BatchDesk, rfc3339, seconds_between

__all__ = ["Desk", "GeminiBatchDesk", "batch_created", "batch_polled", "batch_results", "batch_seconds", "owns"]

_CREATE = re.compile(r"^/(v1|v1beta|v1alpha)/(models|tunedModels)/([^/:]+):batchGenerateContent$")
_BATCH = re.compile(r"^/(v1|v1beta|v1alpha)/batches/([^/:]+)$")
_CANCEL = re.compile(r"^/(v1|v1beta|v1alpha)/batches/([^/:]+):cancel$")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_ENDED = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")


def owns(path: str) -> bool:
    return any(p.match(path) for p in (_CREATE, _BATCH, _CANCEL))


def batch_created(method: str, path: str, body: Any) -> str | None:
    if method == "POST" and _CREATE.match(path) and isinstance(body, dict):
        return str(body.get("name", "")).removeprefix("batches/") or None
    return None


def batch_polled(method: str, path: str) -> str | None:
    m = _BATCH.match(path) if method == "GET" else None
    return m.group(2) if m else None


def batch_seconds(body: Any) -> float | None:
    meta = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or meta.get("state") not in _ENDED:
        return None
    return seconds_between(meta.get("createTime"), meta.get("endTime"))


def batch_results(path: str, body: bytes) -> tuple[str, list[dict]] | None:
    m = _BATCH.match(path)
    if m is None:
        return None
    try:
        meta = json.loads(body).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    if meta.get("state") != "BATCH_STATE_SUCCEEDED":
        return None
    items = ((meta.get("output") or {}).get("inlinedResponses") or {}).get("inlinedResponses") or []
    return m.group(2), [item["response"] for item in items if isinstance(item.get("response"), dict)]


class GeminiBatchDesk(BatchDesk):
    """Batch jobs of one recording or simulator, in the shapes ``google-genai``'s ``BatchJob`` reads."""

    def handles(self, method: str, path: str) -> bool:
        return owns(path)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> BatchAnswer:
        if (m := _CREATE.match(path)) and method == "POST":
            return self._create(m.group(1), f"{m.group(2)}/{m.group(3)}", body if isinstance(body, dict) else {})
        if (m := _BATCH.match(path)) and method == "GET":
            batch = self.poll(m.group(2))
            return self._operation(batch) if batch else self._missing(m.group(2))
        if (m := _CANCEL.match(path)) and method == "POST":
            batch = self.batches.get(m.group(2))
            if batch is None:
                return self._missing(m.group(2))
            batch.cancelled = True
            return BatchAnswer(body={})
        return _error(405, f"{method} {path} is not served here; batch mode takes POST "
                           "models/{model}:batchGenerateContent, GET batches/{id} and POST batches/{id}:cancel.")

    def _create(self, version: str, model: str, body: dict) -> BatchAnswer:
        batch_in = body.get("batch") if isinstance(body.get("batch"), dict) else {}
        source = batch_in.get("inputConfig") or {}
        if "fileName" in source:
            return _error(400, "llmkit serves batch mode with inline requests only (src=[...]); an input file "
                               "needs Gemini's upload protocol, which it does not emulate.")
        items = (source.get("requests") or {}).get("requests")
        if not isinstance(items, list) or not items:
            return _error(400, "batch.input_config.requests.requests: at least one request is required.")
        requests: list[tuple[str, str, dict]] = []
        for n, item in enumerate(items):
            request = dict(item.get("request") or {}) if isinstance(item, dict) else {}
            target = str(request.pop("model", "") or model)
            if not target.startswith(("models/", "tunedModels/")):
                target = f"models/{target}"
            meta = item.get("metadata") if isinstance(item, dict) else None
            if meta is not None and not all(isinstance(v, str) for v in meta.values()):
                return _error(400, f"batch.input_config.requests.requests[{n}].metadata: values must be strings.")
            requests.append((str(n), f"/{version}/{target}:generateContent", request))
        batch = Batch(self.new_id("", 32), self.clock(), requests,
                      extra={"model": model, "displayName": batch_in.get("displayName"),
                             "metadata": [item.get("metadata") if isinstance(item, dict) else None
                                          for item in items]})
        return self._operation(self.open(batch))

    def _operation(self, batch: Batch) -> BatchAnswer:
        ended = self.ended(batch)
        running = batch.polls > 0
        created = batch.created
        end = created + self.runtime(batch)
        state = ("BATCH_STATE_CANCELLED" if batch.cancelled else "BATCH_STATE_SUCCEEDED") if ended else \
            ("BATCH_STATE_RUNNING" if running else "BATCH_STATE_PENDING")
        n = len(batch.requests)
        stats: dict[str, str] = {"requestCount": str(n)}
        if ended:
            stats["successfulRequestCount"] = str(n - batch.errors)
            if batch.errors:
                stats["failedRequestCount"] = str(batch.errors)
        else:
            stats["pendingRequestCount"] = str(n)
        meta: dict[str, Any] = {"@type": _TYPE + "GenerateContentBatch", "model": batch.extra["model"]}
        if batch.extra["displayName"] is not None:
            meta["displayName"] = batch.extra["displayName"]
        meta |= {"createTime": rfc3339(created), "updateTime": rfc3339(end if ended else created + 2),
                 "batchStats": stats, "state": state, "name": f"batches/{batch.id}"}
        op: dict[str, Any] = {"name": f"batches/{batch.id}", "metadata": meta}
        if ended:
            meta["endTime"] = rfc3339(end)
            if not batch.cancelled:
                meta["output"] = {"@type": _TYPE + "GenerateContentBatchOutput",
                                  "inlinedResponses": {"inlinedResponses": self._responses(batch)}}
            op["done"] = True
            if "output" in meta:
                op["response"] = meta["output"]
        return BatchAnswer(body=op)

    def _responses(self, batch: Batch) -> list[dict]:
        out = []
        for (_, status, body), meta in zip(batch.results, batch.extra["metadata"], strict=True):
            item: dict[str, Any] = {"error": (body or {}).get("error", body)} if status >= 400 else {"response": body}
            if meta is not None:
                item["metadata"] = meta
            out.append(item)
        return out

    def _missing(self, ident: str) -> BatchAnswer:
        return _error(404, f"Batch batches/{ident} not found.", "NOT_FOUND")


Desk = GeminiBatchDesk


def _error(status: int, message: str, code: str = "INVALID_ARGUMENT") -> BatchAnswer:
    return BatchAnswer(status, {"error": {"code": status, "message": message, "status": code}})
