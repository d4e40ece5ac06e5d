"""Script for lesson 02's cassette: streamed answers with realistic pacing (provenance: scripted).

The pacing differs per provider the way it does in practice (a different time to first token and
generation speed); the values are this script's, not a claim about any real model.
"""

from llmkit.replay.scripted import Reply, ToolCall

WHY = ("Streaming shows the first words after a fraction of a second instead of making the reader wait "
       "for the whole answer. It also lets you stop a long answer early, which saves time and tokens.")

# Short on purpose: the lesson times this answer at the recorded pace (section 3), and each extra token is
# waited for again in every run of the notebook; some 50 tokens are plenty to measure tokens per second.
TTFT = ("Time to first token is the wait from sending a request to the first piece of the answer. "
        "A user feels it as responsiveness. It grows with the prompt's length and the provider's load.")

SSE = """## Server-Sent Events in one screen

**Server-Sent Events** (SSE) stream text from a server to a client over one ordinary HTTP response:

- the response has `Content-Type: text/event-stream` and stays open;
- each event is a few `field: value` lines — `event:`, `data:`, `id:` — ended by a **blank line**;
- lines starting with `:` are comments, often sent as keep-alive pings;
- the client reads events as they arrive and the server ends the stream by closing the response.

LLM providers send one event per token or so:

```text
event: content_block_delta
data: {"type": "content_block_delta", "delta": {"text": "Hello"}}

```

Reading it yourself takes a few lines:

```python
for line in response.iter_lines():
    if line.startswith("data:"):
        payload = json.loads(line[5:])
```

A real parser also handles events split across network chunks, multi-line `data:` fields, CRLF line
endings and the provider's end marker — which is what the SDKs (and `llmkit.wire`) do for you."""

HTML = ("You asked for HTML, so here it is as plain text: <img src=\"x\" onerror=\"alert('pwned')\"> — and a "
        "link that would run code if it were one: [click me](javascript:alert('pwned')). A safe view shows "
        "both as text.")

PACE = {  # provider: (time to first token in ms, tokens per second) for the measured sections
    "openai": (450.0, 70.0),
    "anthropic": (620.0, 55.0),
    "gemini": (380.0, 110.0),
}


def reply(req):
    text = req.last_user_text()
    ttft, tps = PACE[req.provider]
    if "weather" in text.lower():
        if req.has_tool_results():
            return Reply(text="It is 18 °C and cloudy in Paris.", ttft_ms=ttft, tokens_per_s=tps)
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris", "unit": "celsius"})],
                     ttft_ms=ttft, tokens_per_s=tps)
    if "why stream" in text:
        return Reply(text=WHY, ttft_ms=ttft, tokens_per_s=tps)
    if "time to first token" in text:
        return Reply(text=TTFT, ttft_ms=ttft, tokens_per_s=tps)
    if "Server-Sent Events" in text:
        return Reply(text=SSE, ttft_ms=400.0, tokens_per_s=60.0)
    if "HTML image tag" in text:
        return Reply(text=HTML, ttft_ms=ttft, tokens_per_s=tps)
    return None  # anything else is a cassette miss
