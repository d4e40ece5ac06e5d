"""The token ledger behind ``kit.usage`` (lesson 0; lessons 3, 5 and 6 read it).

Every response the kit's clients receive is read for the provider's own usage fields (OpenAI
``usage``, Anthropic ``usage`` in ``message_start``/``message_delta``, Gemini ``usageMetadata``) and
appended here. Nothing is estimated or typed in: if a response carries no usage, nothing is added.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .models import PRICES_PER_MTOK


@dataclass(frozen=True)
class UsageRecord:
    provider: str
    model: str
    endpoint: str
    input_tokens: int
    output_tokens: int
    stream: bool

    @property
    def cost_usd(self) -> float | None:
        price = PRICES_PER_MTOK.get(self.model) or next(
            (p for m, p in PRICES_PER_MTOK.items() if self.model.startswith(m)), None)
        if price is None:
            return None
        return (self.input_tokens * price[0] + self.output_tokens * price[1]) / 1_000_000


def _events(body: bytes) -> list[dict]:
    """JSON objects in a body: one JSON document, a JSON array stream, or SSE ``data:`` lines."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
        return [d for d in (doc if isinstance(doc, list) else [doc]) if isinstance(d, dict)]
    except json.JSONDecodeError:
        pass
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload and payload != "[DONE]":
                try:
                    item = json.loads(payload)
                except json.JSONDecodeError:
                    continue
                if isinstance(item, dict):
                    out.append(item)
    return out


def extract_usage(provider: str, request_body: Any, body: bytes) -> tuple[str, int, int] | None:
    """(model, input tokens, output tokens) from a response body, or None if it reports no usage."""
    from . import providers

    model = (request_body or {}).get("model", "") if isinstance(request_body, dict) else ""
    return providers.get(provider).usage_of(_events(body), model)


class UsageLedger:
    """A thread-safe list of :class:`UsageRecord`, with totals and a DataFrame view."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self._lock = threading.Lock()

    def observe(self, provider: str, endpoint: str, request_body: Any, status: int, body: bytes,
                stream: bool) -> UsageRecord | None:
        if status >= 400 or endpoint.endswith(("count_tokens", ":countTokens")):
            return None
        found = extract_usage(provider, request_body, body)
        if found is None:
            return None
        record = UsageRecord(provider, found[0], endpoint, found[1], found[2], stream)
        with self._lock:
            self.records.append(record)
        return record

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> UsageRecord | None:
        return self.records[-1] if self.records else None

    def totals(self) -> dict[str, int]:
        return {"calls": len(self.records),
                "input_tokens": sum(r.input_tokens for r in self.records),
                "output_tokens": sum(r.output_tokens for r in self.records)}

    def df(self) -> Any:
        """The ledger as a pandas DataFrame (one row per call, with its cost where the price is known)."""
        import pandas as pd

        rows = [{**asdict(r), "cost_usd": r.cost_usd} for r in self.records]
        return pd.DataFrame(rows, columns=["provider", "model", "endpoint", "input_tokens", "output_tokens",
                                           "stream", "cost_usd"])

    def __repr__(self) -> str:
        t = self.totals()
        return f"<UsageLedger {t['calls']} calls, {t['input_tokens']} in / {t['output_tokens']} out tokens>"
