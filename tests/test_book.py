"""``make book``: a static site of every lesson from its saved outputs, checked in headless Chromium.

Introduced with the lessons' book (``make book``, docs/book/conf.py). The book is built once per test session
into a temporary folder and served from a loopback HTTP server. Each lesson page must carry the lesson's title,
at least one rendered output, every image loaded, its source link, and no console error; a screenshot of each
page goes into the test's tmp_path. The browser is Debian's chromium driven by Playwright (never a downloaded
browser); the browser tests skip when it is absent.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser_helpers import ARGS, CHROMIUM, MISSING, needs_chromium

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))  # 07_name, and a split part 07b_name


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _title(path: Path) -> str:
    """The lesson's title: the first heading of its first markdown cell."""
    first = next(c for c in _notebook(path)["cells"] if c["cell_type"] == "markdown")
    heading = next(line for line in "".join(first["source"]).splitlines() if line.startswith("# "))
    return heading.removeprefix("# ").strip()


def _png_outputs(path: Path) -> int:
    return sum("image/png" in o.get("data", {}) for c in _notebook(path)["cells"] for o in c.get("outputs", []))


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make book`` into a temporary folder, once per session, with every Sphinx warning (a lesson's broken link,
    a missing image) an error; the venv running the tests is the one used."""
    out = tmp_path_factory.mktemp("book")
    venv = Path(sys.prefix)
    t0 = time.perf_counter()
    # -o: use the venv as it is (the tests already run in it) even if pyproject.toml is newer than its stamp.
    done = subprocess.run(["make", "-C", str(ROOT), f"VENV={venv}", "-o", str(venv / ".installed"), "book",
                           f"BOOK_DIR={out}", "BOOK_OPTS=-W --keep-going"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"make book: {time.perf_counter() - t0:.1f} s")
    return out / "html"


@pytest.fixture(scope="session")
def site(book: Path) -> Iterator[str]:
    """The built book on a loopback HTTP server; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(book))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")  # not session: one sync Playwright at a time per thread, other files start their own
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(MISSING)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data dir, nothing from a previous run
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=ARGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


def test_book_has_a_page_per_lesson_and_an_index_linking_them(book: Path) -> None:
    assert LESSONS, "no lessons found in notebooks/"
    index = (book / "index.html").read_text(encoding="utf-8")
    for lesson in LESSONS:
        page = book / f"{lesson.stem}.html"
        assert page.is_file(), f"{page.name} is missing from the book"
        assert f'href="{lesson.stem}.html"' in index, f"the index does not link {lesson.stem}"
        # Nothing was re-executed: the source copy is the committed notebook, byte for byte.
        assert (book / "_sources" / lesson.name).read_bytes() == lesson.read_bytes()


def test_widget_views_fall_back_to_their_saved_text(book: Path) -> None:
    """Widget state is stripped, so the page shows the widget's text fallback and the printed final answer."""
    nb = _notebook(ROOT / "notebooks" / "02_streaming.ipynb")
    fallbacks = ["".join(o["data"]["text/plain"]) for c in nb["cells"] for o in c.get("outputs", [])
                 if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert fallbacks, "lesson 2 no longer shows a StreamView widget: update this test"
    answer = next("".join(o["text"]) for c in nb["cells"] if "".join(c["source"]).startswith("answer = view.result")
                  for o in c.get("outputs", []) if o.get("name") == "stdout")
    html = (book / "02_streaming.html").read_text(encoding="utf-8")
    assert "widget-view+json" not in html and "embed-amd" not in html  # no widget manager fetched from a CDN
    from html import escape

    for text in fallbacks:
        assert escape(text, quote=False) in html
    assert escape(answer.splitlines()[0], quote=False) in html


@needs_chromium
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_page_renders_in_a_browser(lesson: Path, site: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: errors.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    try:
        response = page.goto(f"{site}/{lesson.stem}.html", wait_until="load", timeout=30_000)
        assert response is not None and response.ok, f"{lesson.stem}.html answered {response and response.status}"
        assert _title(lesson) in page.title()
        assert page.locator(".cell_output").count() >= 1, "no rendered cell output"
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.currentSrc || e.src, ok: e.complete && e.naturalWidth > 0}))")
        broken = [i["src"] for i in images if not i["ok"]]
        assert not broken, f"images that did not load: {broken}"
        assert len([i for i in images if "/_images/" in i["src"]]) >= _png_outputs(lesson)
        source = page.locator(f'a[href$="_sources/{lesson.name}"]')
        assert source.count() >= 1, "no link to the lesson's notebook"
        page.screenshot(path=str(tmp_path / f"{lesson.stem}.png"))
        assert not errors, errors
    finally:
        page.close()
