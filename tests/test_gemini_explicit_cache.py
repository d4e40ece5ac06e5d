"""Gemini explicit caching (lesson 6, 06_conversations): ``client.caches.create``, a call with
``cached_content`` and ``client.caches.delete`` go through the real google-genai SDK to the replay server,
are recorded from a script, replayed, and priced by ``kit.usage`` (cached rate per call, storage per hour)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.genai import errors, types

from llmkit import providers
from llmkit.kit import Kit
from llmkit.models import CACHE_STORAGE_PER_MTOK_HOUR, CACHED_PRICES_PER_MTOK, PRICES_PER_MTOK
from llmkit.usage import UsageLedger

LESSON_SCRIPT = Path(__file__).resolve().parents[1] / "notebooks" / "cassettes" / "scripts" / "06_conversations.py"
SIZE, QUESTION_TOKENS = 3000, 12
SCRIPT = f'''
from llmkit.replay.scripted import Reply

def reply(req):
    if req.api == "caches":
        return Reply(input_tokens={SIZE}) if req.path.endswith("/cachedContents") else Reply()
    if (req.body or {{}}).get("cachedContent"):
        return Reply(text="From the cache.", input_tokens={SIZE + QUESTION_TOKENS}, output_tokens=5,
                     cached_tokens={SIZE})
    return None
'''
BETA = types.HttpOptions(api_version="v1beta")
DOC = "Handbook line about tide gauges and their runbooks. " * 400


def explicit_cache_round_trip(kit: Kit) -> tuple[types.CachedContent, types.GenerateContentResponse]:
    cache = kit.gemini.caches.create(model=kit.models["gemini"], config=types.CreateCachedContentConfig(
        system_instruction="Answer from the handbook.", ttl="300s", http_options=BETA,
        contents=[types.Content(role="user", parts=[types.Part(text=DOC)])]))
    answer = kit.gemini.models.generate_content(
        model=kit.models["gemini"], contents="What about retries?",
        config=types.GenerateContentConfig(cached_content=cache.name, http_options=BETA))
    kit.gemini.caches.delete(name=cache.name, config=types.DeleteCachedContentConfig(http_options=BETA))
    return cache, answer


@pytest.fixture
def kits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMKIT_SPEED", "0")
    made: list[Kit] = []

    def make(name: str, **kw) -> Kit:
        made.append(Kit(name, cassette_dir=tmp_path, **kw))
        return made[-1]

    yield make
    for kit in made:
        kit.close()


def test_gemini_owns_the_cached_contents_paths() -> None:
    for path in ("/v1beta/cachedContents", "/v1beta/cachedContents/abc123", "/v1/cachedContents"):
        provider = providers.for_path(path)
        assert provider is not None and provider.name == "gemini" and provider.api_of(path) == "caches"
    assert providers.for_path("/v1beta/cachedContents/abc/extra") is None
    assert providers.get("gemini").model_of("/v1beta/cachedContents", {"model": "models/gemini-2.5-flash"}) \
        == "gemini-2.5-flash"


def test_explicit_cache_is_recorded_replayed_and_priced(kits, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    recorded = kits("explicit_cache", mode="record", script=str(script))
    cache, answer = explicit_cache_round_trip(recorded)
    recorded.close()

    cassette = json.loads((tmp_path / "explicit_cache.json").read_text())
    calls = [(i["request"]["method"], i["request"]["path"]) for i in cassette["interactions"]]
    assert calls == [("POST", "/v1beta/cachedContents"),
                     ("POST", "/v1beta/models/gemini-2.5-flash:generateContent"),
                     ("DELETE", f"/v1beta/{cache.name}")]
    assert cassette["interactions"][1]["request"]["body"]["cachedContent"] == cache.name

    replayed = kits("explicit_cache", mode="replay")
    cache, answer = explicit_cache_round_trip(replayed)
    assert cache.name.startswith("cachedContents/") and cache.model == "models/gemini-2.5-flash"
    assert (cache.expire_time - cache.create_time).total_seconds() == 300
    assert cache.usage_metadata.total_token_count == SIZE
    use = answer.usage_metadata
    assert (use.cached_content_token_count, use.prompt_token_count) == (SIZE, SIZE + QUESTION_TOKENS)
    assert not replayed.misses

    # the ledger holds the one call: creating and deleting the cache report no call usage
    [record] = replayed.usage.records
    assert (record.input_tokens, record.cached_tokens, record.cache_write_tokens) == (SIZE + QUESTION_TOKENS, SIZE, 0)
    model = record.model
    (price_in, price_out), read_price = PRICES_PER_MTOK[model], CACHED_PRICES_PER_MTOK[model][0]
    expected = (QUESTION_TOKENS * price_in + SIZE * read_price + record.output_tokens * price_out) / 1e6
    assert record.cost_usd == pytest.approx(expected)
    assert record.uncached_cost_usd - record.cost_usd == pytest.approx(SIZE * (price_in - read_price) / 1e6)

    storage = replayed.usage.cache_storage_cost_usd(cache.model, cache.usage_metadata.total_token_count, 300)
    assert storage == pytest.approx(SIZE * CACHE_STORAGE_PER_MTOK_HOUR[model] / 1e6 / 12)
    assert replayed.usage.cache_storage_cost_usd(model, SIZE, 7200) == pytest.approx(24 * storage)


def test_storage_has_no_price_for_an_unlisted_model() -> None:
    assert UsageLedger.cache_storage_cost_usd("gpt-4.1-mini", 5000, 3600) is None


def test_lesson_script_refuses_what_the_api_refuses(kits) -> None:
    kit = kits("lesson06_rules", mode="record", script=str(LESSON_SCRIPT))
    with pytest.raises(errors.ClientError) as small:
        kit.gemini.caches.create(model=kit.models["gemini"], config=types.CreateCachedContentConfig(
            system_instruction="Too short to cache.", ttl="300s", http_options=BETA))
    assert small.value.code == 400 and "min_total_token_count=1024" in small.value.message

    cache = kit.gemini.caches.create(model=kit.models["gemini"], config=types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[types.Part(text="TIDE-GAUGE TEAM HANDBOOK\n" + DOC)])],
        ttl="300s", http_options=BETA))
    assert cache.usage_metadata.total_token_count >= 1024
    with pytest.raises(errors.ClientError) as both:  # a cached system instruction may not be sent again
        kit.gemini.models.generate_content(
            model=kit.models["gemini"], contents="What about retries?",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="Be brief.",
                                               http_options=BETA))
    assert both.value.code == 400 and "system_instruction" in both.value.message
    hit = kit.gemini.models.generate_content(
        model=kit.models["gemini"], contents="What about retries?",
        config=types.GenerateContentConfig(cached_content=cache.name, http_options=BETA))
    assert hit.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
