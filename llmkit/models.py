"""Model ids and prices, in one place (lesson 0).

Change a model here and every lesson follows. The scripted cassettes were written for these ids; a
cassette recorded live stores the ids the providers actually received. Everything else about a
provider (endpoints, key variables, wire formats) lives in its module under ``llmkit.providers``;
``UPSTREAMS``, ``KEY_VARS`` and ``PROVIDERS`` below are read from there.

``LLMKIT_MODEL_OPENAI``, ``LLMKIT_MODEL_ANTHROPIC`` and ``LLMKIT_MODEL_GEMINI`` override these ids for
one run (read when a Kit is created, see :func:`models_from_env`); a model without a price below gets
``cost_usd`` None in the usage ledger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import providers

__all__ = ["ANTHROPIC_MODEL", "BATCH_PRICE_FACTOR", "CACHED_PRICES_PER_MTOK", "CACHE_STORAGE_PER_MTOK_HOUR",
           "GEMINI_MODEL", "KEY_VARS", "MODELS", "OPENAI_MODEL", "PRICES_PER_MTOK", "PROVIDERS",
           "UPSTREAMS", "models_from_env"]

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"

MODELS: dict[str, str] = {
    "openai": OPENAI_MODEL,
    "anthropic": ANTHROPIC_MODEL,
    "gemini": GEMINI_MODEL,
}

PROVIDERS: tuple[str, ...] = providers.names()
#: Where each provider lives on the internet (live mode, and record mode's upstream by default).
UPSTREAMS: dict[str, str] = {p: providers.get(p).upstream for p in PROVIDERS}
#: The environment variables that hold each provider's key.
KEY_VARS: dict[str, tuple[str, ...]] = {p: providers.get(p).key_vars for p in PROVIDERS}
#: The environment variables that override each provider's default model id.
MODEL_VARS: dict[str, str] = {p: f"LLMKIT_MODEL_{p.upper()}" for p in PROVIDERS}


def models_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default model id of each provider, with ``LLMKIT_MODEL_<PROVIDER>`` overrides applied.

    Introduced in lesson 0 (00_setup_and_replay): a rehearsal against a local model or a simulator
    (``llmkit simulate``) names its own model ids. A blank value is ignored. A cassette stores the ids
    it was recorded with, so in replay mode an override makes those requests miss.
    """
    env = os.environ if environ is None else environ
    return {p: (env.get(MODEL_VARS[p]) or "").strip() or model for p, model in MODELS.items()}

# List prices in USD per million tokens (input, output), as published when this file was written.
# Check your provider's pricing page and edit here: the ledger multiplies these by real token counts.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),  # lesson 11's large and small models for routing (openai.com/api/pricing)
    "gpt-4.1-nano": (0.10, 0.40),
    "claude-haiku-4-5": (1.00, 5.00),
    "gemini-2.5-flash": (0.30, 2.50),
}

# Cached input, USD per million tokens: (read from the cache, written to it; None = no write charge).
# Sources, read 2026-11-29: openai.com/api/pricing ("Cached input" $0.10 for gpt-4.1-mini; automatic caching
# of prompts of 1024 tokens or more, nothing charged for writing); docs.claude.com prompt caching pricing
# (Claude Haiku 4.5: cache hits $0.10, 5-minute cache writes $1.25, i.e. 0.1x and 1.25x the input price);
# ai.google.dev/gemini-api/docs/pricing (Gemini 2.5 Flash context caching $0.03 per million tokens, plus
# $1.00 per million tokens per hour of storage for explicit caches, which per-call costs leave out).
CACHED_PRICES_PER_MTOK: dict[str, tuple[float, float | None]] = {
    "gpt-4.1-mini": (0.10, None),
    "gpt-4.1": (0.50, None),  # same page: "Cached input" $0.50 for gpt-4.1, $0.025 for gpt-4.1-nano
    "gpt-4.1-nano": (0.025, None),
    "claude-haiku-4-5": (0.10, 1.25),
    "gemini-2.5-flash": (0.03, None),
}

# Batch APIs (lesson 11, 11_cost_and_latency): the share of the list price a request pays inside a batch.
# Sources, read 2026-12-06: platform.openai.com/docs/guides/batch ("a 50% cost discount compared to synchronous
# APIs"); docs.claude.com/en/docs/build-with-claude/batch-processing ("all usage is charged at 50% of the
# standard API prices"); ai.google.dev/gemini-api/docs/batch-mode ("at 50% of the standard cost").
BATCH_PRICE_FACTOR: dict[str, float] = {"openai": 0.5, "anthropic": 0.5, "gemini": 0.5}

# Explicit-cache storage, USD per million cached tokens per hour (Gemini's cachedContents, lesson 6). Per-call
# costs leave it out: it is billed for as long as the cache lives. Source: ai.google.dev/gemini-api/docs/pricing
# (Gemini 2.5 Flash, "Context caching price": $1.00 / 1,000,000 tokens per hour (storage price)).
CACHE_STORAGE_PER_MTOK_HOUR: dict[str, float] = {"gemini-2.5-flash": 1.00}
