"""Classification: targets, AUROC summaries, label budgets, probes, heads and zero-shot."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from joimternet_lite.data.schema import CHEXPERT_LABELS
from joimternet_lite.evaluate.classification import (
    AuthorsHead,
    auroc_summary,
    bootstrap_ci,
    classifier_scores,
    evaluate_frozen,
    fit_head_on_features,
    fraction_indices,
    head_scores,
    k_shot_indices,
    linear_probe_scores,
    per_class_auroc,
    prepare_targets,
    prompt_pairs,
    train_image_classifier,
    zero_shot_from_similarities,
)
from joimternet_lite.evaluate.embed import DatasetEmbeddings
from joimternet_lite.models.outputs import ImageEmbeddings, ReportEmbeddings
from joimternet_lite.models.similarity import Similarity
from joimternet_lite.models.text_encoder import TextOutput

NAN = float("nan")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and on a shared 2-core machine far faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pairwise_auroc(y, s):
    """Reference: the probability that a positive outscores a negative, ties counting 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_prepare_targets_policies():
    labels = np.array([[1, 0, -1, NAN]])
    for policy, targets, mask in [("zeros", [1, 0, 0, 0], [1, 1, 1, 1]),
                                  ("ones", [1, 0, 1, 0], [1, 1, 1, 1]),
                                  ("ignore", [1, 0, 0, 0], [1, 1, 0, 1])]:
        t, m = prepare_targets(labels, policy)
        assert t[0].tolist() == targets and m[0].astype(int).tolist() == mask, policy
    with pytest.raises(ValueError, match="uncertain policy"):
        prepare_targets(labels, "maybe")


def test_auroc_tiny_case_by_hand():
    # positives score 0.8, 0.4; negatives 0.5, 0.1 -> pairs won: (0.8>0.5, 0.8>0.1, 0.4>0.1) = 3 of 4
    y = np.array([[1], [1], [0], [0]])
    s = np.array([[0.8], [0.4], [0.5], [0.1]])
    assert per_class_auroc(y, s)[0] == pytest.approx(0.75)


def test_auroc_agrees_with_pairwise_reference_and_library_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(float)
    s = np.round(rng.normal(size=(200, 5)) + y, 1)  # rounding makes ties
    mask = rng.random((200, 5)) < 0.8
    got = per_class_auroc(y, s, mask)
    for c in range(5):
        m = mask[:, c]
        assert got[c] == pytest.approx(pairwise_auroc(y[m, c], s[m, c]))
        assert got[c] == pytest.approx(roc_auc_score(y[m, c], s[m, c]))


def test_summary_excludes_no_finding_and_undefined_classes():
    rng = np.random.default_rng(1)
    y = (rng.random((100, 14)) < 0.4).astype(float)
    y[:, 3] = 0  # Edema: no positive -> undefined
    s = rng.normal(size=(100, 14)) + 2 * y
    out = auroc_summary(y, s)
    aucs = np.array([out[f"auroc/{n}"] for n in CHEXPERT_LABELS])
    assert np.isnan(aucs[3])
    keep = [i for i, n in enumerate(CHEXPERT_LABELS) if n != "No Finding" and i != 3]
    assert out["classes_used"] == 12
    assert out["mean"] == pytest.approx(aucs[keep].mean())
    counts = y.sum(0)
    assert out["weighted_mean"] == pytest.approx((aucs[keep] * counts[keep]).sum() / counts[keep].sum())


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    y = (rng.random((120, 14)) < 0.3).astype(float)
    s = rng.normal(size=(120, 14)) + y
    a = bootstrap_ci(y, s, n_boot=10, seed=7)
    assert a == bootstrap_ci(y, s, n_boot=10, seed=7)
    assert a != bootstrap_ci(y, s, n_boot=10, seed=8)
    point = auroc_summary(y, s)["mean"]
    assert a["mean_ci_low"] < point < a["mean_ci_high"]


def test_label_budgets():
    idx = fraction_indices(1000, 0.01, seed=3)
    assert len(idx) == 10 and (np.diff(idx) > 0).all()
    assert (idx == fraction_indices(1000, 0.01, seed=3)).all()
    assert len(fraction_indices(5, 0.01)) == 1
    with pytest.raises(ValueError):
        fraction_indices(10, 0)
    y = np.zeros((50, 3))
    y[:10, 0] = 1
    y[10:30, 1] = 1
    y[5:15, 2] = 1
    shots = k_shot_indices(y, 2, seed=0)
    assert len(shots) == 6
    for c in range(3):
        assert y[shots, c].sum() >= 2


def test_linear_probe_separates_and_handles_single_value_classes():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 6))
    y = np.stack([(x[:, 0] > 0), (x[:, 1] > 0), np.zeros(300)], 1).astype(float)
    scores = linear_probe_scores(x[:200], y[:200], np.ones((200, 3), bool), x[200:])
    assert roc_auc_score(y[200:, 0], scores[:, 0]) > 0.95
    assert roc_auc_score(y[200:, 1], scores[:, 1]) > 0.95
    assert (scores[:, 2] == 0.5).all()


def test_authors_head_layout():
    head = AuthorsHead(dim=8, num_classes=14)
    assert sum(isinstance(m, nn.Dropout) for m in head.modules()) == 4  # before every linear layer
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [256, 256, 256, 14]
    assert head(torch.randn(3, 5, 8), torch.randn(3, 8)).shape == (3, 14)


def separable_features(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n, 8, generator=g)
    regions = vectors[:, None, :] + 0.1 * torch.randn(n, 4, 8, generator=g)
    labels = torch.zeros(n, 14)
    labels[:, 1] = (vectors[:, 0] > 0).float()
    labels[:, 9] = (vectors[:, 1] > 0).float()
    return DatasetEmbeddings(ImageEmbeddings(vectors, regions), ReportEmbeddings(vectors, None, torch.zeros(n)),
                             labels, torch.arange(n), [str(i) for i in range(n)], [""] * n, [])


def test_mlp_head_learns_frozen_features():
    train, test = separable_features(200, 0), separable_features(100, 1)
    t, m = prepare_targets(train.labels)
    head = fit_head_on_features(train.images.regions, train.images.image_vectors, t, m, epochs=20, lr=3e-3,
                                batch_size=50)
    s = head_scores(head, test.images.regions, test.images.image_vectors)
    assert roc_auc_score(test.labels[:, 1], s[:, 1]) > 0.9


def test_evaluate_frozen_row_records_protocol():
    train, test = separable_features(200, 0), separable_features(100, 1)
    row = evaluate_frozen(train, test, "linear", fraction=0.5, seed=0, n_boot=5)
    assert row["regime"] == "linear" and row["n_train"] == 100 and row["fraction"] == 0.5
    assert row["classes_used"] == 2 and row["mean"] > 0.9
    assert row["mean_ci_low"] <= row["mean"] <= row["mean_ci_high"]


class TinyEncoder(nn.Module):
    """A stand-in image tower: conv -> 2x2 regions and a pooled global vector."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, images):
        maps = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.bn(self.conv(images))), 2)
        regions = maps.flatten(2).transpose(1, 2)
        return SimpleNamespace(regions=regions, image_vectors=regions.mean(1))


def brightness_loader(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    bright = torch.rand(n, generator=g) > 0.5
    images = 0.3 * torch.randn(n, 1, 8, 8, generator=g) + bright.float()[:, None, None, None]
    labels = torch.zeros(n, 14)
    labels[:, 9] = bright.float()
    labels[::7, 3] = -1
    return [{"images": images[i:i + 16], "labels": labels[i:i + 16]} for i in range(0, n, 16)]


@pytest.mark.parametrize("regime", ["frozen", "finetune", "scratch"])
def test_train_image_classifier_regimes(regime):
    torch.manual_seed(0)
    encoder = TinyEncoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    clf = train_image_classifier(encoder, brightness_loader(), regime, epochs=15, lr_head=1e-2,
                                 lr_backbone=None if regime == "frozen" else 1e-2, progress=False)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # original untouched
    weight_moved = not torch.equal(clf.encoder.conv.weight, before["conv.weight"])
    assert weight_moved == (regime != "frozen")
    scores, labels = classifier_scores(clf, brightness_loader(seed=1))
    assert roc_auc_score(labels[:, 9], scores[:, 9]) > 0.9


def test_finetune_uses_backbone_lr_1e_5():
    from joimternet_lite.evaluate.classification import REGIMES

    assert REGIMES["finetune"] == 1e-5 and REGIMES["frozen"] == 0


def test_zero_shot_from_similarities_by_hand():
    pos = np.array([[0.5, 0.3], [0.1, 0.1]])
    neg = np.array([[0.2, 0.2], [0.4, 0.2]])
    assert zero_shot_from_similarities(pos, neg).tolist() == pytest.approx([0.2, -0.2])
    pairs = prompt_pairs({"Pneumothorax": ("pneumothorax",)})
    assert "there is no pneumothorax" in pairs["Pneumothorax"][1] and "pneumothorax" in pairs["Pneumothorax"][0]


class BagOfWordsModel(nn.Module):
    """Text tower = word embeddings; report vector = mean of word vectors."""

    def __init__(self, vocab_size, dim=8):
        from joimternet_lite.config import ScoreConfig

        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.similarity = Similarity(dim, ScoreConfig())

    def encode_texts(self, input_ids, attention_mask, word_ids=None, sentence_ids=None):
        words = self.embed(input_ids[:, 1:]) * attention_mask[:, 1:, None]
        lengths = attention_mask.sum(1) - 1
        return TextOutput(words, lengths, words.sum(1) / lengths[:, None])


def test_zero_shot_scores_do_not_depend_on_the_batch():
    pytest.importorskip("joimternet_lite.models.similarity")
    from joimternet_lite.data.tokenizer import build_tokenizer
    from joimternet_lite.evaluate.classification import zero_shot_scores

    prompts = prompt_pairs({"Pneumothorax": ("pneumothorax",), "Edema": ("edema",)})
    tokenizer = build_tokenizer([p for pair in prompts.values() for side in pair for p in side], min_frequency=1)
    torch.manual_seed(0)
    model = BagOfWordsModel(tokenizer.vocab_size)
    images = ImageEmbeddings(torch.randn(5, 8), torch.randn(5, 4, 8))
    for scoring in ("global", "local"):
        everyone = zero_shot_scores(model, tokenizer, images, prompts, scoring)
        alone = zero_shot_scores(model, tokenizer, ImageEmbeddings(*(v[2:3] for v in images)), prompts, scoring)
        assert np.allclose(everyone[2:3], alone, atol=1e-6, equal_nan=True)
        assert np.isnan(everyone[:, 0]).all() and not np.isnan(everyone[:, CHEXPERT_LABELS.index("Edema")]).any()
