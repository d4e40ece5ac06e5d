"""Seeded wording for simulated answers (lesson 0, ``llmkit simulate``).

Sentences vary in words and length with the seed and mention a few words of the prompt, so a lesson
that prints an answer shows something plausible, never the cassette's scripted text.
"""

from __future__ import annotations

import random
import re

_OPENERS = ("Here is a short answer", "In brief", "Simulated reply", "To put it simply", "Good question",
            "From what you describe", "Roughly speaking", "As a rehearsal answer")
_WORDS = ("the model", "a request", "each token", "the stream", "this lesson", "your prompt", "a tool", "the answer",
          "some context", "the provider", "a schema", "the server", "one example", "the result", "latency",
          "a retry", "the cache", "an event", "the client", "a message")
_VERBS = ("shows", "returns", "explains", "carries", "needs", "follows", "changes", "keeps", "sends", "measures",
          "describes", "checks", "reads", "builds")
_REFUSALS = ("I'm sorry, but I can't help with that.", "I can't assist with that request.",
             "Sorry, I can't help with this one.")


_COMMON = frozenset({"about", "above", "after", "again", "also", "answer", "because", "before", "being", "could",
                     "does", "each", "explain", "from", "have", "hello", "here", "into", "just", "like", "make",
                     "more", "most", "only", "other", "please", "should", "some", "tell", "than", "that", "their",
                     "them", "then", "there", "these", "they", "this", "those", "what", "when", "where", "which",
                     "while", "with", "would", "write", "your"})


def topic_words(prompt: str, n: int = 3) -> list[str]:
    """Up to ``n`` of the longest words of ``prompt`` (what the answer talks about)."""
    found = {w for w in re.findall(r"[A-Za-z][A-Za-z'-]{3,}", prompt) if w.lower() not in _COMMON}
    words = sorted(found, key=lambda w: (-len(w), w))
    return words[:n]


def sentence(rng: random.Random, topics: list[str]) -> str:
    subject = rng.choice(_WORDS + tuple(topics) if topics else _WORDS)
    return f"{subject[0].upper()}{subject[1:]} {rng.choice(_VERBS)} {rng.choice(_WORDS)}" + \
        (f" about {rng.choice(topics)}" if topics and rng.random() < 0.5 else "") + "."


def answer_text(rng: random.Random, prompt: str) -> str:
    """A few seeded sentences, 1 to 6 of them, that mention the prompt's longest words."""
    topics = topic_words(prompt)
    head = rng.choice(_OPENERS) + (f" on {', '.join(topics)}" if topics else "") + ":"
    return " ".join([head] + [sentence(rng, topics) for _ in range(rng.randint(1, 6))])


def refusal_text(rng: random.Random) -> str:
    return rng.choice(_REFUSALS)
