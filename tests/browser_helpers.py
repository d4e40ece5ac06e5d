"""Headless Debian chromium for the browser tests, driven by Playwright with its executable path set (lessons 2, 9
and 12, and the book)."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
MISSING = "Debian chromium is not installed (bash scripts/sysdeps.sh installs it)"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=MISSING)
