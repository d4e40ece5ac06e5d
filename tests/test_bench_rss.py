"""bench.rss_steps (lesson 10b, 10b_memory_and_resources): the RSS of a fresh interpreter after each statement."""

from __future__ import annotations

import pytest

from llmkit import bench
from llmkit.errors import LlmkitError


def test_rss_grows_by_what_a_step_touches_and_steps_share_one_namespace():
    before, small, big = bench.rss_steps([
        "block = bytearray(1)",
        "block = bytearray(64 * 2**20); block[::4096] = bytes(len(block[::4096]))",  # touch every page
    ])
    assert 0 < before <= small < before + 16
    assert big - small > 48  # the 64 MiB block is resident


def test_a_failing_step_raises_an_llmkit_error_naming_the_cause():
    with pytest.raises(LlmkitError, match="ZeroDivisionError"):
        bench.rss_steps(["1 / 0"])
