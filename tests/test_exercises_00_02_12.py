"""Every exercise of notebooks 00, 01, 02 and 12 discriminates: its check cell says correct for
the solution and wrong for at least one plausible mistake. Also tests the harness that runs the
check cells (tests/exercise_harness.py) on notebook 05's exercise 1."""

from pathlib import Path

import pytest
import torch
from exercise_harness import run_check

from joimternet_lite.course import check, import_definitions

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"


# --- the harness itself -------------------------------------------------------------------------

def test_harness_passes_the_solution_and_fails_a_wrong_direction():
    notebook = NOTEBOOKS / "05_global_alignment.ipynb"
    solution = import_definitions(SOLUTIONS / "05_solutions.ipynb", ["ce_image_to_report"]).ce_image_to_report

    def report_to_image(scores, gamma3=10.0):      # logsumexp over the wrong axis
        logits = gamma3 * scores
        return (torch.logsumexp(logits, dim=0) - logits.diagonal()).mean()

    assert run_check(notebook, 1, ce_image_to_report=solution)
    assert not run_check(notebook, 1, ce_image_to_report=report_to_image)


def test_harness_counts_the_unsolved_stub_and_a_raising_candidate_as_wrong():
    notebook = NOTEBOOKS / "05_global_alignment.ipynb"

    def raises(scores, gamma3=10.0):
        raise RuntimeError("shape mismatch")

    assert not run_check(notebook, 1)                         # the stub: NotImplementedError, no check ran
    assert not run_check(notebook, 1, ce_image_to_report=raises)


def test_harness_rejects_unknown_names_and_exercises():
    notebook = NOTEBOOKS / "05_global_alignment.ipynb"
    with pytest.raises(KeyError, match="ce_image_to_reprot"):
        run_check(notebook, 1, ce_image_to_reprot=lambda s, g=10.0: s)
    with pytest.raises(ValueError, match="exercise 99"):
        run_check(notebook, 99)


def test_check_calls_an_empty_expected_value_wrong(capsys):
    assert not check("nothing", [], [])
    assert "nothing to compare" in capsys.readouterr().out
    assert check("something", [1.0], [1.0])
