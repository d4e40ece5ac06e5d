"""OpenAI's Batch API on loopback: Files upload, batch create, poll, download (lesson 11, 11_cost_and_latency).

The flow the ``openai`` SDK drives: ``files.create(purpose="batch")`` uploads a JSONL file of requests
(``{"custom_id", "method", "url", "body"}`` per line) as multipart form data; ``batches.create`` names that
file and an endpoint; ``batches.retrieve`` is polled through ``validating``, ``in_progress`` and
``finalizing`` to ``completed``, which names an output file (and an error file when requests failed);
``files.content`` downloads it, one ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}`` line per request. Field names follow the SDK's ``Batch`` and ``FileObject`` types.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmkit.providers._batch import Batch, BatchAnswer, BatchDesk, jsonl

__all__ = ["ENDPOINTS", "Desk", "OpenAIBatchDesk", "batch_created", "batch_polled", "batch_results", "batch_seconds",
           "owns"]

# OpenAI's batch ids start "batch_"; Gemini's (at /v1/batches/{id} too, with the SDK's default version) do not.
_BATCH = re.compile(r"^/v1/batches/(batch_[^/]+)$")
_CANCEL = re.compile(r"^/v1/batches/(batch_[^/]+)/cancel$")
_FILE = re.compile(r"^/v1/files/([^/]+)$")
_CONTENT = re.compile(r"^/v1/files/([^/]+)/content$")
_ENDED = {"completed": "completed_at", "failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
#: The endpoints a batch may call that llmkit answers (the SDK's list is longer: embeddings, images ...).
ENDPOINTS = ("/v1/chat/completions", "/v1/responses")


def owns(path: str) -> bool:
    return path in ("/v1/files", "/v1/batches") or any(p.match(path) for p in (_BATCH, _CANCEL, _FILE, _CONTENT))


def batch_created(method: str, path: str, body: Any) -> str | None:
    return body.get("id") if method == "POST" and path == "/v1/batches" and isinstance(body, dict) else None


def batch_polled(method: str, path: str) -> str | None:
    m = _BATCH.match(path) if method == "GET" else None
    return m.group(1) if m else None


def batch_seconds(body: Any) -> float | None:
    if not isinstance(body, dict) or body.get("object") != "batch" or body.get("status") not in _ENDED:
        return None
    end = body.get(_ENDED[body["status"]])
    return None if end is None else float(end - body["created_at"])


def batch_results(path: str, body: bytes) -> tuple[str, list[dict]] | None:
    m = _CONTENT.match(path)
    if m is None:
        return None
    try:
        lines = _lines(body.decode("utf-8"))
    except ValueError:  # not a JSONL file: some other upload's content
        return None
    return m.group(1), [line["response"]["body"] for line in lines
                        if isinstance(line.get("response"), dict) and line["response"].get("status_code") == 200]


class OpenAIBatchDesk(BatchDesk):
    """Files and batches of one recording or simulator, in the shapes of the ``openai`` SDK's types."""

    def __init__(self, answer: Any, **kw: Any) -> None:
        super().__init__(answer, **kw)
        self.files: dict[str, tuple[dict, str]] = {}  # id -> (FileObject, content)

    def handles(self, method: str, path: str) -> bool:
        return owns(path)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> BatchAnswer:
        if path == "/v1/files" and method == "POST":
            return self._upload(body)
        if path == "/v1/batches" and method == "POST":
            return self._create(body if isinstance(body, dict) else {})
        if (m := _BATCH.match(path)) and method == "GET":
            batch = self.poll(m.group(1))
            return self._batch_object(batch) if batch else self._missing("batch", m.group(1))
        if (m := _CANCEL.match(path)) and method == "POST":
            batch = self.batches.get(m.group(1))
            if batch is None:
                return self._missing("batch", m.group(1))
            batch.cancelled = True
            return self._batch_object(batch)
        if (m := _FILE.match(path)) and method == "GET":
            found = self.files.get(m.group(1))
            return BatchAnswer(body=found[0]) if found else self._missing("file", m.group(1))
        if (m := _CONTENT.match(path)) and method == "GET":
            found = self.files.get(m.group(1))
            if found is None:
                return self._missing("file", m.group(1))
            return BatchAnswer(text=found[1], content_type="application/octet-stream")
        return _error(405, f"{method} {path} is not served here; the Batch API takes POST /v1/files, "
                           "POST /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel and "
                           "GET /v1/files/{id}/content.", "invalid_request_error")

    # --- files ---------------------------------------------------------------------------------
    def _upload(self, body: Any) -> BatchAnswer:
        form = body.get("multipart") if isinstance(body, dict) else None
        item = (form or {}).get("file")
        if not isinstance(item, dict):
            return _error(400, "Missing file: upload it as the multipart field 'file' (files.create(file=...)).",
                          "invalid_request_error", param="file")
        purpose = form.get("purpose", "")
        lines = item.get("jsonl")
        if purpose == "batch" and lines is None:
            return _error(400, "A batch input file must be JSONL: one JSON request object per line.",
                          "invalid_request_error", param="file")
        content = jsonl(lines) if lines is not None else str(item.get("text", ""))
        return BatchAnswer(body=self._add_file(item.get("filename", "upload"), purpose, content,
                                               int(item.get("bytes", len(content.encode())))))

    def _add_file(self, filename: str, purpose: str, content: str, size: int | None = None) -> dict:
        file_id = self.new_id("file-", 22)
        created = int(self.clock())
        obj = {"id": file_id, "object": "file", "bytes": size if size is not None else len(content.encode()),
               "created_at": created, "filename": filename, "purpose": purpose, "status": "processed",
               "expires_at": created + 30 * 86400 if purpose == "batch" else None, "status_details": None}
        self.files[file_id] = (obj, content)
        return obj

    # --- batches -------------------------------------------------------------------------------
    def _create(self, body: dict) -> BatchAnswer:
        endpoint, file_id = body.get("endpoint"), body.get("input_file_id")
        if endpoint not in ENDPOINTS:
            return _error(400, f"endpoint {endpoint!r}: llmkit answers batches of {' and '.join(ENDPOINTS)}.",
                          "invalid_request_error", param="endpoint")
        if file_id not in self.files:
            return _error(400, f"Invalid 'input_file_id': '{file_id}'. Upload the file first "
                               "(files.create(purpose=\"batch\")) and pass its id.",
                          "invalid_request_error", param="input_file_id")
        requests: list[tuple[str, str, dict]] = []
        for n, line in enumerate(_lines(self.files[file_id][1]), 1):
            if line.get("url") != endpoint or line.get("method", "POST") != "POST" or "custom_id" not in line:
                return _error(400, f"line {n} of the input file must be {{\"custom_id\", \"method\": \"POST\", "
                                   f"\"url\": \"{endpoint}\", \"body\"}} (every line calls the batch's endpoint).",
                              "invalid_request_error", param="input_file_id")
            requests.append((str(line["custom_id"]), endpoint, line.get("body") or {}))
        batch = Batch(self.new_id("batch_", 32), self.clock(), requests,
                      extra={"endpoint": endpoint, "input_file_id": file_id,
                             "completion_window": body.get("completion_window", "24h"),
                             "metadata": body.get("metadata")})
        return self._batch_object(self.open(batch), fresh=True)

    def _batch_object(self, batch: Batch, fresh: bool = False) -> BatchAnswer:
        created = int(batch.created)
        end = created + int(self.runtime(batch))
        ended = self.ended(batch)
        status = "validating" if fresh else ("in_progress" if not ended else
                                             "cancelled" if batch.cancelled else "completed")
        done = len(batch.results) if ended else min(len(batch.results), batch.polls * len(batch.results) //
                                                    (self.polls_to_finish + 1))
        failed = batch.errors if ended else 0
        obj: dict[str, Any] = {
            "id": batch.id, "object": "batch", "endpoint": batch.extra["endpoint"], "errors": None,
            "input_file_id": batch.extra["input_file_id"], "completion_window": batch.extra["completion_window"],
            "status": status, "output_file_id": None, "error_file_id": None, "created_at": created,
            "in_progress_at": None if fresh else created + 2, "expires_at": created + 86400,
            "finalizing_at": end - 1 if ended and not batch.cancelled else None,
            "completed_at": end if ended and not batch.cancelled else None, "failed_at": None, "expired_at": None,
            "cancelling_at": created + 3 if batch.cancelled else None,
            "cancelled_at": end if ended and batch.cancelled else None,
            "request_counts": {"total": len(batch.requests), "completed": done - failed, "failed": failed},
            "metadata": batch.extra["metadata"]}
        if ended:
            obj["output_file_id"], obj["error_file_id"] = self._outputs(batch)
        return BatchAnswer(body=obj)

    def _outputs(self, batch: Batch) -> tuple[str | None, str | None]:
        """The output and error files of an ended batch (made once, on the first poll that sees it end)."""
        if "outputs" not in batch.extra:
            good, bad = [], []
            for n, (custom_id, status, body) in enumerate(batch.results):
                line = {"id": f"batch_req_{batch.id[6:30]}{n:06d}", "custom_id": custom_id,
                        "response": {"status_code": status, "request_id": f"req_{batch.id[6:22]}{n:06d}",
                                     "body": body}, "error": None}
                (bad if status >= 400 else good).append(line)
            out = self._add_file(f"batch_{batch.id}_output.jsonl", "batch_output", jsonl(good))["id"] if good \
                else None
            err = self._add_file(f"batch_{batch.id}_error.jsonl", "batch_output", jsonl(bad))["id"] if bad \
                else None
            batch.extra["outputs"] = (out, err)
        return batch.extra["outputs"]

    def _missing(self, what: str, ident: str) -> BatchAnswer:
        return _error(404, f"No such {what}: '{ident}'.", "invalid_request_error")


Desk = OpenAIBatchDesk


def _lines(content: str) -> list[dict]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def _error(status: int, message: str, etype: str, *, param: str | None = None) -> BatchAnswer:
    return BatchAnswer(status, {"error": {"message": message, "type": etype, "param": param, "code": None}})
