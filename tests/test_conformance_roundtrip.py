"""Real recorded provider traffic, end to end: VCR YAML -> import -> replay server -> official SDK.

Introduced in lesson 0 (00_setup_and_replay). For every exchange in the real-traffic corpus (real
recordings from public projects' VCR cassettes) this test writes the VCR.py YAML the project would have
had (gzip bodies as ``!!binary``), imports it with ``llmkit cassette import-vcr``, serves it, and lets the
matching official SDK make the same request (the recorded JSON body, sent through the SDK's own
``post`` / API client so the SDK's transport, stream decoder and accumulators do the work). What the SDK
yields - text, tool calls, refusal, or the error class and message - must equal what this file works out
from the recorded body on its own.

The folder comes from ``conformance_dir()`` in conftest.py (see docs/conformance.md); without it the
tests skip with one reason.
"""

from __future__ import annotations

import base64
import json
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import yaml
from conftest import conformance_files, require_conformance

from llmkit import cli
from llmkit.replay.cassette import Cassette
from llmkit.replay.check import check_cassette

FILES = conformance_files()

ERROR_CLASSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                 404: "NotFoundError", 429: "RateLimitError"}


# --- the VCR.py cassette the recording project would have had ----------------------------------------
def to_vcr(conf: dict) -> dict:
    req, resp = conf["request"], conf["response"]
    body = req["body"] if isinstance(req["body"], str) or req["body"] is None else json.dumps(req["body"])
    stored: bytes | str = (base64.b64decode(resp["body_raw_base64"]) if resp.get("body_raw_base64")
                           else resp["body_text"])
    return {"interactions": [{
        "request": {"body": body, "headers": {k: [v] for k, v in req["headers"].items()},
                    "method": req["method"], "uri": req["url"]},
        "response": {"body": {"string": stored}, "headers": {k: [v] for k, v in resp["headers"].items()},
                     "status": {"code": resp["status"], "message": resp.get("reason") or ""}},
    }], "version": 1}


# --- what the recording says, worked out here without llmkit -----------------------------------------
def sse_data(text: str) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) per SSE event; comments and [DONE] skipped."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data and data != ["[DONE]"]:
            out.append((name, json.loads("\n".join(data))))
    return out


def outcome(text: str = "", tools: list | None = None, refusal: str | None = None) -> dict:
    return {"text": text, "tools": tools or [], "refusal": refusal}


def expected(conf: dict) -> dict:
    provider, resp = conf["provider"], conf["response"]
    status, text = resp["status"], resp["body_text"]
    if status >= 400:
        err = json.loads(text)["error"]
        kind = "ClientError" if provider == "gemini" else ERROR_CLASSES[status]
        return {"error": kind, "status": status, "message": err["message"]}
    streamed = resp["headers"].get("content-type", "").startswith("text/event-stream")
    api = conf["api"]
    if provider == "openai" and api == "openai chat.completions":
        if not streamed:
            msg = json.loads(text)["choices"][0]["message"]
            calls = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                     for c in msg.get("tool_calls") or []]
            return outcome(msg.get("content") or "", calls, msg.get("refusal"))
        content, refusal, calls = "", None, {}
        for _, chunk in sse_data(text):
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                content += delta.get("content") or ""
                if delta.get("refusal"):
                    refusal = (refusal or "") + delta["refusal"]
                for tc in delta.get("tool_calls") or []:
                    entry = calls.setdefault(tc["index"], ["", ""])
                    entry[0] += tc.get("function", {}).get("name") or ""
                    entry[1] += tc.get("function", {}).get("arguments") or ""
        return outcome(content, [(n, json.loads(a)) for n, a in calls.values()], refusal)
    if provider == "openai":  # Responses
        if streamed:
            events = [data for _, data in sse_data(text)]
            content = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
            items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        else:
            items = json.loads(text)["output"]
            content = "".join(part["text"] for item in items if item["type"] == "message"
                              for part in item["content"] if part["type"] == "output_text")
        calls = [(i["name"], json.loads(i["arguments"])) for i in items if i["type"] == "function_call"]
        return outcome(content, calls)
    if provider == "anthropic":
        if streamed:
            blocks: dict[int, dict] = {}
            for name, data in sse_data(text):
                if name == "content_block_start":
                    blocks[data["index"]] = {**data["content_block"], "_json": ""}
                elif name == "content_block_delta":
                    block, delta = blocks[data["index"]], data["delta"]
                    if delta["type"] == "text_delta":
                        block["text"] += delta["text"]
                    elif delta["type"] == "input_json_delta":
                        block["_json"] += delta["partial_json"]
            for block in blocks.values():
                if block["type"] == "tool_use" and block["_json"]:
                    block["input"] = json.loads(block["_json"])
            content_blocks = [blocks[i] for i in sorted(blocks)]
        else:
            content_blocks = json.loads(text)["content"]
        return outcome("".join(b["text"] for b in content_blocks if b["type"] == "text"),
                       [(b["name"], b["input"]) for b in content_blocks if b["type"] == "tool_use"])
    chunks = [data for _, data in sse_data(text)] if streamed else [json.loads(text)]
    parts = [p for c in chunks for cand in c.get("candidates", [])[:1]
             for p in (cand.get("content") or {}).get("parts", [])]
    calls = [(p["functionCall"]["name"], p["functionCall"].get("args", {})) for p in parts if "functionCall" in p]
    return outcome("".join(p["text"] for p in parts if "text" in p and not p.get("thought")), calls)


# --- what the official SDK yields from the replay server ----------------------------------------------
def sdk_error(e: Exception) -> dict:
    status = getattr(e, "status_code", None) or getattr(e, "code", None)
    message = getattr(e, "message", "") if type(e).__module__.startswith("google") else str(e)
    return {"error": type(e).__name__, "status": status, "message": message}


def openai_outcome(conf: dict, url: str) -> dict:
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamManager
    from openai.lib.streaming.responses import ResponseStreamManager
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    body = conf["request"]["body"]
    client = openai.OpenAI(api_key="replay-dummy-openai-key", base_url=f"{url}/v1", max_retries=0)
    try:
        if conf["api"] == "openai chat.completions":
            if body.get("stream"):
                request = partial(client.post, "/chat/completions", body=body, cast_to=ChatCompletion, stream=True,
                                  stream_cls=openai.Stream[ChatCompletionChunk])
                with ChatCompletionStreamManager(request, response_format=openai.omit,
                                                 input_tools=body.get("tools", openai.omit)) as stream:
                    msg = stream.get_final_completion().choices[0].message
            else:
                msg = client.post("/chat/completions", body=body, cast_to=ChatCompletion).choices[0].message
            calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
            return outcome(msg.content or "", calls, msg.refusal)
        if body.get("stream"):
            request = partial(client.post, "/responses", body=body, cast_to=Response, stream=True,
                              stream_cls=openai.Stream[ResponseStreamEvent])
            with ResponseStreamManager(request, text_format=openai.omit, input_tools=body.get("tools", openai.omit),
                                       starting_after=None) as stream:
                response = stream.get_final_response()
        else:
            response = client.post("/responses", body=body, cast_to=Response)
        calls = [(o.name, json.loads(o.arguments)) for o in response.output if o.type == "function_call"]
        return outcome(response.output_text, calls)
    except openai.APIStatusError as e:
        return sdk_error(e)
    finally:
        client.close()


def anthropic_outcome(conf: dict, url: str) -> dict:
    import anthropic
    from anthropic.lib.streaming import MessageStreamManager
    from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent

    body = conf["request"]["body"]
    path = urlsplit(conf["request"]["url"]).path
    client = anthropic.Anthropic(api_key="replay-dummy-anthropic-key", base_url=url, max_retries=0)
    try:
        if path.endswith("/count_tokens"):
            client.post(path, body=body, cast_to=MessageTokensCount)
            raise AssertionError("count_tokens was expected to fail")
        if body.get("stream"):
            request = partial(client.post, path, body=body, cast_to=Message, stream=True,
                              stream_cls=anthropic.Stream[RawMessageStreamEvent])
            with MessageStreamManager(request, output_format=anthropic.omit) as stream:
                message = stream.get_final_message()
        else:
            message = client.post(path, body=body, cast_to=Message)
        return outcome("".join(b.text for b in message.content if b.type == "text"),
                       [(b.name, b.input) for b in message.content if b.type == "tool_use"])
    except anthropic.APIStatusError as e:
        return sdk_error(e)
    finally:
        client.close()


def gemini_outcome(conf: dict, url: str) -> dict:
    from google import genai
    from google.genai import errors, types
    from google.genai.models import _GenerateContentResponse_from_mldev

    parts = urlsplit(conf["request"]["url"])
    version, method_path = parts.path.lstrip("/").split("/", 1)
    path = method_path + (f"?{parts.query}" if parts.query else "")
    client = genai.Client(api_key="replay-dummy-gemini-key", http_options=types.HttpOptions(base_url=url,
                                                                                   api_version=version))
    api = client._api_client  # the SDK's own transport and SSE decoder, fed the recorded body as is
    body = conf["request"]["body"]

    def parse(http: Any) -> Any:
        data = _GenerateContentResponse_from_mldev(json.loads(http.body) if http.body else {})
        return types.GenerateContentResponse._from_response(response=data, kwargs={})

    try:
        if ":streamGenerateContent" in path:
            chunks = [parse(h) for h in api.request_streamed("post", path, body)]
        else:
            chunks = [parse(api.request("post", path, body))]
    except errors.APIError as e:
        return sdk_error(e)
    finally:
        client.close()
    texts = []
    for chunk in chunks:
        candidate = (chunk.candidates or [None])[0]
        content_parts = (candidate.content.parts or []) if candidate and candidate.content else []
        if any(p.text is not None and not p.thought for p in content_parts):
            texts.append(chunk.text or "")
    calls = [(c.name, c.args or {}) for chunk in chunks for c in (chunk.function_calls or [])]
    return outcome("".join(texts), calls)


SDK = {"openai": openai_outcome, "anthropic": anthropic_outcome, "gemini": gemini_outcome}


# --- the test -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FILES or [None], ids=[p.stem for p in FILES] or ["no-corpus"])
def test_recorded_exchange_round_trips_to_the_sdk(path, tmp_path, serve, capsys):
    if path is None:
        require_conformance()
    conf = json.loads(path.read_text(encoding="utf-8"))
    vcr = tmp_path / f"{path.stem}.yaml"
    vcr.write_text(yaml.safe_dump(to_vcr(conf), allow_unicode=True, sort_keys=False), encoding="utf-8")
    if conf["response"].get("body_raw_base64"):
        assert "!!binary" in vcr.read_text()
    out = tmp_path / "cassette.json"
    assert cli.main(["cassette", "import-vcr", str(vcr), str(out)]) == 0
    assert "scrubbed" not in capsys.readouterr().out  # scrubbing changed nothing in real traffic
    report = check_cassette(out)
    assert report.ok, report.lines()
    cassette = Cassette.load(out)
    assert cassette.provenance["kind"] == "recorded"
    assert cassette.provenance["source"] == f"vcr import of {vcr.name}"
    [interaction] = cassette.interactions

    served = serve(cassette)
    # The bytes on the wire: streams exactly as recorded, JSON bodies equal, never a stale gzip header.
    url = urlsplit(conf["request"]["url"])
    target = f"{served.url}{url.path}" + (f"?{url.query}" if url.query else "")
    with httpx2.Client(verify=False) as client:  # plain http on loopback: no certificates to load
        raw = client.post(target, content=json.dumps(conf["request"]["body"]),
                          headers={"content-type": "application/json"})
    assert raw.status_code == conf["response"]["status"]
    assert "content-encoding" not in raw.headers
    if interaction.response.stream is not None:
        assert raw.content == conf["response"]["body_text"].encode()
    else:
        assert raw.json() == json.loads(conf["response"]["body_text"])

    got = SDK[conf["provider"]](conf, served.url)
    want = expected(conf)
    print(f"{path.stem}: {json.dumps(got, ensure_ascii=False)[:160]}")
    if "error" in want:
        assert got["error"] == want["error"] and got["status"] == want["status"]
        assert want["message"] in got["message"]
    else:
        assert got == want
        assert want["text"] or want["tools"] or want["refusal"] or conf["kind"] == "chat"
    assert served.player.unused() == []
