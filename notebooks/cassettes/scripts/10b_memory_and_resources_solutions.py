"""Script for the worked solutions of lesson 10b (provenance: scripted).

Exercise 2 makes one call through the OpenAI SDK in a fresh interpreter, to measure what a client and
its first call add to the memory of the import alone.
"""

from llmkit.replay.scripted import Reply, ScriptedRequest

PING = "Reply with the single word pong."


def reply(req: ScriptedRequest) -> Reply | None:
    if PING in req.last_user_text():
        return Reply(text="pong")
    return None
