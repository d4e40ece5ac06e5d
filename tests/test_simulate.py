"""The provider simulator (``llmkit simulate``) answered by the official SDKs on a real loopback port.

Introduced with lesson 0 (00_setup_and_replay): every lesson can run live against the simulator. These
tests hold its answers to what the real APIs could send — structured output valid for the request's
strict schema, only declared tools, ``tool_choice`` honoured, the providers' truncation shapes, retryable
errors the SDKs retry — and check that the seed, not the cassette, decides the wording.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel, Field

from llmkit.replay.server import ServerThread
from llmkit.simulate.app import create_app
from llmkit.simulate.settings import SimSettings

SEEDS = (1, 2, 3)
OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL = "gpt-4.1-mini", "claude-haiku-4-5", "gemini-2.5-flash"


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str]
    region: str | None


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TIME = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"],
        "additionalProperties": False}
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
PROMPT = "What is the weather in Paris, and what time is it there?"


class Sims:
    """Simulators on loopback: one per seed, a second seed-1 twin, a flaky one, a refusing one, a local one."""

    def __init__(self) -> None:
        self.threads: dict[str, ServerThread] = {}

    def start(self, name: str, **settings: Any) -> str:
        self.threads[name] = ServerThread(create_app(SimSettings(speed=0, **settings))).start()
        return self.url(name)

    def url(self, name: str) -> str:
        return self.threads[name].url

    def sim(self, name: str) -> Any:
        return self.threads[name].app.state.simulator

    def stop(self) -> None:
        for thread in self.threads.values():
            thread.stop()


@pytest.fixture(scope="module")
def sims() -> Iterator[Sims]:
    out = Sims()
    for seed in SEEDS:
        out.start(f"seed{seed}", seed=seed)
    out.start("twin1", seed=1)
    out.start("flaky", seed=7, error_rate=0.5)
    out.start("refusing", seed=5, refusal_rate=1.0)
    out.start("local", seed=1, profile="chat-completions-only")
    yield out
    out.stop()


def oa(url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-simulated", base_url=f"{url}/v1", **kw)


def an(url: str, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-simulated", base_url=url, **kw)


_CLIENTS: list[genai.Client] = []  # a google-genai Client closes its connections when it is collected


def gm(url: str, retry: types.HttpRetryOptions | None = None) -> genai.Client:
    client = genai.Client(api_key="simulated", http_options=types.HttpOptions(base_url=url, retry_options=retry))
    _CLIENTS.append(client)
    return client


# --- every API the lessons use answers ----------------------------------------------------------------------
def test_openai_apis_answer(sims: Sims) -> None:
    client = oa(sims.url("seed1"))
    chat = client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "Hi there"}])
    assert chat.choices[0].message.content and chat.choices[0].finish_reason == "stop"
    assert chat.usage.prompt_tokens > 0 and chat.usage.completion_tokens > 0
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "Stream please"}], stream=True) if c.choices]
    assert len([p for p in pieces if p]) > 1
    response = client.responses.create(model=OPENAI_MODEL, input="Tell me about tokens")
    assert response.status == "completed" and response.output_text
    with client.responses.stream(model=OPENAI_MODEL, input="Stream about tokens") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and final.usage.output_tokens > 0
    count = client.responses.input_tokens.count(model=OPENAI_MODEL, input="Count these tokens")
    assert count.input_tokens > 0
    assert OPENAI_MODEL in [m.id for m in client.models.list()]


def test_anthropic_apis_answer(sims: Sims) -> None:
    client = an(sims.url("seed1"))
    message = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=400,
                                     messages=[{"role": "user", "content": "Hello Claude"}])
    assert message.stop_reason == "end_turn" and message.content[0].text
    with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=400,
                                messages=[{"role": "user", "content": "Stream, Claude"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and final.usage.output_tokens > 0
    count = client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "Count me"}])
    assert count.input_tokens > 0


def test_gemini_apis_answer(sims: Sims) -> None:
    client = gm(sims.url("seed1"))
    answer = client.models.generate_content(model=GEMINI_MODEL, contents="Hello Gemini")
    assert answer.text and answer.candidates[0].finish_reason == types.FinishReason.STOP
    chunks = [c.text for c in client.models.generate_content_stream(model=GEMINI_MODEL, contents="Stream, Gemini")]
    assert len(chunks) > 1 and all(chunks)
    assert client.models.count_tokens(model=GEMINI_MODEL, contents="Count me").total_tokens > 0
    # the legacy client's stream (no alt=sse): one JSON array
    raw = httpx.post(f"{sims.url('seed1')}/v1beta/models/{GEMINI_MODEL}:streamGenerateContent",
                     headers={"x-goog-api-key": "simulated"}, json={"contents": [{"parts": [{"text": "Hi"}]}]})
    parts = json.loads(raw.text)
    assert isinstance(parts, list) and parts[-1]["candidates"][0]["finishReason"] == "STOP"


def test_a_request_without_a_key_gets_the_providers_auth_error(sims: Sims) -> None:
    url = sims.url("seed1")
    body = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    no_key = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "invalid_request_error"
    no_key = httpx.post(f"{url}/v1/messages", json=body)
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    no_key = httpx.post(f"{url}/v1beta/models/{GEMINI_MODEL}:generateContent", json={"contents": []})
    assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"
    keyed = httpx.post(f"{url}/v1beta/models/{GEMINI_MODEL}:generateContent?key=k", json={"contents": []})
    assert keyed.status_code == 200


# --- structured output and tools follow the request --------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_structured_output_validates_against_its_strict_schema(sims: Sims, seed: int) -> None:
    url = sims.url(f"seed{seed}")
    schema = City.model_json_schema()
    parsed = oa(url).responses.parse(model=OPENAI_MODEL, input="Describe a city", text_format=City).output_parsed
    chat = oa(url).chat.completions.parse(model=OPENAI_MODEL, messages=[{"role": "user", "content": "A city"}],
                                          response_format=City).choices[0].message.parsed
    claude = an(url).messages.parse(model=ANTHROPIC_MODEL, max_tokens=1000, output_format=City,
                                    messages=[{"role": "user", "content": "A city"}]).parsed_output
    gemini = gm(url).models.generate_content(model=GEMINI_MODEL, contents="A city", config=types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=City)).parsed
    for value in (parsed, chat, claude, gemini):
        assert isinstance(value, City)
        jsonschema.validate(value.model_dump(), schema)


def _calls(client_kind: str, url: str, tool_choice: Any = None, prompt: str = PROMPT) -> list[tuple[str, dict]]:
    """(name, arguments) of the tool calls one request makes, declaring get_weather and get_time."""
    if client_kind == "chat":
        tools = [{"type": "function", "function": {"name": n, "description": n.replace("_", " "), "parameters": s,
                                                   "strict": True}} for n, s in SCHEMAS.items()]
        extra = {"tool_choice": tool_choice} if tool_choice else {}
        message = oa(url).chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": prompt}],
                                                  tools=tools, **extra).choices[0].message
        return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    if client_kind == "responses":
        tools = [{"type": "function", "name": n, "description": n.replace("_", " "), "parameters": s,
                  "strict": True} for n, s in SCHEMAS.items()]
        extra = {"tool_choice": tool_choice} if tool_choice else {}
        output = oa(url).responses.create(model=OPENAI_MODEL, input=prompt, tools=tools, **extra).output
        return [(i.name, json.loads(i.arguments)) for i in output if i.type == "function_call"]
    if client_kind == "messages":
        tools = [{"name": n, "description": n.replace("_", " "), "input_schema": s} for n, s in SCHEMAS.items()]
        extra = {"tool_choice": tool_choice} if tool_choice else {}
        content = an(url).messages.create(model=ANTHROPIC_MODEL, max_tokens=1000, tools=tools,
                                          messages=[{"role": "user", "content": prompt}], **extra).content
        return [(b.name, b.input) for b in content if b.type == "tool_use"]
    declarations = [types.FunctionDeclaration(name=n, description=n.replace("_", " "), parameters_json_schema=s)
                    for n, s in SCHEMAS.items()]
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=declarations)],
                                         tool_config=tool_choice)
    answer = gm(url).models.generate_content(model=GEMINI_MODEL, contents=prompt, config=config)
    return [(c.name, c.args) for c in answer.function_calls or []]


FORCED = {  # tool_choice naming get_time, in each API's spelling
    "chat": {"type": "function", "function": {"name": "get_time"}},
    "responses": {"type": "function", "name": "get_time"},
    "messages": {"type": "tool", "name": "get_time"},
    "generate": types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
        mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_time"])),
}
NONE = {"chat": "none", "responses": "none", "messages": {"type": "none"},
        "generate": types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.NONE))}


@pytest.mark.parametrize("api", list(FORCED))
def test_tool_choice_is_honoured_and_only_declared_tools_are_called(sims: Sims, api: str) -> None:
    orders = set()
    for seed in SEEDS:
        url = sims.url(f"seed{seed}")
        for trip in ("Lyon", "Nice"):
            auto = _calls(api, url, prompt=f"{PROMPT} Also book me a flight to {trip} with book_flight.")
            assert auto and {name for name, _ in auto} <= set(SCHEMAS)  # never the undeclared book_flight
            for name, args in auto:
                jsonschema.validate(args, SCHEMAS[name])
            orders.add(tuple(name for name, _ in auto))
        forced = _calls(api, url, FORCED[api])
        assert [name for name, _ in forced] == ["get_time"]  # asked about the weather, still calls get_time
        jsonschema.validate(forced[0][1], TIME)
        assert _calls(api, url, NONE[api]) == []
    assert len(orders) > 1  # which calls, and their order, vary with the seed


def test_a_small_max_tokens_gives_each_providers_truncation_shape(sims: Sims) -> None:
    url = sims.url("seed2")
    long = "Write a long essay about the history of streaming protocols."
    chat = oa(url).chat.completions.create(model=OPENAI_MODEL, max_tokens=3,
                                           messages=[{"role": "user", "content": long}])
    assert chat.choices[0].finish_reason == "length" and chat.usage.completion_tokens <= 3
    response = oa(url).responses.create(model=OPENAI_MODEL, input=long, max_output_tokens=16)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    message = an(url).messages.create(model=ANTHROPIC_MODEL, max_tokens=3, messages=[{"role": "user", "content": long}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens <= 3
    gemini = gm(url).models.generate_content(model=GEMINI_MODEL, contents=long,
                                             config=types.GenerateContentConfig(max_output_tokens=3))
    assert gemini.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_a_refusal_rate_of_one_refuses_in_each_providers_shape(sims: Sims) -> None:
    url = sims.url("refusing")
    chat = oa(url).chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert chat.choices[0].message.refusal and not chat.choices[0].message.content
    message = an(url).messages.create(model=ANTHROPIC_MODEL, max_tokens=100,
                                      messages=[{"role": "user", "content": "Hi"}])
    assert message.stop_reason == "refusal"
    gemini = gm(url).models.generate_content(model=GEMINI_MODEL, contents="Hi")
    assert gemini.candidates[0].finish_reason == types.FinishReason.SAFETY


# --- errors the SDKs retry ----------------------------------------------------------------------------------
def test_the_error_rate_gives_retryable_errors_that_the_sdks_retry(sims: Sims) -> None:
    url, sim = sims.url("flaky"), sims.sim("flaky")
    for i in range(4):
        chat = oa(url, max_retries=8).chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": f"question {i}"}])
        assert chat.choices[0].message.content
        message = an(url, max_retries=8).messages.create(model=ANTHROPIC_MODEL, max_tokens=200,
                                                         messages=[{"role": "user", "content": f"question {i}"}])
        assert message.content
        retry = types.HttpRetryOptions(attempts=9, initial_delay=0.01, max_delay=0.05, jitter=0.0)
        assert gm(url, retry).models.generate_content(model=GEMINI_MODEL, contents=f"question {i}").text
    sent = {key.split()[0] for key in sim.faults}
    assert sent == {"openai", "anthropic", "gemini"}, sim.faults
    statuses = {key.split()[1] for key in sim.faults}
    assert statuses & {"429+retry-after", "500", "503", "529"} == statuses
    with pytest.raises((openai.RateLimitError, openai.InternalServerError)):  # without retries, one surfaces
        for i in range(30):
            oa(url, max_retries=0).chat.completions.create(model=OPENAI_MODEL,
                                                           messages=[{"role": "user", "content": f"again {i}"}])


# --- the seed decides ---------------------------------------------------------------------------------------
def _texts(url: str) -> list[str]:
    client = oa(url)
    return [client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": q}])
            .choices[0].message.content for q in ("Explain caching", "Explain streaming")]


def test_the_same_seed_gives_the_same_text_and_another_seed_another(sims: Sims) -> None:
    first, twin, other = _texts(sims.url("seed1")), _texts(sims.url("twin1")), _texts(sims.url("seed3"))
    assert first == twin
    assert first[0] != other[0] and first[1] != other[1]
    cassette = Path(__file__).resolve().parents[1] / "notebooks" / "cassettes" / "00_setup_and_replay.json"
    scripted = cassette.read_text()
    assert all(text not in scripted for text in first)  # never the cassette's scripted answer


# --- a local OpenAI-compatible server ------------------------------------------------------------------------
def test_the_chat_completions_only_profile_answers_chat_and_404s_the_rest(sims: Sims) -> None:
    url = sims.url("local")
    chat = oa(url).chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    assert chat.choices[0].message.content and chat.model == "llama3.2"
    assert oa(url).models.list().data
    with pytest.raises(openai.NotFoundError):
        oa(url).responses.create(model="llama3.2", input="Hi")
    with pytest.raises(anthropic.NotFoundError):
        an(url).messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(genai.errors.ClientError) as gemini:
        gm(url).models.generate_content(model=GEMINI_MODEL, contents="Hi")
    assert gemini.value.code == 404
    assert httpx.post(f"{url}/v1/embeddings", json={}).json() == {"detail": "Not Found"}


# --- live mode against the simulator ---------------------------------------------------------------------------
def test_a_live_kit_with_fake_keys_runs_against_the_simulator(sims: Sims, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmkit

    url = sims.url("seed2")
    for name, value in {"LLMKIT_MODE": "live", "OPENAI_API_KEY": "sk-simulated", "ANTHROPIC_API_KEY": "sk-ant-x",
                        "GEMINI_API_KEY": "simulated", "LLMKIT_UPSTREAM_OPENAI": url,
                        "LLMKIT_UPSTREAM_ANTHROPIC": url, "LLMKIT_UPSTREAM_GEMINI": url,
                        "LLMKIT_MODEL_OPENAI": "local-model", "LLMKIT_MODEL_ANTHROPIC": "  "}.items():
        monkeypatch.setenv(name, value)
    kit = llmkit.start("00_setup_and_replay")
    try:
        assert kit.mode == "live"
        assert kit.models["openai"] == "local-model" and kit.models["anthropic"] == ANTHROPIC_MODEL  # blank: ignored
        response = kit.openai.responses.create(model=kit.models["openai"], input="Say hello")
        assert response.output_text and response.model == "local-model"
        record = kit.usage.last
        assert record is not None and record.model == "local-model" and record.cost_usd is None  # no price: None
        # one simulator stands in for all three: the ledger files each call under its own provider
        kit.anthropic.messages.create(model=kit.models["anthropic"], max_tokens=50,
                                      messages=[{"role": "user", "content": "Say hello"}])
        kit.gemini.models.generate_content(model=kit.models["gemini"], contents="Say hello")
        rows = kit.usage.records[-3:]
        assert [r.provider for r in rows] == ["openai", "anthropic", "gemini"]
        assert all(r.input_tokens for r in rows)
    finally:
        kit.close()


def test_llmkit_simulate_prints_the_upstreams_to_export_and_serves_them() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "llmkit", "simulate", "--seed", "4", "--quiet", "--speed", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert [line.split("=")[0] for line in lines] == [
            "export LLMKIT_UPSTREAM_OPENAI", "export LLMKIT_UPSTREAM_ANTHROPIC", "export LLMKIT_UPSTREAM_GEMINI"]
        url = lines[0].split("=", 1)[1]
        assert url.startswith("http://127.0.0.1:") and all(line.endswith(url) for line in lines)
        reply = httpx.post(f"{url}/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                           json={"model": ANTHROPIC_MODEL, "max_tokens": 50,
                                 "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert reply.status_code == 200 and reply.json()["type"] == "message"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- prompt caching (lesson 6) --------------------------------------------------------------------------------
HANDBOOK = "Rule: every alert names its owner and its runbook. " * 120  # ~1500 tokens: above the minimum


def test_a_repeated_long_prefix_is_a_cache_hit_and_a_short_one_never_is(sims: Sims) -> None:
    client = oa(sims.url("seed3"))
    first, second = (client.responses.create(model=OPENAI_MODEL, instructions=HANDBOOK, input=q)
                     for q in ("What about alerts?", "And about owners?"))
    assert first.usage.input_tokens_details.cached_tokens == 0
    hit = second.usage.input_tokens_details.cached_tokens
    assert 1024 <= hit <= second.usage.input_tokens and hit % 128 == 0
    short = [client.responses.create(model=OPENAI_MODEL, instructions="Be brief.", input="Hi") for _ in range(2)]
    assert [r.usage.input_tokens_details.cached_tokens for r in short] == [0, 0]
    claude = an(sims.url("seed3"))
    system = [{"type": "text", "text": HANDBOOK * 3, "cache_control": {"type": "ephemeral"}}]
    w, r = (claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, system=system,
                                   messages=[{"role": "user", "content": q}]) for q in ("Alerts?", "Owners?"))
    assert w.usage.cache_creation_input_tokens > 4096 and w.usage.cache_read_input_tokens == 0  # Haiku 4.5: 4096
    assert r.usage.cache_read_input_tokens == w.usage.cache_creation_input_tokens
    assert not r.usage.cache_creation_input_tokens
    unmarked = [{"type": "text", "text": HANDBOOK * 3}]  # no cache_control: Anthropic caches nothing
    u = claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, system=unmarked,
                               messages=[{"role": "user", "content": "Alerts?"}])
    assert not u.usage.cache_creation_input_tokens and not u.usage.cache_read_input_tokens


def test_a_gemini_explicit_cache_is_created_used_and_deleted(sims: Sims) -> None:
    client = gm(sims.url("seed3"))
    beta = types.HttpOptions(api_version="v1beta")
    cache = client.caches.create(model=GEMINI_MODEL, config=types.CreateCachedContentConfig(
        system_instruction=HANDBOOK, ttl="300s", http_options=beta))
    assert cache.name.startswith("cachedContents/") and cache.usage_metadata.total_token_count >= 1024
    answer = client.models.generate_content(model=GEMINI_MODEL, contents="What about alerts?",
                                            config=types.GenerateContentConfig(cached_content=cache.name,
                                                                               http_options=beta))
    assert answer.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
    assert answer.usage_metadata.prompt_token_count > cache.usage_metadata.total_token_count
    with pytest.raises(genai.errors.ClientError) as both:  # a cached request may not bring its own system prompt
        client.models.generate_content(model=GEMINI_MODEL, contents="Hi", config=types.GenerateContentConfig(
            cached_content=cache.name, system_instruction="Be brief.", http_options=beta))
    assert both.value.code == 400
    with pytest.raises(genai.errors.ClientError) as small:
        client.caches.create(model=GEMINI_MODEL, config=types.CreateCachedContentConfig(
            system_instruction="Too short to cache.", http_options=beta))
    assert small.value.code == 400 and "too small" in str(small.value)
    client.caches.delete(name=cache.name, config=types.DeleteCachedContentConfig(http_options=beta))
    with pytest.raises(genai.errors.ClientError) as gone:  # deleted: using it again is refused
        client.models.generate_content(model=GEMINI_MODEL, contents="Hi", config=types.GenerateContentConfig(
            cached_content=cache.name, http_options=beta))
    assert gone.value.code == 403


def test_the_legacy_gemini_client_of_a_live_kit_goes_to_the_configured_upstream(
        sims: Sims, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmkit

    url = sims.url("seed1")
    before = sims.sim("seed1").served["gemini generate"]
    for name, value in {"LLMKIT_MODE": "live", "GEMINI_API_KEY": "simulated", "LLMKIT_UPSTREAM_GEMINI": url}.items():
        monkeypatch.setenv(name, value)
    kit = llmkit.start("00_setup_and_replay", quiet=True)
    try:
        answer = kit.legacy_gemini.GenerativeModel(GEMINI_MODEL).generate_content("Say hello")
        assert answer.text
        assert sims.sim("seed1").served["gemini generate"] == before + 1  # the simulator, not Google, answered
    finally:
        kit.close()


class Rated(BaseModel):
    score: int = Field(ge=1, le=10, description="1 (worst) to 10 (best)")
    tags: list[str] = Field(min_length=2, max_length=3)


@pytest.mark.parametrize("seed", SEEDS)
def test_constraints_the_anthropic_sdk_moves_into_descriptions_are_followed(sims: Sims, seed: int) -> None:
    # messages.parse sends score's bounds and tags' sizes only as "{maximum: 10, minimum: 1}" in the description;
    # the SDK then validates the answer against the full model, as a real model's answer would pass
    client = an(sims.url(f"seed{seed}"))
    for i in range(3):
        message = client.messages.parse(model=ANTHROPIC_MODEL, max_tokens=400, output_format=Rated,
                                        messages=[{"role": "user", "content": f"Rate this code, take {i}."}])
        rated = message.parsed_output
        assert rated is not None and 1 <= rated.score <= 10 and 2 <= len(rated.tags) <= 3


# --- input tokens (lesson 5) ----------------------------------------------------------------------------------
def test_input_tokens_depend_on_the_request_and_an_image_costs_its_documented_formula(sims: Sims) -> None:
    import base64
    import io
    import random

    from PIL import Image

    from llmkit import multimodal as mm

    buffer = io.BytesIO()
    noise = random.Random(5).randbytes(300 * 200 * 3)  # noise: its base64 holds every character, '-' and '_'
    Image.frombytes("RGB", (300, 200), noise).save(buffer, "PNG")  # included once google-genai URL-safe encodes it
    png, prompt = buffer.getvalue(), "Describe this picture in one sentence."
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    costs = {}
    for seed in SEEDS:  # what a prompt costs is the tokenizer's business, not the seed's
        client = oa(sims.url(f"seed{seed}"))
        text = client.responses.create(model=OPENAI_MODEL, input=prompt).usage.input_tokens
        image = client.responses.create(model=OPENAI_MODEL, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": url}, {"type": "input_text", "text": prompt}]}]).usage.input_tokens
        costs[seed] = (text, image)
    assert len(set(costs.values())) == 1
    text, image = costs[1]
    assert image - text == mm.estimate_image_tokens(300, 200, "openai", OPENAI_MODEL)
    claude = an(sims.url("seed1"))
    ask = [{"role": "user", "content": [mm.anthropic_part({"data": png, "media_type": "image/png"}),
                                         {"type": "text", "text": prompt}]}]
    plain = claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=[{"role": "user", "content": prompt}])
    seen = claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=ask)
    assert seen.usage.input_tokens - plain.usage.input_tokens == mm.estimate_image_tokens(300, 200, "anthropic")
    assert claude.messages.count_tokens(model=ANTHROPIC_MODEL, messages=ask).input_tokens == seen.usage.input_tokens
    gemini = gm(sims.url("seed1"))
    one = gemini.models.generate_content(model=GEMINI_MODEL, contents=[
        types.Part.from_bytes(data=png, mime_type="image/png"), prompt]).usage_metadata.prompt_token_count
    none = gemini.models.generate_content(model=GEMINI_MODEL, contents=prompt).usage_metadata.prompt_token_count
    assert one - none == mm.estimate_image_tokens(300, 200, "gemini") == 258


# --- record mode against the simulator ------------------------------------------------------------------------
def test_a_stream_fault_in_record_mode_cuts_the_client_and_records_the_whole_answer(
        sims: Sims, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import llmkit

    url = sims.url("seed2")
    for name, value in {"LLMKIT_MODE": "record", "OPENAI_API_KEY": "sk-simulated", "LLMKIT_UPSTREAM_OPENAI": url,
                        "LLMKIT_CASSETTES": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    ask = [{"role": "user", "content": "Explain backoff with jitter in five sentences."}]

    def stream_text(kit: Any) -> list[str]:
        got: list[str] = []
        client = kit.openai.with_options(max_retries=0)
        try:
            for chunk in client.chat.completions.create(model=OPENAI_MODEL, messages=ask, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
        except openai.APIConnectionError:
            return got
        raise AssertionError("the stream was not cut")

    kit = llmkit.start("rec_fault", quiet=True)
    try:
        kit.faults.drop_stream(after=4, provider="openai")
        recorded_cut = stream_text(kit)
        kit.check_recording()  # nothing refused
    finally:
        kit.close()
    [interaction] = json.loads((tmp_path / "rec_fault.json").read_text())["interactions"]
    frames = interaction["response"]["stream"]
    assert len(frames) > 4 and frames[-1]["raw"].startswith("data: [DONE]")  # the whole answer was recorded
    assert 0 < len(recorded_cut) < len(frames) - 2
    monkeypatch.setenv("LLMKIT_MODE", "replay")
    kit = llmkit.start("rec_fault", quiet=True, speed=0)
    try:
        kit.faults.drop_stream(after=4, provider="openai")
        assert stream_text(kit) == recorded_cut  # the same fault replays the same cut
    finally:
        kit.close()
