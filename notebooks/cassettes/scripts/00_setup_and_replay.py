"""Script for lesson 00's cassette: what each prompt is answered with (provenance: scripted)."""

from llmkit.replay.scripted import Reply

ANSWERS = {
    "haiku": "Requests cross the wire,\nrecorded once, replayed twice —\nno key, same answer.",
    "replay": "A replay server answers from a recording instead of calling the real API, so a lesson "
              "runs the same way offline, for free, every time.",
    "cassette": "A cassette is a file of recorded HTTP exchanges: each request the client sent and the "
                "exact response, stream frames and timing included.",
    "sdk": "An official SDK gives you typed responses, retries with backoff, clear error classes and "
           "streaming helpers on top of plain HTTP.",
}


def reply(req):
    text = req.last_user_text().lower()
    if "limerick" in text:
        return None  # deliberately unrecorded: the lesson shows a cassette miss
    for key, answer in ANSWERS.items():
        if key in text:
            return Reply(text=answer, ttft_ms=380.0, tokens_per_s=55.0)
    return Reply(text="I can only answer the lesson's prompts in this scripted cassette.")
