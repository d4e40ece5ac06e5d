"""Script for lesson 07's cassette (provenance: scripted).

Three kinds of request reach the scripted model:

- consolidation (system prompt ``llmkit.memory.CONSOLIDATION_SYSTEM``): the script reads the known
  facts (``[id] fact``) and the new messages (``[id] date speaker: text``) from the prompt and answers
  with the JSON the consolidator expects — add / update / duplicate operations citing those ids —
  by simple rules about the lesson's conversation. It proposes one near-duplicate on purpose
  ("Maya is a vegetarian.") so that the lesson can show llmkit merging it;
- running summaries (``SUMMARY_SYSTEM``): a plain summary built from the turns;
- the assistant: its answer uses only what the memory context in the request tells it.

A live model decides for itself; the lesson's checks hold for any reasonable answer.
"""

import json
import re

from llmkit.replay.scripted import Reply

MSG = re.compile(r"^\[(\d+)\] (\d{4}-\d{2}-\d{2}) \d{2}:\d{2} ([^:]+): (.*)$", re.M)
FACT = re.compile(r"^\[(\d+)\] (.*)$", re.M)

# (words a message must contain, the fact, importance, a word that finds the known fact it updates)
RULES = [
    (("i'm maya",), "The user is called Maya.", 0.9, None),
    (("moved to berlin",), "Maya lives in Berlin, where she works for a bike-sharing startup.", 0.9, None),
    (("vegetarian", "barbecue"), "Maya is vegetarian.", 0.5, None),
    (("adopted", "cat"), "Maya has a grey rescue cat called Pixel.", 0.5, None),
    (("lh1173",), "Maya's flight home for the holidays is LH1173 on 20 December 2024.", 0.5, None),
    (("moved to porto",), "Maya lives in Porto (since August 2024), where her bike-sharing startup opened "
                          "an office.", 0.9, "lives in"),
    (("still vegetarian",), "Maya is a vegetarian.", 0.5, None),
    (("lena",), "Maya's sister Lena visits her on 14 September 2024 and loves seafood.", 0.5, None),
]


def _consolidate(prompt: str) -> str:
    facts_part, _, messages_part = prompt.partition("New messages")
    known = [(int(i), text) for i, text in FACT.findall(facts_part)]
    ops = []
    for mid, _date, speaker, text in MSG.findall(messages_part):
        if speaker.strip() != "Maya":
            continue
        low = text.lower()
        if "pixel" in low and "adopted" not in low:  # a repeat of a known fact
            cat = next((i for i, f in known if "Pixel" in f), None)
            if cat is not None:
                ops.append({"op": "duplicate", "fact_id": cat, "source_ids": [int(mid)]})
        for words, fact, importance, updates in RULES:
            if not all(w in low for w in words):
                continue
            old = next((i for i, f in known if updates and updates in f), None) if updates else None
            if old is not None:
                ops.append({"op": "update", "fact_id": old, "content": fact, "source_ids": [int(mid)]})
            else:
                ops.append({"op": "add", "content": fact, "importance": importance, "source_ids": [int(mid)]})
    return json.dumps({"facts": ops}, indent=1)


def _summary(prompt: str) -> str:
    turns = [f"{speaker.strip()} said: {text}" for _, _, speaker, text in MSG.findall(prompt)]
    return " ".join(turns)[:600] or "Small talk only."


def _assistant(blob: str) -> str | None:
    if "Porto" in blob and "vegetarian" in blob and "seafood" in blob:
        return ("Since you live in Porto now and Lena loves seafood while you're vegetarian, pick a place in "
                "Ribeira that does both: grilled fish for her and vegetarian petiscos for you. Book for the 14th, "
                "when she arrives.")
    if "Berlin" in blob:
        return "How about a vegetarian-friendly place in Berlin? Kreuzberg has plenty that also serve fish."
    return ("Happy to help! Which city are you in, and does anyone have dietary preferences? Then I can suggest "
            "a place that suits you both.")


def reply(req):
    body = req.body or {}
    blob = json.dumps(body, ensure_ascii=False)
    text = req.last_user_text()
    if "You maintain the long-term memory" in blob:
        return Reply(text=_consolidate(text))
    if "You keep the running summary" in blob:
        return Reply(text=_summary(text))
    if "dinner" in text.lower():
        return Reply(text=_assistant(blob))
    return None
