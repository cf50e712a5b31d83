"""Every exercise of notebooks 09, 10 and 11 discriminates: its check cells say correct for the
solution (from the solutions notebook) and wrong for plausible mistakes. Each check runs in the
exercise notebook and in its solutions notebook (whose extra "by hand" checks must agree)."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from exercise_harness import run_check

from joimternet_lite.course import check, import_definitions
from joimternet_lite.data.tokenizer import split_words
from joimternet_lite.evaluate import grounding as pkg_ground

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
EXERCISES = {
    "09": NOTEBOOKS / "09_retrieval_evaluation.ipynb",
    "10": NOTEBOOKS / "10_multilabel_classification.ipynb",
    "11": NOTEBOOKS / "11_attention_and_grounding.ipynb",
}


def solution(number: str, name: str):
    return getattr(import_definitions(SOLUTIONS / f"{number}_solutions.ipynb", [name]), name)


def notebooks(number: str) -> list[Path]:
    return [EXERCISES[number], SOLUTIONS / f"{number}_solutions.ipynb"]


def assert_discriminates(number: str, exercise: int, name: str, wrong_answers: dict) -> None:
    """The solution passes every check of the exercise; each named wrong answer fails one."""
    right = solution(number, name)
    for notebook in notebooks(number):
        assert run_check(notebook, exercise, **{name: right}), f"{notebook.name}: the solution fails"
        for label, wrong in wrong_answers.items():
            assert not run_check(notebook, exercise, **{name: wrong}), f"{notebook.name}: '{label}' passes"


# --- 09: retrieval -------------------------------------------------------------------------------

def test_09_exercise_1_mean_reciprocal_rank():
    assert_discriminates("09", 1, "mean_reciprocal_rank", {
        "reciprocal of the mean rank": lambda ranks: 1.0 / float(np.mean(ranks)),
        "ranks taken as 0-based": lambda ranks: float(np.mean(1.0 / (np.asarray(ranks) + 1.0))),
        "mean rank": lambda ranks: float(np.mean(ranks)),
    })


def _positive_sets(labels, positive):
    keys = [frozenset(np.flatnonzero(positive(row))) for row in np.asarray(labels, dtype=float)]
    return np.array([[a == b for b in keys] for a in keys])


def test_09_exercise_2_label_relevance():
    assert_discriminates("09", 2, "label_relevance_matrix", {
        "uncertain -1 counted positive": lambda labels: _positive_sets(labels, lambda r: np.nan_to_num(r) != 0),
        "blank NaN counted positive": lambda labels: _positive_sets(labels, lambda r: (r == 1) | np.isnan(r)),
        "no-finding studies never match": lambda labels: _positive_sets(labels, lambda r: r == 1)
        & (np.asarray(labels, dtype=float) == 1).any(axis=1)[:, None],
    })


def _keys(texts):
    return [" ".join(w for w, _ in split_words(t)) for t in texts]


def test_09_exercise_3_ceiling():
    def unique_share(texts):                      # the ceiling with ties counted against the model
        counts = Counter(_keys(texts))
        return 100.0 * float(np.mean([counts[k] == 1 for k in _keys(texts)]))

    def not_normalised(texts):                    # "No effusion." and "no effusion" kept apart
        counts = Counter(texts)
        return 100.0 * float(np.mean([1.0 / counts[t] for t in texts]))

    def as_fraction(texts):                       # a fraction, not percent
        counts = Counter(_keys(texts))
        return float(np.mean([1.0 / counts[k] for k in _keys(texts)]))

    assert_discriminates("09", 3, "ceiling_recall_at_1", {
        "share of unique reports": unique_share, "texts not normalised": not_normalised, "fraction": as_fraction})


# --- 10: classification --------------------------------------------------------------------------

def _pairs(tie_value: float):
    def auroc(y_true, scores):
        y, s = np.asarray(y_true).astype(bool), np.asarray(scores, dtype=float)
        pos, neg = s[y][:, None], s[~y][None, :]
        return float(((pos > neg) + tie_value * (pos == neg)).mean())
    return auroc


def test_10_exercise_1_auroc_by_pairs():
    assert_discriminates("10", 1, "auroc_by_pairs", {
        "ties count 0": _pairs(0.0), "ties count 1": _pairs(1.0),
        "positives and negatives swapped": lambda y, s: _pairs(0.5)(1 - np.asarray(y), s),
    })


def test_10_exercise_2_uncertain_ones():
    assert_discriminates("10", 2, "targets_uncertain_ones", {
        "blank left NaN": lambda labels: np.where(np.asarray(labels) == -1, 1.0, np.asarray(labels, dtype=float)),
        "uncertain counted negative": lambda labels: (np.asarray(labels) == 1).astype(float),
        "blank counted positive": lambda labels: (np.asarray(labels) != 0).astype(float),
    })


def test_10_exercise_3_weighted_mean_auroc():
    def weighted(weights_of):
        def mean(aucs, positives):
            aucs = np.asarray(aucs, dtype=float)
            keep = ~np.isnan(aucs)
            return float(np.average(aucs[keep], weights=weights_of(np.asarray(positives, dtype=float))[keep]))
        return mean

    assert_discriminates("10", 3, "weighted_mean_auroc", {
        "plain mean": lambda aucs, positives: float(np.nanmean(aucs)),
        "weighted by negatives (6 studies)": weighted(lambda p: 6 - p),
        "undefined classes kept (NaN)": lambda aucs, positives: float(np.average(aucs, weights=positives)),
    })


# --- 11: grounding -------------------------------------------------------------------------------

def test_11_exercise_1_mass_in_mask():
    assert_discriminates("11", 1, "mass_in_mask", {
        "not divided by the total mass": lambda m, inside: float(np.asarray(m)[np.asarray(inside, bool)].sum()),
        "mean over the inside cells": lambda m, inside: float(np.asarray(m)[np.asarray(inside, bool)].mean()),
        "share of inside cells": lambda m, inside: float(np.mean(inside)),
    })


def test_11_exercise_2_mirror_grid():
    assert_discriminates("11", 2, "mirror_grid", {
        "flipped up-down": lambda cells, grid: np.asarray(cells).reshape(grid)[::-1].reshape(-1),
        "the whole vector reversed": lambda cells, grid: np.asarray(cells)[::-1],
        "grid read as (gw, gh)": lambda cells, grid: np.asarray(cells).reshape(grid[::-1])[:, ::-1].reshape(-1),
    })


def test_11_exercise_3_pointing_chance():
    def fully_covered(box, grid):
        return float((pkg_ground.cell_fractions_from_box(box, grid) >= 1.0 - 1e-9).mean())

    assert_discriminates("11", 3, "pointing_chance", {
        "the box's area": lambda box, grid: float((box[2] - box[0]) * (box[3] - box[1])),
        "only fully covered cells": fully_covered,
    })


def test_11_exercise_4_word_maps():
    def regions_first(scores, gamma1, word_softmax=True):
        return (gamma1 * scores.softmax(dim=1)).softmax(dim=0) if word_softmax else scores.softmax(dim=1)

    def fix_over_words(scores, gamma1, word_softmax=True):
        return (gamma1 * scores.softmax(dim=0)).softmax(dim=1) if word_softmax else scores.softmax(dim=0)

    assert_discriminates("11", 4, "word_maps", {
        "softmax over the regions first": regions_first,
        "gamma1 left out": lambda scores, gamma1, word_softmax=True: (
            scores.softmax(dim=0).softmax(dim=1) if word_softmax else scores.softmax(dim=1)),
        "the softmax over words always kept": lambda scores, gamma1, word_softmax=True: (
            (gamma1 * scores.softmax(dim=0)).softmax(dim=1)),
        "the fix as a softmax over the words": fix_over_words,
    })


def test_a_check_names_the_mistake_it_recognises(capsys):
    """check(..., mistakes=...) says what a known wrong answer did, not only by how much it missed."""
    assert not check("ex", 1.8, 0.6, mistakes={"the mass inside, not divided by the total mass": 1.8})
    assert not check("ex", 0.7, 0.6, mistakes={"the mass inside, not divided by the total mass": 1.8})
    out = capsys.readouterr().out.splitlines()
    assert out == ["ex: max difference 1.2; this looks like the mass inside, not divided by the total mass",
                   "ex: max difference 0.1"]


@pytest.mark.parametrize("number", sorted(EXERCISES))
def test_the_unsolved_stubs_are_not_correct(number):
    for exercise in (1, 2, 3, 4) if number == "11" else (1, 2, 3):
        assert not run_check(EXERCISES[number], exercise)
