"""The prompt under test in lesson 12 (12_observability_and_evals): Northwind's support answer, as strict JSON.

The lesson and the regression suite beside it (test_support_prompt.py) both import it, so they test one prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmkit.evals import Check, CheckResult, contains, follows_schema, lacks, matches, run_checks

POLICY = (Path(__file__).resolve().parent.parent / "data" / "support_policy.md").read_text()
SYSTEM = ("You answer Northwind's customers using only the support policy below. Answer in one or two sentences, "
          "name the policy section you used, and set escalate to true when the policy sends the case to a human "
          "agent.\n\n" + POLICY)


class SupportAnswer(BaseModel):
    """What the prompt returns: the answer, the section it rests on, and whether a person must take over."""

    model_config = ConfigDict(extra="forbid")
    answer: str
    section: Literal["§1", "§2", "§3", "§4", "§5", "§6"]
    escalate: bool


def ask(client: Any, model: str, question: str) -> Any:
    """One answer: the SDK's parsed completion. Grade ``completion.choices[0].message.content``, the JSON text the
    model sent, which is what a customer's app would receive."""
    return client.chat.completions.parse(
        model=model, max_completion_tokens=300, response_format=SupportAnswer,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])


def field_is(name: str, expected: object) -> Check:
    """The answer's field ``name`` equals ``expected``."""

    def test(text: str) -> str | None:
        actual = getattr(SupportAnswer.model_validate_json(text), name)
        return None if actual == expected else f"{name} is {actual!r}, expected {expected!r}"

    return Check(f"{name} = {expected!r}", test)


def grade(case: dict, raw: str) -> list[CheckResult]:
    """Every check of one case (from data/support_evals.json) on one answer: the schema first, then the rest."""
    schema = follows_schema(SupportAnswer)(raw)
    if not schema.passed:
        return [schema]
    text = SupportAnswer.model_validate_json(raw).answer
    checks = [contains(*case["must_contain"])] if case["must_contain"] else []
    checks += [lacks(*case["must_not_contain"])] if case["must_not_contain"] else []
    checks += [matches(case["pattern"])] if "pattern" in case else []
    return [schema, *run_checks(text, checks), *run_checks(raw, [field_is("section", case["section"]),
                                                              field_is("escalate", case["escalate"])])]
