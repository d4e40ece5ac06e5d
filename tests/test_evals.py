"""llmkit.evals and lesson 12's evaluation (12_observability_and_evals): the deterministic checks, the judge's call
through the official SDK, agreement with hand labels, and the prompt's regression suite replayed from its cassette
(which must fail when a recorded answer gets worse)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel

from llmkit.evals import (
    JUDGE_SYSTEM,
    Check,
    CheckResult,
    Judgment,
    agreement,
    contains,
    follows_schema,
    judge_request,
    lacks,
    matches,
    run_checks,
)
from llmkit.replay.server import ServerThread
from llmkit.simulate.app import create_app
from llmkit.simulate.settings import SimSettings

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
DATA = json.loads((NOTEBOOKS / "data" / "support_evals.json").read_text())


class Order(BaseModel):
    order_id: str
    total: float


def test_each_check_passes_the_right_answer_and_names_what_is_wrong_with_the_other() -> None:
    assert contains("30 days", "Receipt")("Within 30 days, with the receipt.") == CheckResult(
        "contains '30 days', 'Receipt'", True, "")
    assert contains("store credit")("A full refund.").detail == "missing 'store credit'"
    assert lacks("password")("Use the emailed link.").passed
    assert lacks("password")("Tell us your Password.").detail == "says 'password'"
    assert matches(r"NW-\d{6}")("Order NW-104233 shipped.").passed
    assert not matches(r"NW-\d{6}")("Order NW-1042 shipped.").passed
    assert follows_schema(Order)('{"order_id": "NW-1", "total": 9.5}').passed
    bad = follows_schema(Order)('{"order_id": "NW-1", "total": "lots"}')
    assert not bad.passed and bad.detail.startswith("total:")
    assert not follows_schema(Order)("not json").passed


def test_run_checks_keeps_the_order_and_a_custom_check_is_a_name_and_a_function() -> None:
    short = Check("at most 3 words", lambda text: None if len(text.split()) <= 3 else "too long")
    results = run_checks("Yes, within 30 days.", [contains("30"), short, lacks("no")])
    assert [(r.check, r.passed) for r in results] == [("contains '30'", True), ("at most 3 words", False),
                                                      ("lacks 'no'", True)]


def test_agreement_counts_both_kinds_of_error_and_corrects_for_chance() -> None:
    judge = [True, True, True, False, False, True, True, True]
    person = [True, True, False, False, True, True, True, True]
    got = agreement(judge, person)
    # p_o = 6/8; p_e = P(judge pass) P(person pass) + P(judge fail) P(person fail) = 6/8*6/8 + 2/8*2/8 = 40/64
    assert got.rate == 0.75 and got.kappa == pytest.approx((0.75 - 40 / 64) / (1 - 40 / 64))
    assert (got.judge_pass_person_fail, got.judge_fail_person_pass) == (1, 1)
    assert agreement([True, False], [True, False]).kappa == 1.0
    assert "1 bad answer passed, 1 good one failed" in got.summary()
    with pytest.raises(ValueError, match="same non-zero number"):
        agreement([True], [True, False])


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    thread = ServerThread(create_app(SimSettings(speed=0, seed=4))).start()
    yield thread.url
    thread.stop()


def test_the_judge_call_is_a_strict_schema_that_the_sdk_parses_back(simulator: str) -> None:
    client = openai.OpenAI(api_key="sk-simulated", base_url=f"{simulator}/v1")
    request = judge_request("gpt-4.1-mini", "Do you ship to Japan?", "No.", "We ship worldwide.")
    assert request["messages"][0]["content"] == JUDGE_SYSTEM and request["response_format"] is Judgment
    parsed = client.chat.completions.parse(**request).choices[0].message.parsed
    assert isinstance(parsed, Judgment) and parsed.verdict in ("pass", "fail")
    assert list(Judgment.model_json_schema()["properties"]) == ["reason", "verdict"]  # the reason comes first


def _lesson_script():
    spec = importlib.util.spec_from_file_location(
        "lesson12_script", NOTEBOOKS / "cassettes" / "scripts" / "12_observability_and_evals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripted_judge_is_a_rule_that_disagrees_with_people_not_a_copy_of_their_labels() -> None:
    script = _lesson_script()
    items = DATA["judge_set"]
    got = agreement([script.judge(i["reference"], i["answer"])[0] == "pass" for i in items],
                    [i["human"] == "pass" for i in items])
    assert 0.6 < got.rate < 1.0 and got.judge_pass_person_fail >= 1 and got.judge_fail_person_pass >= 1
    assert script.judge("30 days.", "up to a month")[0] == "fail"  # strict with paraphrase
    assert script.judge("Codes expire after 10 minutes.", "Codes last 10 hours.")[0] == "fail"


def _run_suite(cassettes: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMKIT_")}
    env |= {"LLMKIT_MODE": "replay", "LLMKIT_SPEED": "0", "LLMKIT_CASSETTES": str(cassettes)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider", "evals"],
                          cwd=NOTEBOOKS, env=env, capture_output=True, text=True, timeout=120)


def test_the_regression_suite_passes_on_its_cassette_and_fails_when_an_answer_gets_worse(tmp_path: Path) -> None:
    good = _run_suite(NOTEBOOKS / "cassettes")
    assert good.returncode == 0, good.stdout[-2000:]
    assert "4 passed" in good.stdout

    cassette = json.loads((NOTEBOOKS / "cassettes" / "12_eval_suite.json").read_text())
    for interaction in cassette["interactions"]:
        message = interaction["response"]["body"]["choices"][0]["message"]
        answer = json.loads(message["content"])
        if answer["escalate"]:  # the legal threat and the smoking heater are no longer escalated
            message["content"] = json.dumps(answer | {"escalate": False})
    (tmp_path / "12_eval_suite.json").write_text(json.dumps(cassette))
    bad = _run_suite(tmp_path)
    assert bad.returncode == 1
    assert "escalate-legal: escalate = True: escalate is False, expected True" in bad.stdout
    assert "12 of 16 answers pass every check (75.0%), below the floor of 85%" in bad.stdout
    assert "3 failed, 1 passed" in bad.stdout  # both escalations, and the pass rate
