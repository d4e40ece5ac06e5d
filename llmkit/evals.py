"""Evaluating answers, not code (lesson 12, ``12_observability_and_evals``).

Three layers, cheapest first:

- **deterministic checks** (:func:`follows_schema`, :func:`contains`, :func:`lacks`, :func:`matches`): free, exact,
  and blind to anything they were not told to look for;
- **an LLM judge** (:func:`judge_request`, :class:`Judgment`): reads an answer against a reference like a person
  would, but is itself a model whose verdicts must be checked;
- **agreement with people** (:func:`agreement`): Cohen's kappa from scikit-learn, on answers labelled by hand.

Dedicated tools (OpenAI's Evals API, promptfoo, DeepEval, Inspect) add datasets, dashboards and many more
metrics; the ideas are these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["JUDGE_SYSTEM", "Agreement", "Check", "CheckResult", "Judgment", "agreement", "contains", "follows_schema",
           "judge_request", "lacks", "matches", "run_checks"]


@dataclass(frozen=True)
class CheckResult:
    """One check on one answer: its name, whether it passed and, if not, why."""

    check: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """A named, deterministic test of an answer's text."""

    name: str
    test: Callable[[str], str | None]  # None when the answer passes, else what is wrong

    def __call__(self, text: str) -> CheckResult:
        problem = self.test(text)
        return CheckResult(self.name, problem is None, problem or "")


def follows_schema(model: type[BaseModel]) -> Check:
    """The answer is JSON that validates against ``model`` (what a strict schema promises, checked)."""

    def test(text: str) -> str | None:
        try:
            model.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            return f"{'.'.join(map(str, first['loc'])) or 'answer'}: {first['msg']}"
        return None

    return Check(f"schema {model.__name__}", test)


def contains(*phrases: str) -> Check:
    """Every phrase appears in the answer, ignoring case."""

    def test(text: str) -> str | None:
        missing = [p for p in phrases if p.lower() not in text.lower()]
        return f"missing {missing[0]!r}" if missing else None

    return Check("contains " + ", ".join(map(repr, phrases)), test)


def lacks(*phrases: str) -> Check:
    """No phrase appears in the answer, ignoring case."""

    def test(text: str) -> str | None:
        found = [p for p in phrases if p.lower() in text.lower()]
        return f"says {found[0]!r}" if found else None

    return Check("lacks " + ", ".join(map(repr, phrases)), test)


def matches(pattern: str) -> Check:
    """The regular expression ``pattern`` matches somewhere in the answer."""
    compiled = re.compile(pattern)

    def test(text: str) -> str | None:
        return None if compiled.search(text) else f"no match for /{pattern}/"

    return Check(f"matches /{pattern}/", test)


def run_checks(text: str, checks: Sequence[Check]) -> list[CheckResult]:
    """Every check on one answer, in order."""
    return [check(text) for check in checks]


# --- the judge -----------------------------------------------------------------------------------------------
class Judgment(BaseModel):
    """The judge's verdict on one answer, with its reason first so that the verdict follows from it."""

    model_config = ConfigDict(extra="forbid")
    reason: str
    verdict: Literal["pass", "fail"]


JUDGE_SYSTEM = (
    "You grade a customer-support answer against a reference answer written by the support team. "
    "The answer passes if it states the reference's facts correctly, in any words, and adds nothing that "
    "contradicts the reference. It fails if it gets a fact wrong, leaves out what the reference says, or "
    "contradicts it. Give a one-sentence reason, then the verdict.")


def judge_request(model: str, question: str, reference: str, answer: str) -> dict[str, Any]:
    """The keyword arguments of one ``client.chat.completions.parse`` call that grades ``answer``: the SDK turns
    :class:`Judgment` into a strict JSON schema and parses the reply back into it."""
    return {
        "model": model,
        "max_completion_tokens": 200,
        "messages": [{"role": "system", "content": JUDGE_SYSTEM},
                     {"role": "user", "content": f"Question: {question}\nReference: {reference}\nAnswer: {answer}"}],
        "response_format": Judgment,
    }


@dataclass(frozen=True)
class Agreement:
    """How often a judge agrees with people, raw and corrected for chance (Cohen's kappa)."""

    n: int
    rate: float  # fraction of answers where the judge and the person agree
    kappa: float  # 1 perfect, 0 no better than chance
    judge_pass_person_fail: int  # the costly error: a bad answer that the judge lets through
    judge_fail_person_pass: int

    def summary(self) -> str:
        bad, good = self.judge_pass_person_fail, self.judge_fail_person_pass
        return (f"{self.n} answers: agreement {self.rate:.1%}, Cohen's kappa {self.kappa:.2f}; "
                f"{bad} bad {'answer' if bad == 1 else 'answers'} passed, {good} good {'one' if good == 1 else 'ones'} "
                "failed")


def agreement(judge: Sequence[bool], person: Sequence[bool]) -> Agreement:
    """Compare a judge's verdicts (True: pass) with the hand labels of the same answers."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    if len(judge) != len(person) or not judge:
        raise ValueError(f"agreement needs the same non-zero number of verdicts and labels; got {len(judge)} "
                         f"verdicts and {len(person)} labels")
    (_, person_fail_judge_pass), (person_pass_judge_fail, _) = confusion_matrix(person, judge, labels=[False, True])
    agree = sum(j == p for j, p in zip(judge, person, strict=True))
    kappa = float(cohen_kappa_score(person, judge, labels=[False, True]))
    return Agreement(len(judge), agree / len(judge), kappa, int(person_fail_judge_pass), int(person_pass_judge_fail))
