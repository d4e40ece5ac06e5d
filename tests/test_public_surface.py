"""The public surface stays honest: every name a package exports exists, and ``import llmkit`` stays light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

PACKAGES = ["llmkit", "llmkit.replay", "llmkit.wire", "llmkit.events", "llmkit.errors", "llmkit.resilience",
            "llmkit.memory", "llmkit.tools", "llmkit.bench", "llmkit.server"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} should list its public names in __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"


def test_import_llmkit_loads_no_sdk_and_no_heavy_library() -> None:
    # (the bare ``google`` namespace package is pre-loaded by google-generativeai's .pth file; google.genai is not)
    code = ("import sys, json, llmkit; "
            "print(json.dumps(sorted(m for m in sys.modules if m != 'google' and m.split('.')[0] in "
            "('openai', 'anthropic', 'google', 'httpx', 'httpx2', 'torch', 'numpy', 'pandas', 'uvicorn'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_start_is_reachable_from_the_top_level() -> None:
    import llmkit
    from llmkit.kit import Kit, start

    assert llmkit.start is start and llmkit.Kit is Kit
