"""Cassettes: one lesson's recorded provider traffic, as a JSON file readable in a diff (lesson 0).

Format (``"llmkit_cassette": 1``)::

    {"llmkit_cassette": 1, "name": "00_setup_and_replay",
     "provenance": {"kind": "scripted" | "recorded", "created": "...", "sdk_versions": {...}, "note": "..."},
     "interactions": [
       {"request": {"provider": "openai", "method": "POST", "path": "/v1/chat/completions",
                    "query": "", "body": {...}},
        "response": {"status": 200, "headers": {...}, "t_ms": 412.0, "body": {...}}},
       {"request": {...},
        "response": {"status": 200, "headers": {...}, "headers_ms": 180.0,
                     "stream": [{"t_ms": 231.5, "raw": "data: {...}\\n\\n"}, ...]}}]}

A response holds either ``body`` (JSON), ``body_text`` (anything else) or ``stream`` (frames kept
byte-exact with their time since the request arrived, so pacing can be replayed). A recorded JSON body
whose bytes ``json.dumps`` would not reproduce (its own whitespace, key order, escapes) is kept as
``body_text``, so every non-streamed body replays byte-exact (:func:`json_or_text`). Large binary inputs
are stored once under ``blobs/<sha256>`` beside the cassette and referenced from the request body.
Loading validates the file against :mod:`llmkit.replay.schema`; a malformed one is a ``CassetteError``
naming the field, e.g. ``interactions[3].response.status``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CassetteError, CassetteMiss
from .canonical import body_diff, canonical_query, canonical_text, distance, replace_blobs
from .schema import FIX_HINT, FORMAT_VERSION, PROVENANCE_KINDS, validate_cassette

__all__ = ["FORMAT_VERSION", "PROVENANCE_KINDS", "Cassette", "CassetteWriter", "Frame", "Interaction", "Player",
           "RecordedRequest", "RecordedResponse", "json_or_text", "read_cassette_json"]


def read_cassette_json(path: Path) -> Any:
    """Decode a cassette file's JSON (lesson 0); unreadable, non-UTF-8 or too deeply nested files raise
    :class:`CassetteError` saying so."""
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise CassetteError(f"{path} is a directory, not a cassette file; pass the .json file inside it.") from None
    except OSError as e:
        raise CassetteError(f"cassette {path} cannot be read ({e.strerror or e}); check its permissions.") from None
    except UnicodeDecodeError as e:
        raise CassetteError(f"cassette {path} is not UTF-8 text (byte {e.start}); {FIX_HINT}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CassetteError(f"cassette {path} is not valid JSON ({e}); restore it from git.") from None
    except RecursionError:
        raise CassetteError(f"cassette {path} is not valid JSON (nested too deeply to read); "
                            "restore it from git.") from None


def json_or_text(text: str) -> tuple[Any, str | None]:
    """How to store a non-streamed response body so it replays byte-exact (lesson 0).

    Returns ``(parsed JSON, None)`` when re-serialising the JSON gives back exactly ``text`` (readable in a
    cassette diff), else ``(None, text)``: recorded whitespace, key order and escapes are kept as they were.
    """
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, text
    if isinstance(parsed, (dict, list)) and json.dumps(parsed, ensure_ascii=False) == text:
        return parsed, None
    return None, text


@dataclass
class Frame:
    """One piece of a streamed response: its bytes (as text) and when it was sent."""

    t_ms: float
    raw: str


@dataclass
class RecordedRequest:
    provider: str
    method: str
    path: str
    query: str = ""
    body: Any = None

    def key(self, *, may_hold_blobs: bool = True) -> tuple[str, str, str, str]:
        """What matching compares: method, path, canonical query and canonical body."""
        return (self.method.upper(), self.path, canonical_query(self.query),
                canonical_text(self.body, may_hold_blobs=may_hold_blobs))

    def label(self) -> str:
        q = canonical_query(self.query)
        return f"{self.method.upper()} {self.path}{'?' + q if q else ''}"


@dataclass
class RecordedResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    body_text: str | None = None
    stream: list[Frame] | None = None
    t_ms: float = 0.0
    headers_ms: float = 0.0

    @property
    def is_stream(self) -> bool:
        return self.stream is not None

    def body_bytes(self) -> bytes:
        if self.body_text is not None:
            return self.body_text.encode()
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False).encode()


@dataclass
class Interaction:
    request: RecordedRequest
    response: RecordedResponse


@dataclass
class Cassette:
    """A lesson's recorded traffic. Load with :meth:`load`, write with :meth:`save`."""

    name: str
    provenance: dict[str, Any] = field(default_factory=lambda: {"kind": "scripted"})
    interactions: list[Interaction] = field(default_factory=list)
    path: Path | None = None

    # --- reading and writing -----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read and validate the cassette at ``path`` (lesson 0); any problem is a :class:`CassetteError`."""
        path = Path(path)
        if not path.exists():
            raise CassetteError(
                f"cassette {path} does not exist. Record it with LLMKIT_MODE=record, "
                "or check the lesson name passed to llmkit.start()."
            )
        data = read_cassette_json(path)
        cassette = cls.from_dict(data, source=str(path))
        cassette.path = path
        return cassette

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>") -> Cassette:
        """Build a cassette from its decoded JSON, validated by :mod:`llmkit.replay.schema` (lesson 0)."""
        doc = validate_cassette(data, source=source)
        interactions = []
        for item in doc.interactions:
            req, resp = item.request, item.response
            interactions.append(Interaction(
                RecordedRequest(req.provider, req.method, req.path, req.query, req.body),
                RecordedResponse(
                    status=resp.status, headers=resp.headers, body=resp.body, body_text=resp.body_text,
                    stream=[Frame(f.t_ms, f.raw) for f in resp.stream] if resp.stream is not None else None,
                    t_ms=resp.t_ms, headers_ms=resp.headers_ms,
                ),
            ))
        return cls(name=doc.name or Path(source).stem, provenance=data["provenance"], interactions=interactions)

    def to_dict(self) -> dict:
        return {**self.header(), "interactions": [interaction_entry(it) for it in self.interactions]}

    def header(self) -> dict:
        """The file's fields other than the interactions."""
        return {"llmkit_cassette": FORMAT_VERSION, "name": self.name, "provenance": self.provenance}

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write atomically (temp file + rename): a crash never leaves half a cassette."""
        target = Path(path or self.path or f"{self.name}.json")
        for it in self.interactions:
            extract_blobs(it, target.parent / "blobs")
        encoded = [encode_entry(interaction_entry(it)) for it in self.interactions]
        write_atomically(target, document_text(self.header(), encoded).encode("utf-8"))
        self.path = target
        return target

    # --- inspection ----------------------------------------------------------------------------
    def summary(self) -> str:
        kinds: dict[str, int] = defaultdict(int)
        for it in self.interactions:
            kinds[it.request.provider] += 1
        per = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        return f"{len(self.interactions)} interactions ({per or 'empty'}), {self.provenance.get('kind')}"


# --- writing --------------------------------------------------------------------------------------
# A cassette file is ``json.dumps(cassette.to_dict(), indent=1, ensure_ascii=False)`` plus a newline. It is
# assembled here from one encoded text per interaction, so that a recorder can keep the texts it already
# wrote and encode only the new interaction (CassetteWriter).
_ITEM_INDENT = "  "  # an interaction sits two levels deep: document -> "interactions" list -> item


def interaction_entry(it: Interaction) -> dict:
    """One interaction as it is stored in the cassette file's ``interactions`` list."""
    req = {"provider": it.request.provider, "method": it.request.method, "path": it.request.path}
    if it.request.query:
        req["query"] = it.request.query
    req["body"] = it.request.body
    r = it.response
    resp: dict[str, Any] = {"status": r.status, "headers": r.headers}
    if r.stream is not None:
        resp["headers_ms"] = round(r.headers_ms, 2)
        resp["stream"] = [{"t_ms": round(f.t_ms, 2), "raw": f.raw} for f in r.stream]
    else:
        resp["t_ms"] = round(r.t_ms, 2)
        if r.body_text is not None:
            resp["body_text"] = r.body_text
        else:
            resp["body"] = r.body
    return {"request": req, "response": resp}


def encode_entry(entry: dict) -> str:
    """An entry's text as it appears inside the file (JSON escapes newlines in strings, so indenting every
    line is exact)."""
    text = json.dumps(entry, indent=1, ensure_ascii=False)
    return "\n".join(_ITEM_INDENT + line for line in text.split("\n"))


def document_text(header: dict, encoded: list[str]) -> str:
    """The whole cassette file from its header fields and its encoded interactions."""
    if not encoded:
        return json.dumps({**header, "interactions": []}, indent=1, ensure_ascii=False) + "\n"
    head = json.dumps(header, indent=1, ensure_ascii=False).removesuffix("\n}")
    return head + ',\n "interactions": [\n' + ",\n".join(encoded) + "\n ]\n}\n"


def write_atomically(target: Path, data: bytes) -> None:
    """Temp file + rename in the target's folder: a crash never leaves half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_blob(blob_dir: Path, digest: str, data: bytes) -> None:
    """Write ``blob_dir/digest`` once: content-addressed, the same name always holds the same bytes."""
    if not (blob_dir / digest).exists():
        write_atomically(blob_dir / digest, data)


def extract_blobs(it: Interaction, blob_dir: Path) -> None:
    """Store the request's inline images under ``blob_dir`` and reference them from its body."""
    it.request.body = replace_blobs(
        it.request.body, lambda ref, data, media: store_blob(blob_dir, ref.removeprefix("blob:sha256:"), data))


class CassetteWriter:
    """Keeps a cassette file current while interactions are recorded (record mode, lesson 0).

    Each :meth:`append` rewrites the file atomically, as :meth:`Cassette.save` does, with the same bytes; but
    the writer keeps the text of every interaction it wrote, so only the new one is encoded. Saving after each
    of n interactions then costs n encodes instead of n²/2 (``benchmarks/bench_replay.py`` measures both)."""

    def __init__(self) -> None:
        self._written: list[tuple[Interaction, str]] = []

    def append(self, cassette: Cassette, path: Path, interaction: Interaction, entry: dict | None = None) -> None:
        """Write ``cassette`` with ``interaction`` added to ``path``, then add it to the cassette. ``entry`` is
        its :func:`interaction_entry` if the caller already built it (the recorder scans it first)."""
        current = cassette.interactions
        if len(self._written) != len(current) or any(
                a is not b for (a, _), b in zip(self._written, current, strict=True)):
            self._written = [(it, encode_entry(interaction_entry(it))) for it in current]  # a new cassette
        extract_blobs(interaction, path.parent / "blobs")
        encoded = encode_entry(entry if entry is not None else interaction_entry(interaction))
        text = document_text(cassette.header(), [text for _, text in self._written] + [encoded])
        write_atomically(path, text.encode("utf-8"))
        self._written.append((interaction, encoded))
        current.append(interaction)
        cassette.path = path


class Player:
    """Serves a cassette's responses: strict matching, identical requests in recorded order, then
    the last one repeats (so re-running a notebook cell works)."""

    def __init__(self, cassette: Cassette):
        self.cassette = cassette
        self._by_key: dict[tuple, list[int]] = defaultdict(list)
        self._providers: dict[tuple[str, str], str] = {}
        for i, it in enumerate(cassette.interactions):
            self._by_key[it.request.key()].append(i)
            self._providers.setdefault((it.request.method.upper(), it.request.path), it.request.provider)
        self._served: dict[tuple, int] = defaultdict(int)
        self.played: set[int] = set()
        self._lock = threading.Lock()

    def provider_at(self, method: str, path: str) -> str | None:
        """The provider recorded for ``method path`` (None if nothing was recorded there): how the server
        answers endpoints it has no provider rule for, e.g. a legacy one in an imported VCR cassette."""
        return self._providers.get((method.upper(), path))

    def match(self, request: RecordedRequest, key: tuple | None = None,
              ready: Callable[[Interaction], bool] | None = None) -> tuple[int, Interaction]:
        """The recorded interaction for ``request`` (its ``key()`` may be passed precomputed).

        ``ready(interaction)`` False holds the next recording back: the one before it is served again
        and the next stays next (lesson 11: a batch's poll cannot see it ended before its time)."""
        key = key or request.key()
        with self._lock:
            indices = self._by_key.get(key)
            if not indices:
                raise self.miss(request)
            n = min(self._served[key], len(indices) - 1)
            if n > 0 and ready is not None and not ready(self.cassette.interactions[indices[n]]):
                n -= 1
            else:
                self._served[key] = n + 1
            index = indices[n]
            self.played.add(index)
        return index, self.cassette.interactions[index]

    def unused(self) -> list[int]:
        return [i for i in range(len(self.cassette.interactions)) if i not in self.played]

    def reset(self) -> None:
        with self._lock:
            self._served.clear()
            self.played.clear()

    def miss(self, request: RecordedRequest) -> CassetteMiss:
        """Build the error for an unmatched request, naming the closest recording."""
        best: tuple[int, int] | None = None
        # Compare with the same provider's recordings; a request with no provider (an endpoint nobody
        # owns and nothing was recorded at) is compared with all of them.
        for i, it in enumerate(self.cassette.interactions):
            rec = it.request
            if request.provider and rec.provider != request.provider:
                continue
            d = distance(rec.body, request.body) + (0 if rec.label() == request.label() else 1000)
            if best is None or d < best[0]:
                best = (d, i)
        name = self.cassette.path or self.cassette.name
        head = f"cassette miss: no recorded request in {name} matches {request.label()}."
        fix = ("Either the cell changed (re-record with LLMKIT_MODE=record, keys in .env) "
               "or the request differs from the recording in the fields shown.")
        if best is None:
            what = f"for {request.provider}" if request.provider else "in it"
            return CassetteMiss(f"{head} Nothing was recorded {what}. {fix}")
        rec = self.cassette.interactions[best[1]].request
        diff = body_diff(rec.body, request.body)
        if rec.label() != request.label():
            diff.insert(0, f"<path>: recorded {rec.label()}, sent {request.label()}")
        detail = "\n  ".join(diff) if diff else "(identical body; all recorded repeats were used)"
        return CassetteMiss(f"{head}\nClosest recording: interaction #{best[1]}; differences:\n  {detail}\n{fix}",
                            closest=best[1], diff=diff)
