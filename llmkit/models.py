"""Model ids and provider endpoints, in one place (lesson 0).

Change a model here and every lesson follows. The scripted cassettes were written for these ids; a
cassette recorded live stores the ids the providers actually received.
"""

from __future__ import annotations

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"

MODELS: dict[str, str] = {
    "openai": OPENAI_MODEL,
    "anthropic": ANTHROPIC_MODEL,
    "gemini": GEMINI_MODEL,
}

# Where each provider lives on the internet (live mode, and record mode's upstream by default).
UPSTREAMS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}

# The environment variable that holds each provider's key.
KEY_VARS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}

PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini")

# List prices in USD per million tokens (input, output), as published when this file was written.
# Check your provider's pricing page and edit here: the ledger multiplies these by real token counts.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-haiku-4-5": (1.00, 5.00),
    "gemini-2.5-flash": (0.30, 2.50),
}
