"""Canonical request bodies: the form in which requests are compared (lesson 0).

Two requests match when method, path (with its query minus the API key) and canonical body are
equal. The canonical body is the JSON with keys sorted, volatile fields removed (``stream_options``,
``user``, ``metadata``: they change between runs without changing the answer) and every large inline
binary (a base64 image, a data URL) replaced by ``blob:sha256:<hex>`` so images are compared by hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

VOLATILE_FIELDS = frozenset({"stream_options", "user", "metadata"})
IGNORED_QUERY = frozenset({"key", "beta"})
BLOB_MIN_CHARS = 512
#: Deepest JSON nesting accepted in a request body or a cassette body (real tool schemas stay far below);
#: deeper input is refused before the recursive helpers here could overflow the stack.
MAX_JSON_DEPTH = 128

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,(.*)$", re.S)
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def canonical_query(query: str) -> str:
    """The query string with the API key (and Anthropic's ``beta`` flag) removed, sorted."""
    if not query:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in IGNORED_QUERY]
    return urlencode(sorted(pairs))


def _decode_blob(text: str) -> tuple[bytes, str | None] | None:
    """If ``text`` is a data URL or long base64, return (bytes, media type or None)."""
    if len(text) < BLOB_MIN_CHARS:
        return None
    media = None
    m = _DATA_URL.match(text)
    payload = text
    if m:
        media, payload = m.group(1), m.group(3)
    elif not _B64.match(text[:2048]):
        return None
    try:
        padded = payload + "=" * (-len(payload) % 4)
        if "-" in payload or "_" in payload:
            return base64.urlsafe_b64decode(padded), media
        return base64.b64decode(padded, validate=True), media
    except (binascii.Error, ValueError):
        return None


def blob_ref(data: bytes) -> str:
    return "blob:sha256:" + hashlib.sha256(data).hexdigest()


def replace_blobs(value: Any, on_blob: Callable[[str, bytes, str | None], None] | None = None) -> Any:
    """Return ``value`` with large inline binaries replaced by their ``blob:sha256:`` reference."""
    if isinstance(value, dict):
        return {k: replace_blobs(v, on_blob) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_blobs(v, on_blob) for v in value]
    if isinstance(value, str):
        decoded = _decode_blob(value)
        if decoded is not None:
            data, media = decoded
            ref = blob_ref(data)
            if on_blob is not None:
                on_blob(ref, data, media)
            return ref
    return value


def canonical_body(body: Any) -> Any:
    """Drop volatile top-level fields and replace blobs; the result is what matching compares."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    return replace_blobs(body)


def canonical_text(body: Any, *, may_hold_blobs: bool = True) -> str:
    """The canonical body as compact sorted JSON. ``may_hold_blobs=False`` (the caller knows the raw
    body is shorter than :data:`BLOB_MIN_CHARS`, so no string in it is a blob) skips the blob walk."""
    if not may_hold_blobs:
        if isinstance(body, dict) and not VOLATILE_FIELDS.isdisjoint(body):
            body = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(canonical_body(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """True when lists/objects in ``value`` nest more than ``limit`` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_body(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH, content_type: str | None = None) -> Any:
    """JSON-decode a request body; a non-JSON body is kept as text; an empty one is None. A
    ``multipart/form-data`` upload (OpenAI's Files API, lesson 11) becomes :func:`parse_multipart`'s form.

    Raises ``ValueError`` (with a message saying so) when the JSON nests deeper than ``max_depth``.
    """
    if not raw:
        return None
    if content_type and content_type.lower().startswith("multipart/form-data"):
        return parse_multipart(raw, content_type)
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")
    except RecursionError:
        raise ValueError(f"the JSON body is nested deeper than {max_depth} levels") from None
    # Nesting n levels deep takes at least n bytes, so short bodies need no walk.
    if len(raw) > max_depth and nested_deeper_than(value, max_depth):
        raise ValueError(f"the JSON body is nested deeper than {max_depth} levels")
    return value


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """A multipart form as ``{"multipart": {field: value}}`` (lesson 11), free of the random boundary.

    A text field is its string. A file is ``{"filename", "content_type"}`` plus its content: ``jsonl``
    (a list of the decoded lines) when every line is JSON, as in a batch input file; else ``text``; else
    ``base64`` (which the blob store keeps once, by hash)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"content-type: " + content_type.encode("latin-1")
                                                  + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        raise ValueError("the multipart/form-data body has no parts (is the boundary in Content-Type right?)")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            form[str(name)] = data.decode("utf-8", "replace")
            continue
        item: dict[str, Any] = {"filename": filename, "content_type": part.get_content_type(), "bytes": len(data)}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            item["base64"] = base64.b64encode(data).decode()
        else:
            try:
                item["jsonl"] = [json.loads(line) for line in text.splitlines() if line.strip()]
            except (json.JSONDecodeError, RecursionError):
                item["text"] = text
        form[str(name)] = item
    return {"multipart": form}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: value}


def _short(v: Any, limit: int = 60) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_diff(recorded: Any, sent: Any, limit: int = 8) -> list[str]:
    """Human-readable differences between two canonical bodies, most useful first."""
    a, b = _flatten(canonical_body(recorded)), _flatten(canonical_body(sent))
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            lines.append(f"{key or '<body>'}: recorded {_short(a[key])}, not sent")
        elif key not in a:
            lines.append(f"{key or '<body>'}: sent {_short(b[key])}, not recorded")
        elif a[key] != b[key]:
            lines.append(f"{key or '<body>'}: recorded {_short(a[key])}, sent {_short(b[key])}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"… and {len(lines) - limit} more"]
    return lines


def distance(recorded: Any, sent: Any) -> int:
    """How many leaf values differ (for picking the closest recording on a miss)."""
    a, b = _flatten(canonical_body(recorded)), _flatten(canonical_body(sent))
    return sum(1 for k in set(a) | set(b) if a.get(k, object()) != b.get(k, object()))
