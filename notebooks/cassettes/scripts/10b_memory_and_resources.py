"""Script for lesson 10b's cassette (provenance: scripted).

One tiny prompt answered with one word: the assistant whose memory the lesson measures makes one call
through the OpenAI SDK, so the SDK is part of the full-system figure. Lesson 10b times nothing against
this server; the answer's pacing is irrelevant there.
"""

from llmkit.replay.scripted import Reply, ScriptedRequest

PING = "Reply with the single word pong."


def reply(req: ScriptedRequest) -> Reply | None:
    if PING in req.last_user_text():
        return Reply(text="pong")
    return None
