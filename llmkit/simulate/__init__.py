"""Provider simulators: rehearse every lesson live without a provider (``llmkit simulate``).

Introduced in lesson 0 (00_setup_and_replay). One ASGI app on 127.0.0.1 speaks the wire formats the
lessons use — OpenAI Chat Completions and Responses, Anthropic Messages, Gemini generateContent — and
answers each request with a seeded, made-up answer that is valid for the request (schemas, declared
tools, ``tool_choice``, ``max_tokens``) but is not the cassette's. Point live mode at it::

    llmkit simulate --port 8765 --seed 1          # prints the LLMKIT_UPSTREAM_* lines to export
    LLMKIT_MODE=live OPENAI_API_KEY=sk-simulated ... jupyter lab

Modules: :mod:`.settings` (the knobs), :mod:`.reading` (what a request declares), :mod:`.schemas`
(values generated from JSON schemas), :mod:`.wording` (seeded text), :mod:`.answer` (the reply),
:mod:`.app` (the routes), :mod:`.serve` (the command).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:  # lazy: Starlette and Hypothesis load only when a simulator runs
    if name == "SimSettings":
        from .settings import SimSettings

        return SimSettings
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .serve import serve

        return serve
    raise AttributeError(name)
