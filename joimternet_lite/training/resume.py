"""Resuming a run: which checkpoint, what it restores, and what a changed config may change.

Taught in notebook 08. ``train --resume`` continues a run so exactly that, on CPU, a run killed at
any moment and resumed ends with the weights of a run never interrupted. Four places share the work:

- this module decides *from where*: the newest complete checkpoint (``--resume``) or a chosen one
  (``--resume-from STEP|PATH``, whose newer checkpoints are moved aside, not deleted); it refuses a
  fresh run over a folder that holds checkpoints, and compares the saved config with the new one:
  a changed learning rate, weight decay, schedule or length is applied and logged (and appended to
  ``config_history.jsonl``), a change that breaks the saved state (batch size, seed, model) is refused;
- ``checkpoint.py`` writes and reads the state: weights, optimizer, scheduler, grad scaler, the
  data position and the torch / numpy / python RNG states;
- ``training/train.py`` puts the data stream back at ``(epoch, batches consumed)`` (``BatchStream``), restores
  the RNG once the stream is open, and drops log lines written after the checkpoint (``RunLog``);
- ``distributed.ResumableSampler`` makes the data order depend only on ``(seed, epoch)`` and skips the
  samples already consumed without loading them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..atomic import atomic_write_text
from ..config import Config, flatten, to_dict
from ..errors import UserError

log = logging.getLogger(__name__)

HISTORY_FILE = "config_history.jsonl"
ABANDONED_DIR = "abandoned_checkpoints"

# Changes a resumed run cannot honour: the saved state was built for the old value.
REFUSED = {
    "train.batch_size": "the saved data position counts batches of the old size",
    "train.grad_accum": "the saved data position counts micro-batches of the old accumulation",
    "train.seed": "the data order and every random draw of the saved run follow the old seed",
    "train.mlm": "the saved optimizer holds the MLM head's state only when MLM was on",
    "model.": "the saved weights belong to the old model",
}
IGNORED = ("train.out_dir",)  # a run folder copied or moved elsewhere is the same run


class ResumeError(UserError, ValueError):
    """A run that cannot be resumed as asked; the message names the checkpoint or key and the fix."""


class RunExistsError(UserError, FileExistsError):
    """A fresh run pointed at a folder that already holds checkpoints."""


# ---------------------------------------------------------------- which checkpoint

def refuse_fresh_start(run_dir: Path) -> None:
    """A fresh run must not overwrite a folder holding checkpoint folders, complete or not."""
    folders = ckpt.step_folders(run_dir)
    if folders:
        raise RunExistsError(f"{run_dir} already holds {len(folders)} checkpoint folder(s), the newest "
                             f"{folders[0].name}; pass --resume (or --resume-from STEP) to continue that run, or "
                             "choose another train.out_dir")


def find_checkpoint(run_dir: Path, resume_from: str | None = None) -> Path | None:
    """The folder to resume from: ``resume_from`` (a step number or a checkpoint folder), else the
    newest complete checkpoint; None when the run has none (it starts fresh).

    A folder without its commit marker was never completed (a kill during the write) and is passed
    over; one whose marker is there but whose files are damaged stops the resume, since the run
    behind it is recoverable by hand.
    """
    if resume_from is not None:
        return _chosen(run_dir, resume_from)
    for folder in ckpt.step_folders(run_dir):
        if not (folder / ckpt.STATE_FILE).exists():
            continue
        try:
            ckpt.read_state(folder)
        except ckpt.CheckpointError as err:
            raise ResumeError(f"{folder} is damaged: {err}. Resume from an older one with --resume-from STEP "
                              f"(this run has {_listing(run_dir)}), or move {folder.name} out of "
                              f"{folder.parent} to resume from the newest one left") from None
        return folder
    return None


def _chosen(run_dir: Path, resume_from: str) -> Path:
    folder = ckpt.checkpoint_dir(run_dir, int(resume_from)) if resume_from.isdigit() else Path(resume_from)
    if not folder.is_dir():
        what = f"no checkpoint of step {resume_from}" if resume_from.isdigit() else f"{folder}: no such folder"
        raise ResumeError(f"--resume-from {resume_from}: {what}; this run has {_listing(run_dir)}")
    ckpt.read_state(folder)
    return folder


def _listing(run_dir: Path) -> str:
    names = sorted(f.name for f in ckpt.step_folders(run_dir))
    return ", ".join(names) if names else f"no checkpoints in {run_dir / 'checkpoints'}"


def set_aside_newer(run_dir: Path, step: int) -> list[Path]:
    """Move committed checkpoints newer than ``step`` to ``<run>/abandoned_checkpoints``.

    A resume from an older checkpoint starts a new branch of the run; the newer ones would otherwise
    pass for its newest state. Never-completed folders are left to ``checkpoint.prune_checkpoints``.
    Returns the new places.
    """
    moved = []
    for folder in ckpt.step_folders(run_dir):
        if ckpt.step_of(folder) > step and (folder / ckpt.STATE_FILE).exists():
            target = run_dir / ABANDONED_DIR / folder.name
            if target.exists():
                target = target.with_name(f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), target)
            moved.append(target)
    return moved


# ---------------------------------------------------------------- what a new config may change

def config_changes(saved: dict | None, cfg: Config) -> dict[str, list]:
    """``{dotted key: [saved value, new value]}`` for every setting that differs (none when unsaved).

    Keys the saved config does not have (written by an older version) are not changes.
    """
    if not saved:
        return {}
    old, new = flatten(saved), flatten(to_dict(cfg))
    return {k: [old[k], v] for k, v in new.items() if k in old and old[k] != v and k not in IGNORED}


def refuse_breaking_changes(changes: dict[str, list], folder: Path) -> None:
    """Raise ``ResumeError`` for a change the saved state cannot follow (``REFUSED``)."""
    for key, (old, new) in changes.items():
        why = next((why for prefix, why in REFUSED.items()
                    if key == prefix or (prefix.endswith(".") and key.startswith(prefix))), None)
        if why is not None:
            raise ResumeError(f"{key} was {old!r} in {folder} and is {new!r} now, but a resumed run cannot change it: "
                              f"{why}. Set {key}={old!r} to resume, or start a new run in another train.out_dir")


def restore(folder: Path, cfg: Config, model: torch.nn.Module, *, optimizer: torch.optim.Optimizer, scheduler,
            scaler, vocab_size: int | None) -> tuple[dict, dict[str, list]]:
    """Load checkpoint ``folder`` for the new ``cfg``: refuse a change the saved state cannot follow,
    load, then give the optimizer the config's learning rates and weight decay.

    Returns the loaded state (``checkpoint.load_checkpoint``) and the changed settings.
    """
    changes = config_changes(ckpt.read_state(folder).get("config"), cfg)
    refuse_breaking_changes(changes, folder)
    fresh = group_hyperparameters(optimizer)
    state = ckpt.load_checkpoint(folder, model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                 vocab_size=vocab_size)
    apply_hyperparameters(optimizer, scheduler, fresh)
    return state, changes


def describe_changes(changes: dict[str, list]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def apply_hyperparameters(optimizer: torch.optim.Optimizer, scheduler, fresh: list[tuple[float, float]]) -> None:
    """After loading a checkpoint, give each group the config's lr and weight decay again.

    ``fresh`` holds ``(base lr, weight_decay)`` of each group as the new config built them, read
    before the load (``group_hyperparameters``). The saved scheduler step is kept, so the lr
    continues the new schedule from there; unchanged settings give exactly the saved values.
    """
    for group, (lr, weight_decay) in zip(optimizer.param_groups, fresh, strict=True):
        group["initial_lr"], group["weight_decay"] = lr, weight_decay
    scheduler.base_lrs = [lr for lr, _ in fresh]
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)


def group_hyperparameters(optimizer: torch.optim.Optimizer) -> list[tuple[float, float]]:
    """``(base lr, weight decay)`` of each group; the base lr is ``initial_lr``, which the scheduler
    set aside when it scaled ``lr`` for step 0."""
    return [(g["initial_lr"], g["weight_decay"]) for g in optimizer.param_groups]


def record_history(run_dir: Path, step: int, event: str, changes: dict[str, list]) -> None:
    """Append one line to ``config_history.jsonl``: when the run started or resumed, and what changed.

    ``config.yaml`` always holds the config now in force; this file keeps how it got there.
    """
    path = run_dir / HISTORY_FILE
    before = path.read_text() if path.exists() else ""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": event, "step": step, "changes": changes}
    atomic_write_text(path, before + json.dumps(line) + "\n")

