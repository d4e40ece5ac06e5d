"""Live mode against a server without some APIs: cells say so in one line, and the lesson goes on.

Lesson 0 (00_setup_and_replay) introduces ``llmkit.feature_guard``. A real IPython shell runs the cells; a live
kit talks to ``llmkit simulate --profile chat-completions-only`` on a loopback port, which answers Chat
Completions like an OpenAI-compatible local server and 404s the Responses, Messages and Gemini APIs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from llmkit import feature_guard
from llmkit.replay.server import ServerThread
from llmkit.simulate.app import create_app
from llmkit.simulate.settings import SimSettings


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    thread = ServerThread(create_app(SimSettings(seed=3, speed=0, profile="chat-completions-only"))).start()
    yield thread.url
    thread.stop()


@pytest.fixture
def shell(local_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    for name, value in {"LLMKIT_MODE": "live", "OPENAI_API_KEY": "ollama", "ANTHROPIC_API_KEY": "unused",
                        "GEMINI_API_KEY": "unused", "LLMKIT_UPSTREAM_OPENAI": local_url,
                        "LLMKIT_UPSTREAM_ANTHROPIC": local_url, "LLMKIT_UPSTREAM_GEMINI": local_url,
                        "LLMKIT_MODEL_OPENAI": "llama3.2"}.items():
        monkeypatch.setenv(name, value)
    main_module = sys.modules["__main__"]  # IPython swaps in its own, which multiprocessing cannot spawn from
    ip = InteractiveShell.instance()
    before = list(ip.ast_transformers)
    ran = ip.run_cell("import llmkit\nkit = llmkit.start('00_setup_and_replay', quiet=True)")
    assert ran.success, ran.error_in_exec
    capsys.readouterr()
    yield ip
    ip.run_cell("kit.close()")
    ip.ast_transformers[:] = before
    ip.events.unregister("pre_run_cell", feature_guard.current().arm)
    feature_guard._guard = None
    ip.reset()
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main_module


def run(ip: Any, source: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    result = ip.run_cell(source)
    return result, capsys.readouterr().out


def test_a_cell_needing_a_missing_api_prints_one_line_and_ends_normally(shell: Any, capsys: Any) -> None:
    result, out = run(shell, "import json\nreply = kit.openai.responses.create(model=kit.models['openai'], "
                             "input='Hi')\ntext = reply.output_text", capsys)
    assert result.success and result.error_in_exec is None
    assert out.count("\n") == 1 and out.startswith("Skipped: this cell needs the Responses API (openai)")
    assert "(404)" in out and "llmkit doctor" in out and "Traceback" not in out
    assert set(feature_guard.current().unusable) == {"reply", "text"}  # `json` was imported before the failure


def test_a_later_cell_reading_its_names_is_skipped_and_a_rebinding_cell_frees_them(shell: Any, capsys: Any) -> None:
    run(shell, "reply = w = kit.anthropic.messages.create(model=kit.models['anthropic'], max_tokens=20, "
               "messages=[{'role': 'user', 'content': 'Hi'}])", capsys)
    result, out = run(shell, "n = 3\nwords = [w for w in reply.content[0].text.split()][:n]\nlen(words)", capsys)
    assert result.success and out.startswith("Skipped: this cell uses `reply`, which an earlier cell could not make.")
    assert "the Messages API (anthropic)" in out
    assert shell.user_ns["n"] == 3  # the statements before the first use ran
    assert "words" in feature_guard.current().unusable  # what the skipped statements would have made is unusable
    assert "w" in feature_guard.current().unusable
    result, out = run(shell, "sorted(len(w) for w in ['ab', 'c'])", capsys)  # this `w` is the generator's own
    assert result.result == [1, 2] and "Skipped" not in out

    chat = ("reply = kit.openai.chat.completions.create(model=kit.models['openai'], "
            "messages=[{'role': 'user', 'content': 'Hi'}])\nreply.choices[0].message.content")
    result, out = run(shell, chat, capsys)
    assert result.success and isinstance(result.result, str) and result.result  # the last expression is shown
    assert "reply" not in feature_guard.current().unusable and "Skipped" not in out


def test_raw_http_to_a_missing_path_is_recognised_from_the_exception(shell: Any, capsys: Any) -> None:
    source = ("import httpx2\n"
              "r = httpx2.post(kit.base_url('gemini') + '/v1beta/models/' + kit.models['gemini'] + ':generateContent',"
              " headers={'x-goog-api-key': kit.key('gemini')}, json={'contents': [{'parts': [{'text': 'Hi'}]}]})\n"
              "r.raise_for_status()")
    result, out = run(shell, source, capsys)
    assert result.success and out.startswith("Skipped: this cell needs generateContent (gemini)")


def test_a_provider_without_a_key_is_skipped_with_the_variable_to_set(shell: Any, capsys: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    run(shell, "kit = llmkit.start('00_setup_and_replay', quiet=True)", capsys)
    result, out = run(shell, "result = kit.gemini.models.generate_content(model=kit.models['gemini'], contents='Hi')",
                      capsys)
    assert result.success
    assert out.startswith("Skipped: this cell calls gemini, and no API key for gemini in live mode: set GEMINI_API_KEY")
    assert "result" in feature_guard.current().unusable


def test_an_unrelated_error_still_fails_the_cell_with_its_traceback(shell: Any, capsys: Any) -> None:
    result = shell.run_cell("x = 1\n1 / 0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "x" not in feature_guard.current().unusable


def test_after_a_skip_an_error_from_a_hidden_dependency_names_itself_and_the_skip(shell: Any, capsys: Any) -> None:
    """kit.usage, a file, a dict an earlier cell filled: dependencies names cannot show end in one line too."""
    run(shell, "calls = {}\ncalls['anthropic'] = kit.anthropic.messages.create(model=kit.models['anthropic'], "
               "max_tokens=20, messages=[{'role': 'user', 'content': 'Hi'}])", capsys)
    result, out = run(shell, "first = calls['anthropic']\nafter = 1", capsys)
    assert result.success and out.count("\n") == 1
    assert out.startswith("Skipped: this cell stopped at KeyError: 'anthropic'; it reads `calls`, which an earlier")
    assert "the Messages API (anthropic)" in out
    assert {"first", "after"} <= set(feature_guard.current().unusable)
    result, out = run(shell, "2 + 2", capsys)
    assert result.result == 4 and "Skipped" not in out
    # the usage ledger lacks the skipped call, and so does what a later cell computes from it
    result, out = run(shell, "ledger = kit.usage.df()\nrows = len(ledger)", capsys)
    assert result.success and "Skipped" not in out and "ledger" in feature_guard.current().tainted
    result, out = run(shell, "assert rows > 100, rows", capsys)
    assert result.success and out.startswith("Skipped: this cell stopped at AssertionError") and "`rows`" in out
    # a cell that reads nothing tainted fails as usual: a wrong check is a real error
    result = shell.run_cell("z = 1\nassert z == 2")
    assert isinstance(result.error_in_exec, AssertionError)


def test_code_a_magic_compiles_inside_the_cell_is_not_wrapped_again(shell: Any, capsys: Any) -> None:
    result, out = run(shell, "%timeit -n1 -r1 sum(range(3))", capsys)
    assert result.success and "loop" in out


def test_a_404_naming_the_model_asks_for_another_model() -> None:
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1:11434/v1/chat/completions", json={"model": "llama3"})
    body = b'{"error":{"message":"model \\"llama3\\" not found, try pulling it first"}}'
    found = feature_guard.classify_response(404, str(request.url), request, body,
                                            {"openai": "http://127.0.0.1:11434"})
    assert found is not None and found.model == "llama3" and found.api == "Chat Completions"
    assert "LLMKIT_MODEL_OPENAI" in found.explain() and "does not know the model 'llama3'" in found.explain()
    assert feature_guard.classify_response(404, "http://elsewhere:1/v1/chat/completions", request, body,
                                           {"openai": "http://127.0.0.1:11434"}) is None
    assert feature_guard.classify_response(500, str(request.url), request, body,
                                           {"openai": "http://127.0.0.1:11434"}) is None


def test_a_replay_kit_installs_no_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmkit

    monkeypatch.setenv("LLMKIT_MODE", "replay")
    main_module = sys.modules["__main__"]  # IPython swaps in its own, which multiprocessing cannot spawn from
    ip = InteractiveShell.instance()
    before = list(ip.ast_transformers)
    try:
        ip.run_cell("import llmkit\nkit = llmkit.start('00_setup_and_replay', quiet=True)\nkit.close()")
        assert ip.ast_transformers == before and feature_guard.current() is None
        assert llmkit  # imported for the shell's sake too
    finally:
        ip.reset()
        InteractiveShell.clear_instance()
        sys.modules["__main__"] = main_module


def test_a_with_or_for_target_is_bound_before_its_body_reads_it(shell: Any, capsys: Any) -> None:
    run(shell, "import httpx2\nwith httpx2.Client() as client:\n"
               "    client.post(kit.base_url('anthropic') + '/v1/messages', json={}).raise_for_status()", capsys)
    assert "client" in feature_guard.current().unusable
    result, out = run(shell, "with httpx2.Client() as client:\n    status = client.get(kit.base_url('openai') "
                             "+ '/models').status_code\nfor client in [1]:\n    client + 1", capsys)
    assert "Skipped" not in out and isinstance(shell.user_ns["status"], int)
    assert "client" not in feature_guard.current().unusable


def test_a_raw_response_read_without_raise_for_status_is_recognised(shell: Any, capsys: Any) -> None:
    """``r = client.post(...)`` then ``r.json()["content"]``: a KeyError, but the 404 the cell stored says why."""
    result, out = run(shell, "import httpx2\nwith httpx2.Client() as client:\n"
                             "    r = client.post(kit.base_url('anthropic') + '/v1/messages', json={})\n"
                             "    text = r.json()['content'][0]['text']", capsys)
    assert result.success and out.startswith("Skipped: this cell needs the Messages API (anthropic)")
