"""Script for the worked solutions of lesson 09 (provenance: scripted).

A three-item answer (dropped mid-stream by the replay server's fault injection) and its continuation:
the continuation starts right after the partial text the request carries as the assistant's turn.
"""

from llmkit.replay.scripted import Reply

ANSWER = ("1. Server-sent events are one long HTTP response that the server keeps writing to.\n"
          "2. Every event can carry an id, so a client that reconnects can ask for what it missed.\n"
          "3. They only go from the server to the client, which is all a streamed answer needs.")


def reply(req):
    text = req.last_user_text().lower()
    if "three facts about server-sent events" in text:
        return Reply(text=ANSWER, ttft_ms=200.0, tokens_per_s=60.0)
    if "continue exactly where you stopped" in text:
        messages = (req.body or {}).get("messages", [])
        partial = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "assistant"), "")
        if isinstance(partial, str) and ANSWER.startswith(partial):
            return Reply(text=ANSWER[len(partial):], ttft_ms=200.0, tokens_per_s=60.0)
    return None
