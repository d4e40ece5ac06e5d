"""The script the benchmark cassettes are rendered from (provenance: scripted).

Introduced in lesson 10 (10_benchmarks). Short, fixed answers keep the payloads the same size for
every client, so a difference in time is the client's own; the streamed answer has a realistic
first-token delay and pace, which the ``replay`` suite checks the server reproduces.
"""

from __future__ import annotations

from llmkit import providers
from llmkit.replay.scripted import Reply, ScriptedRequest, ToolCall

PING = "Reply with the single word pong."
COUNT = "Count from one to twenty in words."
WEATHER = "What is the weather in Paris? Use the tool."
COUNT_TEXT = " ".join(["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                       "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                       "twenty"]) + "."
TTFT_MS = 300.0
TOKENS_PER_S = 60.0


def reply(req: ScriptedRequest) -> Reply | None:
    text = req.last_user_text()
    if PING in text:
        return Reply(text="pong", ttft_ms=250.0)
    if COUNT in text:
        return Reply(text=COUNT_TEXT, ttft_ms=TTFT_MS, tokens_per_s=TOKENS_PER_S)
    if WEATHER in text:
        if req.has_tool_results():
            return Reply(text="It is 18 °C and sunny in Paris.", ttft_ms=280.0)
        # A fixed id: the SDK and the raw client send the same first request, so both must get the same
        # answer for their second requests to match the recording.
        call_id = providers.get(req.provider).tool_call_prefix + "BenchWeather"
        return Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id=call_id)], ttft_ms=400.0)
    return None
