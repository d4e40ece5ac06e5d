"""Lesson 12's trace in Phoenix's UI, in headless Chromium (12_observability_and_evals).

A small support agent runs against the provider simulator, traced the way lesson 12 traces it (``llmkit.tracing``):
the OpenAI SDK by ``opentelemetry-instrumentation-openai-v2``, the agent and its tool round by hand-written
GenAI spans. Its trace goes to a real Phoenix over OTLP/HTTP, and the test finds it the way a reader would: open
the project, click the trace, read the span tree and the token counts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from browser_helpers import ARGS, CHROMIUM, needs_chromium

from llmkit.phoenix import Phoenix
from llmkit.replay.server import ServerThread
from llmkit.simulate.app import create_app
from llmkit.simulate.settings import SimSettings
from llmkit.tracing import Tracing, start_tracing

pytestmark = needs_chromium

MODEL = "gpt-4.1-mini"
SPAN_NAMES = ["invoke_agent support-bot", f"chat {MODEL}", "execute_tool lookup_order", f"chat {MODEL}"]
LOOKUP_ORDER = {"type": "function", "function": {
    "name": "lookup_order", "description": "Where an order is", "strict": True,
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
                   "additionalProperties": False}}}
TIMEOUT_MS = 30_000  # Phoenix's UI is one large bundle: its first load takes a few seconds


def run_support_bot(tracing: Tracing, base_url: str) -> str:
    """One agent turn as lesson 12 writes it: the model asks for lookup_order, the tool answers, the model replies."""
    client = openai.OpenAI(api_key="sk-simulated", base_url=f"{base_url}/v1")
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is my order 42?"}]
    with tracing.agent_span("support-bot"):
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=[LOOKUP_ORDER],
                                               tool_choice={"type": "function", "function": {"name": "lookup_order"}})
        call = first.choices[0].message.tool_calls[0]
        with tracing.tool_span("lookup_order", call.id):
            result = {"order_id": json.loads(call.function.arguments)["order_id"], "status": "shipped"}
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
        second = client.chat.completions.create(model=MODEL, messages=messages)
    return second.choices[0].message.content or ""


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[Phoenix, list[dict[str, Any]]]]:
    """Phoenix holding one trace of the support bot, and that trace's spans as Phoenix's REST API gives them."""
    simulator = ServerThread(create_app(SimSettings(speed=0, seed=1))).start()
    with Phoenix.start() as ui:
        tracing = start_tracing("support-bot", otlp_endpoint=ui.otlp_traces_url)
        try:
            assert run_support_bot(tracing, simulator.url)
            assert tracing.provider.force_flush(10_000)
        finally:
            tracing.shutdown()
            simulator.stop()
        yield ui, ui.wait_for_spans(n=len(SPAN_NAMES), timeout=20)


@pytest.fixture
def page() -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, errors
        context.close()
        browser.close()


def test_the_instrumented_agent_gives_one_trace_of_four_linked_spans(traced) -> None:
    _, spans = traced
    assert sorted(s["name"] for s in spans) == sorted(SPAN_NAMES)
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "invoke_agent support-bot"
    assert all(s["parent_id"] == root["context"]["span_id"] for s in spans if s is not root)
    chats = [s for s in spans if s["name"] == f"chat {MODEL}"]
    assert [c["attributes"]["gen_ai.response.finish_reasons"] for c in chats] == [["tool_calls"], ["stop"]]
    assert all(c["attributes"]["gen_ai.usage.input_tokens"] > 0 for c in chats)


def test_the_trace_shows_its_span_tree_and_token_counts_in_the_ui(traced, page) -> None:
    from playwright.sync_api import expect

    ui, spans = traced
    pg, errors = page
    trace_id = spans[0]["context"]["trace_id"]
    chats = [s for s in spans if s["name"] == f"chat {MODEL}"]
    totals = [c["attributes"]["gen_ai.usage.input_tokens"] + c["attributes"]["gen_ai.usage.output_tokens"]
              for c in chats]

    # trace_url() opens the trace: its id, its span tree, and the token counts of the two model calls
    pg.goto(ui.trace_url(trace_id))
    expect(pg.get_by_label(f"Copy ID {trace_id}")).to_be_visible(timeout=TIMEOUT_MS)
    tree = pg.locator("ul[data-testid=trace-tree]")
    headings = tree.locator(".span-node__heading")
    expect(headings).to_have_text(SPAN_NAMES)
    for row, total in zip((1, 3), totals, strict=True):
        expect(tree.locator(".span-metrics").nth(row)).to_contain_text(str(total))

    # the last model call's details: the model and its token usage, as attributes
    headings.nth(3).click()
    details = pg.get_by_test_id("span-details")
    expect(details).to_contain_text(f"chat {MODEL}", timeout=TIMEOUT_MS)
    for key in ("gen_ai.request.model", "gen_ai.usage.output_tokens"):
        expect(details).to_contain_text(key)
    expect(details).to_contain_text(str(chats[1]["attributes"]["gen_ai.usage.output_tokens"]))
    shot = os.environ.get("SCREENSHOT_12")
    if shot:  # lesson 12 may show this page: SCREENSHOT_12=notebooks/images/12_phoenix_trace.png refreshes it
        pg.screenshot(path=shot)

    # from the breadcrumb to the project, which lists the agent's root span; clicking it opens the trace again
    pg.keyboard.press("Escape")
    pg.get_by_role("link", name="default", exact=True).click()
    expect(pg).not_to_have_url(re.compile(trace_id), timeout=TIMEOUT_MS)
    root_link = pg.get_by_role("link", name="invoke_agent support-bot")
    expect(root_link).to_be_visible(timeout=TIMEOUT_MS)
    root_link.click()
    expect(headings).to_have_text(SPAN_NAMES, timeout=TIMEOUT_MS)
    assert trace_id in pg.url
    assert not errors
