"""Script for lesson 11's cassette (provenance: scripted).

The scripted model labels support tickets (``notebooks/data/tickets.json``) with the label the data set gives
them, except the routing section's small model on the tickets built to mislead. It answers questions about the
lesson's policy document, and the semantic-cache questions with a short sentence that names the question.
Requests inside a batch are answered by this same function, so a batch gives exactly the answers the same
requests get one by one. Token counts are the renderer's ~4 characters/token estimate; prompt-cache hits are
reported exactly where a request qualifies (OpenAI: a prefix of 1024 tokens or more, counted in steps of 128
tokens: platform.openai.com/docs/guides/prompt-caching). Pacing: every answer starts after 400 ms and streams
at 60 tokens/s, the script's choice.
"""

import json
from pathlib import Path

from llmkit.replay.scripted import Reply, estimate_tokens

DATA = Path(__file__).resolve().parents[2] / "data"
_DATA = json.loads((DATA / "tickets.json").read_text())["tickets"]
TICKETS = {t["text"]: t["label"] for t in _DATA}
HARD = {t["text"]: t["hard"] for t in _DATA}
PACE = {"ttft_ms": 400.0, "tokens_per_s": 60.0}
POLICY_TITLE = "NORTHWIND SUPPORT POLICY"
_cached_prefixes: set = set()


def _system(body):
    """The system prompt of a Chat Completions, Messages or generateContent request."""
    if isinstance(body.get("system"), str):
        return body["system"]
    if isinstance(body.get("systemInstruction"), dict):
        return "".join(p.get("text", "") for p in body["systemInstruction"].get("parts", []))
    first = (body.get("messages") or [{}])[0]
    return first.get("content", "") if first.get("role") in ("system", "developer") else ""


def _policy_answer(req, body, question):
    """An answer about the policy, with OpenAI's prompt-cache usage where the prefix qualifies."""
    text = f"According to the policy, {question[0].lower()}{question[1:].rstrip('?')}: see section 4."
    total = estimate_tokens(json.dumps(body))
    prefix = estimate_tokens(_system(body)) + 4
    key = (req.provider, _system(body))
    seen = key in _cached_prefixes
    _cached_prefixes.add(key)
    cached = prefix // 128 * 128 if seen and req.provider == "openai" and prefix >= 1024 else 0
    return Reply(text=text, input_tokens=total, cached_tokens=cached, **PACE)


# Routing (section 5): the small model takes the words of another category at face value on the tickets built
# to mislead (the data set's "hard" ones); the default and the large model label every ticket right.
SMALL_MODEL = "gpt-4.1-nano"
MISLEADING = (("billing page", "billing"), ("invoice", "billing"), ("charged", "billing"),
              ("two-factor", "account"), ("my account shows", "account"), ("subscription", "billing"))


def _small_model_label(text):
    lower = text.lower()
    return next((label for words, label in MISLEADING if words in lower), TICKETS[text])


def reply(req):
    body = req.body or {}
    question = req.last_user_text().strip()
    if question in TICKETS:
        if req.model == SMALL_MODEL and HARD[question]:
            return Reply(text=_small_model_label(question), **PACE)
        return Reply(text=TICKETS[question], **PACE)
    if POLICY_TITLE in _system(body):
        return _policy_answer(req, body, question)
    if question:
        return Reply(text=f"Scripted answer to “{question}”.", **PACE)
    return None
