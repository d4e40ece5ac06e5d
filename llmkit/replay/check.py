"""``llmkit cassette check``: is a cassette well formed, free of secrets, and fully used?

Introduced in lesson 0 (00_setup_and_replay). :func:`check_cassette` loads a cassette the way the replay
server does, then looks for what would make a lesson fail or leak:

- errors (the check fails): a malformed file (the schema in :mod:`llmkit.replay.schema` names the field,
  e.g. ``interactions[3].response.status``; the replay server loads through the same validation), a secret
  in any field (named, e.g. ``interactions[2].response.stream[5].raw``), a request path that belongs to
  another provider than the one recorded, a referenced image blob that is missing;
- warnings: stream frames out of time order, an SSE frame without its blank-line ending;
- with a play log (written by ``llmkit serve --play-log FILE``): the interactions nothing played.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import CassetteError
from . import providers
from .cassette import Cassette, Player
from .secrets import SecretScanner, configured_keys

__all__ = ["CheckReport", "check_cassette", "read_play_log", "write_play_log"]

_BLOB_REF = re.compile(r"blob:sha256:([0-9a-f]{64})")
_SSE_ENDINGS = ("\n\n", "\r\n\r\n", "\r\r")


@dataclass
class CheckReport:
    """What :func:`check_cassette` found (lesson 0). ``ok`` is False when there is an error or a secret."""

    path: Path
    summary: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    secret_field: str | None = None
    unused: list[int] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.secret_field is None

    def lines(self) -> list[str]:
        """The report as printable lines (first line: the verdict)."""
        verdict = "ok" if self.ok else "FAILED"
        if not self.summary and len(self.errors) == 1 and self.secret_field is None:
            return [f"{self.path}: FAILED · {self.errors[0]}"]  # it did not load: one line says why
        out = [f"{self.path}: {verdict}" + (f" · {self.summary}" if self.summary else "")]
        if self.secret_field:
            out.append(f"  secret: a secret-looking value is in field {self.secret_field!r}; remove it "
                       "(re-record, or re-import with scrubbing) before committing this cassette.")
        out += [f"  error: {e}" for e in self.errors]
        out += [f"  warning: {w}" for w in self.warnings]
        if self.unused is not None:
            out.append(f"  unused: {', '.join(f'#{i}' for i in self.unused)}" if self.unused
                       else "  unused: none (every interaction was played)")
        return out


def _blob_refs(value: Any) -> set[str]:
    return set(_BLOB_REF.findall(json.dumps(value)))


def _check_interactions(cassette: Cassette, report: CheckReport) -> None:
    blob_dir = (cassette.path or Path(".")).parent / "blobs"
    for i, it in enumerate(cassette.interactions):
        req, resp = it.request, it.response
        owner = providers.provider_for_path(req.path)  # None: no rule for it; replayed as recorded
        if owner is not None and owner != req.provider:
            report.errors.append(f"#{i}: {req.path} belongs to {owner}, but the request says {req.provider}")
        for digest in sorted(_blob_refs(req.body)):
            if not (blob_dir / digest).exists():
                report.errors.append(f"#{i}: image blob {digest[:12]}… is missing from {blob_dir}")
        if resp.stream is None:
            continue
        times = [f.t_ms for f in resp.stream]
        if any(b < a for a, b in zip(times, times[1:], strict=False)):
            report.warnings.append(f"#{i}: stream frame times are not in order")
        kind = providers.stream_kind(req.provider, req.path, dict(parse_qsl(req.query)))
        if kind == "sse":
            open_frames = [n for n, f in enumerate(resp.stream) if not f.raw.endswith(_SSE_ENDINGS)]
            if open_frames:
                report.warnings.append(f"#{i}: SSE frame(s) {open_frames[:5]} lack the blank line that ends an "
                                       "event (an SDK may not see them)")


def check_cassette(path: str | os.PathLike[str], played_log: str | os.PathLike[str] | None = None) -> CheckReport:
    """Validate the cassette at ``path`` (lesson 0); with ``played_log``, also list what was never played."""
    report = CheckReport(Path(path))
    try:
        cassette = Cassette.load(path)
    except CassetteError as e:
        report.errors.append(str(e))
        return report
    report.summary = cassette.summary()
    # Scan the file as written (every field, also ones the loader does not know), not the parsed model.
    # Streams reassembled, every encoding, the blob files it references, and the keys set in the environment.
    found = SecretScanner(configured_keys()).scan_cassette_file(path)
    report.secret_field = found.field if found else None
    _check_interactions(cassette, report)
    if played_log is not None:
        played = read_play_log(played_log)
        report.unused = [i for i in range(len(cassette.interactions)) if i not in played]
    return report


# --- play logs -----------------------------------------------------------------------------------------
def write_play_log(player: Player, path: str | os.PathLike[str]) -> Path:
    """Write which interactions a :class:`Player` served (lesson 0): ``{"cassette": ..., "played": [...]}``."""
    path = Path(path)
    doc = {"cassette": player.cassette.name, "interactions": len(player.cassette.interactions),
           "played": sorted(player.played)}
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return path


def read_play_log(path: str | os.PathLike[str]) -> set[int]:
    """Indices from a play log (lesson 0): what :func:`write_play_log` writes, a JSON list, or one per line."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = text.split()
    items = doc.get("played", []) if isinstance(doc, dict) else doc if isinstance(doc, list) else [doc]
    try:
        return {int(i) for i in items}
    except (TypeError, ValueError) as e:
        raise CassetteError(f"play log {path} is not a list of interaction indices ({e}).") from e
