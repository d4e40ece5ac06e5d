"""llmkit.conversation (lesson 6): every request stays under the budget, summaries replace exactly the
turns they cover (written by a real model call through the replay server), and sessions round-trip."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from llmkit import chat
from llmkit.conversation import BudgetError, Conversation, local_count
from llmkit.events import ToolCallComplete
from llmkit.kit import Kit

SCRIPT = '''
from llmkit.replay.scripted import Reply

def reply(req):
    body = req.body or {}
    system = json.dumps(body.get("system") or body.get("systemInstruction") or "")
    if "Summarise the conversation" in system:
        return Reply(text="SUMMARY: the user said " + req.last_user_text()[-60:].replace("\\\\n", " "))
    return Reply(text="Noted, and here is a fairly long answer about: " + req.last_user_text()[:80])
'''.replace("from llmkit", "import json\nfrom llmkit", 1)

FACTS = [f"Fact number {i}: my favourite {thing} is {value}, please remember it for later."
         for i, (thing, value) in enumerate([("colour", "teal"), ("city", "Lyon"), ("tree", "oak"),
                                             ("river", "Rhone"), ("number", "42"), ("bird", "wren"),
                                             ("food", "leek pie"), ("tool", "awl")])]


class Seen(list):
    """(path, request body, response body) as the replay server saw them."""

    def settle(self, path_end: str, n: int) -> None:
        """Wait until ``n`` requests to ``path_end`` were observed (observers run after the response)."""
        deadline = time.monotonic() + 5
        while sum(p.endswith(path_end) for p, _, _ in list(self)) < n and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.fixture
def kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMKIT_SPEED", "0")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    k = Kit("conv_test", mode="record", script=str(script), cassette_dir=tmp_path)
    k.seen = Seen()
    k.app.observers.append(lambda ex: k.seen.append((ex.path, ex.request_body, json.loads(ex.body or b"null"))))
    yield k
    k.close()


def test_without_a_policy_every_turn_resends_everything(kit) -> None:
    conv = Conversation(kit, "openai", system="Be brief.", policy="none")
    for fact in FACTS[:4]:
        conv.send(fact)
    sizes = [s.sent_messages for s in conv.stats]
    assert sizes == [1, 3, 5, 7]
    billed = [s.input_tokens for s in conv.stats]
    assert all(a < b for a, b in zip(billed, billed[1:], strict=False))  # provider-reported usage grows


@pytest.mark.parametrize("policy", ["sliding", "pinned"])
def test_openai_requests_stay_under_budget(kit, policy: str) -> None:
    budget = 160
    conv = Conversation(kit, "openai", system="Be brief.", budget=budget, policy=policy)
    for fact in FACTS:
        conv.send(fact)
    kit.seen.settle("/chat/completions", len(FACTS))
    chats = [body for path, body, _ in kit.seen if path.endswith("/chat/completions")]
    assert len(chats) == len(FACTS)
    for body in chats:
        # recount what actually reached the server with the documented estimate, independently
        est = 3 + sum(4 + math.ceil(len(m["content"] or "") / 4) for m in body["messages"])
        assert est <= budget
    assert conv.stats[-1].dropped > 0  # the budget really forced trimming
    if policy == "pinned":
        for body in chats:
            assert body["messages"][1]["content"] == FACTS[0]  # the first turn is always sent
    else:
        assert chats[-1]["messages"][1]["content"] != FACTS[0]


def test_openai_counts_with_responses_input_tokens_before_every_request(kit) -> None:
    """OpenAI has a counting endpoint (``responses.input_tokens.count``, openai 3.57): the conversation
    counts the very messages it then sends with Chat Completions."""
    budget = 200
    conv = Conversation(kit, "openai", system="Be brief.", budget=budget, policy="sliding")
    for fact in FACTS[:5]:
        conv.send(fact)
    kit.seen.settle("/chat/completions", 5)
    last_count: tuple[list, int] | None = None
    sends = 0
    for path, body, answer in kit.seen:
        if path.endswith("/responses/input_tokens"):
            assert answer["object"] == "response.input_tokens"
            last_count = (body["input"], answer["input_tokens"])
            assert body["instructions"] == "Be brief."
        elif path.endswith("/chat/completions"):
            sends += 1
            assert last_count is not None, "every request is counted before it is sent"
            counted_input, tokens = last_count
            sent = [{"role": m["role"], "content": m["content"]} for m in body["messages"][1:]]
            assert counted_input == sent
            assert tokens <= budget
    assert sends == 5 and all(s.counted_tokens <= budget for s in conv.stats)
    assert [r.endpoint for r in kit.usage.records].count("/v1/responses/input_tokens") == 0  # not billed


def test_anthropic_counts_with_count_tokens_and_never_sends_more_than_counted(kit) -> None:
    budget = 300
    conv = Conversation(kit, "anthropic", system="Be brief.", budget=budget, policy="sliding")
    for fact in FACTS:
        conv.send(fact)
    kit.seen.settle("/v1/messages", len(FACTS))
    last_count: tuple[dict, int] | None = None
    sends = 0
    for path, body, answer in kit.seen:
        if path.endswith("/count_tokens"):
            last_count = ({"messages": body["messages"], "system": body.get("system")}, answer["input_tokens"])
        elif path.endswith("/v1/messages"):
            sends += 1
            assert last_count is not None, "every request is counted before it is sent"
            counted, tokens = last_count
            assert counted == {"messages": body["messages"], "system": body.get("system")}
            assert tokens <= budget
    assert sends == len(FACTS) and conv.stats[-1].dropped > 0


def test_summary_replaces_exactly_the_turns_it_summarises(kit) -> None:
    conv = Conversation(kit, "gemini", system="Be brief.", budget=260, policy="summarize", keep_recent=1,
                        counter=local_count)
    before_start, folded_log = 0, []
    for fact in FACTS:
        conv.send(fact)
        if conv.summarized and conv.start != before_start:
            folded_log.append(conv.history[before_start:conv.start])
            before_start = conv.start
    assert folded_log, "the budget should have forced at least one summary"
    assert all(s.counted_tokens <= 260 for s in conv.stats)
    kit.seen.settle(":generateContent", len(FACTS) + len(folded_log))
    summary_calls = [body for path, body, _ in kit.seen
                     if "generateContent" in path and "Summarise" in json.dumps(body.get("systemInstruction"))]
    assert len(summary_calls) == len(folded_log)
    for body, folded in zip(summary_calls, folded_log, strict=True):
        prompt = body["contents"][0]["parts"][0]["text"]
        new_part = prompt.split("New turns:\n", 1)[1]
        for m in folded:
            assert m["content"] in new_part  # every summarised turn is in the summary request
        for m in conv.history:
            if m not in folded and m["role"] == "user":
                assert m["content"] not in new_part  # and nothing else
    assert conv.summarized == conv.start  # the summary covers exactly the turns no longer sent
    assert conv.window() == conv.history[conv.start:]
    assert conv.summary.startswith("SUMMARY:") and conv.summary in conv.effective_system()
    last = [body for path, body, _ in kit.seen if "generateContent" in path][-1]
    assert conv.summary in json.dumps(last["systemInstruction"])  # the model sees the summary


def test_a_message_too_big_for_the_budget_is_refused(kit) -> None:
    conv = Conversation(kit, "openai", budget=20, policy="sliding")
    with pytest.raises(BudgetError, match="raise the budget"):
        conv.send("word " * 200)


def test_policies_need_a_budget_and_a_known_name(kit) -> None:
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a budget"):
        Conversation(kit, "openai", policy="sliding")
    with pytest.raises(ConfigError, match="unknown policy"):
        Conversation(kit, "openai", policy="fifo", budget=100)


def test_save_and_load_round_trip(kit, tmp_path: Path) -> None:
    from llmkit import multimodal as mm

    conv = Conversation(kit, "openai", system="Be brief.", budget=400, policy="pinned", pin_turns=1)
    for fact in FACTS[:5]:
        conv.send(fact)
    from PIL import Image

    image = mm.image_part(Image.new("RGB", (8, 8), "red"))
    conv.history.append(chat.user([image, mm.text_part("and this picture")]))
    conv.history.append(chat.assistant("", [ToolCallComplete(0, "call_1", "lookup", '{"q": "x"}')]))
    conv.history.append({"role": "tool", "tool_call_id": "call_1", "name": "lookup", "content": "42",
                         "is_error": False})
    path = conv.save(tmp_path / "chat.json")
    assert not list(tmp_path.glob(".chat.json.*"))  # no temp file left behind
    again = Conversation.load(path, kit)
    assert again.history == conv.history  # bytes, tool calls and all
    assert again.to_dict() == conv.to_dict()
    assert again.provider_messages() == conv.provider_messages()
    assert again.stats == conv.stats


def test_load_reports_missing_or_foreign_files(kit, tmp_path: Path) -> None:
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="save one"):
        Conversation.load(tmp_path / "nope.json", kit)
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not an llmkit conversation"):
        Conversation.load(tmp_path / "x.json", kit)


def test_every_policy_is_known_and_provider_count_asks_the_provider(kit) -> None:
    from llmkit.conversation import POLICIES, provider_count

    assert {Conversation(kit, "anthropic", policy=p, budget=1000).policy for p in POLICIES} == set(POLICIES)
    conv = Conversation(kit, "gemini", system="Be brief.", budget=1000)
    conv.history.append(chat.user("hello there"))
    n = provider_count(conv, conv.system, conv.window())
    kit.seen.settle(":countTokens", 1)
    answers = [a for p, _, a in kit.seen if p.endswith(":countTokens")]
    assert answers and n == answers[-1]["totalTokens"]
