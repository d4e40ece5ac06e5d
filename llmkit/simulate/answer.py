"""What the simulated model answers one request (lesson 0, ``llmkit simulate``).

The answer is a ``llmkit.replay.scripted.Reply`` — the same object a lesson's script returns — so the
provider modules' renderers frame it and ``llmkit.replay.scripted.check_reply`` holds it to what the
real API could send. Everything in it is drawn from one seeded ``random.Random``: the wording, which
declared tools are called and in what order, their arguments and any structured output (generated
from the request's schema by Hypothesis), output usage, pacing, and at the configured rates a refusal, a
``max_tokens`` cut or a retryable error.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from dataclasses import dataclass

from ..providers import get as provider
from ..providers._scripted import estimate_tokens
from ..replay.scripted import Constraints, Reply, ScriptedRequest, ToolCall
from . import reading, schemas, wording
from .settings import SimSettings
from .tokens import prompt_tokens

#: The retryable errors each provider sends (``Provider.fault_response`` names): rate limit with a
#: Retry-After, server error, overloaded (OpenAI and Gemini say 503, Anthropic 529).
RETRYABLE = {"openai": ("429+retry-after", "500", "503"), "anthropic": ("429+retry-after", "500", "529"),
             "gemini": ("429+retry-after", "500", "503")}
#: The JSON a request in JSON mode gets when it gives no schema.
_ANY_JSON = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number",
             "minimum": 0, "maximum": 1}}, "required": ["answer", "confidence"]}


@dataclass(frozen=True)
class Fault:
    """A retryable error to send instead of an answer: a ``fault_response`` name and its Retry-After."""

    name: str
    retry_after: float
    delay_ms: float


def constraints(req: ScriptedRequest) -> Constraints:
    """The request's constraints, read by its provider's scripted module (the replay server's reading)."""
    module = importlib.import_module(f"llmkit.providers._{req.provider}_scripted")
    return module.constraints(req.api, req.body if isinstance(req.body, dict) else {})


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{3,}", text.replace("_", " "))}


def _pick_tools(req: ScriptedRequest, c: Constraints, tools: list[reading.DeclaredTool],
                rng: random.Random) -> list[reading.DeclaredTool]:
    """The tools to call, in call order: what ``tool_choice`` allows, preferring tools the prompt names."""
    body = req.body if isinstance(req.body, dict) else {}
    callable_ = [t for t in tools if t.name in c.tools or not c.tools]
    if c.choice == "none" or not callable_:
        return []
    if c.forced:
        forced = [t for t in callable_ if t.name == c.forced]
        return forced[:1]
    if c.choice != "required" and reading.answers_tool_results(req.api, body):
        return []  # the results are in: answer in words
    prompt = _words(req.last_user_text())
    matching = [t for t in callable_ if _words(t.name + " " + t.description) & prompt]
    if not matching:
        if c.choice != "required" and rng.random() < 0.4:
            return []
        matching = [rng.choice(callable_)]
    rng.shuffle(matching)  # the order of parallel calls varies
    many = reading.parallel_allowed(req.api, body) and len(matching) > 1
    return matching[:rng.randint(2, min(3, len(matching)))] if many else matching[:1]


def _structured(req: ScriptedRequest, c: Constraints, rng: random.Random) -> str | None:
    """JSON text for a request that asks for JSON: generated from its schema, strict or not."""
    body = req.body if isinstance(req.body, dict) else {}
    if c.schema is not None:
        schema = c.schema
    elif reading.wants_json(req.api, body):
        schema = reading.loose_schema(req.api, body) or _ANY_JSON
    else:
        return None
    return json.dumps(schemas.instance(schema, f"{rng.random()}"))


def _cut(reply: Reply, limit: int) -> None:
    """Cut ``reply`` to about ``limit`` tokens and mark it truncated (the provider's max-tokens shape)."""
    budget = max(1, limit) * 4
    if reply.text:
        reply.text = reply.text[:budget].rstrip() or reply.text[:1]
        budget -= len(reply.text)
    for call in reply.tool_calls:
        raw = call.arguments_text()
        call.arguments = raw[:max(budget, 0)]
        budget -= len(raw)
    reply.tool_calls = [call for call in reply.tool_calls if call.arguments_text()]
    reply.finish = "length"
    reply.output_tokens = max(1, limit)


def fault_for(req: ScriptedRequest, settings: SimSettings, rng: random.Random) -> Fault | None:
    """A retryable error for this request, at ``settings.error_rate``."""
    if settings.error_rate <= 0 or rng.random() >= settings.error_rate:
        return None
    return Fault(rng.choice(RETRYABLE[req.provider]), round(rng.uniform(0.05, 0.3), 3), rng.uniform(5, 40))


def answer(req: ScriptedRequest, settings: SimSettings, rng: random.Random) -> Reply:
    """The seeded answer to ``req`` (a chat, Responses, Messages or generateContent request)."""
    body = req.body if isinstance(req.body, dict) else {}
    reply = Reply(ttft_ms=rng.uniform(15, 90), tokens_per_s=rng.uniform(400, 1500))
    reply.input_tokens = prompt_tokens(req.provider, req.model, body)  # the request's, not the seed's
    if req.api not in ("chat", "responses", "messages", "generate"):  # token counts: the same count
        return reply
    c = constraints(req)
    if settings.refusal_rate > 0 and rng.random() < settings.refusal_rate:
        if provider(req.provider).refuses_by_blocking:  # Gemini: finishReason SAFETY, no content
            reply.finish = "content_filter"
        else:
            reply.refusal = wording.refusal_text(rng)
        reply.output_tokens = estimate_tokens(reply.refusal or "x")
        return reply
    spec = provider(req.provider)
    calls = _pick_tools(req, c, reading.declared_tools(req.api, body), rng)
    for i, tool in enumerate(calls):
        args = schemas.instance(tool.schema, f"{rng.random()}:{tool.name}:{i}")
        call_id = spec.tool_call_prefix + f"{rng.getrandbits(96):024x}" if spec.tool_call_ids else None
        reply.tool_calls.append(ToolCall(tool.name, args, id=call_id))
    if calls:
        if spec.talks_before_tools and rng.random() < 0.3:
            reply.text = f"I'll use {calls[0].name} for that."
    else:
        reply.text = _structured(req, c, rng) or wording.answer_text(rng, req.last_user_text())
    out = estimate_tokens(reply.text + "".join(tc.name + tc.arguments_text() for tc in reply.tool_calls))
    reply.output_tokens = out + rng.randint(0, 3)
    if c.max_tokens is not None and reply.output_tokens > c.max_tokens:
        _cut(reply, c.max_tokens)
    elif settings.cut_rate > 0 and rng.random() < settings.cut_rate:
        _cut(reply, max(1, round(out * rng.uniform(0.2, 0.8))) if c.max_tokens is None else
             min(c.max_tokens, max(1, round(out * rng.uniform(0.2, 0.8)))))
    return reply
