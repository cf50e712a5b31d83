"""The functions notebooks 05-08 (and their solutions) define inline agree with the package.

Each notebook builds a part by hand, then checks it against ``joimternet_lite``; these tests load
only the notebooks' definitions (``course.import_definitions``) and repeat the comparison on tiny
float64 inputs, so a change on either side that breaks the agreement fails here, not just in a
notebook run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from joimternet_lite.config import LossConfig, ScoreConfig, load_config
from joimternet_lite.course import import_definitions
from joimternet_lite.data.tokenizer import build_tokenizer
from joimternet_lite.losses import (
    JoImTeRNetLoss,
    contrastive_cross_entropy,
    hardest_negatives,
    sample_random_negatives,
    triplet_hinge,
)
from joimternet_lite.models.joimternet import build_model
from joimternet_lite.models.outputs import ModelOutput
from joimternet_lite.models.similarity import (
    Similarity,
    global_similarity,
    local_similarity,
    local_similarity_reference,
)
from joimternet_lite.training.schedule import lr_multiplier

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def nb05():
    return import_definitions(NOTEBOOKS / "05_global_alignment.ipynb", ["cosine_matrix", "global_ce_terms"])


@pytest.fixture(scope="module")
def nb06():
    return import_definitions(NOTEBOOKS / "06_region_word_attention.ipynb",
                              ["damsm_score_one_pair", "damsm_scores", "damsm_scores_fast", "damsm_scores_unmasked"])


@pytest.fixture(scope="module")
def nb07():
    return import_definitions(NOTEBOOKS / "07_loss_families.ipynb",
                              ["triplet_terms", "draw_random_negatives", "ce_terms", "joimternet_loss"])


@pytest.fixture(scope="module")
def nb08():
    return import_definitions(NOTEBOOKS / "08_training_on_gpu.ipynb", ["train_step", "one_step_each", "run_torchrun"])


def pairs(n, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, dim, generator=g, dtype=torch.float64),
            torch.randn(n, dim, generator=g, dtype=torch.float64))


def padded_words(lengths, max_len, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    words = torch.randn(len(lengths), max_len, dim, generator=g, dtype=torch.float64)
    return words * (torch.arange(max_len)[None, :] < lengths[:, None])[..., None], lengths


def output_dict(num_pairs, seed=0):
    """A model-output dict of float64 tensors with padded words."""
    images, reports = pairs(num_pairs, 6, seed)
    words, lengths = padded_words([1 + (3 * k) % 5 for k in range(num_pairs)], 5, 6, seed + 1)
    regions = torch.randn(num_pairs, 4, 6, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    return {"image_vectors": images, "report_vectors": reports, "regions": regions, "words": words, "lengths": lengths}




# ---------------------------------------------------------------- 05 global alignment

def test_05_cosine_matrix_matches_global_similarity(nb05):
    images, reports = pairs(5, 7)
    reports = reports[:3]
    torch.testing.assert_close(nb05.cosine_matrix(images, reports), global_similarity(images, reports))
    # a zero vector scores 0 with every report, not NaN
    images[0] = 0
    assert torch.equal(nb05.cosine_matrix(images, reports)[0], torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("gamma3", [1.0, 10.0])
def test_05_global_ce_terms_match_the_package(nb05, gamma3):
    out = output_dict(6)
    _, terms = JoImTeRNetLoss(LossConfig(gamma3=gamma3, use_local=False, use_triplet=False))(ModelOutput(**out))
    ours = nb05.global_ce_terms(out["image_vectors"], out["report_vectors"], gamma3)
    torch.testing.assert_close(torch.stack(ours), torch.stack([terms["ce_global_i2t"], terms["ce_global_t2i"]]),
                               rtol=0, atol=1e-12)
    assert not torch.isclose(ours[0], ours[1]), "the two directions of a random batch differ"


def test_05_package_global_ce_helper(nb05):
    images, reports = pairs(4, 5, seed=3)
    torch.testing.assert_close(torch.stack(nb05.package_global_ce(images, reports)),
                               torch.stack(nb05.global_ce_terms(images, reports)), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- 06 region-word attention

def test_06_one_pair_loop_matches_the_reference(nb06):
    g = torch.Generator().manual_seed(4)
    regions = torch.randn(7, 3, generator=g, dtype=torch.float64)
    words = torch.randn(4, 3, generator=g, dtype=torch.float64)
    score, alpha, _ = nb06.damsm_score_one_pair(regions, words, 4.0, 5.0)
    expected = local_similarity_reference(regions[None], words[None], torch.tensor([4]), 4.0, 5.0)[0, 0]
    assert math.isclose(score, float(expected), rel_tol=0, abs_tol=1e-12)
    assert all(math.isclose(sum(row), 1.0, abs_tol=1e-12) for row in alpha)


@pytest.mark.parametrize("name", ["damsm_scores", "damsm_scores_fast"])
def test_06_batched_scores_match_local_similarity(nb06, name):
    g = torch.Generator().manual_seed(5)
    regions = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    words, lengths = padded_words([2, 5, 1, 4], 6, 4, seed=6)
    ours = getattr(nb06, name)(regions, words, lengths, 4.0, 5.0)
    torch.testing.assert_close(ours, local_similarity(regions, words, lengths, 4.0, 5.0), rtol=0, atol=1e-10)


def test_06_padding_changes_only_the_unmasked_trap(nb06):
    g = torch.Generator().manual_seed(7)
    regions = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    words, lengths = padded_words([3], 3, 4, seed=8)
    longer = F.pad(words, (0, 0, 0, 9))
    for fn in (nb06.damsm_scores, nb06.damsm_scores_fast):
        torch.testing.assert_close(fn(regions, longer, lengths), fn(regions, words, lengths), rtol=0, atol=1e-12)
    trap_short, trap_long = nb06.damsm_scores_unmasked(regions, words), nb06.damsm_scores_unmasked(regions, longer)
    assert (trap_long - trap_short).abs().min() > 1e-3, "padding leaks into the unmasked version"


# ---------------------------------------------------------------- 07 both loss families

@pytest.mark.parametrize("mode", ["random", "hardest", "all"])
def test_07_triplet_terms_match_triplet_hinge(nb07, mode):
    images, reports = pairs(6, 5, seed=9)
    scores = global_similarity(images, reports)
    drawn = nb07.draw_random_negatives(6, generator=torch.Generator().manual_seed(1))
    allowed, positives = ~torch.eye(6, dtype=torch.bool), torch.arange(6)
    for direction, s in zip(nb07.triplet_terms(scores, 0.5, mode, drawn=drawn), (scores, scores.T), strict=True):
        negatives = {"random": (drawn, torch.ones(6, dtype=torch.bool)),
                     "hardest": hardest_negatives(s, allowed), "all": None}[mode]
        torch.testing.assert_close(direction, triplet_hinge(s, positives, 0.5, allowed, negatives), rtol=0, atol=1e-12)


def test_07_random_draws_match_the_package_sampler(nb07):
    same = torch.zeros(8, 8, dtype=torch.bool)
    same[2, 5] = same[5, 2] = True
    allowed = ~(same | torch.eye(8, dtype=torch.bool))
    ours = nb07.draw_random_negatives(8, same, generator=torch.Generator().manual_seed(3))
    theirs, found = sample_random_negatives(allowed, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs) and bool(found.all())
    assert not bool((ours == torch.arange(8)).any()) and int(ours[2]) != 5 and int(ours[5]) != 2


@pytest.mark.parametrize("negatives", ["random", "hardest", "all"])
def test_07_full_loss_matches_joimternet_loss(nb07, negatives):
    out = output_dict(5, seed=10)
    drawn = nb07.draw_random_negatives(5, generator=torch.Generator().manual_seed(2))
    ours_total, ours = nb07.joimternet_loss(out, drawn, negatives=negatives)
    theirs_total, theirs = JoImTeRNetLoss(LossConfig(negatives=negatives), Similarity(6, ScoreConfig()))(
        ModelOutput(**out), generator=torch.Generator().manual_seed(2))
    assert set(ours) == set(theirs)
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-10, msg=name)
    torch.testing.assert_close(ours_total, theirs_total.to(ours_total.dtype), rtol=0, atol=1e-9)


def test_07_masked_ce_matches_the_package(nb07):
    images, reports = pairs(5, 4, seed=11)
    reports[3] = reports[1]                       # reports 1 and 3 are identical
    same = torch.zeros(5, 5, dtype=torch.bool)
    same[1, 3] = same[3, 1] = True
    same |= torch.eye(5, dtype=torch.bool)
    scores = global_similarity(images, reports)
    ours = nb07.ce_terms(scores, 10.0, same)
    excluded = same & ~torch.eye(5, dtype=torch.bool)
    torch.testing.assert_close(ours[0], contrastive_cross_entropy(scores, torch.arange(5), 10.0, excluded))
    torch.testing.assert_close(ours[1], contrastive_cross_entropy(scores.T, torch.arange(5), 10.0, excluded.T))
    assert ours[0] < nb07.ce_terms(scores, 10.0)[0], "masking a twin removes a strong wrong answer"


# ---------------------------------------------------------------- 08 training

def test_08_inline_train_step_matches_optimizer_step(nb08):
    texts = ["no pleural effusion", "small left pleural effusion", "heart size is normal", "right lower lobe opacity"]
    tokenizer = build_tokenizer(texts * 2, min_frequency=1)
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    images = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = {"images": images, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "study_ids": [f"s{k}" for k in range(4)]}
    cfg = load_config("demo_cpu", ["data.image_size=64"])
    ours, theirs = nb08.one_step_each(cfg, tokenizer, batch)
    torch.manual_seed(0)
    start = build_model(load_config("demo_cpu", ["data.image_size=64"]).model, len(tokenizer), 64).state_dict()
    moved = max((ours[k].float() - start[k].float()).abs().max().item() for k in ours)
    assert moved > 1e-4, "one step changes the weights, so the comparison below means something"
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------- solution notebooks

def test_solutions_05_06_07(nb05):
    s05 = import_definitions(NOTEBOOKS / "solutions" / "05_solutions.ipynb",
                             ["ce_image_to_report", "loss_floor", "recall_at_1_report_to_image"])
    scores = global_similarity(*pairs(6, 4, seed=12))
    torch.testing.assert_close(s05.ce_image_to_report(scores, 10.0), F.cross_entropy(10 * scores, torch.arange(6)))
    simplex = torch.eye(5, dtype=torch.float64) - 0.2
    assert math.isclose(s05.loss_floor(5, 3.0), float(nb05.global_ce_terms(simplex, simplex, 3.0)[0]), abs_tol=1e-12)
    assert s05.recall_at_1_report_to_image(torch.eye(4)) == 1.0

    s06 = import_definitions(NOTEBOOKS / "solutions" / "06_solutions.ipynb",
                             ["context_norms_squared", "equal_words_score", "region_owner"])
    regions = torch.randn(5, 3, dtype=torch.float64)
    alpha = torch.rand(2, 5, dtype=torch.float64).softmax(1)
    torch.testing.assert_close(s06.context_norms_squared(alpha, regions), (alpha @ regions).pow(2).sum(1))
    words = torch.tensor([[0.6, 0.8]], dtype=torch.float64).repeat(4, 1)[None]
    expected = local_similarity(torch.tensor([[[1.0, 0.0]]], dtype=torch.float64), words, torch.tensor([4]))
    assert math.isclose(s06.equal_words_score(4, 0.6), float(expected), abs_tol=1e-12)
    assert s06.region_owner(torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]), 2).tolist() == [0, 1]

    s07 = import_definitions(NOTEBOOKS / "solutions" / "07_solutions.ipynb",
                             ["triplet_all_i2t", "hardest_allowed", "twin_ce"])
    allowed = ~torch.eye(6, dtype=torch.bool)
    torch.testing.assert_close(s07.triplet_all_i2t(scores, 0.5), triplet_hinge(scores, torch.arange(6), 0.5, allowed, None))
    assert torch.equal(s07.hardest_allowed(scores, torch.zeros(6, 6, dtype=torch.bool)),
                       hardest_negatives(scores, allowed)[0])
    row = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)
    assert math.isclose(s07.twin_ce(2, 4, 10.0), float(contrastive_cross_entropy(row, torch.tensor([0]), 10.0)), abs_tol=1e-12)


def test_solutions_08():
    s08 = import_definitions(NOTEBOOKS / "solutions" / "08_solutions.ipynb", ["lr_factor", "rank_ce_i2t"])
    for step in (0, 4, 9, 10, 55, 100, 130):
        assert math.isclose(s08.lr_factor(step, 100, 10), lr_multiplier(step, total_steps=100, warmup_steps=10),
                            abs_tol=1e-12)
    images = [pairs(2, 4, seed=k)[0] for k in range(3)]
    reports = [pairs(2, 4, seed=k)[1] for k in range(3)]
    gathered = ModelOutput(torch.cat(images), torch.cat(reports))
    _, terms = JoImTeRNetLoss(LossConfig(use_local=False, use_triplet=False))(
        ModelOutput(images[2], reports[2]), gathered=gathered, rank_offset=4)
    torch.testing.assert_close(s08.rank_ce_i2t(images, reports, 2), terms["ce_global_i2t"])


@pytest.mark.slow
def test_08_torchrun_gathered_loss_equals_one_process(nb08):
    ranks = nb08.run_torchrun(nb08.DDP_SCRIPT, 2, 3)
    images = torch.tensor(sum((r["images"] for r in ranks), []), dtype=torch.float64, requires_grad=True)
    reports = torch.tensor(sum((r["reports"] for r in ranks), []), dtype=torch.float64, requires_grad=True)
    total, _ = JoImTeRNetLoss(LossConfig(use_local=False, negatives="hardest"))(
        ModelOutput(images, reports))
    total.backward()
    assert all(r["gathered_rows"] == 6 for r in ranks)
    assert math.isclose(sum(r["total"] for r in ranks) / 2, float(total.detach()), abs_tol=1e-10)
    grads = torch.tensor(sum((r["grad_images"] for r in ranks), []), dtype=torch.float64)
    torch.testing.assert_close(grads / 2, images.grad, rtol=0, atol=1e-10)
