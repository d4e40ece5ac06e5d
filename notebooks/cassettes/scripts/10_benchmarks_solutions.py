"""Script for the worked solutions of lesson 10 (provenance: scripted).

The lesson's one-word ping, asked through the Anthropic SDK and through raw HTTP.
"""

from llmkit.replay.scripted import Reply

PING = "Reply with the single word pong."


def reply(req):
    if PING in req.last_user_text():
        return Reply(text="pong", ttft_ms=250.0)
    return None
