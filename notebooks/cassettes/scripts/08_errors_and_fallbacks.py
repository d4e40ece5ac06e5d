"""Script for lesson 08's cassette: the answers behind the injected faults (provenance: scripted).

Every failure in lesson 8 comes from ``kit.faults`` at replay time; the cassette only holds the
successful answers the retries and fallbacks eventually get.
"""

from llmkit.replay.scripted import Reply

ANSWERS = {
    "why do api calls fail": "API calls fail for two kinds of reasons: the provider is busy or briefly "
                             "broken, which a later retry fixes, or the request itself is wrong, which "
                             "no retry fixes.",
    "backoff": "Exponential backoff doubles the wait after each failure, and full jitter picks a random "
               "wait up to that bound, so many clients that failed together do not all come back at the "
               "same moment and knock the server over again.",
}


def reply(req):
    text = req.last_user_text().lower()
    for key, answer in ANSWERS.items():
        if key in text:
            return Reply(text=answer, ttft_ms=350.0, tokens_per_s=60.0)
    return None  # anything else is deliberately unrecorded
