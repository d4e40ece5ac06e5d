"""``llmkit doctor``'s live checks: which providers and features the configured upstreams answer.

Introduced in lesson 0 (00_setup_and_replay). With ``LLMKIT_UPSTREAM_<PROVIDER>`` pointing at a local
OpenAI-compatible server (Ollama, vLLM, the llama.cpp server) or at ``llmkit simulate``, this sends one
tiny request per feature and says which lessons' features will work live. Only upstreams set explicitly
are probed: the doctor never calls a provider's own API, which would cost money. Keys are never shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from .doctor import Check
from .models import KEY_VARS, PROVIDERS, models_from_env
from .wire._base import WireRequest

__all__ = ["check_upstreams"]

PROMPT = "Say OK."


def _features() -> dict[str, list[tuple[str, Callable[[str, str], WireRequest]]]]:
    from .providers import _anthropic_wire, _gemini_wire, _openai_wire

    return {
        "openai": [
            ("chat completions", lambda m, k: _openai_wire.chat_request(m, PROMPT, api_key=k, max_tokens=8)),
            ("responses", lambda m, k: _openai_wire.responses_request(m, PROMPT, api_key=k, max_output_tokens=16)),
        ],
        "anthropic": [("messages", lambda m, k: _anthropic_wire.messages_request(m, PROMPT, max_tokens=8, api_key=k))],
        "gemini": [("generateContent", lambda m, k: _gemini_wire.generate_content_request(m, PROMPT, api_key=k))],
    }


def _verdict(status: int | None, error: str) -> tuple[str, bool]:
    """(what the answer means, whether the feature works)."""
    if status is None:
        return f"no answer ({error})", False
    if 200 <= status < 300:
        return "answers", True
    if status in (404, 405, 501):
        return f"missing ({status})", False
    if status in (401, 403):
        return f"refuses the key ({status})", False
    return f"answered {status}", False


def check_upstreams(environ: Mapping[str, str] | None = None, *, timeout: float = 10.0) -> list[Check]:
    """One check per provider whose ``LLMKIT_UPSTREAM_*`` is set: each feature answers, is missing, or fails."""
    import httpx

    env = os.environ if environ is None else environ
    models = models_from_env(env)
    features = _features()
    out: list[Check] = []
    for p in PROVIDERS:
        base = (env.get(f"LLMKIT_UPSTREAM_{p.upper()}") or "").strip().rstrip("/")
        if not base:
            continue
        key = next((env[v] for v in KEY_VARS[p] if env.get(v)), "none")  # local servers often want no key
        found: list[tuple[str, str, bool]] = []
        for feature, build in features[p]:
            req = build(models[p], key)
            status, error = None, ""
            try:
                r = httpx.request(req.method, req.url(base), headers=req.headers, json=req.body, timeout=timeout)
                status = r.status_code
            except httpx.HTTPError as e:
                error = type(e).__name__
            meaning, ok = _verdict(status, error)
            found.append((feature, meaning, ok))
        out.append(_check(p, base, models[p], found))
    return out


def _check(provider: str, base: str, model: str, found: list[tuple[str, str, bool]]) -> Check:
    detail = f"{base} (model {model}): " + ", ".join(f"{f} {m}" for f, m, _ in found)
    working = [f for f, _, ok in found if ok]
    if len(working) == len(found):
        return Check(f"{provider} upstream", True, detail)
    if not working:
        fix = ("start the server, or unset LLMKIT_UPSTREAM_" + provider.upper()
               if all(m.startswith("no answer") for _, m, _ in found) else
               f"check the key and LLMKIT_MODEL_{provider.upper()} (the model id the server knows)")
        return Check(f"{provider} upstream", False, detail, fix)
    missing = ", ".join(f for f, _, ok in found if not ok)
    return Check(f"{provider} upstream", False, detail, f"cells that use {missing} say so and skip in live mode",
                 warning=True)

