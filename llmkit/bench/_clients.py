"""Suite ``clients``: what each official SDK costs per request compared with raw HTTP.

Introduced in lesson 10 (10_benchmarks), measuring what lesson 1 (01_sdk_vs_http) teaches. Against the
replay server at speed 0 (the server answers at once, so what is left is the client's own work):
a tiny non-streamed call through each SDK and through requests, httpx and httpx2; the time to the first
text of a streamed answer, SDK vs httpx with ``llmkit.wire``'s parser; and a two-round tool call
(the model asks for a tool, the result goes back, the model answers), SDK vs httpx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import providers
from ..events import TextDelta
from ..wire import anthropic as wire_anthropic
from ..wire import openai as wire_openai
from ..wire import stream_parser
from ._harness import interleave
from ._kits import scripted_kit
from ._script import COUNT, PING, WEATHER
from ._suite import Context

if TYPE_CHECKING:
    from ..kit import Kit

RAW = ("requests", "httpx", "httpx2")
WEATHER_TOOL = {"name": "get_weather", "description": "Current weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
WEATHER_RESULT = json.dumps({"city": "Paris", "temp_c": 18, "sky": "sunny"})


class RawClients:
    """requests, httpx and httpx2 sessions (keep-alive, like the SDKs' own pools)."""

    def __init__(self) -> None:
        import httpx
        import httpx2
        import requests

        self.sessions: dict[str, Any] = {"requests": requests.Session(), "httpx": httpx.Client(timeout=30),
                                         "httpx2": httpx2.Client(timeout=30)}

    def post_json(self, lib: str, url: str, req: Any) -> Any:
        r = self.sessions[lib].post(url, content=req.content(), headers=req.headers) if lib != "requests" else \
            self.sessions[lib].post(url, data=req.content(), headers=req.headers)
        r.raise_for_status()
        return r.json()

    def first_text_s(self, url: str, req: Any, provider: str) -> float:
        """Seconds until the first text event of a streamed response (httpx + llmkit.wire parser)."""
        parser = stream_parser(provider)
        t0 = time.perf_counter()
        first = None
        with self.sessions["httpx"].stream("POST", url, content=req.content(), headers=req.headers) as r:
            for chunk in r.iter_bytes():
                if first is None and any(isinstance(e, TextDelta) for e in parser.feed(chunk)):
                    first = time.perf_counter() - t0
        if first is None:
            raise RuntimeError(f"the {provider} stream ended without text: is the bench cassette complete?")
        return first

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()


def _raw_request(kit: Kit, provider: str, text: str, *, stream: bool = False) -> Any:
    return providers.get(provider).raw_request(kit.models[provider], text, stream=stream, api_key=kit.key(provider))


def sdk_call(kit: Kit, provider: str) -> Callable[[], str]:
    """The official SDK's tiny non-streamed call, as a lesson writes it."""
    model = kit.models[provider]
    return lambda: providers.get(provider).ping(kit, model, PING)


def sdk_first_text(kit: Kit, provider: str) -> Callable[[], float]:
    """Seconds from sending a streamed SDK request to its first piece of text (the rest is drained)."""
    model = kit.models[provider]

    def run() -> float:
        t0 = time.perf_counter()
        first = None
        for _text in providers.get(provider).stream_texts(kit, model, COUNT):
            first = time.perf_counter() - t0 if first is None else first
        assert first is not None, f"the {provider} SDK stream ended without text"
        return first

    return run


def openai_tool_sdk(kit: Kit) -> str:
    model = kit.models["openai"]
    tools = [{"type": "function", "function": WEATHER_TOOL}]
    messages: list[Any] = [{"role": "user", "content": WEATHER}]
    first = kit.openai.chat.completions.create(model=model, messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT}]
    return kit.openai.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message.content


def openai_tool_raw(kit: Kit, raw: RawClients) -> str:
    model, key, url = kit.models["openai"], kit.key("openai"), kit.base_url("openai") + "/chat/completions"
    tools = [{"type": "function", "function": WEATHER_TOOL}]
    messages: list[Any] = [{"role": "user", "content": WEATHER}]
    first = raw.post_json("httpx", url, wire_openai.chat_request(model, messages, tools=tools, api_key=key))
    msg = first["choices"][0]["message"]
    messages += [msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": WEATHER_RESULT}]
    second = raw.post_json("httpx", url, wire_openai.chat_request(model, messages, tools=tools, api_key=key))
    return second["choices"][0]["message"]["content"]


def anthropic_tool_sdk(kit: Kit) -> str:
    model = kit.models["anthropic"]
    tools = [{"name": WEATHER_TOOL["name"], "description": WEATHER_TOOL["description"],
              "input_schema": WEATHER_TOOL["parameters"]}]
    messages: list[Any] = [{"role": "user", "content": WEATHER}]
    first = kit.anthropic.messages.create(model=model, max_tokens=256, messages=messages, tools=tools)
    use = next(b for b in first.content if b.type == "tool_use")
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": WEATHER_RESULT}]}]
    second = kit.anthropic.messages.create(model=model, max_tokens=256, messages=messages, tools=tools)
    return second.content[0].text


def anthropic_tool_raw(kit: Kit, raw: RawClients) -> str:
    model, key, url = kit.models["anthropic"], kit.key("anthropic"), kit.base_url("anthropic") + "/v1/messages"
    tools = [{"name": WEATHER_TOOL["name"], "description": WEATHER_TOOL["description"],
              "input_schema": WEATHER_TOOL["parameters"]}]
    messages: list[Any] = [{"role": "user", "content": WEATHER}]
    first = raw.post_json("httpx", url, wire_anthropic.messages_request(model, messages, max_tokens=256,
                                                                        tools=tools, api_key=key))
    use = next(b for b in first["content"] if b["type"] == "tool_use")
    messages += [{"role": "assistant", "content": first["content"]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                               "content": WEATHER_RESULT}]}]
    second = raw.post_json("httpx", url, wire_anthropic.messages_request(model, messages, max_tokens=256,
                                                                         tools=tools, api_key=key))
    return second["content"][0]["text"]


def _contenders(kit: Kit, raw: RawClients) -> dict[str, dict[str, Callable[[], Any]]]:
    """Every timed operation, grouped by case (the contenders of one case run interleaved)."""
    cases: dict[str, dict[str, Callable[[], Any]]] = {}
    for provider in providers.names():
        req = _raw_request(kit, provider, PING)
        url = req.url(kit.base_url(provider))
        case = {f"{provider} SDK": sdk_call(kit, provider)}
        for lib in RAW:
            case[lib] = (lambda lib=lib, url=url, req=req: raw.post_json(lib, url, req))
        cases[f"{provider} call"] = case
    for provider in providers.names():
        req = _raw_request(kit, provider, COUNT, stream=True)
        url = req.url(kit.base_url(provider))
        cases[f"{provider} first token"] = {
            f"{provider} SDK": sdk_first_text(kit, provider),
            "httpx": (lambda url=url, req=req, p=provider: raw.first_text_s(url, req, p))}
    cases["openai tool call (2 rounds)"] = {"openai SDK": lambda: openai_tool_sdk(kit),
                                            "httpx": lambda: openai_tool_raw(kit, raw)}
    cases["anthropic tool call (2 rounds)"] = {"anthropic SDK": lambda: anthropic_tool_sdk(kit),
                                               "httpx": lambda: anthropic_tool_raw(kit, raw)}
    return cases


def run(ctx: Context) -> None:
    """Measure every case; rows go to ``ctx.report`` with httpx as each case's baseline."""
    rounds = ctx.pick(quick=15, full=200)

    def record(kit: Kit) -> None:
        raw = RawClients()
        try:
            for case in _contenders(kit, raw).values():
                for fn in case.values():
                    fn()
        finally:
            raw.close()

    with scripted_kit("bench_clients", record) as kit:
        raw = RawClients()
        try:
            cases = _contenders(kit, raw)
            with ctx.bar(rounds * len(cases), "clients") as bar:
                for case, contenders in cases.items():
                    self_timed = "first token" in case
                    samples = interleave(contenders, rounds=rounds, warmup=2, on_round=lambda: bar.update(1),
                                         self_timed=self_timed)
                    ctx.report.add_samples("clients", case, samples, baseline="httpx",
                                           metric="time to first text" if self_timed else "time per call")
            if kit.misses:
                raise RuntimeError(f"the bench cassette missed {len(kit.misses)} requests: {kit.misses[0]}")
        finally:
            raw.close()
