"""Live mode against a server that lacks a feature: the cell says so in one line and the lesson goes on.

Introduced in lesson 0 (00_setup_and_replay). An OpenAI-compatible local server (Ollama, vLLM, the llama.cpp
server) answers Chat Completions, but not the Responses API, Anthropic's Messages API or Gemini's
``generateContent``; it answers those paths with a 404. Without help, the SDK's ``NotFoundError`` would stop
"Run All" at the first such cell, and every later cell that uses its result would fail with a ``NameError``.

When a kit starts in live mode inside IPython, :func:`install` adds an AST transformer that wraps each cell:

- an uncaught error whose cause is a 404, 405 or 501 from one of the kit's upstreams, on a provider's API path,
  prints one line (which API, which server, what to do) instead of a traceback, and the cell ends normally;
  so does :class:`~llmkit.errors.KeyMissing`, a provider called without a key (a learner with only a local
  server has no Anthropic or Gemini key);
- the names that the failing statement and the statements after it would have bound are remembered; a later
  cell runs up to the first statement that reads one of them, then prints one line saying what it lacks;
- a cell can also depend on a skipped one through an object both use: a dict the skipped cell was filling
  (``runs[policy] = ...``), an object it called (``conv.send(...)``), and every kit's ``kit.usage`` ledger. Such
  objects, and whatever a later cell computes from them, are *tainted*: an error in a cell that reads one ends
  in one line naming the error and the object. An error in a cell that reads nothing tainted is a real error
  and shows its traceback.

A cell that rebinds such a name makes it usable again. Replay and record mode are never wrapped: there the
replay server answers every feature a lesson uses. The production equivalent is a capability check before a
feature is used (``llmkit doctor`` runs one per upstream); this guard exists so that a learner's "Run All"
against a small local server shows every cell that can run.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MISSING_STATUSES", "CellGuard", "MissingFeature", "classify_response", "current", "install"]

MISSING_STATUSES = (404, 405, 501)
GUARD_NAME = "__llmkit_guard__"
_OUT = "__llmkit_out__"
_EXC = "__llmkit_exc__"


@dataclass(frozen=True)
class MissingFeature:
    """What a live upstream would not answer: ``api`` of ``provider`` at ``server``, with ``status``; ``model``
    is set when the server's answer names the requested model (it lacks the model, not the API)."""

    provider: str
    api: str
    server: str
    status: int
    model: str | None = None

    def explain(self) -> str:
        if self.model:
            return (f"Skipped: the server at {self.server} does not know the model {self.model!r} "
                    f"({self.status}). Set LLMKIT_MODEL_{self.provider.upper()} to a model it serves "
                    f"(`ollama list`, or GET {self.server}/v1/models) and re-run.")
        return (f"Skipped: this cell needs {self.api} ({self.provider}), which the server at {self.server} "
                f"does not serve ({self.status}). `llmkit doctor` lists what it serves; LLMKIT_MODE=replay "
                f"runs every cell.")


def _response_of(exc: BaseException) -> Any:
    """The HTTP response an SDK or HTTP-library error carries, if any (openai, anthropic, httpx, requests,
    google-genai all name it ``response``)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return response if isinstance(status, int) else None


def _request_body(request: Any) -> Any:
    try:
        return json.loads(getattr(request, "content", None) or getattr(request, "body", None) or b"null")
    except (TypeError, ValueError):
        return None


def classify_response(status: int, url: str, request: Any, body: bytes,
                      upstreams: Mapping[str, str]) -> MissingFeature | None:
    """A :class:`MissingFeature` if ``status`` at ``url`` means one of ``upstreams`` lacks an API or model."""
    from . import providers

    if status not in MISSING_STATUSES:
        return None
    parts = urlsplit(url)
    for name, base in upstreams.items():
        provider = providers.get(name)
        if urlsplit(base).netloc != parts.netloc or not provider.owns_path(parts.path):
            continue
        model = provider.model_of(parts.path, _request_body(request)).removeprefix("models/")
        named = model if model and model.encode() in body else None
        server = f"{parts.scheme}://{parts.netloc}"
        return MissingFeature(name, provider.describe_api(parts.path), server, status, named)
    return None


def _classify(response: Any, upstreams: Mapping[str, str]) -> MissingFeature | None:
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if not isinstance(status, int):
        return None
    request = getattr(response, "request", None)
    url = str(getattr(request, "url", None) or getattr(response, "url", ""))
    content = getattr(response, "content", b"")
    return classify_response(status, url, request, content if isinstance(content, bytes) else b"", upstreams)


def find_missing(exc: BaseException, upstreams: Mapping[str, str]) -> MissingFeature | None:
    """The missing feature behind ``exc`` or anything in its cause/context chain, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = _response_of(current)
        found = _classify(response, upstreams) if response is not None else None
        if found:
            return found
        current = current.__cause__ or current.__context__
    return None


def _targets(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a cell binds at top level: assignments, loop and ``with`` targets, imports, defs and classes."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(child.name)
                continue  # their bodies bind local names
            if isinstance(child, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.alias):
                names.add((child.asname or child.name).split(".")[0])
            visit(child)

    visit(tree)
    return names


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def _local_names(stmt: ast.stmt) -> set[str]:
    """Names bound inside the nested scopes of ``stmt`` (parameters, comprehension and local variables):
    a read of one of them there is not a read of the notebook's variable."""
    names: set[str] = set()
    for scope in (n for n in ast.walk(stmt) if isinstance(n, _SCOPES)):
        for node in ast.walk(scope):
            if isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node is not scope:
                names.add(node.id)
    return names


def _reads(node: ast.AST) -> set[str]:
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loads - _local_names(node)


def _free_reads(stmt: ast.stmt, bound: set[str]) -> set[str]:
    """Names ``stmt`` reads that neither ``bound`` nor ``stmt`` itself bound first: a ``with ... as client``
    or ``for x in ...`` binds its target before its body reads it. Branches are followed one by one."""
    if isinstance(stmt, ast.With | ast.AsyncWith):
        inner, out = set(bound), set()
        for item in stmt.items:
            out |= _reads(item.context_expr) - inner
            if item.optional_vars is not None:
                inner |= _targets(item.optional_vars)
        return out | _block_reads(stmt.body, inner)
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return (_reads(stmt.iter) - bound) | _block_reads(stmt.body, bound | _targets(stmt.target)) \
            | _block_reads(stmt.orelse, bound)
    if isinstance(stmt, ast.If | ast.While):
        return (_reads(stmt.test) - bound) | _block_reads(stmt.body, bound) | _block_reads(stmt.orelse, bound)
    if isinstance(stmt, ast.Try | ast.TryStar):
        out = _block_reads(stmt.body, bound) | _block_reads(stmt.orelse, bound) | _block_reads(stmt.finalbody, bound)
        for handler in stmt.handlers:
            caught = bound | ({handler.name} if handler.name else set())
            out |= (_reads(handler.type) - bound if handler.type else set()) | _block_reads(handler.body, caught)
        return out
    return _reads(stmt) - bound


def _block_reads(stmts: list[ast.stmt], bound: set[str]) -> set[str]:
    inner, out = set(bound), set()
    for stmt in stmts:
        out |= _free_reads(stmt, inner)
        inner |= _binds(stmt)
    return out


def _binds(stmt: ast.stmt) -> set[str]:
    return _bound_names(ast.Module(body=[stmt], type_ignores=[]))


class CellGuard(ast.NodeTransformer):
    """The AST transformer :func:`install` adds; one per kernel. It holds which names are unusable and why."""

    def __init__(self) -> None:
        self.upstreams: dict[str, str] = {}
        self.namespace: dict[str, Any] = {}  # the kernel's user namespace (install sets it)
        self.unusable: dict[str, str] = {}  # name -> why (the first line of the skip message that caused it)
        self.skipped = 0
        self._armed = False  # only the cell itself is wrapped, not code a magic (%timeit) compiles inside it
        self._noted: MissingFeature | None = None
        self.tainted: dict[str, str] = {}  # name (or "kit.usage") -> why: may lack what a skipped cell would add

    # --- runtime: called by the wrapped cell ------------------------------------------------------------
    def note(self, found: MissingFeature) -> None:
        """Record a missing feature seen on the wire (the kit's live HTTP client reports every response)."""
        self._noted = found

    def begin(self) -> None:
        self._noted = None

    def ran(self, names: list[str], reads: list[str]) -> None:
        """The cell ran to its end and bound ``names``: they are usable (again), and tainted only if the cell
        read something tainted (``cache_df = kit.usage.df()`` after a skipped call)."""
        why = self._tainted_by(reads)
        for name in names:
            self.unusable.pop(name, None)
            if why is None:
                self.tainted.pop(name, None)
            else:
                self.tainted[name] = why

    def absorb(self, exc: BaseException, table: list[tuple[int, list[str], list[str]]], reads: list[str]) -> bool:
        """Print the one-line reason and return True if ``exc`` comes from a missing feature or key, or if the
        cell reads state that an earlier skipped cell was to fill or change; False lets the error through."""
        from .errors import KeyMissing

        found = find_missing(exc, self.upstreams) or self._noted or self._received(exc, table)
        if found is not None:
            why = found.explain()
        elif isinstance(exc, KeyMissing):
            why = f"Skipped: this cell calls {exc.provider}, and {exc}"
        elif (source := self._tainted_by(reads)) is not None:
            name = next(n for n in sorted(reads) if n in self.tainted)
            error = (str(exc).splitlines() or [""])[0][:100]
            print(f"Skipped: this cell stopped at {type(exc).__name__}: {error}; it reads `{name}`, which an earlier "
                  f"skipped cell was to fill or change. ({source.removeprefix('Skipped: ')})")
            self._forget(exc, table, source)
            return True
        else:
            return False
        print(why)
        self._forget(exc, table, why)
        return True

    def _tainted_by(self, reads: list[str]) -> str | None:
        return next((self.tainted[n] for n in sorted(reads) if n in self.tainted), None)

    def _received(self, exc: BaseException, table: list[tuple[int, list[str], list[str]]]) -> MissingFeature | None:
        """A missing feature in a response the failing statement stored (``r = client.post(...)`` read without
        ``raise_for_status()``, then a ``KeyError`` on its JSON): raw HTTP the kit's clients never saw."""
        line = _cell_line(exc)
        names = next((names for last_line, names, _ in table if last_line >= line), [])
        for name in names:
            found = _classify(self.namespace.get(name), self.upstreams)
            if found:
                return found
        return None

    def _forget(self, exc: BaseException, table: list[tuple[int, list[str], list[str]]], why: str) -> None:
        line = _cell_line(exc)
        for last_line, names, touched in table:
            if last_line >= line:  # the failing statement and those after it never bound their names
                self._lost(names, touched, why)
        self.skipped += 1

    def _lost(self, names: list[str], touched: list[str], why: str) -> None:
        """``names`` were never bound; ``touched`` (a dict it filled, an object it called) may be incomplete, and
        so may every kit's usage ledger."""
        from .kit import Kit

        for name in names:
            self.unusable[name] = why
        for name in touched:
            if not isinstance(self.namespace.get(name), Kit | ModuleType | type | FunctionType | BuiltinFunctionType):
                self.tainted.setdefault(name, why)
        for name, value in self.namespace.items():
            if isinstance(value, Kit) and not name.startswith("_"):
                self.tainted.setdefault(f"{name}.usage", why)

    def skip(self, needs: list[str], names: list[str], touched: list[str]) -> None:
        name = needs[0]
        why = self.unusable[name]
        print(f"Skipped: this cell uses `{name}`, which an earlier cell could not make. "
              f"({why.removeprefix('Skipped: ')})")
        self._lost(names, touched, why)
        self.skipped += 1

    # --- compile time ---------------------------------------------------------------------------------
    def arm(self, *_: Any) -> None:
        self._armed = True

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if not self._armed or not node.body:
            return node
        self._armed = False
        # statements up to the first that reads an unusable name (before the cell binds it) run as usual
        body: list[ast.stmt] = []
        bound: set[str] = set()
        for index, stmt in enumerate(node.body):
            needs = sorted(_free_reads(stmt, bound) & self.unusable.keys())
            if needs:
                rest = node.body[index:]
                body.append(_call("skip", needs, sorted(set().union(*map(_binds, rest))),
                                  sorted(set().union(*map(_touches, rest)))))
                break
            body.append(stmt)
            bound |= _binds(stmt)
        else:
            needs = []
        last = body.pop() if not needs and isinstance(body[-1], ast.Expr) else None
        if last is not None:
            body.append(ast.Assign(targets=[ast.Name(_OUT, ast.Store())], value=last.value))
        # (last line, names bound, names touched) per statement: a failure at line L leaves those before L intact
        table = ast.List([ast.Tuple([ast.Constant(s.end_lineno), _names(_binds(s)), _names(_touches(s))], ast.Load())
                          for s in node.body], ast.Load())
        reads = _names(_reads(node) | _attribute_reads(node))
        handler = ast.ExceptHandler(
            type=ast.Name("Exception", ast.Load()), name=_EXC,
            body=[ast.If(test=ast.UnaryOp(ast.Not(), _call("absorb", ast.Name(_EXC, ast.Load()), table, reads).value),
                         body=[ast.Raise()], orelse=[])])
        wrapped: list[ast.stmt] = [_call("begin")]
        if last is not None:
            wrapped.append(ast.Assign(targets=[ast.Name(_OUT, ast.Store())], value=ast.Constant(None)))
        ran = _call("ran", sorted(bound), reads)
        wrapped.append(ast.Try(body=body, handlers=[handler], orelse=[ran], finalbody=[]))
        if last is not None:
            wrapped.append(ast.copy_location(ast.Expr(ast.Name(_OUT, ast.Load())), last))
        return _fixed(ast.Module(body=wrapped, type_ignores=node.type_ignores), node)


def _cell_line(exc: BaseException) -> int:
    """The line of the cell's own frame (the first of the traceback) that raised ``exc``."""
    return exc.__traceback__.tb_lineno if exc.__traceback__ is not None else 0


def _names(names: set[str]) -> ast.List:
    return ast.List([ast.Constant(n) for n in sorted(names)], ast.Load())


def _attribute_reads(node: ast.AST) -> set[str]:
    """``kit.usage`` and the like: ``name.attribute`` reads, for state a name alone does not show."""
    return {f"{n.value.id}.{n.attr}" for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and isinstance(n.ctx, ast.Load)}


def _base(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _touches(stmt: ast.stmt) -> set[str]:
    """Names whose objects ``stmt`` may change without rebinding them: ``runs[k] = ...``, ``x.attr = ...``,
    ``conv.send(...)``, ``answers.append(...)``."""
    names = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Subscript | ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(_base(node.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(_base(node.func.value))
    return {n for n in names if n} - _local_names(stmt)


def _call(method: str, *args: Any) -> ast.Expr:
    values = [a if isinstance(a, ast.AST) else ast.Constant(a) if not isinstance(a, list)
              else ast.List([ast.Constant(x) for x in a], ast.Load()) for a in args]
    func = ast.Attribute(ast.Name(GUARD_NAME, ast.Load()), method, ast.Load())
    return ast.Expr(ast.Call(func, values, []))


def _fixed(new: ast.Module, old: ast.Module) -> ast.Module:
    first = old.body[0]
    for node in ast.walk(new):
        if "lineno" in node._attributes and not hasattr(node, "lineno"):
            ast.copy_location(node, first)
    return ast.fix_missing_locations(new)


_guard: CellGuard | None = None


def install(upstreams: Mapping[str, str]) -> CellGuard | None:
    """Wrap every later cell of this IPython kernel (once per kernel); None outside IPython."""
    global _guard
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    if _guard is None or _guard not in shell.ast_transformers:
        _guard = CellGuard()
        shell.ast_transformers.append(_guard)
        shell.events.register("pre_run_cell", _guard.arm)
    shell.user_ns[GUARD_NAME] = _guard
    _guard.upstreams = dict(upstreams)
    _guard.namespace = shell.user_ns
    return _guard


def current() -> CellGuard | None:
    """The installed guard, if a live kit installed one in this process."""
    return _guard
