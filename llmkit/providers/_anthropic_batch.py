"""Anthropic's Message Batches API on loopback (lesson 11, 11_cost_and_latency).

The flow the ``anthropic`` SDK drives: ``messages.batches.create(requests=[{"custom_id", "params"}])``
answers a ``message_batch`` with ``processing_status`` ``in_progress``; ``retrieve`` is polled until it is
``ended``, with an absolute ``results_url``; ``results`` retrieves the batch once more and downloads that
URL: JSONL, one ``{"custom_id", "result": {"type": "succeeded", "message"} | {"type": "errored", "error"}}``
per request. Times are RFC 3339. Field names follow the SDK's ``MessageBatch`` types.

The SDK follows ``results_url`` wherever it points, so a recording keeps Anthropic's own URL and the
server hands it out pointed at itself (:func:`localize`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmkit.providers._batch import Batch, BatchAnswer, BatchDesk, jsonl, rfc3339, seconds_between

__all__ = ["AnthropicBatchDesk", "Desk", "batch_created", "batch_polled", "batch_results", "batch_seconds", "localize",
           "owns"]

_COLLECTION = "/v1/messages/batches"
_BATCH = re.compile(r"^/v1/messages/batches/([^/]+)$")
_RESULTS = re.compile(r"^/v1/messages/batches/([^/]+)/results$")
_CANCEL = re.compile(r"^/v1/messages/batches/([^/]+)/cancel$")
_RESULTS_URL = re.compile(rb'("results_url"\s*:\s*")https?://[^/"]+(/v1/messages/batches/)')


def owns(path: str) -> bool:
    return path == _COLLECTION or any(p.match(path) for p in (_BATCH, _RESULTS, _CANCEL))


def batch_created(method: str, path: str, body: Any) -> str | None:
    return body.get("id") if method == "POST" and path == _COLLECTION and isinstance(body, dict) else None


def batch_polled(method: str, path: str) -> str | None:
    m = _BATCH.match(path) if method == "GET" else None
    return m.group(1) if m else None


def batch_seconds(body: Any) -> float | None:
    if not isinstance(body, dict) or body.get("type") != "message_batch" or body.get("processing_status") != "ended":
        return None
    return seconds_between(body.get("created_at"), body.get("ended_at"))


def batch_results(path: str, body: bytes) -> tuple[str, list[dict]] | None:
    m = _RESULTS.match(path)
    if m is None:
        return None
    out = []
    for line in body.decode("utf-8", "replace").splitlines():
        try:
            result = json.loads(line).get("result") or {}
        except (ValueError, AttributeError):
            continue
        if result.get("type") == "succeeded" and isinstance(result.get("message"), dict):
            out.append(result["message"])
    return m.group(1), out


def localize(body: bytes, here: str) -> bytes:
    """``results_url`` pointed at ``here`` (whatever host the recording named)."""
    if b'"results_url"' not in body or not here:
        return body
    return _RESULTS_URL.sub(lambda m: m.group(1) + here.encode() + m.group(2), body)


class AnthropicBatchDesk(BatchDesk):
    """Message batches of one recording or simulator, in the shapes of the ``anthropic`` SDK's types."""

    def handles(self, method: str, path: str) -> bool:
        return owns(path)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> BatchAnswer:
        if path == _COLLECTION and method == "POST":
            return self._create(body if isinstance(body, dict) else {})
        if (m := _BATCH.match(path)) and method == "GET":
            batch = self.poll(m.group(1))
            return self._batch_object(batch) if batch else self._missing(m.group(1))
        if (m := _CANCEL.match(path)) and method == "POST":
            batch = self.batches.get(m.group(1))
            if batch is None:
                return self._missing(m.group(1))
            batch.cancelled = True
            return self._batch_object(batch)
        if (m := _RESULTS.match(path)) and method == "GET":
            batch = self.batches.get(m.group(1))
            if batch is None:
                return self._missing(m.group(1))
            if not self.ended(batch):
                return _error(400, f"Batch {batch.id} is still processing; its results are available once "
                                   "processing_status is 'ended'.")
            return BatchAnswer(text=jsonl(self._results(batch)), content_type="application/binary")
        return _error(405, f"{method} {path} is not served here; Message Batches take POST {_COLLECTION}, "
                           f"GET {_COLLECTION}/{{id}}, POST {_COLLECTION}/{{id}}/cancel and GET "
                           f"{_COLLECTION}/{{id}}/results.")

    def _create(self, body: dict) -> BatchAnswer:
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            return _error(400, "requests: Field required (a list of {custom_id, params}).")
        requests: list[tuple[str, str, dict]] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not isinstance(item.get("params"), dict):
                return _error(400, f"requests.{n}: each request needs a custom_id (string) and params (object).")
            if custom_id in seen:
                return _error(400, f"requests.{n}.custom_id: {custom_id!r} is used twice; custom ids must be "
                                   "unique within a batch.")
            seen.add(custom_id)
            params = item["params"]
            if params.get("stream"):
                return _error(400, f"requests.{n}.params.stream: streaming is not supported in a batch.")
            requests.append((custom_id, "/v1/messages", params))
        batch = self.open(Batch(self.new_id("msgbatch_01", 24), self.clock(), requests))
        return self._batch_object(batch)

    def _batch_object(self, batch: Batch) -> BatchAnswer:
        ended = self.ended(batch)
        created = batch.created
        end = created + self.runtime(batch)
        if ended:
            counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
            for kind, _ in self._kinds(batch):
                counts[kind] += 1
        else:
            counts = {"processing": len(batch.requests), "succeeded": 0, "errored": 0, "canceled": 0,
                      "expired": 0}
        status = "ended" if ended else ("canceling" if batch.cancelled else "in_progress")
        obj = {"id": batch.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
               "ended_at": rfc3339(end) if ended else None, "created_at": rfc3339(created),
               "expires_at": rfc3339(created + 86400), "archived_at": None,
               "cancel_initiated_at": rfc3339(created + 3) if batch.cancelled else None,
               "results_url": f"{self.upstream}{_COLLECTION}/{batch.id}/results" if ended else None}
        return BatchAnswer(body=obj)

    def _kinds(self, batch: Batch) -> list[tuple[str, Any]]:
        """(result type, body) per request: a cancelled batch cancels the second half, as if cut short."""
        out = []
        for n, (_, status, body) in enumerate(batch.results):
            if batch.cancelled and n >= len(batch.results) // 2:
                out.append(("canceled", None))
            else:
                out.append(("errored" if status >= 400 else "succeeded", body))
        return out

    def _results(self, batch: Batch) -> list[dict]:
        lines = []
        for (custom_id, _, _), (kind, body) in zip(batch.results, self._kinds(batch), strict=True):
            result: dict[str, Any] = {"type": kind}
            if kind == "succeeded":
                result["message"] = body
            elif kind == "errored":
                result["error"] = body
            lines.append({"custom_id": custom_id, "result": result})
        return lines

    def _missing(self, ident: str) -> BatchAnswer:
        return _error(404, f"No message batch found with id '{ident}'.", "not_found_error")


Desk = AnthropicBatchDesk


def _error(status: int, message: str, etype: str = "invalid_request_error") -> BatchAnswer:
    return BatchAnswer(status, {"type": "error", "error": {"type": etype, "message": message},
                                "request_id": "req_llmkit_batch"})
