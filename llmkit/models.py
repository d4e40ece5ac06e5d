"""Model ids and prices, in one place (lesson 0).

Change a model here and every lesson follows. The scripted cassettes were written for these ids; a
cassette recorded live stores the ids the providers actually received. Everything else about a
provider (endpoints, key variables, wire formats) lives in its module under ``llmkit.providers``;
``UPSTREAMS``, ``KEY_VARS`` and ``PROVIDERS`` below are read from there.
"""

from __future__ import annotations

from . import providers

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

# List prices in USD per million tokens (input, output), as published when this file was written.
# Check your provider's pricing page and edit here: the ledger multiplies these by real token counts.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-haiku-4-5": (1.00, 5.00),
    "gemini-2.5-flash": (0.30, 2.50),
}
