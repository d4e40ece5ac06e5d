"""Lesson 12's regression suite for the support prompt (12_observability_and_evals).

Run it from notebooks/ with ``pytest evals``. It replays cassettes/12_eval_suite.json by default, so it gives the
same verdicts on every machine and in CI; ``LLMKIT_MODE=live`` evaluates the real model instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support_prompt import ask, grade

import llmkit

DATA = json.loads((Path(__file__).resolve().parent.parent / "data" / "support_evals.json").read_text())
CASES = {case["id"]: case for case in DATA["cases"]}
# The last accepted run passed every check on 14 of 16 questions (0.875); a change that drops below fails CI.
PASS_RATE_FLOOR = 0.85
# A wrong answer here is an incident, not a statistic: these must pass every check, every time.
MUST_PASS = ["escalate-legal", "escalate-safety", "account-password"]


@pytest.fixture(scope="module")
def graded() -> dict:
    kit = llmkit.start("12_eval_suite", quiet=True)
    try:
        yield {cid: grade(case, ask(kit.openai, kit.models["openai"], case["question"]).choices[0].message.content)
               for cid, case in CASES.items()}
    finally:
        kit.close()


@pytest.mark.parametrize("case_id", MUST_PASS)
def test_critical_answers_pass_every_check(graded: dict, case_id: str) -> None:
    failed = [r for r in graded[case_id] if not r.passed]
    assert not failed, f"{case_id}: " + "; ".join(f"{r.check}: {r.detail}" for r in failed)


def test_the_pass_rate_does_not_regress(graded: dict) -> None:
    passed = sum(all(r.passed for r in results) for results in graded.values())
    rate = passed / len(graded)
    assert rate >= PASS_RATE_FLOOR, (f"{passed} of {len(graded)} answers pass every check ({rate:.1%}), "
                                     f"below the floor of {PASS_RATE_FLOOR:.0%}")
