"""The token ledger behind ``kit.usage`` (lesson 0; lessons 3, 5 and 6 read it).

Every response the kit's clients receive is read for the provider's own usage fields (OpenAI
``usage``, Anthropic ``usage`` in ``message_start``/``message_delta``, Gemini ``usageMetadata``) and
appended here. Nothing is estimated or typed in: if a response carries no usage, nothing is added.

Prompt caching (lesson 6, 06_conversations): ``input_tokens`` counts every prompt token, and
``cached_tokens`` / ``cache_write_tokens`` say how many of them were read from / written to the
provider's cache; ``cost_usd`` prices those at the cached rates of ``llmkit.models.CACHED_PRICES_PER_MTOK``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .models import BATCH_PRICE_FACTOR, CACHE_STORAGE_PER_MTOK_HOUR, CACHED_PRICES_PER_MTOK, PRICES_PER_MTOK


def _price(table: dict[str, Any], model: str) -> Any:
    """The entry for ``model``, or for the longest id it starts with (a dated snapshot of a listed model)."""
    if model in table:
        return table[model]
    return next((table[m] for m in sorted(table, key=len, reverse=True) if model.startswith(m)), None)


@dataclass(frozen=True)
class UsageRecord:
    provider: str
    model: str
    endpoint: str
    input_tokens: int
    output_tokens: int
    stream: bool
    cached_tokens: int = 0  # of input_tokens: read from the prompt cache
    cache_write_tokens: int = 0  # of input_tokens: written to the prompt cache (Anthropic)
    batch: bool = False  # answered inside a batch (lesson 11): priced at BATCH_PRICE_FACTOR of the list price

    @property
    def cost_usd(self) -> float | None:
        """List price of the call: uncached input, cache reads and writes, and output at their own rates,
        times the provider's batch discount for a request answered in a batch."""
        price = _price(PRICES_PER_MTOK, self.model)
        if price is None:
            return None
        read_price, write_price = _price(CACHED_PRICES_PER_MTOK, self.model) or (price[0], None)
        fresh = self.input_tokens - self.cached_tokens - self.cache_write_tokens
        factor = BATCH_PRICE_FACTOR.get(self.provider, 1.0) if self.batch else 1.0
        return factor * (fresh * price[0] + self.cached_tokens * read_price
                         + self.cache_write_tokens * (price[0] if write_price is None else write_price)
                         + self.output_tokens * price[1]) / 1_000_000

    @property
    def uncached_cost_usd(self) -> float | None:
        """What the call would have cost with no prompt cache (every input token at the input price)."""
        price = _price(PRICES_PER_MTOK, self.model)
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


def extract_cache_usage(provider: str, body: bytes) -> tuple[int, int]:
    """(input tokens read from the prompt cache, written to it) from a response body (lesson 6)."""
    from . import providers

    return providers.get(provider).cache_usage_of(_events(body))


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
        self._batches: set[tuple[str, str]] = set()  # (provider, batch or file id) whose results were counted

    def observe(self, provider: str, endpoint: str, request_body: Any, status: int, body: bytes,
                stream: bool) -> UsageRecord | None:
        if status >= 400 or endpoint.endswith(("count_tokens", ":countTokens", "/input_tokens")):
            return None
        from . import providers

        batch = providers.get(provider).batch_results(endpoint, body) if provider else None
        if batch is not None:
            return self._observe_batch(provider, endpoint, *batch)
        found = extract_usage(provider, request_body, body)
        if found is None:
            return None
        cached, written = extract_cache_usage(provider, body)
        record = UsageRecord(provider, found[0], endpoint, found[1], found[2], stream, cached, written)
        with self._lock:
            self.records.append(record)
        return record

    def _observe_batch(self, provider: str, endpoint: str, source: str, bodies: list[dict]) -> UsageRecord | None:
        """One record per answered request in a batch's results, counted once per batch (lesson 11)."""
        from . import providers

        with self._lock:
            if (provider, source) in self._batches:
                return None
            self._batches.add((provider, source))
        p, record = providers.get(provider), None
        for body in bodies:
            found = p.usage_of([body], str(body.get("model", "")))
            if found is not None:
                cached, written = p.cache_usage_of([body])
                record = UsageRecord(provider, found[0], endpoint, found[1], found[2], False, cached, written,
                                     batch=True)
                with self._lock:
                    self.records.append(record)
        return record

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self._batches.clear()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> UsageRecord | None:
        return self.records[-1] if self.records else None

    def totals(self) -> dict[str, int]:
        return {"calls": len(self.records),
                "input_tokens": sum(r.input_tokens for r in self.records),
                "cached_tokens": sum(r.cached_tokens for r in self.records),
                "output_tokens": sum(r.output_tokens for r in self.records)}

    @staticmethod
    def cache_storage_cost_usd(model: str, tokens: int, seconds: float) -> float | None:
        """What keeping ``tokens`` in an explicit cache of ``model`` for ``seconds`` costs, at the hourly
        storage price (lesson 6, 06_conversations); None where no storage price is listed."""
        price = _price(CACHE_STORAGE_PER_MTOK_HOUR, model.removeprefix("models/"))
        return None if price is None else tokens * price / 1_000_000 * seconds / 3600

    def df(self, *, cache: bool = False) -> Any:
        """The ledger as a pandas DataFrame (one row per call, with its cost where the price is known);
        ``cache=True`` adds the prompt-cache columns and the cost without the cache (lesson 6)."""
        import pandas as pd

        rows = [{**asdict(r), "cost_usd": r.cost_usd, "uncached_cost_usd": r.uncached_cost_usd}
                for r in self.records]
        columns = ["provider", "model", "endpoint", "input_tokens", "output_tokens", "stream", "cost_usd"]
        if any(r.batch for r in self.records):
            columns.insert(6, "batch")
        if cache:
            columns[4:4] = ["cached_tokens", "cache_write_tokens"]
            columns.append("uncached_cost_usd")
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        t = self.totals()
        return f"<UsageLedger {t['calls']} calls, {t['input_tokens']} in / {t['output_tokens']} out tokens>"
