"""Script for the worked solutions of lesson 01 (provenance: scripted).

The same short question as the lesson, and a two-turn chat for the google-generativeai → google-genai port.
"""

from llmkit.replay.scripted import Reply

ANSWERS = (
    ("five words", "Numbers beat confident guesses."),
    ("name one reason", "One reason: the SDK retries rate limits for you."),
    ("and one more", "Another: it turns error bodies into typed exceptions."),
)


def reply(req):
    text = req.last_user_text().lower()
    for key, answer in ANSWERS:
        if key in text:
            return Reply(text=answer, ttft_ms=240.0, tokens_per_s=80.0)
    return None
