"""Script for lesson 01's cassette: what each prompt is answered with (provenance: scripted).

Every path of the lesson (three SDKs; requests, httpx and httpx2 by hand; the legacy Gemini SDK) sends
the same short question, so the answers can be compared. The benchmark replays these same interactions
from a separate server process, so it adds nothing to the cassette.
"""

from llmkit.replay.scripted import Reply

# The tiny request every path sends (lesson 1 measures the client, not the model).
SHORT = ("five words", "Numbers beat confident guesses.")

MIGRATION = ("replaced google-generativeai",
             "google-genai replaced it: one Client for the Gemini Developer API and Vertex AI, with typed "
             "configs and the same calls in sync and async code.")


def reply(req):
    text = req.last_user_text()
    for key, answer in (SHORT, MIGRATION):
        if key in text:
            return Reply(text=answer, ttft_ms=240.0, tokens_per_s=80.0)
    return None  # anything else is a cassette miss
