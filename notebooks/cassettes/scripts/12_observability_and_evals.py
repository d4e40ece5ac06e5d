"""Script for lesson 12's cassette (provenance: scripted), and for the regression suite's (12_eval_suite).

The scripted support model answers the evaluation questions of ``notebooks/data/support_evals.json`` in the
prompt's strict JSON. It gets two of the sixteen wrong, on purpose, so that the lesson's checks have something to
catch: it promises a full refund after 45 days, and cites the wrong section for express shipping.

The scripted judge is a rule, not a model: an answer passes when it states every figure of the reference
("30 days", "$4.99", written as words or digits), adds no other figure of the same kind ("10 hours" against "10
minutes"), agrees with the reference on yes or no, and, when the reference has no figure, shares a key word with
it. Like a real judge, it is strict with paraphrases ("a month" for "30 days") and misses a contradiction that
keeps the figures. The agreement the lesson measures in replay is this rule's; a live run measures the real
model's.

The agent of the tracing section looks up an order with one tool call, then answers from the tool's result.
Pacing: answers start after 300 ms and stream at 80 tokens/s, the script's choice.
"""

import json
import re
from pathlib import Path

from llmkit.replay.scripted import Reply, ToolCall

DATA = json.loads((Path(__file__).resolve().parents[2] / "data" / "support_evals.json").read_text())
PACE = {"ttft_ms": 300.0, "tokens_per_s": 80.0}

# question -> (answer, section, escalate)
ANSWERS = {
    "I received my order 20 days ago. Can I still get a refund?":
        ("Yes. You are within 30 days of delivery, so you get a full refund with your receipt.", "§1", False),
    "Can I return a lamp I received 45 days ago for a refund?":  # wrong on purpose: it is store credit after day 30
        ("Yes, you can return it for a full refund within 60 days of delivery.", "§1", False),
    "Can I get my money back for an unused gift card?":
        ("No. Gift cards are never refunded.", "§1", False),
    "How much is standard shipping on a $62 order?":
        ("Standard shipping is free, because your order is over $50.", "§2", False),
    "How much is standard shipping on a $30 order?":
        ("Standard shipping costs $4.99 on that order; it is free only over $50.", "§2", False),
    "How fast is express shipping, and what does it cost?":  # the section is wrong on purpose: it is §2
        ("Express shipping costs $14.99 and arrives in 2 business days.", "§1", False),
    "Do you ship to Japan?":
        ("No. Northwind ships only to the EU, the UK, the US and Canada.", "§2", False),
    "My laptop broke after 18 months. Is it under warranty?":
        ("Yes, if it is a defect: electronics carry a 2-year warranty.", "§3", False),
    "I dropped my speaker and it cracked. Does the warranty cover it?":
        ("No. The warranty covers defects, not accidental damage such as a drop.", "§3", False),
    "How long is the warranty on a sofa?":
        ("Furniture, sofas included, carries a 5-year warranty.", "§3", False),
    "Can you reset my password if I tell you my old one?":
        ("No. Passwords are reset only by the link in an email, and we never ask for your password.", "§4", False),
    "My two-factor code doesn't work. Why?":
        ("Two-factor codes expire after 10 minutes; request a new one and use it straight away.", "§4", False),
    "If you don't refund me today I'm calling my lawyer.":
        ("I understand. I am passing your case to a human agent now.", "§5", True),
    "The heater you sold me started smoking. What do I do?":
        ("Unplug it and keep away from it. A human agent will contact you about this safety issue.", "§5", True),
    "What does an order number look like?":
        ("An order number is NW- followed by six digits, for example NW-104233.", "§6", False),
    "My order NW-552190 has shipped. Can I still cancel it?":
        ("Order NW-552190 has shipped, so it can no longer be cancelled; you can return it instead.", "§6", False),
}

# --- the judge's rule ---------------------------------------------------------------------------------------
NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "five": "5", "six": "6", "ten": "10", "thirty": "30"}
NEGATION = re.compile(r"\b(no|not|never|nothing|cannot|only)\b|n't\b")
FIGURE = re.compile(r"\$?\d+(?:\.\d+)?(?:[- ](?:business days|days?|years?|minutes|hours|digits))?")
STOP = {"with", "that", "your", "this", "from", "they", "there", "their", "about", "have", "after", "until",
        "into", "does", "what", "which", "goes"}


def _normal(text):
    text = text.lower()
    for word, digits in NUMBER_WORDS.items():
        text = re.sub(rf"\b{word}\b", digits, text)
    return text.replace("-year", " year").replace("-day", " day")


def _figures(text):
    return {re.sub(r"s$", "", f) for f in FIGURE.findall(_normal(text))}


def _words(text):
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3 and w not in STOP}


def judge(reference, answer):
    """(verdict, reason) by the rule in the module docstring."""
    ref, ans = _figures(reference), _figures(answer)
    missing = ref - ans
    if missing:
        return "fail", f"The answer does not state {sorted(missing)[0]}, which the reference gives."
    units = {r.split(" ", 1)[-1] for r in ref}
    extra = sorted(f for f in ans - ref if " " in f and f.split(" ", 1)[1] in units)
    if extra:
        return "fail", f"The answer says {extra[0]}, which contradicts the reference."
    if bool(NEGATION.search(reference.lower())) != bool(NEGATION.search(answer.lower())):
        return "fail", "The answer and the reference disagree on yes or no."
    if not ref and not _words(reference) & _words(answer):
        return "fail", "The answer does not say what the reference says."
    return "pass", "The answer states the reference's facts and contradicts none."


def _fields(text):
    """Question, Reference and Answer of a judge request."""
    return dict(re.findall(r"^(Question|Reference|Answer): (.*)$", text, flags=re.M))


def _order(req):
    """The agent's reply: a lookup_order call first, then an answer from the tool's result."""
    results = req.tool_results()
    if not results:
        return Reply(tool_calls=[ToolCall("lookup_order", {"order_id": "NW-552190"})], **PACE)
    order = json.loads(results[-1])
    return Reply(text=f"Order {order['order_id']} {order['status']} on {order['shipped_on']}, so it can no longer "
                      "be cancelled; you can return it within 30 days of delivery for a full refund.", **PACE)


def reply(req):
    body = req.body or {}
    system = json.dumps(body.get("messages", [{}])[0]) if body.get("messages") else ""
    question = req.last_user_text().strip()
    if "grade a customer-support answer" in system:
        f = _fields(question)
        verdict, reason = judge(f["Reference"], f["Answer"])
        return Reply(text=json.dumps({"reason": reason, "verdict": verdict}), **PACE)
    if question in ANSWERS:
        answer, section, escalate = ANSWERS[question]
        return Reply(text=json.dumps({"answer": answer, "section": section, "escalate": escalate}), **PACE)
    if any((t.get("function") or t).get("name") == "lookup_order" for t in body.get("tools") or []):
        return _order(req)
    if question:
        return Reply(text="A trace shows each step of one request: which model ran, for how long, and with how "
                          "many tokens.", **PACE)
    return None
