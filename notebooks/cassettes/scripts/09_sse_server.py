"""Script for lesson 09's cassette: the answers the relay server streams (provenance: scripted)."""

from llmkit.replay.scripted import Reply

ANSWERS = {
    "sse": (
        "Server-sent events are a **plain HTTP response** that never ends: the server writes `event:`, "
        "`id:` and `data:` lines, and a blank line closes each event.\n\n"
        "- Each event carries an id, so a client that reconnects sends `Last-Event-ID` and the server "
        "resumes right after it.\n"
        "- Comment lines starting with a colon keep proxies from closing an idle connection.\n"
        "- It is one-way, server to client, which is exactly what streaming an answer needs."
    ),
    "resume": (
        "Resuming works because the server keeps every event of the stream in a buffer until it expires, "
        "and the client remembers the id of the last event it saw. After a dropped connection it asks for "
        "everything after that id, so the reader gets the whole answer with no gap and no duplicate, "
        "however many times the network fails along the way."
    ),
    "cancel": (
        "Cancelling a stream has to reach the provider: closing the browser tab is not enough, because "
        "the relay server would keep reading, and paying for, an answer nobody will see. A DELETE request "
        "cancels the producer task, which closes the upstream HTTP response, which ends the request at the "
        "provider within milliseconds. " * 2
    ).strip(),
    "html": (
        "Here is what an attacker might ask a model to repeat: <img src=x onerror=\"window.__pwned = 1\"> "
        "and <script>window.__pwned = 2</script>. A safe client shows these as text."
    ),
}


def reply(req):
    text = req.last_user_text().lower()
    for key, answer in ANSWERS.items():
        if key in text:
            return Reply(text=answer, ttft_ms=300.0, tokens_per_s=60.0)
    return Reply(text="I can only answer the lesson's prompts in this scripted cassette.")
