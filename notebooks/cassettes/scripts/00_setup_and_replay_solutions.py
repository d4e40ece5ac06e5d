"""Script for the worked solutions of lesson 00: the lesson's answers, same pacing (provenance: scripted)."""

from llmkit.replay.scripted import Reply

ANSWERS = {
    "haiku": "Requests cross the wire,\nrecorded once, replayed twice —\nno key, same answer.",
    "replay": "A replay server answers from a recording instead of calling the real API, so a lesson "
              "runs the same way offline, for free, every time.",
    "sdk": "An official SDK gives you typed responses, retries with backoff, clear error classes and "
           "streaming helpers on top of plain HTTP.",
}


def reply(req):
    text = req.last_user_text().lower()
    if "limerick" in text:
        return None  # deliberately unrecorded: exercise 1 reads the cassette miss
    for key, answer in ANSWERS.items():
        if key in text:
            return Reply(text=answer, ttft_ms=380.0, tokens_per_s=55.0)
    return None
