"""llmkit.multimodal (lesson 5): media sniffing, downscaling, and each provider's image part as the
official SDK actually sends it to the replay server; cassettes store the image once, by hash."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from llmkit import chat
from llmkit import multimodal as mm
from llmkit.errors import CassetteMiss
from llmkit.kit import Kit

SCRIPT = "from llmkit.replay.scripted import Reply\n\ndef reply(req):\n    return Reply(text='I see a chart.')\n"


def encoded(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    img = Image.new(mode, size)
    img.putpixel((0, 0), (200, 30, 30) if mode == "RGB" else 1)  # not a flat image
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def noisy_png(size: tuple[int, int]) -> bytes:
    """Random pixels: PNG cannot compress them, so the file is large."""
    import os

    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# --- sniffing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, media", [("PNG", mm.PNG), ("JPEG", mm.JPEG), ("GIF", mm.GIF), ("WEBP", mm.WEBP)])
def test_media_type_comes_from_the_bytes_not_the_name(tmp_path: Path, fmt: str, media: str) -> None:
    wrong = tmp_path / ("picture.jpg" if fmt != "JPEG" else "picture.png")
    wrong.write_bytes(encoded((40, 30), fmt))
    assert mm.sniff_media_type(wrong.read_bytes()) == media
    assert mm.image_part(wrong)["media_type"] == media


def test_unknown_bytes_are_refused_with_advice() -> None:
    with pytest.raises(mm.ImageError, match="not a PNG, JPEG, GIF or WebP.*save"):
        mm.image_part(b"BM" + b"\x00" * 64)  # a BMP header
    with pytest.raises(mm.ImageError, match="cannot be decoded"):
        mm.image_part(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a truncated PNG
    with pytest.raises(mm.ImageError, match="no image file"):
        mm.image_part("/nonexistent/screenshot.png")


def test_pil_image_and_matplotlib_figure_become_png() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    part = mm.image_part(fig)
    plt.close(fig)
    assert part["media_type"] == mm.PNG and mm.image_size(part) == (100, 50)
    part = mm.image_part(Image.new("RGB", (33, 44)))
    assert part["media_type"] == mm.PNG and mm.image_size(part) == (33, 44)


# --- downscaling ---------------------------------------------------------------------------------------
def test_each_provider_gets_its_documented_size() -> None:
    big = encoded((3200, 2000), "PNG")
    sizes = {p: mm.image_size(mm.image_part(big, p)) for p in ("openai", "anthropic", "gemini")}
    sizes["gpt-4o"] = mm.image_size(mm.image_part(big, "openai", model="gpt-4o"))
    assert max(sizes["anthropic"]) == 1568  # long edge 1568
    assert max(sizes["gpt-4o"]) <= 2048 and min(sizes["gpt-4o"]) == 768  # tile model: 2048 box, short side 768
    w, h = sizes["openai"]  # the kit's gpt-4.1-mini, a patch model: at most 1536 patches of 32 px
    assert 1400 < -(-w // 32) * -(-h // 32) <= 1536
    assert sizes["gemini"] == (3200, 2000)  # Gemini tiles instead; it documents no pixel limit
    for w, h in sizes.values():
        assert abs(w / h - 3200 / 2000) < 0.01  # aspect ratio kept


def patches(size: tuple[int, int]) -> int:
    return -(-size[0] // 32) * -(-size[1] // 32)


def test_patch_rule_follows_openais_worked_example() -> None:
    # platform.openai.com/docs/guides/images-vision: 1800x2400 is 57x75 = 4275 patches, over the 1536 cap;
    # shrink by sqrt(1536·32²/(1800·2400)), then to whole patches: 33 x 44 = 1452 patches
    assert patches(mm.patch_fit(1800, 2400, 1536)) == 1452
    assert mm.patch_fit(1024, 1024, 1536) == (1024, 1024)  # 1024 patches: under the cap, untouched
    assert mm.estimate_image_tokens(1024, 1024, "openai", "gpt-4.1-mini") == -(-1024 * 162 // 100)


@given(st.integers(32, 6000), st.integers(32, 6000))
@settings(max_examples=200, deadline=None)
def test_patch_fit_never_exceeds_the_cap_and_keeps_the_shape(width: int, height: int) -> None:
    w, h = mm.patch_fit(width, height, 1536)
    assert patches((w, h)) <= 1536 and w <= width and h <= height
    if (w, h) != (width, height):
        assert abs(w / h - width / height) / (width / height) < 0.05
        if min(w, h) >= 640:  # 20 patches or more across: whole patches cost at most 1 in 20
            assert patches((w, h)) > 1536 * 0.9  # shrunk to the cap, not far below it


def test_a_phone_screenshot_is_sent_at_the_size_gpt_4_1_mini_works_at() -> None:
    """The bug lesson 5 had: the gpt-4o tile rule (short side 768) applied to gpt-4.1-mini sent 1032
    patches of a 1440x2560 screenshot where the model would have looked at ~1508."""
    shot = encoded((1440, 2560), "PNG")
    sent = mm.image_size(mm.image_part(shot, "openai", model="gpt-4.1-mini"))
    as_tiles = mm.image_size(mm.image_part(shot, "openai", model="gpt-4o"))
    assert as_tiles == (768, 1365) and patches(as_tiles) == 1032
    assert patches(sent) == patches(mm.patch_fit(1440, 2560, 1536)) > 1500
    # what the model sees (and bills) is the same whether you downscale first or not
    for model in ("gpt-4.1-mini", "gpt-4.1-nano", "o4-mini"):
        assert mm.estimate_image_tokens(*sent, "openai", model) == mm.estimate_image_tokens(1440, 2560, "openai", model)
    assert mm.estimate_image_tokens(*as_tiles, "openai", "gpt-4.1-mini") < mm.estimate_image_tokens(*sent, "openai",
                                                                                                    "gpt-4.1-mini")
    assert mm.limits("openai", "gpt-4o").short_side == 768 and mm.limits("openai").max_patches == 1536
    assert mm.limits("anthropic", "claude-haiku-4-5") == mm.LIMITS["anthropic"]


def test_small_images_are_sent_untouched() -> None:
    small = encoded((300, 200), "JPEG")
    for provider in ("openai", "anthropic", "gemini"):
        assert mm.image_part(small, provider)["data"] == small


def test_gif_is_converted_for_gemini_or_refused_without_resize() -> None:
    gif = encoded((50, 50), "GIF", mode="P")
    assert mm.image_part(gif, "gemini")["media_type"] == mm.PNG
    assert mm.image_part(gif, "anthropic")["media_type"] == mm.GIF
    with pytest.raises(mm.ImageError, match="gemini does not accept image/gif"):
        mm.image_part(gif, "gemini", resize=False)


def test_oversized_bytes_are_shrunk_under_the_limit_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = noisy_png((600, 600))  # ~1 MB
    small = mm.ImageLimits(frozenset({mm.PNG}), max_bytes=200_000, max_edge=None, fit_box=None,
                           short_side=None, long_edge=None)
    monkeypatch.setitem(mm.LIMITS, "anthropic", small)
    part = mm.image_part(data, "anthropic")
    assert len(part["data"]) <= 200_000 < len(data)
    with pytest.raises(mm.ImageError, match="over anthropic's"):
        mm.image_part(data, "anthropic", resize=False)


def test_too_many_pixels_for_the_hard_limit_without_resize() -> None:
    tall = encoded((100, 8100), "PNG")
    with pytest.raises(mm.ImageError, match="8000 px"):
        mm.image_part(tall, "anthropic", resize=False)
    assert max(mm.image_size(mm.image_part(tall, "anthropic"))) == 1568


def test_documented_token_formulas() -> None:
    # the worked examples in each provider's documentation
    assert mm.estimate_image_tokens(1024, 1024, "openai", "gpt-4o") == 765
    assert mm.estimate_image_tokens(1800, 2400, "openai", "gpt-4.1-mini") == -(-1452 * 162 // 100)
    assert mm.estimate_image_tokens(1000, 1000, "anthropic") == 1334
    assert mm.estimate_image_tokens(384, 384, "gemini") == 258
    assert mm.estimate_image_tokens(1000, 800, "gemini") == 258 * 4


# --- what reaches the replay server --------------------------------------------------------------------
class Sent(list):
    """Request bodies as the server received them; observers run just after the response is sent."""

    def last(self, n: int) -> dict:
        deadline = time.monotonic() + 5
        while len(self) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(self) >= n, f"the server saw {len(self)} requests, expected {n}"
        return self[n - 1]


@pytest.fixture
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMKIT_SPEED", "0")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    kit = Kit("mm_test", mode="record", script=str(script), cassette_dir=tmp_path)
    bodies = Sent()
    kit.app.observers.append(lambda ex: bodies.append(ex.request_body))
    yield kit, bodies
    kit.close()


def test_openai_chat_and_responses_parts_reach_the_server(recording) -> None:
    kit, bodies = recording
    part = mm.image_part(encoded((3000, 1000), "PNG"), "openai")
    url = "data:image/png;base64," + base64.b64encode(part["data"]).decode()
    kit.openai.chat.completions.create(model=kit.models["openai"], messages=[{"role": "user", "content": [
        mm.openai_chat_part(part), {"type": "text", "text": "Describe."}]}])
    expected = {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}
    assert bodies.last(1)["messages"][0]["content"][0] == expected
    kit.openai.responses.create(model=kit.models["openai"], input=[{"role": "user", "content": [
        mm.openai_responses_part(part), {"type": "input_text", "text": "Describe."}]}])
    assert bodies.last(2)["input"][0]["content"][0] == {"type": "input_image", "image_url": url, "detail": "auto"}
    chat.complete(kit, "openai", [chat.user([part, mm.text_part("Describe.")])])  # the neutral path
    assert bodies.last(3)["messages"][0]["content"][0]["image_url"]["url"] == url


def test_anthropic_part_reaches_the_server(recording) -> None:
    kit, bodies = recording
    part = mm.image_part(encoded((640, 480), "JPEG"), "anthropic")
    kit.anthropic.messages.create(model=kit.models["anthropic"], max_tokens=100, messages=[{"role": "user", "content": [
        mm.anthropic_part(part), {"type": "text", "text": "Describe."}]}])
    sent = bodies.last(1)["messages"][0]["content"][0]
    assert sent["type"] == "image" and sent["source"]["type"] == "base64"
    assert sent["source"]["media_type"] == "image/jpeg" and base64.b64decode(sent["source"]["data"]) == part["data"]
    chat.complete(kit, "anthropic", [chat.user([part, mm.text_part("Describe.")])])
    assert bodies.last(2)["messages"][0]["content"][0] == sent


def test_gemini_part_reaches_the_server(recording) -> None:
    from google.genai import types

    kit, bodies = recording
    part = mm.image_part(encoded((500, 400), "WEBP"), "gemini")
    kit.gemini.models.generate_content(model=kit.models["gemini"], contents=[
        types.Part.from_bytes(data=part["data"], mime_type=part["media_type"]), "Describe."])
    via_sdk = bodies.last(1)["contents"][0]["parts"][0]
    inline = via_sdk["inlineData"]  # google-genai sends URL-safe base64 (and this version, snake_case mime_type)
    assert inline.get("mimeType", inline.get("mime_type")) == "image/webp"
    assert base64.urlsafe_b64decode(inline["data"]) == part["data"]
    kit.gemini.models.generate_content(model=kit.models["gemini"], contents=[
        {"role": "user", "parts": [mm.gemini_part(part), {"text": "Describe."}]}])
    assert bodies.last(2)["contents"][0]["parts"][0] == via_sdk


def test_cassette_stores_the_image_once_and_replays_by_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            recording) -> None:
    kit, _ = recording
    part = mm.image_part(noisy_png((64, 48)), "anthropic")
    for _ in range(2):  # the same image twice: one blob
        chat.complete(kit, "anthropic", [chat.user([part, mm.text_part("Describe.")])])
    kit.close()
    digest = hashlib.sha256(part["data"]).hexdigest()
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [digest]
    assert (tmp_path / "blobs" / digest).read_bytes() == part["data"]
    text = (tmp_path / "mm_test.json").read_text()
    assert f"blob:sha256:{digest}" in text and base64.b64encode(part["data"]).decode()[:200] not in text
    assert json.loads(text)["provenance"]["kind"] == "scripted"

    replay = Kit("mm_test", mode="replay", speed=0, cassette_dir=tmp_path)
    try:
        assert chat.complete(replay, "anthropic", [chat.user([part, mm.text_part("Describe.")])]).text == \
            "I see a chart."
        other = mm.image_part(noisy_png((64, 48)), "anthropic")
        with pytest.raises(anthropic.BadRequestError, match="cassette miss"):
            chat.complete(replay, "anthropic", [chat.user([other, mm.text_part("Describe.")])])
        assert isinstance(replay.misses[-1], CassetteMiss)
        assert any("blob:sha256:" in line for line in replay.misses[-1].diff)
    finally:
        replay.close()


def test_fit_image_follows_the_models_rule() -> None:
    shot = encoded((1440, 2560), "PNG")
    data, media = mm.fit_image(shot, "openai", model="gpt-4o")
    assert media == mm.PNG and mm.image_size(data) == (768, 1365)
    data, _ = mm.fit_image(shot, "openai", model="o4-mini")
    assert patches(mm.image_size(data)) == patches(mm.patch_fit(1440, 2560, 1536))
