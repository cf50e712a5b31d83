"""Every exercise of notebooks 07 and 08 discriminates: its check cell says correct for the
solution (from the solutions notebook) and wrong for plausible mistakes. Also checks notebook
08's choice of training setting per device, with fake device strings (no GPU needed)."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from exercise_harness import run_check

from joimternet_lite.course import import_definitions

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
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


# --- 08 training, on GPU ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s08():
    return import_definitions(NOTEBOOKS / "solutions" / "08_solutions.ipynb",
                              ["lr_factor", "rank_ce_i2t", "tower_grad_norms", "one_optimizer_step"])


def test_08_exercise_1(s08):
    def warmup_off_by_one(step, total, warmup):
        return step / warmup if step < warmup else s08.lr_factor(step, total, warmup)

    def cosine_from_zero(step, total, warmup):          # the cosine ignores the warm-up steps
        return (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))

    assert run_check(NB08, 1, lr_factor=s08.lr_factor)
    assert not run_check(NB08, 1, lr_factor=warmup_off_by_one)
    assert not run_check(NB08, 1, lr_factor=cosine_from_zero)


def test_08_exercise_2(s08):
    def targets_without_offset(images_by_rank, reports_by_rank, rank, gamma3=10.0):
        scores = F.normalize(images_by_rank[rank], dim=-1) @ F.normalize(torch.cat(reports_by_rank), dim=-1).T
        return F.cross_entropy(gamma3 * scores, torch.arange(len(images_by_rank[rank])))

    def own_reports_only(images_by_rank, reports_by_rank, rank, gamma3=10.0):    # no gathered negatives
        scores = F.normalize(images_by_rank[rank], dim=-1) @ F.normalize(reports_by_rank[rank], dim=-1).T
        return F.cross_entropy(gamma3 * scores, torch.arange(len(images_by_rank[rank])))

    assert run_check(NB08, 2, rank_ce_i2t=s08.rank_ce_i2t)
    assert not run_check(NB08, 2, rank_ce_i2t=targets_without_offset)
    assert not run_check(NB08, 2, rank_ce_i2t=own_reports_only)


def test_08_exercise_3(s08):
    def sum_of_parameter_norms(model):
        return {name: sum(p.grad.norm().item() for p in tower.parameters() if p.grad is not None)
                for name, tower in (("image", model.image_encoder), ("text", model.text_encoder))}

    def towers_swapped(model):
        norms = s08.tower_grad_norms(model)
        return {"image": norms["text"], "text": norms["image"]}

    assert run_check(NB08, 3, tower_grad_norms=s08.tower_grad_norms)
    assert not run_check(NB08, 3, tower_grad_norms=sum_of_parameter_norms)
    assert not run_check(NB08, 3, tower_grad_norms=towers_swapped)


def step_in_order(*order):
    """A candidate for exercise 4 doing the moves of one optimizer step in ``order``."""
    def candidate(model, loss_fn, optimizer, inputs, targets, max_norm):
        loss = None
        for move in order:
            if move == "zero_grad":
                optimizer.zero_grad()
            elif move == "forward":
                loss = loss_fn(model(inputs), targets)
            elif move == "backward":
                loss.backward()
            elif move == "clip":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            elif move == "step":
                optimizer.step()
        return loss.item()
    return candidate


@pytest.mark.parametrize("order", [
    pytest.param(("forward", "backward", "clip", "step"), id="no-zero_grad"),
    pytest.param(("zero_grad", "forward", "step", "backward", "clip"), id="step-before-backward"),
    pytest.param(("zero_grad", "forward", "backward", "step", "clip"), id="clip-after-step"),
    pytest.param(("zero_grad", "forward", "backward", "step"), id="no-clip"),
])
def test_08_exercise_4_fails_wrong_orders(order):
    assert not run_check(NB08, 4, one_optimizer_step=step_in_order(*order))


def test_08_exercise_4_passes_the_solution_and_the_right_order(s08):
    assert run_check(NB08, 4, one_optimizer_step=s08.one_optimizer_step)
    assert run_check(NB08, 4, one_optimizer_step=step_in_order("zero_grad", "forward", "backward", "clip", "step"))


@pytest.fixture(scope="module")
def course_setting():
    return import_definitions(NB08, ["course_setting"]).course_setting


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_08_a_gpu_trains_the_paper_sized_towers(course_setting, device):
    setting = course_setting(device)
    assert (setting["preset"], setting["image_size"]) == ("synth_gpu", 256)
    assert setting["precision"] in ("bf16", "fp16")          # bf16 where the GPU has it; no GPU here says fp16
    assert setting["train_steps"] > course_setting("cpu")["train_steps"]


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_08_cpu_and_mps_keep_the_small_setting(course_setting, device):
    setting = course_setting(device)
    assert setting == {"preset": "demo_cpu", "image_size": 128, "num_studies": 400, "batch_size": 16,
                       "inline_steps": 20, "train_steps": 200, "precision": "fp32"}


def test_08_smoke_shrinks_steps_but_keeps_the_device_choice(course_setting):
    gpu, cpu = course_setting("cuda", smoke=True), course_setting("cpu", smoke=True)
    assert (gpu["preset"], gpu["image_size"], cpu["preset"], cpu["image_size"]) == ("synth_gpu", 256, "demo_cpu", 128)
    assert gpu["train_steps"] == cpu["train_steps"] == 4
