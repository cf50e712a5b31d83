"""Retrieval metrics against hand-built similarity matrices and slow references."""

import itertools
import math

import numpy as np
import pytest
import torch

from joimternet_lite.evaluate import retrieval_metrics
from joimternet_lite.evaluate.embed import DatasetEmbeddings
from joimternet_lite.evaluate.retrieval import (
    expected_metrics_random_ties,
    label_relevance,
    normalise_report,
    perfect_similarity,
    pool_indices,
    pooled_metrics,
    query_ranks,
    relevance_matrix,
    text_relevance,
)
from joimternet_lite.models.image_encoder import ImageOutput
from joimternet_lite.models.outputs import ImageEmbeddings, ReportEmbeddings
from joimternet_lite.models.text_encoder import TextOutput


def slow_ranks(sim, rel):
    """Reference: walk every candidate of every query."""
    ranks = []
    for i in range(len(sim)):
        best = max(sim[i][j] for j in range(len(sim[i])) if rel[i][j])
        ranks.append(1 + sum(1 for j in range(len(sim[i])) if not rel[i][j] and sim[i][j] >= best))
    return np.array(ranks)


def test_known_ranks_and_metrics():
    sim = np.array([[0.9, 0.1, 0.2],    # rank 1
                    [0.8, 0.5, 0.7],    # rank 3
                    [0.1, 0.9, 0.3]])   # rank 2
    assert query_ranks(sim).tolist() == [1, 3, 2]
    m = retrieval_metrics(torch.tensor(sim), ks=(1, 2))
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@2"] == pytest.approx(200 / 3)
    assert m["median_rank"] == 2 and m["mean_rank"] == 2
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_ties_count_against_the_model():
    sim = np.ones((4, 4))
    assert query_ranks(sim).tolist() == [4, 4, 4, 4]
    assert retrieval_metrics(sim)["R@1"] == 0.0


def test_matches_slow_reference_on_random_ties():
    rng = np.random.default_rng(0)
    sim = rng.integers(0, 4, size=(12, 15)).astype(float)   # many exact ties
    rel = rng.random((12, 15)) < 0.2
    rel[np.arange(12), rng.integers(0, 15, 12)] = True
    assert query_ranks(sim, rel).tolist() == slow_ranks(sim, rel).tolist()


def test_query_without_relevant_candidate_is_refused():
    with pytest.raises(ValueError, match="no relevant candidate"):
        retrieval_metrics(np.eye(2), relevance=np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="same shape"):
        retrieval_metrics(np.eye(2), relevance=np.eye(3, dtype=bool))


TEXTS = ["No acute findings.", "no acute findings", "Left effusion.", "Cardiomegaly."]
# A model that sees only text: studies 0 and 1 have the same report, so it scores them equally.
DUP_SIM = np.array([[0.9, 0.9, 0.1, 0.0],
                    [0.9, 0.9, 0.1, 0.0],
                    [0.2, 0.2, 0.8, 0.1],
                    [0.0, 0.0, 0.7, 0.6]])


def test_duplicates_under_each_relevance():
    labels = np.array([[np.nan] * 14, [np.nan] * 14, [0] * 9 + [1] + [0] * 4, [0, 1] + [-1] * 12])
    # instance: the duplicate ties with the true report and counts against it
    assert query_ranks(DUP_SIM, relevance_matrix("instance", TEXTS)).tolist() == [2, 2, 1, 2]
    # dedup: identical texts are one answer
    dedup = relevance_matrix("dedup", TEXTS)
    assert dedup[0, 1] and dedup[1, 0] and not dedup[0, 2]
    assert query_ranks(DUP_SIM, dedup).tolist() == [1, 1, 1, 2]
    # label: 0 and 1 share the empty positive set; -1 is not positive, so 3's set is {Cardiomegaly}
    lab = relevance_matrix("label", labels=labels)
    assert lab.sum() == 6 and lab[0, 1] and not lab[2, 3]
    assert query_ranks(DUP_SIM, lab).tolist() == [1, 1, 1, 2]


def test_normalisation_matches_the_tokenizer():
    assert normalise_report("No acute findings.") == normalise_report("no  acute findings")
    assert normalise_report("3 cm nodule") == normalise_report("4 cm nodule")  # numbers are one token
    assert text_relevance(["a b"], ["a b.", "b a"]).tolist() == [[True, False]]


def test_label_relevance_is_exact_set_equality():
    a = np.array([[1, 0, 1], [1, 0, 0]])
    b = np.array([[1, -1, 1], [1, 1, 0], [1, np.nan, 0]])
    assert label_relevance(a, b).tolist() == [[True, False, False], [False, False, True]]


def test_pool_indices():
    blocks = pool_indices(10, 3, mode="blocks")
    assert [p.tolist() for p in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    a, b = pool_indices(10, 4, 2, "random", seed=1), pool_indices(10, 4, 2, "random", seed=1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert len(set(a[0]) & set(a[1])) == 0 and all(len(p) == 4 for p in a)
    assert not all((x == y).all() for x, y in zip(a, pool_indices(10, 4, 2, "random", seed=2), strict=True))
    assert pool_indices(5)[0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="do not fit"):
        pool_indices(10, 4, 3)


def test_pool_averaging():
    rng = np.random.default_rng(3)
    sim = rng.normal(size=(9, 9))
    rel = np.eye(9, dtype=bool)
    pools = pool_indices(9, 3, mode="blocks")
    by_hand = [retrieval_metrics(sim[p][:, p]) for p in pools]
    got = pooled_metrics(sim, rel, pools)
    for key in ("R@1", "mean_rank", "mrr", "median_rank"):
        assert got[key] == pytest.approx(np.mean([m[key] for m in by_hand]))
    # a smaller pool can only make ranks better: never worse than the full set
    assert got["mean_rank"] <= retrieval_metrics(sim)["mean_rank"]


def brute_force_expected(sim, rel, ks):
    """Average the metrics over every order of the tied candidates, by explicit enumeration."""
    q = len(sim)
    totals = {f"R@{k}": 0.0 for k in ks} | {"mean_rank": 0.0, "mrr": 0.0}
    for i in range(q):
        order_keys = sim[i]
        ranks = []
        for perm in itertools.permutations(range(len(order_keys))):
            # sort by score descending, ties broken by the permutation
            order = sorted(range(len(order_keys)), key=lambda j: (-order_keys[j], perm[j]))
            ranks.append(1 + next(pos for pos, j in enumerate(order) if rel[i][j]))
        ranks = np.array(ranks, dtype=float)
        for k in ks:
            totals[f"R@{k}"] += 100 * (ranks <= k).mean() / q
        totals["mean_rank"] += ranks.mean() / q
        totals["mrr"] += (1 / ranks).mean() / q
    return totals


def test_expected_random_ties_matches_enumeration():
    rng = np.random.default_rng(5)
    sim = rng.integers(0, 2, size=(4, 6)).astype(float)
    rel = rng.random((4, 6)) < 0.3
    rel[np.arange(4), [0, 1, 2, 3]] = True
    got = expected_metrics_random_ties(sim, rel, ks=(1, 2, 3))
    want = brute_force_expected(sim, rel, ks=(1, 2, 3))
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    assert math.isnan(got["median_rank"])


def test_expected_equals_plain_metrics_without_ties():
    sim = np.random.default_rng(1).normal(size=(7, 7))
    plain, expected = retrieval_metrics(sim), expected_metrics_random_ties(sim)
    for key in ("R@1", "R@5", "mean_rank", "mrr"):
        assert expected[key] == pytest.approx(plain[key])


def test_ceiling_of_a_perfect_model_with_duplicate_reports():
    # groups of identical reports: sizes 3, 2, 1 (6 studies)
    texts = ["normal.", "Normal", "normal", "left effusion", "Left effusion.", "cardiomegaly"]
    perfect = perfect_similarity(texts)
    ties_against = retrieval_metrics(perfect, ks=(1, 2, 3))
    # ties against: rank = group size -> ranks 3,3,3,2,2,1
    assert ties_against["R@1"] == pytest.approx(100 / 6)
    assert ties_against["R@2"] == pytest.approx(300 / 6)
    assert ties_against["R@3"] == pytest.approx(100.0)
    assert ties_against["mean_rank"] == pytest.approx(14 / 6)
    # random tie-breaking: P(rank <= k) = min(k, g) / g; R@1 = (3 * 1/3 + 2 * 1/2 + 1) / 6 = 3 / 6
    expected = expected_metrics_random_ties(perfect, ks=(1, 2))
    assert expected["R@1"] == pytest.approx(50.0)
    assert expected["R@2"] == pytest.approx(100 * (3 * 2 / 3 + 2 + 1) / 6)
    assert expected["mean_rank"] == pytest.approx((3 * 2 + 2 * 1.5 + 1) / 6)
    # under dedup relevance a perfect model is perfect
    assert retrieval_metrics(perfect, relevance_matrix("dedup", texts))["R@1"] == 100.0


def test_evaluate_retrieval_rows_record_the_protocol():
    pytest.importorskip("joimternet_lite.models.similarity")
    from joimternet_lite.evaluate.retrieval import evaluate_retrieval

    torch.manual_seed(0)
    n, d = 8, 16
    vectors = torch.nn.functional.normalize(torch.randn(n, d), dim=1)
    texts = ["normal"] * 3 + [f"finding {chr(97 + i)}" for i in range(n - 3)]
    emb = DatasetEmbeddings(ImageEmbeddings(vectors, None), ReportEmbeddings(vectors, None, torch.zeros(n)),
                            torch.zeros(n, 14), torch.arange(n), [str(i) for i in range(n)], texts, [])
    rows = evaluate_retrieval(emb, relevances=("instance", "dedup"), pool_mode="blocks", pool_size=4)
    assert {r["scoring"] for r in rows} == {"global", "ceiling", "ceiling_random_ties"}
    glob = [r for r in rows if r["scoring"] == "global"]
    assert len(glob) == 4 and all(r["pool_size"] == 4 and r["num_pools"] == 2 and r["n"] == 4 for r in glob)
    # identical image and report vectors: the model is perfect at instance level
    assert all(r["R@1"] == 100.0 for r in glob)
    ceiling = next(r for r in rows if r["scoring"] == "ceiling" and r["relevance"] == "instance")
    # pool 0 holds the three "normal" studies (ranks 3, 3, 3) and one unique; pool 1 is all unique
    assert ceiling["R@1"] == pytest.approx((25.0 + 100.0) / 2)


def test_local_and_combined_scoring_use_the_shared_similarity():
    attention = pytest.importorskip("joimternet_lite.models.similarity")
    from joimternet_lite.config import ScoreConfig
    from joimternet_lite.evaluate.retrieval import similarity_matrix

    g = torch.Generator().manual_seed(0)
    images = ImageEmbeddings(torch.randn(3, 6, generator=g), torch.randn(3, 4, 6, generator=g))
    reports = ReportEmbeddings(torch.randn(5, 6, generator=g), torch.randn(5, 7, 6, generator=g),
                               torch.tensor([7, 2, 5, 1, 3]))
    similarity = attention.Similarity(6, ScoreConfig(chunk_size=2))
    local = similarity_matrix(images, reports, "local", similarity)
    reference = attention.local_similarity_reference(images.regions, reports.words, reports.lengths)
    assert torch.allclose(local, reference.float(), atol=1e-4)
    combined = similarity_matrix(images, reports, "combined", similarity, combined_weight=0.25)
    glob = similarity_matrix(images, reports, "global")
    assert torch.allclose(combined, 0.75 * glob + 0.25 * local / 5.0, atol=1e-5)
    with pytest.raises(ValueError, match="similarity=model.similarity"):
        similarity_matrix(images, reports, "local")


class FakeModel(torch.nn.Module):
    """encode_images / encode_texts with the ARCHITECTURE.md outputs, from fixed tables."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 4)

    def encode_images(self, images):
        regions = images.flatten(2).transpose(1, 2).repeat(1, 1, 4)[..., :4]
        return ImageOutput(regions, regions.mean(1))

    def encode_texts(self, input_ids, attention_mask, word_ids=None, sentence_ids=None):
        words = self.embed(input_ids[:, 1:]) * attention_mask[:, 1:, None]
        return TextOutput(words, attention_mask.sum(1) - 1, words.sum(1))


def test_embed_dataset_pads_words_and_keeps_order(caplog):
    from joimternet_lite.evaluate.embed import embed_dataset

    def batch(ids, start, skipped=()):
        ids = torch.tensor(ids)
        return {"images": torch.randn(len(ids), 1, 2, 2), "input_ids": ids, "attention_mask": (ids > 0).long(),
                "labels": torch.zeros(len(ids), 14), "study_ids": [f"s{start + i}" for i in range(len(ids))],
                "texts": [f"text {start + i}" for i in range(len(ids))], "index": torch.arange(start, start + len(ids)),
                "skipped": list(skipped)}

    loader = [batch([[1, 5, 2], [1, 6, 2]], 0, [("s9", "unreadable")]), batch([[1, 5, 7, 8, 2]], 2)]
    model = FakeModel().train()
    emb = embed_dataset(model, loader, "cpu", progress=False)
    assert model.training  # mode restored
    assert emb.study_ids == ["s0", "s1", "s2"] and emb.texts[2] == "text 2" and len(emb) == 3
    assert emb.reports.words.shape == (3, 4, 4) and emb.reports.lengths.tolist() == [2, 2, 4]
    assert emb.reports.words[0, 2:].abs().sum() == 0  # zero padding
    assert emb.reports.word_mask.tolist() == [[True, True, False, False]] * 2 + [[True] * 4]
    assert torch.equal(emb.reports.words[2, 0], model.embed.weight[5].detach())
    assert emb.images.regions.shape == (3, 4, 4) and emb.skipped == [("s9", "unreadable")]
    assert "1 studies skipped" in caplog.text
