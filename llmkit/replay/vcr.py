"""Import VCR.py cassettes (the YAML that vcrpy and pytest-recording write) as llmkit cassettes.

Introduced in lesson 0 (00_setup_and_replay): many public projects test against recorded provider
traffic in VCR.py's format; :func:`import_vcr` turns such a file into an llmkit cassette that the
replay server can serve to the official SDKs::

    interactions:
    - request:  {method: POST, uri: https://api.openai.com/v1/chat/completions, body: '{...}', headers: {...}}
      response: {status: {code: 200, message: OK}, headers: {Content-Type: [...]},
                 body: {string: !!binary H4sI...}}

What the import does to each interaction:

- bodies may be plain text, ``!!binary`` bytes, ``base64_string`` or base64 text; a gzip (or deflate)
  body is decompressed and its ``content-encoding`` header dropped;
- a streamed response is cut into frames **byte-exact** (CRLF separators kept) with the recorder's own
  :func:`~llmkit.replay.recorder.split_frames`; a legacy Gemini JSON-array stream stays one frame;
  an error answer to a streaming request is kept as a plain body (that is what providers send);
- ``key=`` is removed from query strings; request headers are not stored; sensitive response headers
  are dropped and every string is scrubbed by pattern (what was changed is listed in the provenance);
- a non-streamed body is kept as JSON when re-serialising it gives back the recorded bytes, else as the
  recorded text (``body_text``), so it replays byte-exact;
- an endpoint the replay server has no provider rule for (a legacy ``/v1/completions``, ``GET /v1/models``)
  is kept under the provider that owns the host and replayed as recorded; calls to other hosts are
  skipped (listed in the provenance).

VCR files carry no timing, so imported frames replay without delay at any speed. The provenance is
``{"kind": "recorded", "source": "vcr import of <file>"}``: the traffic was recorded from a live provider,
by someone else's tooling.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml

from ..errors import CassetteError
from . import providers
from .canonical import parse_body
from .cassette import Cassette, Frame, Interaction, RecordedRequest, RecordedResponse, json_or_text
from .recorder import split_frames
from .scrub import assert_no_secret, scrub_headers, scrub_text

__all__ = ["import_vcr", "interaction_from_vcr", "load_vcr"]

TIMING_NOTE = "VCR cassettes carry no timing: imported responses replay without delay at any speed."

# Whose API a host serves, for endpoints no provider path rule covers.
PROVIDER_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic",
                  "generativelanguage.googleapis.com": "gemini"}

# The C loader is much faster on large cassettes; PyYAML built without libyaml has only the Python one.
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _VcrLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe YAML loader that also reads the few ``!!python/...`` tags old vcrpy versions wrote."""


def _scalar_str(loader: Any, node: Any) -> str:
    return str(loader.construct_scalar(node))


def _scalar_bytes(loader: Any, node: Any) -> bytes:
    return base64.decodebytes(str(loader.construct_scalar(node)).encode("ascii"))


def _tuple(loader: Any, node: Any) -> tuple:
    return tuple(loader.construct_sequence(node))


_VcrLoader.add_constructor("tag:yaml.org,2002:python/unicode", _scalar_str)
_VcrLoader.add_constructor("tag:yaml.org,2002:python/str", _scalar_str)
_VcrLoader.add_constructor("tag:yaml.org,2002:python/bytes", _scalar_bytes)
_VcrLoader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)


def load_vcr(path: str | os.PathLike[str]) -> dict:
    """Read a VCR.py cassette (YAML, or vcrpy's JSON serializer) into a plain dict (lesson 0)."""
    path = Path(path)
    if not path.exists():
        raise CassetteError(f"VCR cassette {path} does not exist.")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise CassetteError(f"VCR cassette {path} cannot be read ({e.strerror or e}); pass the YAML file.") from None
    except UnicodeDecodeError as e:
        raise CassetteError(f"{path} is not a readable VCR cassette (not UTF-8 text at byte {e.start}).") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_VcrLoader)
    except (yaml.YAMLError, json.JSONDecodeError, RecursionError) as e:
        raise CassetteError(f"{path} is not a readable VCR cassette ({e}).") from e
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(f"{path} is not a VCR cassette: expected a mapping with an 'interactions' list.")
    return data


# --- bodies and headers ------------------------------------------------------------------------------
def _headers(raw: Any) -> dict[str, str]:
    """vcrpy stores each header as a list of values; join them and lower-case the names."""
    out: dict[str, str] = {}
    for name, value in (raw or {}).items():
        values = value if isinstance(value, list) else [value]
        out[str(name).lower()] = ", ".join(str(v) for v in values)
    return out


def _raw_body(body: Any) -> bytes | str | None:
    """The body as stored: ``{string: ...}``, ``{base64_string: ...}``, httpx-era ``content`` or bare."""
    if isinstance(body, dict):
        if "base64_string" in body:
            return base64.b64decode(body["base64_string"])
        body = body.get("string", body.get("content"))
    if body is None or isinstance(body, (bytes, str)):
        return body
    raise CassetteError(f"unsupported VCR body of type {type(body).__name__}")


def _decode(body: bytes | str | None, encoding: str) -> bytes:
    """Bytes of a body, decompressed when ``encoding`` (content-encoding) says so."""
    if body is None:
        return b""
    data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
    enc = encoding.lower()
    if not enc or enc == "identity":
        return data
    if isinstance(body, str) and not data.startswith(b"\x1f\x8b"):
        # Some tools store compressed bytes as base64 text rather than !!binary.
        try:
            unpacked = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            unpacked = b""
        if unpacked.startswith(b"\x1f\x8b") or ("deflate" in enc and unpacked[:1] == b"\x78"):
            data = unpacked
    if "gzip" in enc and data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if "deflate" in enc:
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                return zlib.decompress(data, wbits)
            except zlib.error:
                continue
    if "br" in enc.split(", ") or "zstd" in enc:
        raise CassetteError(f"cannot decompress a {encoding!r} body (no decoder installed); "
                            "record the cassette with decode_compressed_response=True.")
    return data  # already decoded by the recording tool; the header was left behind


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CassetteError(f"{where} is not UTF-8 text ({e}); llmkit cassettes hold text bodies.") from e


class _Scrubber:
    """Scrub by pattern and remember which fields changed (a thought signature hit by chance shows up)."""

    def __init__(self) -> None:
        self.changed: list[str] = []

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            clean = scrub_text(value)
            if clean != value:
                self.changed.append(where)
            return clean
        return value

    def headers(self, headers: dict[str, str], where: str) -> dict[str, str]:
        kept = scrub_headers(headers)
        self.changed += [f"{where}.{k}" for k in headers if k not in kept or kept[k] != headers[k]]
        return kept


def _query(query: str, scrubber: _Scrubber, where: str) -> str:
    pairs = [(k, scrubber.value(v, f"{where}.{k}")) for k, v in parse_qsl(query, keep_blank_values=True)
             if k != "key"]
    return urlencode(pairs)


def interaction_from_vcr(item: dict, *, where: str = "interaction",
                         scrubber: _Scrubber | None = None) -> Interaction | str:
    """Convert one VCR interaction (lesson 0); returns the reason as a string when it cannot be replayed."""
    scrubber = scrubber or _Scrubber()
    try:
        req, resp = item["request"], item["response"]
        method, uri = str(req["method"]).upper(), str(req["uri"])
    except (KeyError, TypeError) as e:
        raise CassetteError(f"{where} is malformed (missing {e}).") from e
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise CassetteError(f"{where} is malformed: request and response must be mappings.")
    try:
        url = urlsplit(uri)
    except ValueError as e:
        raise CassetteError(f"{where}.request.uri is not a URL ({e}).") from e
    provider = providers.provider_for_path(url.path) or PROVIDER_HOSTS.get(url.hostname or "")
    if provider is None:
        return f"{method} {url.hostname}{url.path} is not a provider the replay server stands in for"
    req_headers = _headers(req.get("headers"))
    raw_req = _decode(_raw_body(req.get("body")), req_headers.get("content-encoding", ""))
    query = _query(url.query, scrubber, f"{where}.request.query")
    try:
        body = scrubber.value(parse_body(raw_req), f"{where}.request.body")
    except ValueError as e:
        raise CassetteError(f"{where}.request.body: {e}.") from e
    request = RecordedRequest(provider, method, url.path or "/", query, body)

    status_field = resp.get("status", {}) if isinstance(resp, dict) else None
    try:
        status = int(status_field.get("code") if isinstance(status_field, dict) else status_field)
    except (TypeError, ValueError):
        raise CassetteError(f"{where}.response.status is not an HTTP status ({status_field!r}).") from None
    headers = _headers(resp.get("headers"))
    data = _decode(_raw_body(resp.get("body", resp.get("content"))), headers.pop("content-encoding", ""))
    headers = scrubber.headers(headers, f"{where}.response.headers")
    ctype = headers.get("content-type", "")
    query_map = dict(parse_qsl(url.query))
    streamed = status < 400 and (ctype.startswith("text/event-stream") or
                                 providers.wants_stream(provider, url.path, query_map, body))
    if streamed:
        if providers.stream_kind(provider, url.path, query_map) == "sse":
            pieces, rest = split_frames(data)
            pieces += [rest] if rest else []
        else:
            pieces = [data] if data else []  # a legacy Gemini JSON array: one frame
        frames = [Frame(0.0, scrubber.value(_text(p, f"{where} frame {n}"), f"{where}.response.stream[{n}]"))
                  for n, p in enumerate(pieces)]
        return Interaction(request, RecordedResponse(status, headers, stream=frames))
    response = RecordedResponse(status, headers)
    parsed, text = json_or_text(_text(data, f"{where} body"))
    if text is None:  # re-serialising gives the recorded bytes back: keep the readable JSON
        response.body = scrubber.value(parsed, f"{where}.response.body")
    else:
        response.body_text = scrubber.value(text, f"{where}.response.body_text")
    return Interaction(request, response)


def import_vcr(path: str | os.PathLike[str], *, name: str | None = None) -> Cassette:
    """Read a VCR.py cassette and return it as an llmkit :class:`Cassette`, not yet saved (lesson 0).

    Raises :class:`~llmkit.errors.CassetteError` for unreadable files and
    :class:`~llmkit.errors.SecretLeakError` if a secret survives scrubbing.
    """
    path = Path(path)
    data = load_vcr(path)
    scrubber = _Scrubber()
    interactions: list[Interaction] = []
    skipped: list[str] = []
    clients: set[str] = set()
    for i, item in enumerate(data["interactions"]):
        result = interaction_from_vcr(item, where=f"interactions[{i}]", scrubber=scrubber)
        if isinstance(result, str):
            skipped.append(f"#{i}: {result}")
            continue
        interactions.append(result)
        agent = _headers((item.get("request") or {}).get("headers")).get("user-agent")
        if agent:
            clients.add(agent)
    provenance: dict[str, Any] = {"kind": "recorded", "source": f"vcr import of {path.name}",
                                  "timing": TIMING_NOTE}
    if clients:
        provenance["clients"] = sorted(clients)
    if skipped:
        provenance["skipped"] = skipped
    if scrubber.changed:
        provenance["scrubbed"] = scrubber.changed
    cassette = Cassette(name or path.stem, provenance, interactions)
    assert_no_secret(cassette.to_dict(), what=f"cassette imported from {path.name}")
    return cassette
