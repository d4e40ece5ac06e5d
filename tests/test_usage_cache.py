"""Prompt-cache usage in ``kit.usage`` (lesson 6, 06_conversations): each provider's cache fields, as the
official SDKs receive them from the replay server, reach the ledger, and cached tokens are priced at the
providers' cached rates (``llmkit.models.CACHED_PRICES_PER_MTOK``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmkit.kit import Kit
from llmkit.models import CACHED_PRICES_PER_MTOK, PRICES_PER_MTOK
from llmkit.usage import UsageRecord

SCRIPT = '''
from llmkit.replay.scripted import Reply

def reply(req):
    if req.api in ("count_tokens", "count_gemini"):
        return Reply(input_tokens=2100)
    return Reply(text="ok", input_tokens=2100, output_tokens=10, cached_tokens=2048)
'''
ANTHROPIC_WRITE = '''
from llmkit.replay.scripted import Reply

def reply(req):
    first = "again" not in req.last_user_text()
    return Reply(text="ok", input_tokens=5000, output_tokens=10,
                 cache_write_tokens=4500 if first else 0, cached_tokens=0 if first else 4500)
'''


@pytest.fixture
def make_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMKIT_SPEED", "0")
    kits: list[Kit] = []

    def make(script: str) -> Kit:
        path = tmp_path / f"script{len(kits)}.py"
        path.write_text(script)
        kit = Kit(f"usage_cache_{len(kits)}", mode="record", script=str(path), cassette_dir=tmp_path)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        kit.close()


def test_each_providers_cache_fields_reach_the_sdk_and_the_ledger(make_kit) -> None:
    kit = make_kit(SCRIPT)
    chat = kit.openai.chat.completions.create(model=kit.models["openai"], messages=[{"role": "user", "content": "hi"}])
    assert chat.usage.prompt_tokens == 2100 and chat.usage.prompt_tokens_details.cached_tokens == 2048
    resp = kit.openai.responses.create(model=kit.models["openai"], input="hi")
    assert resp.usage.input_tokens_details.cached_tokens == 2048
    msg = kit.anthropic.messages.create(model=kit.models["anthropic"], max_tokens=50,
                                        messages=[{"role": "user", "content": "hi"}])
    # Anthropic's input_tokens leaves out what came from the cache
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens) == (2100 - 2048, 2048)
    gem = kit.gemini.models.generate_content(model=kit.models["gemini"], contents="hi")
    assert gem.usage_metadata.cached_content_token_count == 2048 and gem.usage_metadata.prompt_token_count == 2100
    records = kit.usage.records
    assert [r.provider for r in records] == ["openai", "openai", "anthropic", "gemini"]
    for r in records:
        assert (r.input_tokens, r.cached_tokens, r.cache_write_tokens) == (2100, 2048, 0)
        assert r.cost_usd < r.uncached_cost_usd
    df = kit.usage.df(cache=True)
    assert list(df["cached_tokens"]) == [2048] * 4 and "cached_tokens" not in kit.usage.df().columns


def test_streamed_anthropic_reports_cache_writes_then_reads(make_kit) -> None:
    kit = make_kit(ANTHROPIC_WRITE)
    for text in ("first", "again"):
        with kit.anthropic.messages.stream(model=kit.models["anthropic"], max_tokens=50,
                                           messages=[{"role": "user", "content": text}]) as stream:
            final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 4500
    write, read = kit.usage.records
    assert (write.cache_write_tokens, write.cached_tokens) == (4500, 0)
    assert (read.cache_write_tokens, read.cached_tokens) == (0, 4500)
    # writing costs more than plain input (1.25x), reading far less (0.1x)
    assert write.cost_usd > write.uncached_cost_usd == read.uncached_cost_usd > read.cost_usd


def test_openai_counting_endpoint_is_served_and_not_billed(make_kit) -> None:
    kit = make_kit(SCRIPT)
    count = kit.openai.responses.input_tokens.count(model=kit.models["openai"], input="hi")
    assert count.input_tokens == 2100 and count.object == "response.input_tokens"
    assert len(kit.usage) == 0


@pytest.mark.parametrize("model", sorted(PRICES_PER_MTOK))
def test_cached_tokens_are_priced_at_the_published_cached_rate(model: str) -> None:
    input_price, output_price = PRICES_PER_MTOK[model]
    read_price, write_price = CACHED_PRICES_PER_MTOK[model]
    assert read_price < input_price  # a cache hit is a discount everywhere
    plain = UsageRecord("p", model, "/x", 1_000_000, 0, False)
    hit = UsageRecord("p", model, "/x", 1_000_000, 0, False, cached_tokens=1_000_000)
    assert plain.cost_usd == pytest.approx(input_price)
    assert hit.cost_usd == pytest.approx(read_price)
    assert hit.uncached_cost_usd == pytest.approx(plain.cost_usd)
    written = UsageRecord("p", f"{model}-2026-01-01", "/x", 1_000_000, 1_000_000, False, cache_write_tokens=1_000_000)
    assert written.cost_usd == pytest.approx((write_price or input_price) + output_price)  # dated ids match too
