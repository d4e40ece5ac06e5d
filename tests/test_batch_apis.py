"""The three providers' batch APIs through their official SDKs: scripted, recorded, replayed, simulated.

Introduced with lesson 11 (11_cost_and_latency). Each provider's flow is the one its docs teach: OpenAI
uploads a JSONL file, creates a batch, polls it and downloads the output file; Anthropic creates a message
batch, polls it and streams its results; Gemini creates a batch job with inline requests and polls it until
the responses are in it. The flows run against a scripted recording, its replay (at speed 0, and paced so a
poll cannot see the batch end before its recorded run time), the recorder in front of ``llmkit simulate``,
and the simulator itself.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmkit.kit import Kit
from llmkit.replay.canonical import parse_multipart
from llmkit.replay.server import ServerThread
from llmkit.simulate.app import create_app
from llmkit.simulate.settings import SimSettings

SCRIPT = '''
from llmkit.replay.scripted import Reply


def reply(req):
    text = req.last_user_text()
    if "too long" in text:
        return Reply(text="word " * 400)  # longer than the request's max tokens, and not marked truncated
    if "unanswerable" in text:
        return Reply(status=400, error="This request cannot be answered.")
    return Reply(text=f"{req.provider} {req.api} answers {text!r}.")
'''
QUESTIONS = ["What is a batch?", "Why is it cheaper?", "When does it end?"]
POLL = 0.02  # seconds between polls in these tests


def expected(provider: str, api: str) -> dict[str, str]:
    return {f"q{i}": f"{provider} {api} answers {q!r}." for i, q in enumerate(QUESTIONS)}


# --- the flows, as a lesson writes them ----------------------------------------------------------------
def openai_flow(kit: Kit, questions: list[str] = QUESTIONS, poll: float = POLL) -> tuple[dict[str, str], list[str]]:
    client = kit.openai
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": kit.models["openai"], "max_completion_tokens": 60,
                       "messages": [{"role": "user", "content": q}]}} for i, q in enumerate(questions)]
    upload = client.files.create(file=("questions.jsonl", "\n".join(map(json.dumps, lines)).encode()),
                                 purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    seen = [batch.status]
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(poll)
        batch = client.batches.retrieve(batch.id)
        seen.append(batch.status)
    answers = {}
    for line in client.files.content(batch.output_file_id).text.splitlines():
        item = json.loads(line)
        answers[item["custom_id"]] = item["response"]["body"]["choices"][0]["message"]["content"]
    return answers, seen


def anthropic_flow(kit: Kit, questions: list[str] = QUESTIONS, poll: float = POLL) -> tuple[dict[str, str], list[str]]:
    client = kit.anthropic
    batch = client.messages.batches.create(requests=[
        {"custom_id": f"q{i}", "params": {"model": kit.models["anthropic"], "max_tokens": 60,
                                          "messages": [{"role": "user", "content": q}]}}
        for i, q in enumerate(questions)])
    seen = [batch.processing_status]
    while batch.processing_status != "ended":
        time.sleep(poll)
        batch = client.messages.batches.retrieve(batch.id)
        seen.append(batch.processing_status)
    answers = {}
    for result in client.messages.batches.results(batch.id):
        answers[result.custom_id] = result.result.message.content[0].text if result.result.type == "succeeded" \
            else result.result.type
    return answers, seen


def gemini_flow(kit: Kit, questions: list[str] = QUESTIONS, poll: float = POLL) -> tuple[dict[str, str], list[str]]:
    from google.genai import types

    client = kit.gemini
    src = [types.InlinedRequest(contents=q, metadata={"custom_id": f"q{i}"},
                                config=types.GenerateContentConfig(max_output_tokens=60))
           for i, q in enumerate(questions)]
    job = client.batches.create(model=kit.models["gemini"], src=src, config={"display_name": "lesson 11"})
    seen = [job.state.name]
    while not job.done:
        time.sleep(poll)
        job = client.batches.get(name=job.name)
        seen.append(job.state.name)
    answers = {r.metadata["custom_id"]: (r.response.text if r.response else f"error {r.error.code}")
               for r in job.dest.inlined_responses}
    return answers, seen


FLOWS: dict[str, tuple[Callable[..., tuple[dict[str, str], list[str]]], str, str]] = {
    "openai": (openai_flow, "chat", "completed"),
    "anthropic": (anthropic_flow, "messages", "ended"),
    "gemini": (gemini_flow, "generate", "JOB_STATE_SUCCEEDED"),
}


# --- fixtures --------------------------------------------------------------------------------------------
def _isolate(mp: pytest.MonkeyPatch, folder: Path) -> None:
    mp.chdir(folder)  # no stray .env is found from here
    for name in list(os.environ):
        if name.startswith("LLMKIT_") or name.endswith(("_API_KEY", "_BASE_URL")):
            mp.delenv(name)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Each provider's flow recorded once, with the script standing in for the provider."""
    folder = tmp_path_factory.mktemp("batches")
    (folder / "script.py").write_text(SCRIPT)
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, folder)
        for name, (flow, _, _) in FLOWS.items():
            kit = Kit(f"batch_{name}", mode="record", cassette_dir=folder, script=str(folder / "script.py"))
            try:
                results[name] = flow(kit)
            finally:
                kit.close()
    return folder, results


@pytest.fixture
def replay(recorded: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Kit]:
    folder, _ = recorded
    _isolate(monkeypatch, folder)
    kits: list[Kit] = []

    def start(name: str, speed: float = 0) -> Kit:
        kits.append(Kit(f"batch_{name}", mode="replay", cassette_dir=folder, speed=speed))
        return kits[-1]

    yield start
    for kit in kits:
        kit.close()


@pytest.fixture(scope="module")
def simulator() -> Any:
    server = ServerThread(create_app(SimSettings(seed=11, speed=0))).start()
    yield server
    server.stop()


def _scripted_kit(folder: Path, mp: pytest.MonkeyPatch, lesson: str) -> Kit:
    """A kit recording ``lesson`` in ``folder`` with the script standing in for the providers."""
    (folder / "script.py").write_text(SCRIPT)
    _isolate(mp, folder)
    return Kit(lesson, mode="record", cassette_dir=folder, script=str(folder / "script.py"))


def _live_env(mp: pytest.MonkeyPatch, url: str) -> None:
    mp.setenv("OPENAI_API_KEY", "sk-proj-" + "t" * 48)
    mp.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "t" * 48)
    mp.setenv("GEMINI_API_KEY", "AIza" + "t" * 35)
    for provider in FLOWS:
        mp.setenv(f"LLMKIT_UPSTREAM_{provider.upper()}", url)


# --- tests -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FLOWS)
def test_a_scripted_batch_answers_each_request_as_the_script_would_alone(recorded, name: str) -> None:
    folder, results = recorded
    flow, api, final = FLOWS[name]
    answers, seen = results[name]
    assert answers == expected(name, api)
    assert seen[-1] == final and len(seen) >= 3  # created, at least one poll in progress, ended
    data = json.loads((folder / f"batch_{name}.json").read_text())
    assert data["provenance"]["kind"] == "scripted"


@pytest.mark.parametrize("name", FLOWS)
def test_replay_plays_the_batch_back_through_the_sdk(replay, recorded, name: str) -> None:
    _, results = recorded
    kit = replay(name)
    assert FLOWS[name][0](kit) == results[name]
    assert kit.misses == [] and kit.unused() == []


@pytest.mark.parametrize("name", FLOWS)
def test_a_paced_replay_holds_the_end_back_for_the_recorded_run_time(replay, recorded, name: str) -> None:
    folder, results = recorded
    speed = 40.0
    kit = replay(name, speed=speed)
    t0 = time.perf_counter()
    answers, seen = FLOWS[name][0](kit)
    elapsed = time.perf_counter() - t0
    # the scripted batch of 3 requests ran 20 + 3 * 0.5 s: at speed 40 the end cannot be seen before 0.54 s
    assert elapsed >= 21.5 / speed
    assert answers == results[name][0]
    assert len(seen) > len(results[name][1])  # more polls answered "in progress" than were recorded


def test_the_cassette_keeps_anthropics_results_url_and_the_sdk_gets_a_local_one(replay, recorded) -> None:
    folder, _ = recorded
    text = (folder / "batch_anthropic.json").read_text()
    assert '"results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_01' in text
    kit = replay("anthropic")
    client = kit.anthropic
    batch_id = json.loads(text)["interactions"][0]["response"]["body"]["id"]
    url = None
    while url is None:
        url = client.messages.batches.retrieve(batch_id).results_url
    assert url.startswith(kit.server_url + "/v1/messages/batches/")


def test_the_openai_upload_is_matched_whatever_its_multipart_boundary(recorded) -> None:
    folder, _ = recorded
    upload = json.loads((folder / "batch_openai.json").read_text())["interactions"][0]["request"]
    form = upload["body"]["multipart"]
    assert form["purpose"] == "batch"
    assert [line["custom_id"] for line in form["file"]["jsonl"]] == ["q0", "q1", "q2"]
    assert "boundary" not in json.dumps(upload)


def test_parse_multipart_keeps_text_fields_json_lines_text_and_binary_files() -> None:
    import httpx2

    request = httpx2.Request("POST", "http://127.0.0.1/v1/files", data={"purpose": "batch"}, files={
        "a": ("a.jsonl", b'{"x": 1}\n{"x": 2}\n', "application/jsonl"),
        "b": ("b.txt", b"plain text", "text/plain"),
        "c": ("c.bin", bytes([0, 255, 1]), "application/octet-stream")})
    form = parse_multipart(request.read(), request.headers["content-type"])["multipart"]
    assert form["purpose"] == "batch"
    assert form["a"]["jsonl"] == [{"x": 1}, {"x": 2}] and form["a"]["bytes"] == 18
    assert form["b"]["text"] == "plain text"
    assert form["c"]["base64"] == "AP8B"


@pytest.mark.parametrize("name", FLOWS)
def test_a_scripted_batch_reply_the_real_api_could_not_send_fails_the_create(tmp_path, monkeypatch, name) -> None:
    kit = _scripted_kit(tmp_path, monkeypatch, f"bad_{name}")
    try:
        with pytest.raises(Exception) as caught:
            FLOWS[name][0](kit, questions=["fine", "too long please"])
    finally:
        kit.close()
    assert "max" in str(caught.value) and "not marked truncated" in str(caught.value)
    assert type(caught.value).__name__ in ("BadRequestError", "ClientError")


@pytest.mark.parametrize("name", FLOWS)
def test_a_failed_request_inside_a_batch_is_reported_in_the_providers_shape(tmp_path, monkeypatch, name) -> None:
    kit = _scripted_kit(tmp_path, monkeypatch, f"failing_{name}")
    try:
        if name == "openai":  # OpenAI puts failed requests in a separate error file
            client = kit.openai
            line = {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": kit.models["openai"], "messages": [{"role": "user", "content": "unanswerable"}]}}
            upload = client.files.create(file=("q.jsonl", json.dumps(line).encode()), purpose="batch")
            batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            while batch.status != "completed":
                batch = client.batches.retrieve(batch.id)
            assert batch.output_file_id is None and batch.request_counts.failed == 1
            item = json.loads(client.files.content(batch.error_file_id).text)
            assert item["response"]["status_code"] == 400
            assert item["response"]["body"]["error"]["message"] == "This request cannot be answered."
        else:
            answers, _ = FLOWS[name][0](kit, questions=["unanswerable"])
            assert answers == {"q0": "errored" if name == "anthropic" else "error 400"}
    finally:
        kit.close()


def test_an_unknown_batch_id_is_the_providers_not_found_error(tmp_path, monkeypatch) -> None:
    import anthropic
    import openai
    from google.genai import errors

    kit = _scripted_kit(tmp_path, monkeypatch, "unknown")
    try:
        with pytest.raises(openai.NotFoundError):
            kit.openai.batches.retrieve("batch_nosuch")
        with pytest.raises(anthropic.NotFoundError):
            kit.anthropic.messages.batches.retrieve("msgbatch_nosuch")
        with pytest.raises(errors.ClientError) as caught:
            kit.gemini.batches.get(name="batches/nosuch")
        assert caught.value.code == 404
    finally:
        kit.close()


@pytest.mark.parametrize("name", FLOWS)
def test_the_simulator_answers_the_batch_api_live(simulator, tmp_path, monkeypatch, name: str) -> None:
    _isolate(monkeypatch, tmp_path)
    _live_env(monkeypatch, simulator.url)
    kit = Kit("live", mode="live")
    try:
        answers, seen = FLOWS[name][0](kit)
    finally:
        kit.close()
    assert sorted(answers) == ["q0", "q1", "q2"] and all(a.strip() for a in answers.values())
    assert seen[-1] == FLOWS[name][2]


@pytest.mark.parametrize("name", FLOWS)
def test_a_batch_recorded_from_a_live_upstream_replays(simulator, tmp_path, monkeypatch, name: str) -> None:
    _isolate(monkeypatch, tmp_path)
    _live_env(monkeypatch, simulator.url)
    kit = Kit("from_live", mode="record", cassette_dir=tmp_path)
    try:
        live = FLOWS[name][0](kit)
    finally:
        kit.close()
    for var in [v for v in os.environ if v.endswith("_API_KEY")]:
        monkeypatch.delenv(var)
    text = (tmp_path / "from_live.json").read_text()
    assert '"kind": "recorded"' in text and "t" * 30 not in text  # no key in the cassette
    kit = Kit("from_live", mode="replay", cassette_dir=tmp_path, speed=0)
    try:
        assert FLOWS[name][0](kit) == live
        assert kit.misses == []
    finally:
        kit.close()


@pytest.mark.parametrize("name", FLOWS)
def test_the_usage_ledger_counts_each_batch_answer_once_at_the_batch_price(replay, name: str) -> None:
    from dataclasses import replace

    from llmkit.models import BATCH_PRICE_FACTOR

    kit = replay(name)
    FLOWS[name][0](kit)
    records = [r for r in kit.usage.records if r.batch]
    assert len(records) == len(QUESTIONS) == len(kit.usage.records)
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in records)
    for r in records:
        assert r.cost_usd == pytest.approx(BATCH_PRICE_FACTOR[name] * replace(r, batch=False).cost_usd)
    # reading the same results again (a second download, one more poll of an ended Gemini job) adds nothing
    again = kit.http_client().get(kit.server_url + records[-1].endpoint, headers=kit.headers(name))
    assert again.status_code == 200 and len(kit.usage.records) == len(QUESTIONS)
    assert "batch" in kit.usage.df().columns
