"""llmkit.bench's lesson-1 tools (01_sdk_vs_http): a replay server in its own process, interleaved timing,
cold starts in fresh interpreters with their own peak memory."""

from __future__ import annotations

import httpx
import pytest
from replay_helpers import OPENAI_CHAT, cassette_of, chat_body, scripted

from llmkit import bench
from llmkit.errors import ConfigError

QUESTION = "ping?"


@pytest.fixture
def cassette_file(tmp_path):
    path = tmp_path / "bench.json"
    cassette_of(scripted("openai", OPENAI_CHAT, chat_body(QUESTION), "pong")).save(path)
    return path


def test_server_runs_in_its_own_process_and_stops(cassette_file) -> None:
    with bench.serve(cassette_file) as server:
        r = httpx.post(server.url + OPENAI_CHAT, json=chat_body(QUESTION))
        assert r.json()["choices"][0]["message"]["content"] == "pong"
        assert server._proc.pid and server._proc.poll() is None
        # repeated requests replay the last recording: a benchmark can ask many times
        assert httpx.post(server.url + OPENAI_CHAT, json=chat_body(QUESTION)).status_code == 200
    assert server._proc.poll() is not None and "stopped" in repr(server)


def test_the_server_names_the_model_ids_its_cassette_holds(cassette_file, monkeypatch) -> None:
    """A live run may override kit.models (a local model); benchmark calls must name the recorded ids."""
    monkeypatch.setenv("LLMKIT_MODEL_OPENAI", "llama3.2")
    with bench.serve(cassette_file) as server:
        assert server.models == {"openai": chat_body(QUESTION)["model"]}
        body = chat_body(QUESTION) | {"model": server.models["openai"]}
        assert httpx.post(server.url + OPENAI_CHAT, json=body).status_code == 200


def test_missing_cassette_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no cassette"):
        bench.serve(tmp_path / "nope.json")


def test_time_calls_interleaves_every_path_once_per_round() -> None:
    order: list[str] = []
    calls = {name: (lambda n=name: order.append(n)) for name in ("a", "b", "c")}
    times = bench.time_calls(calls, rounds=6, warmup=1)
    assert len(times) == 18 and set(times["path"]) == {"a", "b", "c"}
    measured = order[3:]  # after one warm-up round
    rounds = [measured[i:i + 3] for i in range(0, 18, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1, "the order should be shuffled between rounds"
    summary = bench.summarize_calls(times)
    assert list(summary.columns) == ["median_ms", "p10_ms", "p90_ms"]
    assert (summary["p10_ms"] <= summary["median_ms"]).all() and (summary["median_ms"] <= summary["p90_ms"]).all()


def test_cold_start_measures_fresh_processes_not_the_parent(cassette_file) -> None:
    ballast = bytearray(300 * 2**20)  # this process is now >300 MB: the children must not report that
    ballast[::4096] = b"x" * len(ballast[::4096])
    paths = {"httpx": ("import httpx", "text = httpx.post(URL + '/v1/chat/completions', json=BODY)"
                                       ".json()['choices'][0]['message']['content']")}
    with bench.serve(cassette_file) as server:
        df = bench.cold_start(paths, server.url, variables={"BODY": chat_body(QUESTION)}, repeats=2)
    assert list(df.index) == ["python alone", "httpx"]
    assert df.loc["httpx", "text"] == "pong"
    assert df.loc["python alone", "peak_rss_mb"] < 100 < len(ballast) / 2**20
    assert df.loc["httpx", "peak_rss_mb"] > df.loc["python alone", "peak_rss_mb"]
    assert df.loc["httpx", "import_s"] > 0 and df.loc["httpx", "process_s"] > df.loc["httpx", "import_s"]


def test_a_failing_cold_start_reports_the_child_error(cassette_file) -> None:
    with bench.serve(cassette_file) as server, pytest.raises(ConfigError, match="ModuleNotFoundError"):
        bench.cold_start({"bad": ("import no_such_module_here", "text = 1")}, server.url)
