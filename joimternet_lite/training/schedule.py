"""Learning-rate schedules: linear warm-up, then cosine decay or step decay.

Taught in notebook 08. The schedule is a multiplier of each parameter group's base lr, served to
``torch.optim.lr_scheduler.LambdaLR`` and stepped once per optimizer step (not per micro-batch).
The ``step`` kind is the authors' (x0.1 at epoch 20 of 35, expressed in optimizer steps by the
``mimic_paper`` preset); ``cosine`` is the lite presets' default.
"""

from __future__ import annotations

import math

import torch

from ..config import SCHEDULES, TrainConfig


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                  milestones: tuple[int, ...] = (), gamma: float = 0.1) -> float:
    """The factor applied to the base lr for optimizer step ``step`` (0-based).

    Warm-up is linear from ``1 / warmup_steps`` to 1 over the first ``warmup_steps`` steps, so the
    first step never runs at lr 0. After it, ``cosine`` decays from 1 to 0 at ``total_steps``;
    ``step`` multiplies by ``gamma`` once for every milestone already reached.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r}: use one of {SCHEDULES} (train.schedule)")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "step":
        return gamma ** sum(step >= m for m in milestones)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over every parameter group of ``optimizer`` following ``cfg`` (train section)."""
    def factor(step: int) -> float:
        return lr_multiplier(step, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps, kind=cfg.schedule,
                             milestones=cfg.step_milestones, gamma=cfg.step_gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
