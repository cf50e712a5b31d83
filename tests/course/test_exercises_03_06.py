"""Every exercise check of notebooks 03-06 discriminates: the solutions notebook's answer passes
it, and plausible wrong answers (the transposed direction, padding counted, a missing
temperature, ...) fail it. The checks run through ``tests/course/exercise_harness.py``."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from exercise_harness import run_check

from joimternet_lite.course import import_definitions

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def solution(number: str, name: str):
    """The function ``name`` as the solutions notebook ``number`` defines it."""
    return getattr(import_definitions(NOTEBOOKS / "solutions" / f"{number}_solutions.ipynb", [name]), name)


def passes(notebook: str, exercise: int, name: str, candidate) -> bool:
    return run_check(NOTEBOOKS / notebook, exercise, **{name: candidate})


def assert_discriminates(notebook: str, exercise: int, name: str, wrong: list) -> None:
    number = notebook[:2]
    assert passes(notebook, exercise, name, solution(number, name)), "the solution must pass"
    for candidate in wrong:
        assert not passes(notebook, exercise, name, candidate), f"{candidate.__doc__} must fail"


# --- 03 image encoder -----------------------------------------------------------------------------

def test_03_exercise_1_conv_output_size():
    def no_padding(size, layers):
        """padding ignored"""
        for kernel, stride, _ in layers:
            size = (size - kernel) // stride + 1
        return size

    def rounds_up(size, layers):
        """rounds the division up"""
        for kernel, stride, padding in layers:
            size = -(-(size + 2 * padding - kernel) // stride) + 1
        return size

    assert_discriminates("03_image_encoder.ipynb", 1, "conv_output_size", [no_padding, rounds_up])


def test_03_exercise_2_basic_block_parameters():
    def always_shortcut(c_in, c_out, stride):
        """the 1 x 1 shortcut counted even when nothing changes"""
        return 9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out + 6 * c_out

    def no_batch_norm(c_in, c_out, stride):
        """batch norm parameters forgotten"""
        shortcut = c_in * c_out if stride != 1 or c_in != c_out else 0
        return 9 * c_in * c_out + 9 * c_out * c_out + shortcut

    assert_discriminates("03_image_encoder.ipynb", 2, "basic_block_parameters", [always_shortcut, no_batch_norm])


def test_03_exercise_3_regions_to_map():
    def plain_reshape(regions, gh, gw):
        """reshape without moving the channel axis first"""
        return regions.reshape(regions.shape[0], -1, gh, gw)

    def column_major(regions, gh, gw):
        """regions read column by column"""
        b, _, d = regions.shape
        return regions.transpose(1, 2).reshape(b, d, gw, gh).transpose(2, 3)

    assert_discriminates("03_image_encoder.ipynb", 3, "regions_to_map", [plain_reshape, column_major])


# --- 04 text encoder ------------------------------------------------------------------------------

def test_04_exercise_1_word_lengths():
    def counts_cls(attention_mask):
        """[CLS] counted as a word"""
        return attention_mask.sum(dim=1)

    def drops_sep(attention_mask):
        """[SEP] dropped too"""
        return attention_mask.sum(dim=1) - 2

    assert_discriminates("04_text_encoder.ipynb", 1, "word_lengths", [counts_cls, drops_sep])


def test_04_exercise_2_mlm_loss():
    def every_position(logits, labels):
        """the mean over every position, unpicked ones with target 0"""
        return F.cross_entropy(logits.flatten(0, 1), labels.clamp_min(0).flatten())

    def summed(logits, labels):
        """the sum over picked positions instead of the mean"""
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")

    assert_discriminates("04_text_encoder.ipynb", 2, "mlm_loss", [every_position, summed])


def _bert_parameters(vocab_size, hidden, layers, intermediate, max_positions=512, type_vocab=2,
                     layer_norms=True, token_types=True):
    norm = 2 * hidden if layer_norms else 0
    embeddings = (vocab_size + max_positions + (type_vocab if token_types else 0)) * hidden + norm
    attention = 4 * (hidden * hidden + hidden) + norm
    feed_forward = hidden * intermediate + intermediate + intermediate * hidden + hidden + norm
    return embeddings + layers * (attention + feed_forward)


def test_04_exercise_3_count_bert_parameters():
    def no_layer_norms(*args, **kwargs):
        """LayerNorms forgotten"""
        return _bert_parameters(*args, **kwargs, layer_norms=False)

    def no_token_types(*args, **kwargs):
        """token-type embeddings forgotten"""
        return _bert_parameters(*args, **kwargs, token_types=False)

    assert passes("04_text_encoder.ipynb", 3, "count_bert_parameters", _bert_parameters), "the test's own count"
    assert_discriminates("04_text_encoder.ipynb", 3, "count_bert_parameters", [no_layer_norms, no_token_types])


# --- 05 global alignment --------------------------------------------------------------------------

def _ce_rows(logits: torch.Tensor) -> torch.Tensor:
    return (logits.logsumexp(dim=1) - logits.diagonal()).mean()


def test_05_exercise_1_image_to_report_ce():
    def columns(scores, gamma3=10.0):
        """the report -> image direction (softmax over columns)"""
        return _ce_rows(gamma3 * scores.T)

    def no_temperature(scores, gamma3=10.0):
        """no temperature"""
        return _ce_rows(scores)

    assert_discriminates("05_global_alignment.ipynb", 1, "ce_image_to_report", [columns, no_temperature])


def test_05_exercise_2_loss_floor():
    def negatives_at_zero(batch_size, gamma3=10.0):
        """negatives orthogonal (cosine 0) instead of at -1/(M-1)"""
        return math.log1p((batch_size - 1) * math.exp(-gamma3))

    def all_m_negatives(batch_size, gamma3=10.0):
        """M negatives instead of M - 1"""
        return math.log1p(batch_size * math.exp(-gamma3 * (1 + 1 / (batch_size - 1))))

    assert_discriminates("05_global_alignment.ipynb", 2, "loss_floor", [negatives_at_zero, all_m_negatives])


def test_05_exercise_3_report_to_image_recall():
    def rows(scores):
        """image -> report (argmax over each row): the transposed answer"""
        return (scores.argmax(dim=1) == torch.arange(len(scores))).float().mean().item()

    def ties_to_the_last(scores):
        """ties broken toward the higher index"""
        flipped = scores.flip(0).argmax(dim=0)
        return (len(scores) - 1 - flipped == torch.arange(len(scores))).float().mean().item()

    assert_discriminates("05_global_alignment.ipynb", 3, "recall_at_1_report_to_image", [rows, ties_to_the_last])


def test_05_exercise_4_bidirectional_ce():
    def image_to_report_only(scores, gamma3=10.0):
        """one direction only (rows)"""
        return _ce_rows(gamma3 * scores)

    def report_to_image_only(scores, gamma3=10.0):
        """the transposed direction only (columns)"""
        return _ce_rows(gamma3 * scores.T)

    def no_temperature(scores, gamma3=10.0):
        """both directions without the temperature"""
        return (_ce_rows(scores) + _ce_rows(scores.T)) / 2

    def fixed_temperature(scores, gamma3=10.0):
        """gamma3 hard-coded to 10"""
        return (_ce_rows(10 * scores) + _ce_rows(10 * scores.T)) / 2

    assert_discriminates("05_global_alignment.ipynb", 4, "bidirectional_ce",
                         [image_to_report_only, report_to_image_only, no_temperature, fixed_temperature])


# --- 06 region-word attention ---------------------------------------------------------------------

def test_06_exercise_1_context_norms():
    def diagonal_only(alpha, regions):
        """drops the cross terms: sum_j alpha_ij^2 |v_j|^2"""
        return alpha.pow(2) @ regions.pow(2).sum(dim=1)

    def not_squared(alpha, regions):
        """the norm instead of its square"""
        return ((alpha @ (regions @ regions.T)) * alpha).sum(dim=1).sqrt()

    assert_discriminates("06_region_word_attention.ipynb", 1, "context_norms_squared", [diagonal_only, not_squared])


def test_06_exercise_2_equal_words_score():
    def mean_not_sum(num_words, cosine, gamma2=5.0):
        """a mean over the words (no log n)"""
        return gamma2 * cosine

    def paper_scaling(num_words, cosine, gamma2=5.0):
        """AttnGAN's 1/gamma2 in front of the log"""
        return (gamma2 * cosine + math.log(num_words)) / gamma2

    assert_discriminates("06_region_word_attention.ipynb", 2, "equal_words_score", [mean_not_sum, paper_scaling])


def test_06_exercise_3_region_owner():
    def padding_wins(scores, num_words):
        """padding rows not masked"""
        return scores.softmax(dim=0).argmax(dim=0)

    def wrong_axis(scores, num_words):
        """softmax and argmax over the regions (one answer per word)"""
        return scores[:num_words].softmax(dim=1).argmax(dim=1)

    assert_discriminates("06_region_word_attention.ipynb", 3, "region_owner", [padding_wins, wrong_axis])


def _damsm(regions, words, gamma1, gamma2, first_axis=0, second_axis=1, use_gamma2=True):
    """S_w of one pair, real words only; the axes say which softmax normalises over what
    (0: over the words, 1: over the regions)."""
    s = words @ regions.T                                             # (n, R)
    alpha = (gamma1 * s.softmax(dim=first_axis)).softmax(dim=second_axis)
    cosine = F.cosine_similarity(alpha @ regions, words, dim=1)
    return (gamma2 * cosine if use_gamma2 else cosine).logsumexp(dim=0)


def test_06_exercise_4_damsm_score_one_pair():
    def regions_first(regions, words, length, gamma1=4.0, gamma2=5.0):
        """the first softmax over the regions instead of over the words"""
        return _damsm(regions, words[:length], gamma1, gamma2, first_axis=1)

    def swapped_axes(regions, words, length, gamma1=4.0, gamma2=5.0):
        """both softmaxes over the wrong axis"""
        return _damsm(regions, words[:length], gamma1, gamma2, first_axis=1, second_axis=0)

    def one_padding_word(regions, words, length, gamma1=4.0, gamma2=5.0):
        """length off by one: the first padding row counted as a word"""
        return _damsm(regions, words[:length + 1], gamma1, gamma2)

    def all_rows(regions, words, length, gamma1=4.0, gamma2=5.0):
        """every row counted, padding included"""
        return _damsm(regions, words, gamma1, gamma2)

    def no_gamma2(regions, words, length, gamma1=4.0, gamma2=5.0):
        """the log-sum-exp without gamma2"""
        return _damsm(regions, words[:length], gamma1, gamma2, use_gamma2=False)

    assert passes("06_region_word_attention.ipynb", 4, "damsm_score",
                  lambda r, w, n, g1=4.0, g2=5.0: _damsm(r, w[:n], g1, g2)), "the test's own reference"
    assert_discriminates("06_region_word_attention.ipynb", 4, "damsm_score",
                         [regions_first, swapped_axes, one_padding_word, all_rows, no_gamma2])
