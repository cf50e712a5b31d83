"""The lr schedule against hand-computed values, directly and through LambdaLR + AdamW."""

import math

import pytest
import torch

from joimternet_lite.config import TrainConfig
from joimternet_lite.training.schedule import lr_multiplier, make_scheduler


@pytest.mark.parametrize(("step", "expected"), [
    (0, 0.25), (1, 0.5), (3, 1.0),                      # linear warm-up over 4 steps, never 0
    (4, 1.0),                                           # cosine starts at 1 after warm-up
    (12, 0.5 * (1 + math.cos(math.pi * 8 / 16))),       # half way: 0.5
    (16, 0.5 * (1 + math.cos(math.pi * 12 / 16))),
    (20, 0.0), (25, 0.0),                               # ends at 0 and stays there
])
def test_cosine_with_warmup_matches_hand_values(step, expected):
    assert lr_multiplier(step, total_steps=20, warmup_steps=4, kind="cosine") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("step", "expected"), [(0, 1.0), (9, 1.0), (10, 0.1), (14, 0.1), (15, 0.01), (99, 0.01)])
def test_step_decay_matches_hand_values(step, expected):
    assert lr_multiplier(step, total_steps=100, kind="step", milestones=(10, 15), gamma=0.1) == pytest.approx(expected)


def test_unknown_schedule_is_refused_with_the_option_name():
    with pytest.raises(ValueError, match="train.schedule"):
        lr_multiplier(0, total_steps=10, kind="linear")


def test_scheduler_sets_each_tower_group_lr_per_optimizer_step():
    cfg = TrainConfig(steps=10, warmup_steps=2, schedule="step", step_milestones=(5,), step_gamma=0.5)
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 2e-4}])
    sched = make_scheduler(opt, cfg)
    seen = []
    for _ in range(7):
        seen.extend(g["lr"] for g in opt.param_groups)
        opt.step()
        sched.step()
    factors = [0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert seen == pytest.approx([lr * f for f in factors for lr in (1e-3, 2e-4)])
