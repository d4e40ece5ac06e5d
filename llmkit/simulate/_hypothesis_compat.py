"""Let hypothesis-jsonschema 0.23.1 run on the pinned Hypothesis (lesson 0, ``llmkit simulate``).

hypothesis-jsonschema's object strategy calls ``many.more()``, the loop protocol Hypothesis used until it
moved ``many`` to ``with many(...) as elements: for _ in elements:``. 0.23.1 is the newest release, so
this module gives ``many`` the old method, written on top of the new protocol; it does nothing when
``more`` exists (an older Hypothesis, or a fixed hypothesis-jsonschema).
"""

from __future__ import annotations

from typing import Any


def _more(self: Any) -> bool:
    """One step of the old ``while elements.more():`` loop, driven by the new iterator."""
    steps = self.__dict__.get("_llmkit_steps")
    if steps is None:
        self.__enter__()
        steps = self._llmkit_steps = iter(self)
    try:
        next(steps)
    except StopIteration:
        self.__exit__(None)
        return False
    return True


def install() -> None:
    """Add ``more()`` to ``hypothesis.internal.conjecture.utils.many`` where it is missing."""
    from hypothesis.internal.conjecture import utils

    if not hasattr(utils.many, "more"):
        utils.many.more = _more
