"""What a suite receives: the report to fill, quick or full sizes, and a progress bar.

Introduced in lesson 10 (10_benchmarks).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._harness import Report


@dataclass
class Context:
    report: Report
    quick: bool = False
    progress: bool = False
    parts: Collection[str] | None = None  # for suites made of parts: run only these (None = all)

    def wants(self, part: str) -> bool:
        """Whether the named part of a suite (e.g. the memory suite's ``"ingestion"``) should run."""
        return self.parts is None or part in self.parts

    def pick(self, *, quick: Any, full: Any) -> Any:
        """The quick or the full size of something (rounds, store sizes)."""
        return quick if self.quick else full

    @contextmanager
    def bar(self, total: int, desc: str) -> Iterator[Any]:
        """A tqdm progress bar on stderr (a no-op bar when progress is off, e.g. in notebooks and tests)."""
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, disable=not self.progress, leave=False, unit="round") as bar:
            yield bar
