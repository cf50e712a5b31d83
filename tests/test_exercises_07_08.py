"""Every exercise of notebooks 07 and 08 discriminates: its check cell says correct for the
solution (from the solutions notebook) and wrong for plausible mistakes. Also checks notebook
08's choice of training setting per device, with fake device strings (no GPU needed)."""

import math
from pathlib import Path

import pytest
import torch
from exercise_harness import run_check

from joimternet_lite.course import import_definitions

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB07 = NOTEBOOKS / "07_loss_families.ipynb"
NB08 = NOTEBOOKS / "08_training_on_gpu.ipynb"


@pytest.fixture(scope="module")
def s07():
    return import_definitions(NOTEBOOKS / "solutions" / "07_solutions.ipynb",
                              ["triplet_all_i2t", "hardest_allowed", "twin_ce", "triplet_hardest_terms"])


# --- 07 both loss families ----------------------------------------------------------------------

def all_i2t_with_positive(scores, margin=0.5):
    """Wrong: averages over all M columns, so the positive adds a hinge of `margin`."""
    return (scores - scores.diagonal()[:, None] + margin).clamp_min(0).mean()


def all_i2t_transposed(scores, margin=0.5):
    """Wrong: the report -> image direction (columns as anchors)."""
    m = scores.shape[0]
    violation = (scores.T - scores.diagonal()[:, None] + margin).clamp_min(0)
    return (violation * ~torch.eye(m, dtype=torch.bool)).sum(1).div(m - 1).mean()


def test_07_exercise_1(s07):
    assert run_check(NB07, 1, triplet_all_i2t=s07.triplet_all_i2t)
    assert not run_check(NB07, 1, triplet_all_i2t=all_i2t_with_positive)
    assert not run_check(NB07, 1, triplet_all_i2t=all_i2t_transposed)


def test_07_exercise_2(s07):
    def twins_allowed(scores, same):           # wrong: only the diagonal excluded
        return scores.masked_fill(torch.eye(scores.shape[0], dtype=torch.bool), float("-inf")).argmax(1)

    def positive_allowed(scores, same):        # wrong: only the twins excluded
        return scores.masked_fill(same, float("-inf")).argmax(1)

    assert run_check(NB07, 2, hardest_allowed=s07.hardest_allowed)
    assert not run_check(NB07, 2, hardest_allowed=twins_allowed)
    assert not run_check(NB07, 2, hardest_allowed=positive_allowed)


def test_07_exercise_3(s07):
    def no_temperature(copies, batch_size, gamma3=10.0):
        return math.log(copies + (batch_size - copies) * math.exp(-2))

    def only_own_report(copies, batch_size, gamma3=10.0):      # forgets the twins share the softmax
        return math.log(1 + (batch_size - 1) * math.exp(-2 * gamma3))

    assert run_check(NB07, 3, twin_ce=s07.twin_ce)
    assert not run_check(NB07, 3, twin_ce=no_temperature)
    assert not run_check(NB07, 3, twin_ce=only_own_report)


def hardest_terms(scores, margin=0.5, exclude_positive=True, swap=False):
    eye = torch.eye(scores.shape[0], dtype=torch.bool)
    candidates = scores.masked_fill(eye, float("-inf")) if exclude_positive else scores
    i2t = (candidates.max(1).values - scores.diagonal() + margin).clamp_min(0).mean()
    t2i = (candidates.max(0).values - scores.diagonal() + margin).clamp_min(0).mean()
    return (t2i, i2t) if swap else (i2t, t2i)


@pytest.mark.parametrize("wrong", [
    pytest.param(lambda s, margin=0.5: hardest_terms(s, margin, swap=True), id="transposed-direction"),
    pytest.param(lambda s, margin=0.5: hardest_terms(s, margin, exclude_positive=False), id="positive-not-excluded"),
    pytest.param(lambda s, margin=0.5: hardest_terms(s, 0.0), id="margin-missing"),
    pytest.param(lambda s, margin=0.5: (hardest_terms(s, margin)[0],) * 2, id="rows-for-both"),
])
def test_07_exercise_4_fails_wrong_answers(wrong):
    assert not run_check(NB07, 4, triplet_hardest_terms=wrong)


def test_07_exercise_4_passes_the_solution_and_a_rewrite(s07):
    assert run_check(NB07, 4, triplet_hardest_terms=s07.triplet_hardest_terms)
    assert run_check(NB07, 4, triplet_hardest_terms=hardest_terms)      # an independent rewrite passes too
