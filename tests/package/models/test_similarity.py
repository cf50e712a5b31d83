"""The similarity module: the fast local score against the per-pair reference loop, and its invariances."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import joimternet_lite
from joimternet_lite.config import LossConfig, ScoreConfig
from joimternet_lite.losses import JoImTeRNetLoss
from joimternet_lite.models.outputs import ImageEmbeddings, ModelOutput, ReportEmbeddings
from joimternet_lite.models.similarity import (
    EMPTY_REPORT_SCORE,
    Similarity,
    global_similarity,
    local_similarity,
    local_similarity_reference,
    word_region_maps,
)

LENGTHS = [1, 7, 0, 3, 7, 2, 5]  # ragged, with a one-word report and an all-padding row


def make_inputs(num_images=5, lengths=LENGTHS, max_len=7, regions=6, dim=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    valid = torch.arange(max_len) < lengths[:, None]
    words = torch.randn(len(lengths), max_len, dim, generator=g, dtype=dtype) * valid[..., None]
    return torch.randn(num_images, regions, dim, generator=g, dtype=dtype), words, lengths


@pytest.mark.parametrize("chunk_size", [1, 3, 32])
@pytest.mark.parametrize("recompute", [False, True])
def test_fast_local_score_equals_reference(chunk_size, recompute):
    regions, words, lengths = make_inputs()
    fast = local_similarity(regions, words, lengths, chunk_size=chunk_size, recompute=recompute)
    torch.testing.assert_close(fast, local_similarity_reference(regions, words, lengths), rtol=1e-12, atol=1e-12)
    assert fast.shape == (5, 7)


def test_reference_follows_the_formula_for_one_pair():
    # the five steps of the similarity module docstring written out in numpy for one image and one report
    regions, words, lengths = make_inputs(num_images=1, lengths=[3], max_len=3)
    v, e = regions[0].numpy(), words[0].numpy()
    s = e @ v.T                                                   # (words, regions)
    over_words = np.exp(s) / np.exp(s).sum(0, keepdims=True)
    alpha = np.exp(4 * over_words) / np.exp(4 * over_words).sum(1, keepdims=True)
    c = alpha @ v
    cos = (c * e).sum(1) / np.linalg.norm(c, axis=1) / np.linalg.norm(e, axis=1)
    expected = np.log(np.exp(5 * cos).sum())
    assert local_similarity_reference(regions, words, lengths).item() == pytest.approx(expected, rel=1e-12)
    assert local_similarity(regions, words, lengths).item() == pytest.approx(expected, rel=1e-12)


def test_gamma_arguments_are_used():
    regions, words, lengths = make_inputs()
    for gammas in [(1.0, 2.0), (10.0, 0.5)]:
        torch.testing.assert_close(local_similarity(regions, words, lengths, *gammas),
                                   local_similarity_reference(regions, words, lengths, *gammas))


def test_null_region_matches_reference_and_changes_scores():
    regions, words, lengths = make_inputs()
    null = torch.randn(4, dtype=torch.float64)
    fast = local_similarity(regions, words, lengths, chunk_size=2, null_region=null)
    torch.testing.assert_close(fast, local_similarity_reference(regions, words, lengths, null_region=null))
    assert not torch.allclose(fast, local_similarity(regions, words, lengths))


def test_empty_report_scores_a_finite_constant_with_finite_gradients():
    regions, words, lengths = make_inputs()
    regions.requires_grad_()
    words.requires_grad_()
    scores = local_similarity(regions, words, lengths, chunk_size=2)
    assert torch.all(scores[:, 2] == EMPTY_REPORT_SCORE)
    scores.logsumexp(dim=1).sum().backward()
    assert torch.isfinite(regions.grad).all() and torch.isfinite(words.grad).all()
    assert torch.all(words.grad[2] == 0)


def test_gradcheck_tiny_case():
    regions, words, lengths = make_inputs(num_images=2, lengths=[1, 3, 0], max_len=3, regions=3, dim=3)

    def fast(r, w):  # two report blocks, recomputed in the backward pass
        return local_similarity(r, w, lengths, chunk_size=2, recompute=True)

    assert torch.autograd.gradcheck(fast, (regions.requires_grad_(), words.requires_grad_()), fast_mode=True)


def test_gradients_equal_the_reference():
    regions, words, lengths = make_inputs()
    weights = torch.randn(5, 7, dtype=torch.float64)
    grads = []
    for fn in (lambda r, w: local_similarity(r, w, lengths, chunk_size=2),
               lambda r, w: local_similarity_reference(r, w, lengths)):
        r, w = regions.clone().requires_grad_(), words.clone().requires_grad_()
        (fn(r, w) * weights).sum().backward()
        grads.append((r.grad, w.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_padding_invariance():
    regions, words, lengths = make_inputs()
    base = local_similarity(regions, words, lengths)
    longer = torch.cat([words, torch.randn(7, 4, 4, dtype=torch.float64)], dim=1)  # more (garbage) padding
    torch.testing.assert_close(local_similarity(regions, longer, lengths), base)
    shuffled = words.clone()
    for t, n in enumerate(lengths.tolist()):
        shuffled[t, n:] = torch.randn(7 - n, 4, dtype=torch.float64)[torch.randperm(7 - n)]
    torch.testing.assert_close(local_similarity(regions, shuffled, lengths), base)


def test_a_pair_scores_the_same_whatever_the_batch_around_it():
    regions, words, lengths = make_inputs(num_images=7)
    full = local_similarity(regions, words, lengths, chunk_size=3)
    perm_i, perm_t = torch.randperm(7), torch.randperm(7)
    permuted = local_similarity(regions[perm_i], words[perm_t], lengths[perm_t], chunk_size=2)
    torch.testing.assert_close(permuted, full[perm_i][:, perm_t])
    for i, t in [(0, 1), (3, 4), (6, 5)]:
        single = local_similarity(regions[i:i + 1], words[t:t + 1, :lengths[t]], lengths[t:t + 1])
        torch.testing.assert_close(single[0, 0], full[i, t])


def test_training_and_inference_score_the_same_way():
    # the loss's local CE equals a CE on the scores the model's Similarity gives at inference
    regions, words, lengths = make_inputs(num_images=7, dtype=torch.float32)
    lengths = lengths.clamp_min(1)
    out = ModelOutput(torch.randn(7, 4), torch.randn(7, 4), regions, words, lengths)
    score = ScoreConfig(gamma1=2.5, gamma2=3.0, chunk_size=2)
    _, terms = JoImTeRNetLoss(LossConfig(use_global=False, use_triplet=False), Similarity(4, score))(out)
    scores = Similarity(4, dataclasses.replace(score, chunk_size=5)).local_scores(regions, words, lengths)
    expected = torch.nn.functional.cross_entropy(10 * scores, torch.arange(7))
    torch.testing.assert_close(terms["ce_local_i2t"], expected)
    # and those scores follow the ScoreConfig's gammas, not the defaults
    torch.testing.assert_close(scores, local_similarity_reference(regions, words, lengths, 2.5, 3.0))


def test_global_similarity_is_cosine():
    a, b = torch.randn(3, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    expected = a.numpy() @ b.numpy().T / np.outer(np.linalg.norm(a.numpy(), axis=1), np.linalg.norm(b.numpy(), axis=1))
    np.testing.assert_allclose(global_similarity(a, b).numpy(), expected, rtol=1e-12)
    assert joimternet_lite.global_similarity is global_similarity
    assert joimternet_lite.local_similarity is local_similarity


def reference_alpha(image, report, n, gamma1=4.0):
    s = report[:n] @ image.T
    return torch.softmax(gamma1 * torch.softmax(s, dim=0), dim=1)


def test_alpha_maps_are_the_attention_of_the_local_score():
    regions, words, lengths = make_inputs(num_images=7)
    maps = word_region_maps(regions, words, lengths, kind="alpha")
    assert maps.shape == (7, 7, 6)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(maps[b, :n], reference_alpha(regions[b], words[b], n))
        assert torch.all(maps[b, n:] == 0)


def test_raw_maps_softmax_dot_products_over_regions():
    regions, words, lengths = make_inputs(num_images=7)
    maps = word_region_maps(regions, words, lengths, kind="raw")
    b, n = 1, int(lengths[1])
    torch.testing.assert_close(maps[b, :n], torch.softmax(words[b, :n] @ regions[b].T, dim=1))
    assert torch.all(maps[b, n:] == 0)
    with pytest.raises(ValueError, match="kind"):
        word_region_maps(regions, words, lengths, kind="bogus")


def test_null_region_takes_mass_out_of_the_maps():
    regions, words, lengths = make_inputs(num_images=7)
    null = torch.randn(4, dtype=torch.float64)
    maps = word_region_maps(regions, words, lengths, null_region=null)
    assert maps.shape[-1] == 6
    row_sums = maps.sum(-1)[torch.arange(7)[None] < lengths[:, None]]
    assert torch.all(row_sums < 1) and torch.all(row_sums > 0)
    b, n = 1, int(lengths[1])
    extended = torch.cat([regions[b], null[None]])
    torch.testing.assert_close(maps[b, :n], reference_alpha(extended, words[b], n)[:, :6])


def test_bf16_autocast_shapes_and_dtypes():
    regions, words, lengths = make_inputs(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        local = local_similarity(regions, words, lengths, chunk_size=2)
        glob = global_similarity(regions[:, 0], words[:, 0])
        maps = word_region_maps(regions[:5], words[:5], lengths[:5])
    assert local.shape == (5, 7) and local.dtype == torch.float32
    assert glob.shape == (5, 7) and maps.dtype == torch.float32
    assert torch.isfinite(local).all()
    torch.testing.assert_close(local, local_similarity(regions, words, lengths), atol=0.1, rtol=0.05)


def test_bad_inputs_are_refused():
    regions, words, lengths = make_inputs()
    with pytest.raises(ValueError, match="lengths must lie"):
        local_similarity(regions, words, lengths + 5)
    with pytest.raises(ValueError, match="dim"):
        local_similarity(regions[..., :3], words, lengths)
    with pytest.raises(ValueError, match="chunk_size"):
        local_similarity(regions, words, lengths, chunk_size=0)


def test_a_masked_word_is_left_out_like_a_removed_word():
    # word_mask marks the words model.text.local_words leaves out (and the rows sentence units do
    # not use); the score must then equal the formula on the report with those words deleted
    regions, words, lengths = make_inputs(num_images=3, lengths=[5, 4], max_len=5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 1] = False
    mask[1, [0, 3]] = False
    shortened = torch.zeros_like(words)
    shortened[0, :4] = words[0, [0, 2, 3, 4]]
    shortened[1, :2] = words[1, [1, 2]]
    expected = local_similarity_reference(regions, shortened, torch.tensor([4, 2]))
    torch.testing.assert_close(local_similarity(regions, words, lengths, chunk_size=2, word_mask=mask), expected,
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(local_similarity_reference(regions, words, lengths, word_mask=mask), expected,
                               rtol=1e-12, atol=1e-12)
    alpha = word_region_maps(regions[:2], words, lengths, word_mask=mask)
    assert torch.all(alpha[0, 1] == 0) and torch.all(alpha[1, [0, 3]] == 0)
    torch.testing.assert_close(alpha[0, [0, 2, 3, 4]], word_region_maps(regions[:1], shortened[:1], torch.tensor([4]))[0, :4])


def test_a_zero_vector_in_a_real_word_slot_counts_as_a_word():
    # as in the authors' words_loss: every word within the report's length enters the score, and
    # a zero vector scores cos = 0 (a term exp(0) in the sum), unlike a masked or removed word
    regions, words, lengths = make_inputs(num_images=2, lengths=[4, 3], max_len=4)
    words[0, 2] = 0
    fast = local_similarity(regions, words, lengths, chunk_size=1)
    torch.testing.assert_close(fast, local_similarity_reference(regions, words, lengths), rtol=1e-12, atol=1e-12)
    by_hand = []
    for image in regions:
        e = words[0, :4]
        alpha = torch.softmax(4.0 * torch.softmax(e @ image.T, dim=0), dim=1)  # gamma1 = 4, gamma2 = 5
        cosine = torch.nn.functional.cosine_similarity(alpha @ image, e, dim=1, eps=1e-8)
        by_hand.append(torch.logsumexp(5.0 * cosine, dim=0))
    torch.testing.assert_close(fast[:, 0], torch.stack(by_hand), rtol=1e-12, atol=1e-12)
    removed = words[:1, [0, 1, 3]]
    assert not torch.allclose(fast[:, 0], local_similarity(regions, removed, torch.tensor([3]))[:, 0])


def test_a_report_with_every_word_left_out_scores_the_empty_constant():
    regions, words, lengths = make_inputs(num_images=2, lengths=[3, 2], max_len=3)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    words.requires_grad_()
    scores = local_similarity(regions, words, lengths, word_mask=mask)
    assert torch.all(scores[:, 1] == EMPTY_REPORT_SCORE)
    scores.sum().backward()
    assert torch.isfinite(words.grad).all()
    assert torch.all(word_region_maps(regions, words.detach(), lengths, word_mask=mask)[1] == 0)


def test_cosine_scale_scores_scaled_cosines_of_the_towers_outputs():
    """model.score.cosine_scale=k: s_ij = k * cos(e_i, v_j) of the raw tower outputs, checked by hand
    through the raw map (a softmax of s_ij over regions) and through S_w against the reference."""
    from joimternet_lite.config import load_config
    from joimternet_lite.data.tokenizer import build_tokenizer, tokenize_reports
    from joimternet_lite.models.joimternet import model_for

    texts = ["left pleural effusion", "no pneumothorax is seen here"]
    tokenizer = build_tokenizer(texts, min_frequency=1)
    cfg = load_config("demo_cpu", ["data.image_size=64", "model.image.grid=4", "model.score.cosine_scale=7"])
    torch.manual_seed(0)
    model = model_for(cfg, len(tokenizer)).eval()
    batch = tokenize_reports(tokenizer, texts)
    images = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        regions = model.encode_images(images).regions
        text = model.encode_texts(batch["input_ids"], batch["attention_mask"])
        raw_regions = model.image_encoder(images).regions
        raw_words = model.text_encoder(batch["input_ids"], batch["attention_mask"]).words
        maps = model.similarity.maps(regions, text.words, text.lengths, kind="raw")
        scores = model.similarity.local_scores(regions, text.words, text.lengths)
    for b, n in enumerate(text.lengths.tolist()):
        cos = F.cosine_similarity(raw_words[b, :n, None], raw_regions[b, None], dim=-1)   # (n, R)
        torch.testing.assert_close(maps[b, :n], (7 * cos).softmax(dim=-1), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(text.words[b, :n].norm(dim=-1), torch.full((n,), 7.0))
    unit_regions = F.normalize(raw_regions, dim=-1)
    expected = local_similarity_reference(unit_regions, 7 * F.normalize(raw_words, dim=-1), text.lengths)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)


def test_the_blind_map_is_the_region_lengths_for_every_word():
    regions = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]])     # lengths 5, 1, 10
    words = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])        # two words, then padding
    maps = word_region_maps(regions, words, torch.tensor([2]), kind="blind")
    expected = torch.tensor([5.0, 1.0, 10.0]) / 16
    torch.testing.assert_close(maps[0, 0], expected)
    torch.testing.assert_close(maps[0, 1], expected)                    # the same whatever the word
    assert torch.all(maps[0, 2] == 0)                                   # padding
    with pytest.raises(ValueError, match="blind"):
        word_region_maps(regions, words, torch.tensor([2]), kind="norm")


@pytest.mark.parametrize("chunk_size", [1, 3, 32])
def test_without_the_word_softmax_fast_equals_reference_and_each_word_attends_alone(chunk_size):
    regions, words, lengths = make_inputs()
    fast = local_similarity(regions, words, lengths, 1.5, chunk_size=chunk_size, word_softmax=False)
    torch.testing.assert_close(fast, local_similarity_reference(regions, words, lengths, 1.5, word_softmax=False),
                               rtol=1e-12, atol=1e-12)
    assert not torch.allclose(fast, local_similarity(regions, words, lengths, 1.5, chunk_size=chunk_size))
    # one image, one report: a word's map is softmax over regions of gamma1 * s_ij, whatever the other words
    paired_regions, paired_words = regions[:1], words[1:2]
    maps = word_region_maps(paired_regions, paired_words, lengths[1:2], "alpha", 1.5, word_softmax=False)
    hand = (1.5 * paired_words[0] @ paired_regions[0].T).softmax(dim=-1)
    torch.testing.assert_close(maps[0], hand)


def test_scores_global_local_and_combined_follow_their_formulas():
    # one route for every caller: Similarity.scores gives S_g, S_w (the module's gammas and null
    # region) and (1 - w) S_g + w S_w / gamma2, from typed embeddings
    regions, words, lengths = make_inputs(num_images=3, lengths=[4, 2], max_len=4, dtype=torch.float32)
    vectors, report_vectors = torch.randn(3, 4), torch.randn(2, 4)
    sim = Similarity(4, ScoreConfig(gamma1=2.0, gamma2=4.0), null_region=True)
    images, reports = ImageEmbeddings(vectors, regions), ReportEmbeddings(report_vectors, words, lengths)
    glob = F.normalize(vectors, dim=1) @ F.normalize(report_vectors, dim=1).T
    local = local_similarity_reference(regions, words, lengths, 2.0, 4.0, null_region=sim.null_region.detach())
    with torch.no_grad():
        torch.testing.assert_close(sim.scores(images, reports, "global"), glob)
        torch.testing.assert_close(sim.scores(images, reports, "local"), local)
        torch.testing.assert_close(sim.scores(images, reports, "combined", 0.25), 0.75 * glob + 0.25 * local / 4.0)
    with pytest.raises(ValueError, match="scoring"):
        sim.scores(images, reports, "cosine")
