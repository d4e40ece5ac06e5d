"""The relay's web client in headless Chromium (lesson 9, 09_sse_server): it streams an answer, survives a
server-side cut mid-stream by resuming with Last-Event-ID, and never executes markup from the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_helpers import ARGS, CHROMIUM, needs_chromium
from server_helpers import PROMPTS, CutEvents, answers, record_cassette

from llmkit.kit import Kit
from llmkit.replay.server import ServerThread
from llmkit.server import create_app

pytestmark = needs_chromium


@pytest.fixture
def page_url(tmp_path: Path):
    record_cassette(tmp_path)
    kit = Kit("relay", mode="replay", speed=3.3, cassette_dir=tmp_path)
    app = create_app(kit)
    cutter = CutEvents(app, 8, times=1)
    thread = ServerThread(cutter).start()
    yield thread.url, cutter
    app.state.relay.shutdown()
    thread.stop()
    kit.close()


@pytest.fixture
def page(page_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(page_url[0] + "/")
        yield pg, page_url[1], errors
        context.close()
        browser.close()


def ask(pg, prompt: str) -> None:
    pg.fill("#prompt", prompt)
    pg.click("#send")
    # Polling with evaluate(): wait_for_function compiles its predicate with eval, which the page's CSP forbids.
    for _ in range(400):
        if pg.evaluate("() => window.llmkitChat && window.llmkitChat.finished"):
            return
        pg.wait_for_timeout(50)
    raise AssertionError("the answer did not finish within 20 s: " + pg.inner_text("#status"))


def test_streams_survives_a_cut_and_shows_the_complete_text(page):
    pg, cutter, errors = page
    ask(pg, PROMPTS["long"])
    assert pg.evaluate("window.llmkitChat.finished") == "done"
    assert cutter.cuts == 1, "the server cut the first connection mid-stream"
    assert pg.evaluate("window.llmkitChat.stream.reconnects") >= 1
    assert pg.evaluate("window.llmkitChat.stream.text") == answers()["long"]
    assert pg.inner_text("#answer strong") == "plain HTTP response"
    assert pg.locator("#answer li").count() == 3
    assert "done" in pg.inner_text("#status")
    assert not errors
    shot = os.environ.get("SCREENSHOT_09")
    if shot:  # lesson 9 shows this page: SCREENSHOT_09=notebooks/images/09_web_client.png refreshes it
        pg.screenshot(path=shot)


def test_model_markup_is_shown_as_text_and_never_runs(page):
    pg, _, errors = page
    ask(pg, PROMPTS["html"])
    pg.wait_for_timeout(300)  # give a broken <img> time to fire onerror, if one had been created
    assert pg.evaluate("window.__pwned") is None
    assert pg.locator("#answer img, #answer script").count() == 0
    shown = pg.text_content("#answer")
    assert '<img src=x onerror="window.__pwned = 1">' in shown and "<script>" in shown
    assert not errors
