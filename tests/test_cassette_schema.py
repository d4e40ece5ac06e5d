"""Cassettes are validated by one schema: every malformed file is a CassetteError naming the field.

``Cassette.load``, ``llmkit cassette check`` and ``llmkit serve`` share the validation, so a file that
passes the check also serves. A fuzz test mutates the lessons' real cassettes (drop, replace and retype
fields, truncate, nest, bad bytes) and requires a clean CassetteError or a cassette that really serves.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmkit import cli
from llmkit.errors import CassetteError
from llmkit.replay.cassette import Cassette, Player
from llmkit.replay.check import check_cassette
from llmkit.replay.server import ReplayApp, serve_cassette

CASSETTES = Path(__file__).resolve().parents[1] / "notebooks" / "cassettes"
SMALL = ["00_setup_and_replay.json", "07_memory_systems.json", "09_sse_server.json"]


def lesson(name: str = "00_setup_and_replay.json") -> dict:
    return json.loads((CASSETTES / name).read_text(encoding="utf-8"))


def first(doc: dict, kind: str) -> int:
    """Index of the first interaction whose response is a ``body`` or a ``stream``."""
    return next(i for i, it in enumerate(doc["interactions"]) if kind in it["response"])


def mutated(change) -> dict:
    doc = copy.deepcopy(lesson())
    change(doc)
    return doc


# (what is wrong, the change, the field named in the message, a phrase of the message)
MALFORMED = [
    ("interactions is null", lambda d: d.__setitem__("interactions", None), "interactions:", "valid list"),
    ("response is a list", lambda d: d["interactions"][1].__setitem__("response", [200]),
     "interactions[1].response:", "valid dictionary"),
    ("path is an int", lambda d: d["interactions"][2]["request"].__setitem__("path", 7),
     "interactions[2].request.path:", "valid string"),
    ("method is an int", lambda d: d["interactions"][0]["request"].__setitem__("method", 1),
     "interactions[0].request.method:", "valid string"),
    ("status is text", lambda d: d["interactions"][3]["response"].__setitem__("status", "200 OK"),
     "interactions[3].response.status:", "valid integer"),
    ("status out of range", lambda d: d["interactions"][3]["response"].__setitem__("status", 999),
     "interactions[3].response.status:", "less than or equal to 599"),
    ("request missing", lambda d: d["interactions"][4].pop("request"), "interactions[4].request:", "required"),
    ("frame time is text", lambda d: d["interactions"][first(d, "stream")]["response"]["stream"][0]
     .__setitem__("t_ms", "soon"), ".response.stream[0].t_ms:", "valid number"),
    ("unknown provider", lambda d: d["interactions"][0]["request"].__setitem__("provider", "acme"),
     "interactions[0].request.provider:", "unknown provider"),
    ("header with a line break", lambda d: d["interactions"][0]["response"]["headers"]
     .__setitem__("x-evil", "a\r\nset-cookie: x"), "interactions[0].response.headers.x-evil:", "HTTP header"),
    ("body and stream together", lambda d: d["interactions"][first(d, "stream")]["response"]
     .__setitem__("body", {"a": 1}), ".response:", "not body and stream"),
    ("a typo'd field", lambda d: d["interactions"][0]["response"].__setitem__("bodytext", "x"),
     "interactions[0].response.bodytext:", "not permitted"),
    ("provenance kind", lambda d: d["provenance"].__setitem__("kind", "guessed"), "provenance.kind:", "'scripted'"),
    ("lone surrogate", lambda d: d["interactions"][0]["request"]["body"].__setitem__("x", "\ud800"),
     "interactions[0].request.body.x:", "not valid Unicode"),
]


@pytest.mark.parametrize(("change", "field", "phrase"), [pytest.param(*m[1:], id=m[0]) for m in MALFORMED])
def test_a_malformed_cassette_names_the_field_and_what_to_do(tmp_path, change, field, phrase):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(mutated(change)), encoding="utf-8")
    with pytest.raises(CassetteError) as info:
        Cassette.load(path)
    message = str(info.value)
    assert str(path) in message and field in message and phrase in message
    assert "re-record" in message and "\n" not in message
    report = check_cassette(path)  # check and load agree
    assert not report.ok and report.errors == [message]
    with pytest.raises(CassetteError, match="malformed"):  # and serve refuses it before listening
        serve_cassette(str(path), quiet=True)


@pytest.mark.parametrize(("content", "phrase"), [
    pytest.param(b'{"llmkit_cassette": 1, "name": "caf\xe9"}', "not UTF-8", id="latin-1 bytes"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="nested 100k deep"),
    pytest.param(b'{"llmkit_cassette": 1, "provenance": {"kind": "scripted"}, "interactions": [{"request": '
                 b'{"provider": "openai", "method": "POST", "path": "/v1/x", "body": ' + b"[" * 500 + b"]" * 500
                 + b'}, "response": {"status": 200}}]}', "deeper than 128", id="body nested 500 deep"),
    pytest.param(b'{"llmkit_cassette": 1, "interactions": [', "not valid JSON", id="truncated"),
    pytest.param(b'["llmkit_cassette", 1]', "not an llmkit cassette", id="a list"),
])
def test_unreadable_files_are_cassette_errors(tmp_path, content, phrase):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CassetteError, match=phrase):
        Cassette.load(path)


def test_a_directory_is_a_cassette_error(tmp_path):
    with pytest.raises(CassetteError, match="is a directory"):
        Cassette.load(tmp_path)


@pytest.mark.parametrize("name", sorted(p.name for p in CASSETTES.glob("*.json")))
def test_every_lesson_cassette_passes_the_schema(name):
    cassette = Cassette.load(CASSETTES / name)
    assert len(cassette.interactions) == len(lesson(name)["interactions"]) > 0


def test_the_cli_fails_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mutated(lambda d: d["interactions"][3]["response"].__setitem__("status", "x"))))
    for args in (["cassette", "check", str(bad)], ["serve", "--cassette", str(bad), "--quiet"]):
        run = subprocess.run([sys.executable, "-m", "llmkit.cli", *args], capture_output=True, text=True,
                             timeout=60)
        out = (run.stdout + run.stderr).strip()
        assert run.returncode == 1 and "Traceback" not in out and len(out.splitlines()) == 1, out
        assert "interactions[3].response.status: Input should be a valid integer" in out


# --- fuzzing: mutated real cassettes -------------------------------------------------------------------
def paths_in(value: Any, here: tuple = ()) -> list[tuple]:
    """Every location in a JSON document (the mutation targets)."""
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_in(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_in(v, (*here, i))
    return out


DOCS = {name: lesson(name) for name in SMALL}
PATHS = {name: paths_in(doc)[1:] for name, doc in DOCS.items()}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def retype(value: Any) -> Any:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list):
        return {"0": value[0]} if value else "[]"
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated_file(draw) -> bytes:
    name = draw(st.sampled_from(SMALL))
    doc = copy.deepcopy(DOCS[name])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(PATHS[name]))  # a location of the original (gone ones are skipped)
        op = draw(st.sampled_from(["drop", "replace", "retype", "nest"]))
        parent: Any = doc
        try:
            for part in where[:-1]:
                parent = parent[part]
            key = where[-1]
            if op == "drop":
                del parent[key]
            elif op == "replace":
                parent[key] = draw(JSON_VALUES)
            elif op == "retype":
                parent[key] = retype(parent[key])
            else:  # a marker, replaced by the nested arrays in the text (json.dumps would overflow)
                depth = draw(st.sampled_from([2, 120, 140, 900, 100_000]))
                parent[key] = f"<nest {depth}>"
        except (KeyError, IndexError, TypeError):
            continue
    text = json.dumps(doc)
    for depth in (2, 120, 140, 900, 100_000):
        text = text.replace(f'"<nest {depth}>"', "[" * depth + "0" + "]" * depth)
    data = text.encode()
    tail = draw(st.sampled_from(["none", "none", "none", "truncate", "bad bytes"]))
    if tail == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif tail == "bad bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


def serve_each_recorded_request(cassette: Cassette) -> None:
    """Replay every recorded request in-process: a cassette that loads must also serve."""
    app = ReplayApp(Player(cassette))

    async def one(it) -> int:
        raw = b"" if it.request.body is None else json.dumps(it.request.body).encode()
        scope = {"type": "http", "method": it.request.method, "path": it.request.path,
                 "query_string": it.request.query.encode(), "headers": []}
        sent: list[dict] = []
        pending = [{"type": "http.request", "body": raw, "more_body": False}]

        async def receive() -> dict:
            return pending.pop() if pending else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"]

    async def all_of_them() -> list[int]:
        return [await one(it) for it in cassette.interactions[:4]]

    statuses = asyncio.run(all_of_them())
    assert all(200 <= s <= 599 for s in statuses)


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_file())
def test_fuzz_mutated_cassettes_load_cleanly_or_fail_with_a_cassette_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.json"
        path.write_bytes(data)
        try:
            cassette = Cassette.load(path)
        except CassetteError as e:
            assert str(e) and "\n" not in str(e)
            assert cli.main(["cassette", "check", str(path)]) == 1  # and the CLI says so, no traceback
            return
        cassette.summary()
        check_cassette(path)
        serve_each_recorded_request(cassette)
