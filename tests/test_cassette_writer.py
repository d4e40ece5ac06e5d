"""Writing cassettes: byte-stable saves, and the recorder's incremental writer (lesson 0).

A recorder saves the cassette after every interaction, so that a crash loses nothing already answered.
``CassetteWriter`` keeps the text of the interactions it wrote and encodes only the new one; these tests hold
it to the same bytes as ``Cassette.save`` and ``json.dumps``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from llmkit.replay.cassette import Cassette, CassetteWriter, Interaction, RecordedRequest, RecordedResponse

CASSETTES = sorted((Path(__file__).parent.parent / "notebooks" / "cassettes").glob("*.json"))
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8).decode()


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.stem)
def test_every_committed_cassette_saves_back_to_its_own_bytes(path, tmp_path):
    cassette = Cassette.load(path)
    saved = cassette.save(tmp_path / path.name)
    assert saved.read_bytes() == path.read_bytes()
    assert saved.read_text(encoding="utf-8") == json.dumps(cassette.to_dict(), indent=1, ensure_ascii=False) + "\n"


def test_an_empty_cassette_is_written_as_json_dumps_writes_it(tmp_path):
    empty = Cassette("empty", {"kind": "scripted", "note": "nothing yet — ünïcode"})
    text = empty.save(tmp_path / "empty.json").read_text(encoding="utf-8")
    assert text == json.dumps(empty.to_dict(), indent=1, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", ["00_setup_and_replay", "05_multimodal", "09_sse_server"])
def test_the_writer_leaves_after_each_append_what_save_would_write(name, tmp_path):
    recorded = Cassette.load(Path(__file__).parent.parent / "notebooks" / "cassettes" / f"{name}.json")
    growing = Cassette(recorded.name, recorded.provenance)
    writer, target = CassetteWriter(), tmp_path / "rec" / f"{name}.json"
    for i, interaction in enumerate(recorded.interactions, 1):
        writer.append(growing, target, interaction)
        expected = Cassette(recorded.name, recorded.provenance, recorded.interactions[:i]).save(tmp_path / "ref.json")
        assert target.read_bytes() == expected.read_bytes(), f"after interaction {i}"
    assert growing.interactions == recorded.interactions and growing.path == target
    assert sorted(p.name for p in target.parent.iterdir()) == [f"{name}.json"]  # no temp file left behind


def image_request(text: str) -> Interaction:
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]}
    return Interaction(RecordedRequest("openai", "POST", "/v1/chat/completions", "", body),
                       RecordedResponse(200, {"content-type": "application/json"}, body={"id": text}))


def test_the_writer_stores_an_inline_image_once_as_a_blob(tmp_path):
    cassette, writer, target = Cassette("img"), CassetteWriter(), tmp_path / "img.json"
    writer.append(cassette, target, image_request("first"))
    writer.append(cassette, target, image_request("second"))
    blobs = list((tmp_path / "blobs").iterdir())
    assert len(blobs) == 1 and base64.b64encode(blobs[0].read_bytes()).decode() == PNG
    text = target.read_text(encoding="utf-8")
    assert PNG not in text and text.count(f"blob:sha256:{blobs[0].name}") == 2
    assert Cassette.load(target).interactions[1].request.body == cassette.interactions[1].request.body


def test_a_writer_given_another_cassette_writes_that_cassette_whole(tmp_path):
    writer, target = CassetteWriter(), tmp_path / "c.json"
    first = Cassette("c")
    writer.append(first, target, image_request("a"))
    second = Cassette("c", interactions=[image_request("b")])  # e.g. a recorder reset to a fresh cassette
    writer.append(second, target, image_request("c"))
    assert [it.response.body["id"] for it in Cassette.load(target).interactions] == ["b", "c"]
