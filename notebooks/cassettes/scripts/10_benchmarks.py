"""Script for lesson 10's cassette (provenance: scripted).

One tiny prompt answered with one word after a quarter of a second, the time the source lesson's table
gave an SDK call: the lesson times the same call through the SDK and through raw HTTP, at speed 0 (the
client's own cost) and at speed 1 (the recorded server time included).
"""

from llmkit.replay.scripted import Reply, ScriptedRequest

PING = "Reply with the single word pong."


def reply(req: ScriptedRequest) -> Reply | None:
    if PING in req.last_user_text():
        return Reply(text="pong", ttft_ms=250.0)
    return None
