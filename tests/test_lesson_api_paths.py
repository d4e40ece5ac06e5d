"""Every SDK call path a lesson uses exists in the SDK versions the kit pins.

A lesson that says ``kit.openai.responses.input_tokens.count(...)`` teaches something only while the pinned
openai SDK has that path. This test reads every notebook (lessons and solutions), follows each attribute
chain that starts at an SDK client or module (``kit.openai``, ``client = genai.Client(...)``,
``from google.genai import types``), and checks every step against the installed SDK: instance attributes
on real clients (built with dummy keys and a loopback base URL, no request is sent), class attributes and
return annotations where a value is only known by its type. When an SDK upgrade removes or renames
something a lesson uses, this fails before a learner sees it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import typing
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SDK_ROOTS = ("openai", "anthropic", "google")
KIT_CLIENTS = ("openai", "openai_async", "anthropic", "anthropic_async", "gemini", "legacy_gemini")


class Unknown:
    """A value whose SDK type cannot be told statically; chains through it are not checked."""


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Typed:
    """A value known only by its class (e.g. what a method returns)."""

    cls: type


def _kit_clients() -> dict[str, Any]:
    import anthropic
    import openai
    from google import genai

    base = "http://127.0.0.1:9"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import google.generativeai as legacy
    return {
        "openai": openai.OpenAI(api_key="test", base_url=base + "/v1"),
        "openai_async": openai.AsyncOpenAI(api_key="test", base_url=base + "/v1"),
        "anthropic": anthropic.Anthropic(api_key="test", base_url=base),
        "anthropic_async": anthropic.AsyncAnthropic(api_key="test", base_url=base),
        "gemini": genai.Client(api_key="test", http_options={"base_url": base}),
        "legacy_gemini": legacy,
    }


class _Kit:
    def __init__(self, clients: dict[str, Any]):
        self.__dict__.update(clients)


def _return_type(func: Any) -> Any:
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:
        return UNKNOWN
    return Typed(hint) if isinstance(hint, type) else UNKNOWN


def _attr(value: Any, name: str) -> Any:
    """``value.name`` for a real object, a class or an unknown; raises AttributeError when it is missing."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Typed):
        fields = getattr(value.cls, "model_fields", None) or {}  # pydantic models: fields are not class attributes
        if name in fields:
            hint = fields[name].annotation
            return Typed(hint) if isinstance(hint, type) else UNKNOWN
        try:
            static = inspect.getattr_static(value.cls, name)
        except AttributeError:
            if hasattr(value.cls, "__getattr__"):  # dynamic attributes: cannot be told statically
                return UNKNOWN
            raise
        if isinstance(static, cached_property):
            return _return_type(static.func)
        if isinstance(static, property):
            return _return_type(static.fget)
        if callable(static):
            return static
        return UNKNOWN
    if isinstance(value, ModuleType):
        try:
            return getattr(value, name)
        except AttributeError:
            try:
                return importlib.import_module(f"{value.__name__}.{name}")
            except ImportError:
                raise AttributeError(name) from None
    return getattr(value, name)


def _call(value: Any, instances: dict[type, Any]) -> Any:
    if isinstance(value, type):
        # an SDK client built in a cell (openai.OpenAI(...)) is checked like the kit's own instance of it
        return instances.get(value, Typed(value))
    if callable(value) and not isinstance(value, Unknown | Typed):
        return _return_type(value)
    return UNKNOWN


class PathChecker(ast.NodeVisitor):
    """Walks a notebook's code in order, binding names to SDK values and checking attribute chains."""

    def __init__(self, kit: Any):
        self.env: dict[str, Any] = {"kit": kit}
        self.kit = kit
        self.instances = {type(c): c for c in vars(kit).values() if not isinstance(c, ModuleType)}
        self.checked: set[str] = set()
        self.missing: list[str] = []
        self.where = ""

    # --- evaluation of an expression to an SDK value (or None: not an SDK value) ---------------------------
    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if base is None:
                return None
            if base is self.kit and node.attr not in KIT_CLIENTS:
                return None
            dotted = f"{ast.unparse(node)}"
            try:
                result = _attr(base, node.attr)
            except AttributeError:  # also ImportError's kin raised as AttributeError above
                if dotted not in self.checked:
                    self.missing.append(f"{self.where}: {dotted} (no attribute {node.attr!r})")
                self.checked.add(dotted)
                return UNKNOWN
            self.checked.add(dotted)
            return result
        if isinstance(node, ast.Call):
            func = self.value(node.func)
            return None if func is None else _call(func, self.instances)
        if isinstance(node, ast.Await):
            inner = self.value(node.value)
            return None if inner is None else UNKNOWN
        return None

    # --- statements -------------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in SDK_ROOTS:
                module = _import(alias.name)
                if alias.asname:
                    self.env[alias.asname] = module
                else:
                    self.env[alias.name.split(".")[0]] = _import(alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not node.module or node.module.split(".")[0] not in SDK_ROOTS:
            return
        module = _import(node.module)
        for alias in node.names:
            name = f"{node.module}.{alias.name}"
            try:
                self.env[alias.asname or alias.name] = _attr(module, alias.name)
            except (AttributeError, ImportError):
                self.missing.append(f"{self.where}: from {node.module} import {alias.name}")
            self.checked.add(name)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        value = self.value(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                if target.id == "kit":  # `kit = llmkit.start(...)`: the kit's clients are the SDK clients
                    self.env["kit"] = self.kit
                elif value is None:
                    self.env.pop(target.id, None)
                else:
                    self.env[target.id] = value

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # check the longest chain once; its prefixes are checked along the way
        self.value(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # benchmark cells pass code to child processes as strings: check those too
        if isinstance(node.value, str) and "\n" in node.value and any(r in node.value for r in SDK_ROOTS + ("genai",)):
            try:
                tree = ast.parse(node.value)
            except SyntaxError:
                return
            saved = dict(self.env)
            self.visit(tree)
            self.env = saved


def _import(name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def _cells(path: Path) -> list[tuple[int, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = [ln for ln in "".join(cell["source"]).splitlines() if not ln.lstrip().startswith(("%", "!"))]
        out.append((i, "\n".join(lines)))
    return out


def check_notebook(path: Path, kit: Any) -> PathChecker:
    checker = PathChecker(kit)
    for index, source in _cells(path):
        checker.where = f"{path.name} cell {index}"
        checker.visit(ast.parse(source))
    return checker


@pytest.fixture(scope="module")
def kit() -> Any:
    return _Kit(_kit_clients())


ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_every_sdk_path_a_lesson_uses_exists(path: Path, kit: Any) -> None:
    checker = check_notebook(path, kit)
    assert not checker.missing, "SDK paths that the pinned SDKs do not have:\n" + "\n".join(checker.missing)


def test_the_lessons_use_the_sdks_at_all(kit: Any) -> None:
    checked = set()
    for path in ALL_NOTEBOOKS:
        checked |= check_notebook(path, kit).checked
    for path in ("kit.openai.chat.completions.create", "kit.anthropic.messages.create",
                 "kit.gemini.models.generate_content"):
        assert path in checked, f"{path} was not found in any lesson: the extraction is broken"


def test_a_path_the_sdk_lacks_is_reported(tmp_path: Path, kit: Any) -> None:
    cells = [
        "from google.genai import types\nimport openai\nclient = openai.OpenAI(api_key='x')",
        "kit.openai.responses.create(model='m', input='hi')\n"
        "kit.openai.chat.completions.functions_call(model='m')\n"
        "client.responses.input_tokens.count(model='m', input='hi')\n"
        "client.completions.nowhere\n"
        "kit.anthropic.messages.count_tokens(model='m', messages=[])\n"
        "chat = kit.gemini.chats.create(model='m')\nchat.send_message('hi')\nchat.send_telegram('hi')\n"
        "types.GenerateContentConfig(max_output_tokens=5)\ntypes.NoSuchConfig()",
    ]
    nb = {"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": 1}
                    for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "probe.ipynb"
    path.write_text(json.dumps(nb))
    checker = check_notebook(path, kit)
    missing = "\n".join(checker.missing)
    assert "functions_call" in missing and "nowhere" in missing and "NoSuchConfig" in missing
    assert "send_telegram" in missing, "a method on a returned object (Chat) must be checked too"
    assert "responses.input_tokens.count" not in missing and "count_tokens" not in missing
    assert "send_message" not in missing
