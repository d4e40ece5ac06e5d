"""The official SDKs, served recorded bytes, map to the same events as the raw parsers.

Each SDK client gets an ``httpx2.Client`` whose ``MockTransport`` answers with a
recording from the real-traffic corpus (docs/conformance.md; gzip bytes when that
is what was recorded); nothing leaves the process. Without the corpus these tests skip.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from urllib.parse import urlsplit

import httpx2
import pytest
from conftest import require_conformance

from llmkit.events import ProviderError, collect
from llmkit.wire import anthropic as raw_anthropic
from llmkit.wire import gemini as raw_gemini
from llmkit.wire import openai as raw_openai
from llmkit.wire import sdk_events, stream_parser

BASE = "http://127.0.0.1:9"


def record(name: str) -> dict:
    path = require_conformance() / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the corpus")
    return json.loads(path.read_text())


def recorded_path(rec: dict) -> str:
    url = urlsplit(rec["request"]["url"])
    return url.path


def handler_for(rec: dict, seen: list):
    """Serve the recorded response; note each request's path."""
    resp = rec["response"]
    headers = {"content-type": resp["headers"].get("content-type", "application/json")}
    content = resp["body_text"].encode()
    if "body_raw_base64" in resp:
        content = base64.b64decode(resp["body_raw_base64"])
        headers["content-encoding"] = "gzip"

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.path)
        return httpx2.Response(resp["status"], headers=headers, content=content)

    return handler


def raw_events(rec: dict) -> list:
    api = "responses" if recorded_path(rec).endswith("/responses") else None
    parser = stream_parser(rec["provider"], api, rec["response"]["status"])
    return parser.feed(rec["response"]["body_text"].encode()) + parser.close()


def openai_client(rec, seen, asynchronous=False):
    openai = pytest.importorskip("openai")
    transport = httpx2.MockTransport(handler_for(rec, seen))
    if asynchronous:
        http = httpx2.AsyncClient(transport=transport)
        return openai.AsyncOpenAI(api_key="test", base_url=f"{BASE}/v1", http_client=http,
                                  max_retries=0)
    http = httpx2.Client(transport=transport)
    return openai.OpenAI(api_key="test", base_url=f"{BASE}/v1", http_client=http, max_retries=0)


def anthropic_client(rec, seen, asynchronous=False):
    anthropic = pytest.importorskip("anthropic")
    transport = httpx2.MockTransport(handler_for(rec, seen))
    if asynchronous:
        http = httpx2.AsyncClient(transport=transport)
        return anthropic.AsyncAnthropic(api_key="test", base_url=BASE, http_client=http,
                                        max_retries=0)
    http = httpx2.Client(transport=transport)
    return anthropic.Anthropic(api_key="test", base_url=BASE, http_client=http, max_retries=0)


def gemini_client(rec, seen, asynchronous=False, api_version: str | None = "recorded"):
    pytest.importorskip("google.genai")
    from google import genai
    from google.genai import types

    if api_version == "recorded":
        api_version = recorded_path(rec).split("/")[1]
    transport = httpx2.MockTransport(handler_for(rec, seen))
    options = {"base_url": BASE, "api_version": api_version}
    if asynchronous:
        options["httpx_async_client"] = httpx2.AsyncClient(transport=transport)
    else:
        options["httpx_client"] = httpx2.Client(transport=transport)
    return genai.Client(api_key="test", http_options=types.HttpOptions(**options))


MESSAGES = [{"role": "user", "content": "hi"}]

OPENAI_CHAT = ["openai-stream-tools-gpt4omini-multiply-include-usage",
               "openai-stream-gpt4omini-after-tool-text"]
ANTHROPIC = ["anthropic-stream-tools-empty-input-gzip",
             "anthropic-stream-tools-forced-output-tool-long-json-deltas",
             "anthropic-image-base64-png-stream"]
GEMINI = ["gemini-stream-thinking-thought-parts-sse",
          "gemini-stream-tools-gemini3-thought-signature-sse",
          "gemini-stream-tools-parallel-calls-signature-on-first-only",
          "gemini-stream-tools-parallel-function-calls-sse"]


def assert_same(sdk: list, raw: list) -> None:
    a, b = collect(sdk), collect(raw)
    assert (a.text, a.thinking, a.tool_calls, a.finish_reason) == (
        b.text, b.thinking, b.tool_calls, b.finish_reason)
    assert a.errors == ()
    assert sdk == raw  # and event for event


@pytest.mark.parametrize("name", OPENAI_CHAT)
def test_openai_chat_chunks(name):
    rec, seen = record(name), []
    client = openai_client(rec, seen)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert_same(list(sdk_events.openai_chat_events(stream)), raw_events(rec))
    assert seen == [recorded_path(rec)]


def test_openai_responses_create_and_stream_helper():
    rec, seen = record("openai-stream-responses-basic"), []
    client = openai_client(rec, seen)
    raw = raw_events(rec)
    created = client.responses.create(model="gpt-5.5", input="ping", stream=True)
    assert_same(list(sdk_events.openai_responses_events(created)), raw)
    with client.responses.stream(model="gpt-5.5", input="ping") as stream:
        assert_same(list(sdk_events.openai_responses_events(stream)), raw)
    assert seen == [recorded_path(rec)] * 2


@pytest.mark.parametrize("name", ANTHROPIC)
def test_anthropic_create_stream_and_stream_helper(name):
    rec, seen = record(name), []
    client = anthropic_client(rec, seen)
    raw = raw_events(rec)
    created = client.messages.create(model="claude-x", max_tokens=64, messages=MESSAGES,
                                     stream=True)
    assert_same(list(sdk_events.anthropic_events(created)), raw)
    with client.messages.stream(model="claude-x", max_tokens=64, messages=MESSAGES) as stream:
        assert_same(list(sdk_events.anthropic_events(stream)), raw)
    assert seen == [recorded_path(rec)] * 2


@pytest.mark.parametrize("name", GEMINI)
def test_gemini_stream_chunks(name):
    rec, seen = record(name), []
    client = gemini_client(rec, seen)
    chunks = client.models.generate_content_stream(model=rec["model_requested"], contents="hi")
    events = list(sdk_events.gemini_events(chunks))
    assert_same(events, raw_events(rec))
    assert seen == [recorded_path(rec)]
    # thoughtSignature survives the SDK's bytes field in the wire's base64 alphabet
    body = rec["response"]["body_text"]
    for call in collect(events).tool_calls:
        assert call.signature is None or f'"thoughtSignature": "{call.signature}"' in body


def test_google_genai_defaults_to_v1():
    rec, seen = record("gemini-stream-tools-parallel-function-calls-sse"), []
    client = gemini_client(rec, seen, api_version=None)
    list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
    assert seen == ["/v1/models/gemini-2.0-flash:streamGenerateContent"]
    assert raw_gemini.generate_content_request("gemini-2.0-flash", "hi", stream=True).path == (
        "/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )


def test_async_clients():
    async def main():
        rec, seen = record(OPENAI_CHAT[0]), []
        client = openai_client(rec, seen, asynchronous=True)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        got = [e async for e in sdk_events.openai_chat_events_async(stream)]
        assert got == raw_events(rec)

        rec = record("openai-stream-responses-basic")
        client = openai_client(rec, seen, asynchronous=True)
        stream = await client.responses.create(model="m", input="ping", stream=True)
        got = [e async for e in sdk_events.openai_responses_events_async(stream)]
        assert got == raw_events(rec)

        rec = record(ANTHROPIC[1])
        client = anthropic_client(rec, seen, asynchronous=True)
        stream = await client.messages.create(model="claude-x", max_tokens=64,
                                              messages=MESSAGES, stream=True)
        got = [e async for e in sdk_events.anthropic_events_async(stream)]
        assert got == raw_events(rec)

        rec = record(GEMINI[0])
        client = gemini_client(rec, seen, asynchronous=True)
        stream = await client.aio.models.generate_content_stream(model="m", contents="hi")
        got = [e async for e in sdk_events.gemini_events_async(stream)]
        assert got == raw_events(rec)

    asyncio.run(main())


# -- errors: the SDK raises; the raw path reports the same error as an event -----------------


def test_openai_error_on_stream_matches_raw_provider_error():
    openai = pytest.importorskip("openai")
    rec, seen = record("openai-error-responses-401-invalid-api-key-on-stream"), []
    client = openai_client(rec, seen)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="gpt-4o", input="x", stream=True)
    (raw,) = raw_events(rec)
    assert isinstance(raw, ProviderError)
    assert (raw.status, raw.type, raw.code) == (
        info.value.status_code, info.value.type, info.value.code)


def test_gemini_error_on_sse_matches_raw_provider_error():
    pytest.importorskip("google.genai")
    from google.genai import errors

    rec, seen = record("gemini-error-400-api-key-invalid-on-sse"), []
    client = gemini_client(rec, seen)
    with pytest.raises(errors.ClientError) as info:
        list(client.models.generate_content_stream(model="m", contents="hi"))
    (raw,) = raw_events(rec)
    assert (raw.status, raw.type, raw.message) == (
        info.value.code, info.value.status, info.value.message)


# -- non-streamed SDK objects -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["openai-chat-gpt35-2024-minimal-usage", "openai-chat-gpt4o-json-schema-refusal",
     "openai-tools-parallel-two-calls", "openai-tools-forced-tool-choice-required"],
)
def test_openai_chat_completion_object(name):
    rec, seen = record(name), []
    completion = openai_client(rec, seen).chat.completions.create(model="m", messages=MESSAGES)
    events = sdk_events.openai_response_events(completion)
    assert events == raw_openai.parse_response(rec["response"]["body_text"])
    assert collect(events).text == (completion.choices[0].message.content or "")


@pytest.mark.parametrize(
    "name",
    ["openai-other-responses-encrypted-reasoning", "openai-other-responses-web-search",
     "openai-image-responses-input-image-data-url"],
)
def test_openai_response_object(name):
    rec, seen = record(name), []
    response = openai_client(rec, seen).responses.create(model="m", input="x")
    events = sdk_events.openai_response_events(response)
    assert events == raw_openai.parse_response(rec["response"]["body_text"])
    assert collect(events).text == response.output_text


@pytest.mark.parametrize(
    "name", ["anthropic-chat-basic-gzip", "anthropic-image-url-source",
             "anthropic-image-base64-png-nonstream"],
)
def test_anthropic_message_object(name):
    rec, seen = record(name), []
    message = anthropic_client(rec, seen).messages.create(model="claude-x", max_tokens=64,
                                                          messages=MESSAGES)
    events = sdk_events.anthropic_message_events(message)
    assert events == raw_anthropic.parse_response(rec["response"]["body_text"])
    assert collect(events).text == message.content[0].text


@pytest.mark.parametrize(
    "name", ["gemini-chat-flash25-gzip", "gemini-chat-finish-safety-blocked",
             "gemini-image-inline-data-base64url"],
)
def test_gemini_response_object(name):
    rec, seen = record(name), []
    response = gemini_client(rec, seen).models.generate_content(model="m", contents="hi")
    events = sdk_events.gemini_response_events(response)
    assert events == raw_gemini.parse_response(rec["response"]["body_text"])
    assert collect(events).text == (response.text or "")


# -- import cost ----------------------------------------------------------------------------------


def test_importing_wire_does_not_import_any_sdk():
    code = (
        "import sys, llmkit.events, llmkit.wire, llmkit.wire.sdk_events\n"
        "bad = [m for m in ('openai', 'anthropic', 'google.genai', 'google.generativeai')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
