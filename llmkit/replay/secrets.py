"""Finding secrets the way a reader of a cassette could find them (lesson 0).

Introduced in lesson 0 (00_setup_and_replay). One scanner serves both the recorder's gate (nothing is
written while it finds something) and ``llmkit cassette check``. It looks for API keys of every format
the three providers issue (OpenAI ``sk-``, ``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``; Anthropic
``sk-ant-api03-``, ``sk-ant-admin01-``; Google ``AIza``), ``Bearer`` tokens and Google OAuth ``ya29.``
tokens, case-insensitively, plus the exact values of the keys actually configured. It scans what a
reader could reassemble, not just each field on its own:

- every JSON key and value, header name and value, query, path and referenced blob file;
- each text as written and decoded: JSON ``\\u`` escapes, percent-encoding, and base64 decoded at every
  alignment in both alphabets (two levels deep, so base64 inside percent-encoding is found too);
- each stream joined: all frames concatenated (a key cut at a network-chunk boundary), and every
  JSON string field joined across events (a key streamed a few characters per delta).

A finding names the interaction and field and how the secret was encoded, never the secret itself.
Two look-alikes are passed over, so real traffic is not flagged: a key-shaped token inside a long run
of base64 (an image, a thought signature; that data is scanned decoded instead) and an ``sk-`` token
with neither digit nor capital letter (prose such as "a task-oriented design").
"""

from __future__ import annotations

import binascii
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["KEY_PATTERNS", "SecretFinding", "SecretScanner", "blob_loader", "configured_keys", "key_spans"]

#: Secret formats, by a name that is safe to print. Matched case-insensitively.
KEY_PATTERNS: dict[str, str] = {
    "an Anthropic API key": r"sk-ant-[a-z0-9_-]{10,}",
    "an OpenAI API key": r"sk-(?:proj-|svcacct-|admin-)?[a-z0-9_-]{20,}",
    "a Google API key": r"aiza[0-9a-z_-]{30,}",
    "a Google OAuth token": r"ya29\.[0-9a-z._-]{20,}",
    "a bearer token": r"bearer\s+[a-z0-9._~+/-]{20,}=*",
    "a key= query value": r"(?<=[?&]key=)[^&\s\"']{8,}",
}

_PREFIXES = ("sk-", "aiza", "ya29.", "bearer", "key=")
_KEY_REGEX = re.compile("|".join(f"(?P<p{i}>{rx})" for i, rx in enumerate(KEY_PATTERNS.values())), re.IGNORECASE)
_KEY_NAMES = {f"p{i}": name for i, name in enumerate(KEY_PATTERNS)}
_RANDOM_LOOKING = re.compile(r"[0-9A-Z]")
_BLOB_REF = re.compile(r"blob:sha256:([0-9a-f]{64})")
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_ESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}")
_TO_STANDARD_B64 = str.maketrans("-_", "+/")
_DEPTH = 2  # decode twice: base64 inside percent-encoding, \u escapes inside base64, ...
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=")
#: A run of base64 characters this long is encoded data (an image, a thought signature), not text.
BASE64_DATA_MIN = 256


@dataclass(frozen=True)
class SecretFinding:
    """Where a secret was found (``field``), what it looked like and how it was encoded; never its value."""

    field: str
    what: str
    encoding: str

    def describe(self) -> str:
        how = "" if self.encoding == "as written" else f", {self.encoding}"
        return f"{self.what}{how}, in field {self.field!r}"


def in_base64_data(text: str, start: int, end: int) -> bool:
    """Is ``text[start:end]`` part of a run of base64 characters of at least :data:`BASE64_DATA_MIN`?

    Random base64 spells ``sk-`` + 20 key characters about once per 100 kB; such a run is scanned
    decoded instead, where a key it encodes shows up."""
    left = start
    while left > 0 and start - left < BASE64_DATA_MIN and text[left - 1] in _B64_CHARS:
        left -= 1
    right = end
    while right < len(text) and right - left < BASE64_DATA_MIN and text[right] in _B64_CHARS:
        right += 1
    return right - left >= BASE64_DATA_MIN


def key_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, what) of every key-shaped token in ``text``, case-insensitively.

    Two kinds of look-alike are passed over: a token inside encoded data (see :func:`in_base64_data`),
    and an OpenAI-style ``sk-`` token without a digit or capital letter, which is prose
    ("a task-oriented design"), not a random key."""
    low = text.lower()
    if not any(prefix in low for prefix in _PREFIXES):  # substring tests are much faster than the regex
        return
    for m in _KEY_REGEX.finditer(text):
        what = _KEY_NAMES[m.lastgroup or ""]
        if what == "an OpenAI API key" and not _RANDOM_LOOKING.search(m.group(), 3):
            continue
        if not in_base64_data(text, m.start(), m.end()):
            yield m.start(), m.end(), what


def json_unescape(text: str) -> str:
    """Resolve JSON string escapes (``\\u0073``, ``\\/``, ...) wherever they occur in ``text``."""
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u"
                            else _ESCAPED[m.group(1)], text)


def base64_decodings(text: str) -> str:
    """Every base64-looking run in ``text`` decoded at offsets 0-3, either alphabet, as latin-1 text.

    A key at any byte offset of encoded data shows up in one of the four decodings."""
    runs = [m.group().translate(_TO_STANDARD_B64) for m in _B64_RUN.finditer(text)]
    out = []
    for offset in range(4):
        # Whole quads only, so the runs decode as one string (one C call instead of one per run).
        parts = [run[offset: len(run) - (len(run) - offset) % 4] for run in runs if len(run) - offset >= 8]
        try:
            out.append(binascii.a2b_base64("".join(parts)).decode("latin-1"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join(out)


def _decodings(text: str) -> Iterator[tuple[str, str]]:
    if "\\" in text:
        yield "JSON-escaped", json_unescape(text)
    if "%" in text:
        yield "percent-encoded", unquote(text, encoding="latin-1")
    if _B64_RUN.search(text):
        yield "base64-encoded", base64_decodings(text)


class SecretScanner:
    """Finds key-shaped values and the ``secrets`` given (exact values, any case), in any encoding above."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)
        self._lowered = [s.lower() for s in self.secrets]

    # --- text ----------------------------------------------------------------------------------
    def match(self, text: str) -> str | None:
        """What secret ``text`` holds as written (e.g. "an OpenAI API key"), or None."""
        if self._lowered:
            low = text.lower()
            if any(secret in low for secret in self._lowered):
                return "a configured API key"
        return next((what for _, _, what in key_spans(text)), None)

    def scan_text(self, text: str) -> tuple[str, str] | None:
        """(what, encoding) of the first secret in ``text`` as written or decoded, else None."""
        if len(text) < 8:
            return None
        frontier = [("as written", text)]
        seen = {text}
        for depth in range(_DEPTH + 1):
            following = []
            for how, view in frontier:
                what = self.match(view)
                if what:
                    return what, how
                if depth < _DEPTH:
                    for label, decoded in _decodings(view):
                        if decoded not in seen:
                            seen.add(decoded)
                            following.append((label if how == "as written" else f"{label} inside {how}", decoded))
            frontier = following
        return None

    def scan_bytes(self, data: bytes) -> tuple[str, str] | None:
        """Like :meth:`scan_text`, for a file's bytes (read as latin-1, so any byte sequence is scanned)."""
        return self.scan_text(data.decode("latin-1"))

    # --- JSON values ---------------------------------------------------------------------------
    def scan_value(self, value: Any, where: str = "", blobs: Callable[[str], bytes | None] | None = None
                   ) -> SecretFinding | None:
        """The first secret in a JSON-like value: every key and string, and the blobs it references."""
        if isinstance(value, dict):
            for k, v in value.items():
                key = str(k)
                hit = self.scan_text(key)
                if hit:  # name the place, not the key (which is the secret)
                    return SecretFinding(f"{where}.<an object key>" if where else "<an object key>", *hit)
                found = self.scan_value(v, f"{where}.{key}" if where else key, blobs)
                if found:
                    return found
            return None
        if isinstance(value, list):
            for i, v in enumerate(value):
                found = self.scan_value(v, f"{where}[{i}]", blobs)
                if found:
                    return found
            return None
        if isinstance(value, str):
            hit = self.scan_text(value)
            if hit:
                return SecretFinding(where or "<value>", *hit)
            if blobs is not None:
                for digest in _BLOB_REF.findall(value):
                    data = blobs(digest)
                    hit = self.scan_bytes(data) if data is not None else None
                    if hit:
                        return SecretFinding(f"{where} -> blobs/{digest[:12]}…", *hit)
        return None

    # --- cassettes -----------------------------------------------------------------------------
    def scan_stream(self, frames: list[str], where: str) -> SecretFinding | None:
        """What a client reassembles from a stream: all frames joined, and each JSON field joined
        across events (text deltas, tool-call arguments, ...). A secret inside one frame is named by it."""
        joined = "".join(frames)
        hit = self.scan_text(joined)
        if hit:  # the joined text covers every frame: find the frame, if one holds it whole
            for n, raw in enumerate(frames):
                one = self.scan_text(raw)
                if one:
                    return SecretFinding(f"{where}[{n}].raw", *one)
            return SecretFinding(f"{where}[*].raw (all frames joined)", *hit)
        for path, text in _joined_fields(joined).items():
            hit = self.scan_text(text)
            if hit:
                return SecretFinding(f"{where}[*] -> {path} (joined across events)", *hit)
        return None

    def scan_interaction(self, item: Any, where: str,
                         blobs: Callable[[str], bytes | None] | None = None) -> SecretFinding | None:
        """One interaction as written: every field and referenced blob, and its stream reassembled."""
        response = item.get("response") if isinstance(item, dict) else None
        stream = response.get("stream") if isinstance(response, dict) else None
        if not isinstance(stream, list) or not all(isinstance(f, dict) and isinstance(f.get("raw"), str)
                                                   for f in stream):
            return self.scan_value(item, where, blobs)
        # Frame texts are scanned joined (which covers each one); every other field as usual.
        rest = {**item, "response": {**response, "stream": [{k: v for k, v in f.items() if k != "raw"}
                                                            for f in stream]}}
        return (self.scan_value(rest, where, blobs)
                or self.scan_stream([f["raw"] for f in stream], f"{where}.response.stream"))

    def scan_cassette(self, doc: Any, blobs: Callable[[str], bytes | None] | None = None) -> SecretFinding | None:
        """The first secret in a cassette document (as written to disk, every field) and its blobs."""
        if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
            return self.scan_value(doc, "", blobs)
        found = self.scan_value({k: v for k, v in doc.items() if k != "interactions"}, "", blobs)
        for i, item in enumerate(doc["interactions"]):
            if found:
                break
            found = self.scan_interaction(item, f"interactions[{i}]", blobs)
        return found

    def scan_cassette_file(self, path: str | Path) -> SecretFinding | None:
        """Scan a cassette file as written, with the blobs it references (``blobs/`` beside it)."""
        path = Path(path)
        raw = path.read_bytes()
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            hit = self.scan_bytes(raw)
            return SecretFinding("<file>", *hit) if hit else None
        return self.scan_cassette(doc, blob_loader(path.parent / "blobs"))


def configured_keys() -> list[str]:
    """The provider keys set in the environment (``OPENAI_API_KEY``, ...), to look for by value."""
    from ..models import KEY_VARS

    return [os.environ[v] for names in KEY_VARS.values() for v in names if os.environ.get(v)]


def blob_loader(blob_dir: Path, pending: dict[str, bytes] | None = None) -> Callable[[str], bytes | None]:
    """Look a blob up by its sha256 hex digest: first in ``pending`` (not yet written), then on disk."""
    def load(digest: str) -> bytes | None:
        if pending and digest in pending:
            return pending[digest]
        file = blob_dir / digest
        return file.read_bytes() if file.is_file() else None

    return load


def _stream_payloads(joined: str) -> list[Any]:
    """The JSON documents in a stream: each SSE event's data, or the elements of a JSON-array stream."""
    from ..wire import JSONArrayDecoder, SSEDecoder  # the same decoders the lessons' clients use

    data = joined.encode("utf-8", "surrogatepass")
    if joined.lstrip().startswith("["):
        try:
            decoder = JSONArrayDecoder()
            return decoder.feed(data) + decoder.close()
        except ValueError:
            pass
    decoder = SSEDecoder()
    out = []
    for event in decoder.feed(data) + decoder.close():
        try:
            out.append(json.loads(event.data))
        except ValueError:
            out.append(event.data)
    return out


def _joined_fields(joined: str) -> dict[str, str]:
    """Every string field of the stream's JSON documents, joined across documents by its JSON path."""
    fields: dict[str, list[str]] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, str):
            fields.setdefault(where or "<data>", []).append(value)

    for payload in _stream_payloads(joined):
        walk(payload, "")
    return {path: "".join(parts) for path, parts in fields.items() if len(parts) > 1}
