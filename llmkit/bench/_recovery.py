"""Suite ``recovery``: how long a call takes to come back from a 429 with Retry-After.

Introduced in lesson 10 (10_benchmarks), measuring what lesson 8 (08_errors_and_fallbacks) teaches.
The replay server answers the first request with 429 and ``retry-after: R``; the call then succeeds.
Contenders: the SDK's own retries (openai and anthropic retry twice by default and honour the header;
google-genai does not retry unless configured) and ``llmkit.resilience.retry_call`` around an SDK
client built with ``max_retries=0`` (Retry-After as a floor, full jitter on top).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._clients import sdk_call
from ._kits import scripted_kit
from ._suite import Context

if TYPE_CHECKING:
    from ..kit import Kit


def _no_retry_clients(kit: Kit) -> dict[str, Any]:
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    return {"openai": openai.OpenAI(api_key=kit.key("openai"), base_url=kit.base_url("openai"), max_retries=0),
            "anthropic": anthropic.Anthropic(api_key=kit.key("anthropic"), base_url=kit.base_url("anthropic"),
                                             max_retries=0),
            "gemini": genai.Client(api_key=kit.key("gemini"),
                                   http_options=types.HttpOptions(base_url=kit.base_url("gemini")))}


class _Bare:
    """A kit look-alike whose SDK clients do not retry (for :func:`sdk_call`)."""

    def __init__(self, kit: Kit, clients: dict[str, Any]):
        self.models = kit.models
        self.openai, self.anthropic, self.gemini = clients["openai"], clients["anthropic"], clients["gemini"]


def run(ctx: Context) -> None:
    try:
        from .. import resilience
    except ImportError as e:
        ctx.report.skip("recovery", f"llmkit.resilience not available ({e})")
        return
    retry_after = ctx.pick(quick=0.2, full=1.0)
    rounds = ctx.pick(quick=3, full=10)

    def record(kit: Kit) -> None:
        for p in ("openai", "anthropic", "gemini"):
            sdk_call(kit, p)()

    with scripted_kit("bench_recovery", record) as kit:
        bare = _Bare(kit, _no_retry_clients(kit))
        rng = random.Random(0)
        contenders: dict[str, tuple[str, Callable[[], Any]]] = {}
        for p in ("openai", "anthropic", "gemini"):
            contenders[f"{p} SDK retries"] = (p, sdk_call(kit, p))
            call = sdk_call(bare, p)
            contenders[f"{p} + llmkit.resilience"] = (
                p, lambda call=call: resilience.retry_call(call, policy=resilience.BackoffPolicy(), rng=rng))
        for _p, fn in contenders.values():  # warm-up, no fault
            fn()
        times: dict[str, list[float]] = {name: [] for name in contenders}
        failures: dict[str, str] = {}
        with ctx.bar(rounds, "recovery") as bar:
            for _ in range(rounds):
                for name, (p, fn) in contenders.items():
                    if name in failures:
                        continue
                    kit.faults.status(429, provider=p, retry_after=retry_after)
                    t0 = time.perf_counter()
                    try:
                        fn()
                    except Exception as e:  # the SDK gave up: that is the finding
                        failures[name] = f"{type(e).__name__}: {str(e)[:120]}"
                        kit.faults.clear()
                        continue
                    times[name].append((time.perf_counter() - t0) * 1000)
                bar.update(1)
        for name, values in times.items():
            p = contenders[name][0]
            if values:
                ctx.report.add("recovery", f"{p} 429 + Retry-After", name, values, metric="recovery time",
                               baseline=f"{p} + llmkit.resilience", retry_after_ms=retry_after * 1000)
        for name, why in failures.items():
            ctx.report.note("recovery", f"{name}: did not recover ({why})")
            ctx.report.add("recovery", f"{contenders[name][0]} 429 + Retry-After", name, float("nan"),
                           metric="recovery time", baseline=f"{contenders[name][0]} + llmkit.resilience",
                           retry_after_ms=retry_after * 1000, failed=True)
