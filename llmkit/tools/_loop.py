"""The tool-call loop: ask, run the tools the model calls, send the results back, repeat.

Introduced in lesson 3 (03_function_calling).

One loop for all three providers, streamed or not, built on ``llmkit.chat``. Everything that can go
wrong with a call becomes an *error result the model reads* instead of an exception in your program:

    invalid JSON arguments · unknown tool name · arguments that fail the schema ·
    an exception inside the tool · a side-effect tool the user did not confirm

and the loop is bounded: after ``max_rounds`` model calls it stops with ``stopped="max_rounds"``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, ToolCallComplete, collect
from ._tool import Tool, ToolArgumentError

if TYPE_CHECKING:
    from ..kit import Kit

__all__ = ["Round", "ToolOutcome", "ToolRun", "arun_tools", "execute_calls", "execute_calls_sync", "run_tools"]


@dataclass(frozen=True)
class ToolOutcome:
    """What happened to one tool call. ``error`` names the failure kind (None when it worked):
    ``invalid_arguments`` | ``unknown_tool`` | ``tool_error`` | ``not_confirmed`` | ``round_limit``."""

    call: ToolCallComplete
    content: str
    error: str | None = None
    ms: float = 0.0

    @property
    def is_error(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class Round:
    """One model call and the tool calls it asked for."""

    result: Any  # llmkit.chat.ChatResult
    outcomes: tuple[ToolOutcome, ...] = ()


@dataclass
class ToolRun:
    """The whole loop: the final answer (or why there is none), every round, and the history."""

    provider: str
    text: str
    stopped: str  # "answer" | "max_rounds" | "error"
    rounds: list[Round] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped == "answer"

    @property
    def outcomes(self) -> list[ToolOutcome]:
        return [o for r in self.rounds for o in r.outcomes]

    def usage(self) -> list[tuple[int, int]]:
        """(input tokens, output tokens) of each round, from the responses' own usage fields."""
        return [(r.result.usage.input_tokens, r.result.usage.output_tokens) if r.result.usage else (0, 0)
                for r in self.rounds]


def _error(kind: str, message: str) -> str:
    return json.dumps({"error": kind, "message": message})


def _result_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump_json"):
        return value.model_dump_json()
    return json.dumps(value, default=str)


@dataclass(frozen=True)
class _Ready:
    """A checked call, ready to run; its outcome's time counts from the start of the check."""

    call: ToolCallComplete
    tool: Tool
    kwargs: dict
    start: float

    def invoke(self) -> Any:
        return self.tool.fn(**self.kwargs)

    def _ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def succeeded(self, value: Any) -> ToolOutcome:
        return ToolOutcome(self.call, _result_text(value), None, self._ms())

    def failed(self, exc: Exception) -> ToolOutcome:
        # a failing tool is news for the model, not a crash of the loop
        message = f"{self.tool.name} failed: {type(exc).__name__}: {exc}"
        return ToolOutcome(self.call, _error("tool_error", message), "tool_error", self._ms())


def _prepare(call: ToolCallComplete, tools: dict[str, Tool], confirm: Callable[..., bool] | None,
             ) -> ToolOutcome | _Ready:
    """Check one call before running it: the tool exists, the arguments validate, a side effect is confirmed."""
    start = time.perf_counter()
    found = tools.get(call.name)
    if found is None:
        return ToolOutcome(call, _error("unknown_tool", f"there is no tool named {call.name!r}; available tools: "
                                                        f"{', '.join(sorted(tools))}."), "unknown_tool")
    try:
        kwargs = found.validate(call.arguments)
    except ToolArgumentError as exc:
        return ToolOutcome(call, _error("invalid_arguments", str(exc)), "invalid_arguments")
    if found.side_effects and not (confirm is not None and confirm(found, kwargs)):
        return ToolOutcome(call, _error("not_confirmed", f"the user did not confirm running {found.name}, so it "
                                                         "was not run. Tell the user what you would do and ask "
                                                         "them to confirm."), "not_confirmed")
    return _Ready(call, found, kwargs, start)


async def _run_one(call: ToolCallComplete, tools: dict[str, Tool], confirm: Callable[..., bool] | None,
                   ) -> ToolOutcome:
    ready = _prepare(call, tools, confirm)
    if isinstance(ready, ToolOutcome) or not ready.tool.is_async:
        return _finish_sync(ready)
    try:
        value = await ready.invoke()
    except Exception as exc:
        return ready.failed(exc)
    return ready.succeeded(value)


def _run_one_sync(call: ToolCallComplete, tools: dict[str, Tool], confirm: Callable[..., bool] | None,
                  ) -> ToolOutcome:
    return _finish_sync(_prepare(call, tools, confirm))


def _finish_sync(ready: ToolOutcome | _Ready) -> ToolOutcome:
    if isinstance(ready, ToolOutcome):
        return ready  # the check already decided
    try:
        value = ready.invoke()
    except Exception as exc:
        return ready.failed(exc)
    return ready.succeeded(value)


async def execute_calls(calls: Iterable[ToolCallComplete], tools: Iterable[Tool],
                        confirm: Callable[..., bool] | None = None) -> list[ToolOutcome]:
    """Run one round's tool calls; async tools run concurrently. Never raises for a bad call."""
    by_name = {t.name: t for t in tools}
    return list(await asyncio.gather(*(_run_one(c, by_name, confirm) for c in calls)))


def execute_calls_sync(calls: Iterable[ToolCallComplete], tools: Iterable[Tool],
                       confirm: Callable[..., bool] | None = None) -> list[ToolOutcome]:
    """:func:`execute_calls` from sync code. Sync tools run in the calling thread (so a sqlite connection
    made there works); only when an async tool is called does an event loop run them concurrently."""
    calls, by_name = list(calls), {t.name: t for t in tools}
    if any(by_name[c.name].is_async for c in calls if c.name in by_name):
        return _run_sync(execute_calls(calls, by_name.values(), confirm))
    return [_run_one_sync(c, by_name, confirm) for c in calls]


def _run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also inside Jupyter (whose own event loop is already running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _as_history(provider: str, result: Any) -> dict:
    """The answer as an assistant message. Anthropic and Gemini take a call's arguments back as an object,
    so a call whose arguments were not valid JSON goes back as ``{}`` (its error result says what was wrong);
    OpenAI takes the arguments text back as it came."""
    from dataclasses import replace

    from .. import chat, providers

    if providers.get(provider).keeps_raw_tool_arguments:
        return result.as_message()
    calls = []
    for c in result.tool_calls:
        try:
            ok = isinstance(c.args(), dict)
        except json.JSONDecodeError:
            ok = False
        calls.append(c if ok else replace(c, arguments="{}"))
    return chat.assistant(result.text, calls)


def _finish_run(provider: str, messages: list[dict], rounds: list[Round], result: Any, max_rounds: int) -> ToolRun:
    from .. import chat

    # The last answer still asks for tools: close each call with an error result so the history stays
    # valid (every call answered) and can be continued later.
    outcomes = tuple(ToolOutcome(c, _error("round_limit", f"not run: the limit of {max_rounds} rounds was "
                                                          "reached."), "round_limit") for c in result.tool_calls)
    rounds[-1] = Round(result, outcomes)
    messages.extend(chat.tool_result(o.call, o.content, is_error=True) for o in outcomes)
    text = result.text or f"(no answer: stopped after {max_rounds} rounds while the model still called tools)"
    return ToolRun(provider, text, "max_rounds", rounds, messages)


def _settle(provider: str, history: list[dict], rounds: list[Round], result: Any, max_rounds: int) -> ToolRun | None:
    """Record one model answer; return the finished run if the loop ends here (error, answer, round limit)."""
    rounds.append(Round(result))
    if result.errors:
        return ToolRun(provider, result.errors[0].message, "error", rounds, history)
    history.append(_as_history(provider, result))
    if not result.tool_calls:
        return ToolRun(provider, result.text, "answer", rounds, history)
    if len(rounds) == max_rounds:
        return _finish_run(provider, history, rounds, result, max_rounds)
    return None


def _record(history: list[dict], rounds: list[Round], result: Any, outcomes: list[ToolOutcome]) -> None:
    """Attach the tools' outcomes to the round and send them back to the model in the next one."""
    from .. import chat

    rounds[-1] = Round(result, tuple(outcomes))
    history.extend(chat.tool_result(o.call, o.content, is_error=o.is_error) for o in outcomes)


def run_tools(kit: Kit, provider: str, messages: list[dict], tools: list[Tool], *, system: str | None = None,
              max_rounds: int = 5, stream: bool = False, on_event: Callable[[Event], None] | None = None,
              confirm: Callable[[Tool, dict], bool] | None = None, model: str | None = None,
              max_tokens: int = 1024, temperature: float | None = None) -> ToolRun:
    """Run the tool-call loop with ``provider`` until the model answers or ``max_rounds`` is reached.

    Introduced in lesson 3 (03_function_calling). ``messages`` is not modified; the returned
    ``ToolRun.messages`` is the full history. With ``stream=True`` every event goes to ``on_event`` as it
    arrives. ``confirm(tool, kwargs) -> bool`` is asked before any ``side_effects=True`` tool runs
    (no callback: they never run).
    """
    from .. import chat

    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1 (got {max_rounds}).")
    history = list(messages)
    rounds: list[Round] = []
    kw = {"system": system, "model": model, "tools": tools, "max_tokens": max_tokens, "temperature": temperature}
    for _ in range(max_rounds):
        if stream:
            events = []
            for event in chat.stream(kit, provider, history, **kw):
                events.append(event)
                if on_event:
                    on_event(event)
            result = chat.ChatResult.from_collected(provider, model or kit.models[provider], collect(events))
        else:
            result = chat.complete(kit, provider, history, **kw)
        if (done := _settle(provider, history, rounds, result, max_rounds)) is not None:
            return done
        _record(history, rounds, result, execute_calls_sync(result.tool_calls, tools, confirm))
    raise AssertionError("unreachable")


async def arun_tools(kit: Kit, provider: str, messages: list[dict], tools: list[Tool], *,
                     system: str | None = None, max_rounds: int = 5,
                     confirm: Callable[[Tool, dict], bool] | None = None,
                     model: str | None = None, max_tokens: int = 1024, temperature: float | None = None) -> ToolRun:
    """The async twin of :func:`run_tools` (non-streamed), for servers and notebooks that await."""
    from .. import chat

    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1 (got {max_rounds}).")
    history = list(messages)
    rounds: list[Round] = []
    for _ in range(max_rounds):
        result = await chat.acomplete(kit, provider, history, system=system, model=model, tools=tools,
                                      max_tokens=max_tokens, temperature=temperature)
        if (done := _settle(provider, history, rounds, result, max_rounds)) is not None:
            return done
        _record(history, rounds, result, await execute_calls(result.tool_calls, tools, confirm))
    raise AssertionError("unreachable")
