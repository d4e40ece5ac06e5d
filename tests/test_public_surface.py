"""The public surface stays honest: every name a package exports exists, ``import llmkit`` stays light, and
the lessons define the surface - every llmkit name a notebook uses is exported, every exported name is used."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------------------
# The surface the lessons define: what a notebook imports from llmkit is public, and what is public is used.
# ---------------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
_AST_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@dataclass(frozen=True)
class Use:
    """One use of llmkit in a lesson: ``name`` of ``module`` (``name`` is None when the module itself is used)."""

    module: str
    name: str | None = None


def code_cells(notebook: Path) -> list[str]:
    """The Python source of each code cell, IPython magics and shell lines removed."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in cells if c["cell_type"] == "code"]
    return ["\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
            for src in sources]


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def attribute_chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the chain does not start at a plain name."""
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return [current.id, *reversed(parts)]


def lesson_uses(notebook: Path) -> set[Use]:
    """Every llmkit module and name a lesson uses: imports, then attribute chains on imported llmkit modules."""
    trees = [compile(src, f"{notebook.name}[{i}]", "exec", _AST_FLAGS) for i, src in enumerate(code_cells(notebook))]
    aliases: dict[str, str] = {}  # local name -> llmkit module it is bound to
    uses: set[Use] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "llmkit":
                        uses.add(Use(a.name))
                        aliases[a.asname or "llmkit"] = a.name if a.asname else "llmkit"
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "llmkit":
                for a in node.names:
                    if is_module(f"{node.module}.{a.name}"):
                        uses.add(Use(f"{node.module}.{a.name}"))
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    else:
                        uses.add(Use(node.module, a.name))
    for tree in trees:
        for node in ast.walk(tree):
            chain = attribute_chain(node) if isinstance(node, ast.Attribute) else None
            if not chain or chain[0] not in aliases:
                continue
            module = aliases[chain[0]]
            for attr in chain[1:]:
                if is_module(f"{module}.{attr}"):
                    module = f"{module}.{attr}"
                    uses.add(Use(module))
                    continue
                uses.add(Use(module, attr))
                break
    return uses


def surface_problems(uses: set[Use]) -> list[str]:
    problems: list[str] = []
    for use in sorted(uses, key=lambda u: (u.module, u.name or "")):
        if any(part.startswith("_") for part in use.module.split(".")):
            problems.append(f"{use.module} is private (a lesson imports it)")
            continue
        try:
            module = importlib.import_module(use.module)
        except Exception as e:  # noqa: BLE001 - report every broken module, not only the first
            problems.append(f"{use.module} does not import: {type(e).__name__}: {e}")
            continue
        exported = getattr(module, "__all__", None)
        if exported is None:
            if f"{use.module} has no __all__" not in problems:
                problems.append(f"{use.module} has no __all__")
        elif use.name is not None and use.name not in exported:
            problems.append(f"{use.module}.{use.name} is used by a lesson but not in {use.module}.__all__")
    return problems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_name_a_lesson_uses_is_public(notebook: Path) -> None:
    uses = lesson_uses(notebook)
    assert uses, f"{notebook.name} uses nothing from llmkit: is the extraction broken?"
    problems = surface_problems(uses)
    assert not problems, f"{notebook.name}:\n  " + "\n  ".join(problems)


def test_the_extraction_sees_every_kind_of_use(tmp_path: Path) -> None:
    """The reader of notebooks itself: each import form and attribute chain is found, nothing invented."""
    cells = ["import llmkit\nimport llmkit.memory\n%matplotlib inline",
             "from llmkit import chat, multimodal as mm\nfrom llmkit.events import collect as c",
             "kit = llmkit.start('x')\nchat.complete(kit)\nmm.image_part\nllmkit.wire.openai.chat_request\n"
             "kit.openai.chat.completions.create\nawait chat.acomplete(kit)"]
    nb = tmp_path / "lesson.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": s} for s in cells]
                              + [{"cell_type": "markdown", "source": "from llmkit import nothing"}]}))
    assert lesson_uses(nb) == {
        Use("llmkit"), Use("llmkit.memory"), Use("llmkit.chat"), Use("llmkit.multimodal"),
        Use("llmkit.events", "collect"), Use("llmkit", "start"), Use("llmkit.chat", "complete"),
        Use("llmkit.chat", "acomplete"), Use("llmkit.multimodal", "image_part"), Use("llmkit.wire"),
        Use("llmkit.wire.openai"), Use("llmkit.wire.openai", "chat_request"),
    }


def test_the_check_names_each_kind_of_problem() -> None:
    problems = surface_problems({Use("llmkit.events", "collect"), Use("llmkit.events", "no_such_name"),
                                 Use("llmkit._no_such_private"), Use("llmkit.no_such_module")})
    assert problems == ["llmkit._no_such_private is private (a lesson imports it)",
                        "llmkit.events.no_such_name is used by a lesson but not in llmkit.events.__all__",
                        "llmkit.no_such_module does not import: ModuleNotFoundError: No module named "
                        "'llmkit.no_such_module'"]


def _identifiers(source: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))


def _module_level_bindings(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _used_in_code(tree: ast.Module) -> set[str]:
    """Names a module's code uses: names, attributes and aliased imports; not plain re-exports nor ``__all__``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip |= {id(n) for n in ast.walk(node)}
    used: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):  # `from ..errors import ClientGone as _ClientGone` is a use
            used |= {a.name for a in node.names if a.asname and a.asname != a.name}
        elif isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


def _signature_names(module: object) -> set[str]:
    """Types a module hands out: names in its exported signatures, and the bases of its exported classes."""
    names: set[str] = set()
    for exported in getattr(module, "__all__", []):
        obj = getattr(module, exported, None)
        members = [obj] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            names |= {base.__name__ for base in obj.__mro__[1:]}
            members = [m for n, m in vars(obj).items() if inspect.isfunction(m) and (n == "__init__" or n[0] != "_")]
            names |= _identifiers(" ".join(map(str, vars(obj).get("__annotations__", {}).values())))
        for member in members:
            names |= _identifiers(" ".join(map(str, getattr(member, "__annotations__", {}).values())))
    return names


def public_modules() -> list[str]:
    """The modules the lessons import, plus the packages listed above."""
    found = {use.module for nb in NOTEBOOKS for use in lesson_uses(nb)} | set(PACKAGES)
    return sorted(m for m in found if not any(part.startswith("_") for part in m.split(".")))


def test_every_public_name_is_used_by_a_lesson_a_test_or_the_package() -> None:
    """The other way round: a name in a public ``__all__`` that nobody uses is dead surface."""
    lessons = set().union(*(_identifiers("\n".join(code_cells(nb))) for nb in NOTEBOOKS))
    tests = set().union(*(_identifiers(p.read_text(encoding="utf-8")) for p in (REPO / "tests").rglob("*.py")
                          if p.name != Path(__file__).name))
    package = {p: ast.parse(p.read_text(encoding="utf-8")) for p in (REPO / "llmkit").rglob("*.py")}
    used_in = {p: _used_in_code(tree) for p, tree in package.items()}
    bound_in = {p: _module_level_bindings(tree) for p, tree in package.items()}
    unused, broken = [], []
    for name in public_modules():
        try:
            module = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001
            broken.append(f"{name}: {type(e).__name__}: {e}")
            continue
        own = Path(module.__file__ or "").resolve()
        handed_out = _signature_names(module)
        for exported in getattr(module, "__all__", []):
            if exported.startswith("__") or exported in lessons or exported in tests or exported in handed_out:
                continue
            elsewhere = [p for p in package if p.resolve() != own and exported not in bound_in[p]
                         and exported in used_in[p]]
            if not elsewhere:
                unused.append(f"{name}.{exported}")
    assert not broken, "public modules that do not import:\n  " + "\n  ".join(broken)
    assert not unused, ("exported but used by no lesson, test or other llmkit module (drop it from __all__, "
                        "or use it):\n  " + "\n  ".join(unused))
