"""Finding queries: relevance from the ground truth, precision@k by hand, and the scores of ``search``."""

import numpy as np
import pytest
import torch

from joimternet_lite.evaluate.finding_search import FINDING_QUERIES, precision_at_k, query_relevance


def test_relevance_reads_type_and_side():
    queries = (("left pleural effusion", "effusion", "left"), ("pacemaker", "pacemaker", None))
    records = [{"findings_gt": [{"type": "effusion", "side": "left"}]},
               {"findings_gt": [{"type": "effusion", "side": "right"}, {"type": "pacemaker", "side": "left"}]},
               {"findings_gt": []}]
    assert query_relevance(records, queries).tolist() == [[True, False], [False, True], [False, False]]


def test_every_synthcxr_finding_type_has_one_query():
    from joimternet_lite.data.synthcxr.findings import FINDING_TYPES

    assert sorted(kind for _, kind, _ in FINDING_QUERIES) == sorted(FINDING_TYPES)


def test_precision_at_k_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])   # 4 images, 2 queries
    relevant = np.array([[1, 0], [0, 0], [1, 1], [1, 1]], dtype=bool)
    precision, top = precision_at_k(scores, relevant, k=2)
    assert top.tolist() == [[0, 1], [3, 2]]
    assert precision.tolist() == [0.5, 1.0]
    assert precision_at_k(scores, relevant, k=10)[0].tolist() == [0.75, 0.5]   # k capped at the pool


@pytest.mark.slow
def test_query_scores_are_the_scores_search_ranks_by(tiny_run):
    from joimternet_lite.evaluate.finding_search import query_scores
    from joimternet_lite.inference import ImageTextInference
    from joimternet_lite.models.joimternet import JoImTeRNet

    engine = ImageTextInference(JoImTeRNet.from_pretrained(tiny_run[0]), device="cpu")
    images = engine.embed_images(sorted((tiny_run[1] / "images").rglob("*.png"))[:6])
    queries = [q for q, _, _ in FINDING_QUERIES]
    expected = engine.similarity(images, queries)       # what `search --scoring global` sorts
    got = query_scores(engine.model, engine.tokenizer, images.image_vectors, queries)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    for scoring in ("local", "combined"):               # `search --scoring local|combined`
        expected = engine.similarity(images, queries, scoring)
        got = query_scores(engine.model, engine.tokenizer, images.image_vectors, queries, "cpu", scoring,
                           images.regions, engine.config.eval.combined_weight)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
