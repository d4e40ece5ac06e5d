"""Everything llmkit knows about each provider, one module per provider.

Introduced in lesson 3 (03_function_calling). ``llmkit.chat``, the replay server, the fault injector,
the usage ledger and the lessons' helpers ask this registry instead of branching on a provider's
name::

    from llmkit import providers

    p = providers.get("anthropic")
    p.error_body(429)                       # the body Anthropic sends with a 429
    providers.for_path("/v1/messages")      # <provider anthropic>

Adding a provider means adding one module here (a :class:`Provider` subclass named ``PROVIDER``)
and its name to ``_MODULES``. Provider modules import their SDK only when a client is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llmkit.errors import ConfigError

if TYPE_CHECKING:
    from llmkit.providers._base import Provider

__all__ = ["Provider", "for_path", "get", "names"]

#: Registered providers, in the order lessons list them.
_MODULES = ("openai", "anthropic", "gemini")


def names() -> tuple[str, ...]:
    """The registered provider names. Introduced in lesson 3 (03_function_calling)."""
    return _MODULES


def get(name: str) -> Provider:
    """The provider called ``name``; :class:`~llmkit.errors.ConfigError` for an unknown one.

    Introduced in lesson 3 (03_function_calling).
    """
    if name not in _MODULES:
        raise ConfigError(f"unknown provider {name!r}; choose one of {', '.join(_MODULES)}.")
    return importlib.import_module(f"{__name__}.{name}").PROVIDER


def for_path(path: str) -> Provider | None:
    """The provider an API path (without query string) belongs to, or None.

    Introduced in lesson 0 (00_setup_and_replay): the replay server routes requests with it.
    """
    return next((p for p in map(get, _MODULES) if p.owns_path(path)), None)


def __getattr__(name: str) -> object:
    if name == "Provider":
        from llmkit.providers._base import Provider

        return Provider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
