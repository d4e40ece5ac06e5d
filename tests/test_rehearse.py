"""``scripts/rehearse.py``: lessons run live against the simulator, and fake keys never reach a file.

Introduced with lesson 0's simulator (``llmkit simulate``). One real rehearsal of a two-cell notebook
(a real kernel, a real simulator subprocess): the cell that calls the Responses API live passes, the
cell that only holds for a cassette's scripted answer is reported by its index. The key scan is checked
on planted keys in every encoding it claims to catch.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rehearse() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rehearse", ROOT / "scripts" / "rehearse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rehearse"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_a_cell_that_holds_only_for_the_scripted_answer_is_reported(rehearse: ModuleType, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("A synthetic lesson."),
        nbformat.v4.new_code_cell('import llmkit\nkit = llmkit.start("99_synthetic")'),
        nbformat.v4.new_code_cell('reply = kit.openai.responses.create(model=kit.models["openai"], '
                                  'input="Say hello.")\nassert reply.output_text'),
        nbformat.v4.new_code_cell('assert reply.output_text == "Hello from the cassette!", reply.output_text'),
    ]
    path = tmp_path / "lesson" / "99_synthetic.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    keys = rehearse.fake_keys()
    with rehearse.simulator(seed=7, profile="full") as url:
        [run] = rehearse.rehearse(path, ["live"], url, keys, tmp_path / "work", timeout=60, profile="full")
    assert run.mode == "live" and run.cells_run == 3
    assert [f.index for f in run.failures] == [3]  # the live call (cell 2) passed
    assert run.failures[0].error.startswith("AssertionError")
    assert run.failures[0].source.startswith("assert reply.output_text ==")
    assert not run.ok and not run.problems
    assert nbformat.read(path, as_version=4).cells[2].outputs == []  # the committed notebook is untouched


def test_the_local_server_profile_lists_the_cells_that_need_a_missing_api(rehearse: ModuleType,
                                                                          tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('import llmkit\nkit = llmkit.start("99_synthetic")'),
        nbformat.v4.new_code_cell('reply = kit.openai.responses.create(model=kit.models["openai"], input="Hi.")'),
        nbformat.v4.new_code_cell("print(reply.output_text)"),
        nbformat.v4.new_code_cell('chat = kit.openai.chat.completions.create(model=kit.models["openai"], '
                                  'messages=[{"role": "user", "content": "Hi."}])\n'
                                  "assert chat.choices[0].message.content"),
        nbformat.v4.new_code_cell("assert chat.choices[0].message.content == 'Hello from the cassette!'"),
    ]
    path = tmp_path / "lesson" / "99_synthetic.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    with pytest.raises(SystemExit):  # a recording would hold the 404s: the profile is live-only
        rehearse.main(["--notebooks", str(path), "--profile", "chat-completions-only"])
    with rehearse.simulator(seed=7, profile="chat-completions-only") as url:
        [run] = rehearse.rehearse(path, ["live"], url, rehearse.fake_keys(), tmp_path / "work", timeout=60,
                                  profile="chat-completions-only")
    assert [(f.index, f.error.split(",")[0]) for f in run.skipped] == [
        (1, "Skipped: this cell needs the Responses API (openai)"),
        (2, "Skipped: this cell uses `reply`")]
    assert [f.index for f in run.failures] == [4]  # the chat call ran; a wrong check still fails
    assert run.cells_run == 5 and not run.ok


@pytest.mark.parametrize("encode", [
    lambda k: k,
    lambda k: json.dumps({"auth": f"Bearer {k}"}),
    lambda k: quote(f"key={k}", safe=""),
    lambda k: "".join(f"%{b:02x}" for b in k.encode()),
    lambda k: base64.b64encode(f"user:{k}".encode()).decode(),
    lambda k: base64.urlsafe_b64encode(f"xy{k}!".encode()).decode(),
], ids=["raw", "json", "percent", "percent-every-byte", "base64", "base64-urlsafe-shifted"])
def test_a_planted_fake_key_is_found(rehearse: ModuleType, tmp_path: Path, encode: object) -> None:
    keys = rehearse.fake_keys()
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"other": rehearse.fake_keys()["anthropic"]}))  # another run's key
    blob = tmp_path / "blobs" / "abc123"
    blob.parent.mkdir()
    blob.write_bytes(b"\x89PNG..." + encode(keys["anthropic"]).encode() + b"...")  # type: ignore[operator]
    assert rehearse.find_keys([clean, blob], keys) == ["abc123: the fake anthropic key"]


def test_fake_keys_have_each_providers_format_and_differ_per_run(rehearse: ModuleType) -> None:
    a, b = rehearse.fake_keys(), rehearse.fake_keys()
    assert a["openai"].startswith("sk-proj-") and len(a["openai"]) > 100
    assert a["anthropic"].startswith("sk-ant-api03-")
    assert a["gemini"].startswith("AIza") and len(a["gemini"]) == 39
    assert all(a[p] != b[p] for p in a)
