"""Every exercise of notebooks 00, 01, 02 and 12 discriminates: its check cell says correct for
the solution and wrong for at least one plausible mistake. Also tests the harness that runs the
check cells (tests/course/exercise_harness.py) on notebook 05's exercise 1."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from exercise_harness import run_check

from joimternet_lite.course import check, import_definitions
from joimternet_lite.data.schema import CHEXPERT_LABELS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
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


def _solution(number: str, name: str):
    """Exercise function ``name`` from ``notebooks/solutions/<number>_solutions.ipynb``."""
    return getattr(import_definitions(SOLUTIONS / f"{number}_solutions.ipynb", [name]), name)


# --- notebook 00 --------------------------------------------------------------------------------

NB00 = NOTEBOOKS / "00_welcome_and_setup.ipynb"


def test_00_exercise_1_precision_rule():
    assert run_check(NB00, 1, choose_precision=_solution("00", "choose_precision"))

    def ignores_device(device_type, bf16_supported):
        return "bf16" if bf16_supported else "fp16"

    def mps_like_cuda(device_type, bf16_supported):
        return "fp32" if device_type == "cpu" else "bf16" if bf16_supported else "fp16"

    assert not run_check(NB00, 1, choose_precision=ignores_device)
    assert not run_check(NB00, 1, choose_precision=mps_like_cuda)


def test_00_exercise_2_round_to_bf16():
    assert run_check(NB00, 2, round_to_bf16=_solution("00", "round_to_bf16"))

    def truncate(x):                       # drops the low bits: -2.718 comes out one step too small
        return (x.contiguous().view(torch.int32) & ~0xFFFF).view(torch.float32)

    def half_up(x):                        # rounds ties up, not to even: 1.00390625 -> 1.0078125
        return ((x.contiguous().view(torch.int32) + 0x8000) & ~0xFFFF).view(torch.float32)

    assert not run_check(NB00, 2, round_to_bf16=truncate)
    assert not run_check(NB00, 2, round_to_bf16=half_up)


# --- notebook 01 --------------------------------------------------------------------------------

NB01 = NOTEBOOKS / "01_chest_xrays_and_reports.ipynb"


def test_01_exercise_1_split_sections():
    assert run_check(NB01, 1, split_sections=_solution("01", "split_sections"))

    def keeps_line_breaks(report):
        headers = list(re.finditer(r"^([A-Z][A-Z ]*[A-Z]):", report, re.MULTILINE))
        ends = [h.start() for h in headers[1:]] + [len(report)]
        return {h.group(1): report[h.end():end].strip() for h, end in zip(headers, ends, strict=True)}

    assert not run_check(NB01, 1, split_sections=keeps_line_breaks)


def test_01_exercise_2_binarize_labels():
    assert run_check(NB01, 2, binarize_labels=_solution("01", "binarize_labels"))

    def blank_is_nan_too(labels, policy):         # "ignore" must leave out the uncertain label only
        value = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[policy]
        return np.array([1.0 if labels[n] == 1 else value if labels[n] in (-1, None) else 0.0
                         for n in CHEXPERT_LABELS])

    assert not run_check(NB01, 2, binarize_labels=blank_is_nan_too)


def test_01_exercise_3_box_from_mask():
    assert run_check(NB01, 3, box_from_mask=_solution("01", "box_from_mask"))

    def ends_at_last_pixel(mask):                 # the box stops one pixel short
        ys, xs = np.nonzero(mask)
        return [xs.min() / mask.shape[0], ys.min() / mask.shape[0], xs.max() / mask.shape[0], ys.max() / mask.shape[0]]

    def rows_as_x(mask):                          # x and y swapped
        ys, xs = np.nonzero(mask)
        return [ys.min() / mask.shape[0], xs.min() / mask.shape[0], (ys.max() + 1) / mask.shape[0],
                (xs.max() + 1) / mask.shape[0]]

    assert not run_check(NB01, 3, box_from_mask=ends_at_last_pixel)
    assert not run_check(NB01, 3, box_from_mask=rows_as_x)


# --- notebook 02 --------------------------------------------------------------------------------

NB02 = NOTEBOOKS / "02_data_pipeline.ipynb"


def test_02_exercise_1_labels_to_vector():
    assert run_check(NB02, 1, labels_to_vector=_solution("02", "labels_to_vector"))

    def blank_as_zero(labels):                    # blank must stay NaN, not become a negative
        return torch.tensor([0.0 if labels[n] is None else float(labels[n]) for n in CHEXPERT_LABELS])

    def uncertain_as_negative(labels):            # -1 must stay -1 (the policy comes later)
        return torch.tensor([float("nan") if labels[n] is None else float(max(labels[n], 0)) for n in CHEXPERT_LABELS])

    assert not run_check(NB02, 1, labels_to_vector=blank_as_zero)
    assert not run_check(NB02, 1, labels_to_vector=uncertain_as_negative)


def test_02_exercise_2_pad_token_ids():
    solution = _solution("02", "pad_token_ids")
    assert run_check(NB02, 2, pad_token_ids=solution)

    def cut_without_sep(sequences, max_length):   # truncation must keep the final [SEP]
        return solution([s[:max_length] for s in sequences], 10**6)

    def one_too_long(sequences, max_length):
        return solution(sequences, max_length + 1)

    assert not run_check(NB02, 2, pad_token_ids=cut_without_sep)
    assert not run_check(NB02, 2, pad_token_ids=one_too_long)


def test_02_exercise_3_head_token_ids():
    assert run_check(NB02, 3, head_token_ids=_solution("02", "head_token_ids"))

    def word_indices(record, tokenizer):          # forgets that [CLS] is token 0
        return [list(gt["head_words"]) for gt in record["findings_gt"]]

    def nothing(record, tokenizer):               # an empty answer used to pass the check
        return []

    def empty_lists(record, tokenizer):
        return [[] for _ in record["findings_gt"]]

    for wrong in (word_indices, nothing, empty_lists):
        assert not run_check(NB02, 3, head_token_ids=wrong), wrong.__name__


# --- notebook 12 --------------------------------------------------------------------------------

NB12 = NOTEBOOKS / "12_real_data.ipynb"


def test_12_exercise_1_mimic_study_folder():
    assert run_check(NB12, 1, mimic_study_folder=_solution("12", "mimic_study_folder"))

    def first_digit_folder(subject_id, study_id):         # p1 instead of p10
        return f"files/p{str(subject_id)[:1]}/p{subject_id}/s{study_id}"

    def no_files_prefix(subject_id, study_id):
        return f"p{str(subject_id)[:2]}/p{subject_id}/s{study_id}"

    assert not run_check(NB12, 1, mimic_study_folder=first_digit_folder)
    assert not run_check(NB12, 1, mimic_study_folder=no_files_prefix)


def test_12_exercise_2_letterbox_square():
    solution = _solution("12", "letterbox_square")
    assert run_check(NB12, 2, letterbox_square=solution)

    def top_left(image, size):                             # pasted in the corner, not centred
        out = solution(image, size)
        rows, cols = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
        moved = np.zeros_like(out)
        block = out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        moved[:block.shape[0], :block.shape[1]] = block
        return moved

    def truncated_to_uint8(image, size):                   # int(image * 255) instead of rounding
        return solution(np.floor(image * 255) / 255, size)

    assert not run_check(NB12, 2, letterbox_square=top_left)
    assert not run_check(NB12, 2, letterbox_square=truncated_to_uint8)


def test_12_exercise_3_openi_split():
    assert run_check(NB12, 3, openi_split=_solution("12", "openi_split"))

    def without_seed(study_id, seed=42):
        digest = hashlib.sha256(str(study_id).encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return "train" if u < 0.7 else "validate" if u < 0.8 else "test"

    def little_endian(study_id, seed=42):
        digest = hashlib.sha256(f"{seed}:{study_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "little") / 2**64
        return "train" if u < 0.7 else "validate" if u < 0.8 else "test"

    assert not run_check(NB12, 3, openi_split=without_seed)
    assert not run_check(NB12, 3, openi_split=little_endian)
