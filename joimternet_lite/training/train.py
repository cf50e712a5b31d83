"""The training engine: one plain-PyTorch loop for CPU, one GPU and N GPUs (``torchrun``).

Taught in notebook 08 (the loop, checkpoints, resume) and its GPU sections (mixed precision,
``torch.compile``, DDP). ``train(cfg)`` is the whole pipeline; the loop itself is
:func:`run_loop`, readable in one screen, and each of its steps is a small function below it.

Exact resume (mapped in ``training/resume.py``): the data order depends only on ``(seed, epoch)``, the choice
of an image-text or MLM step only on ``(seed, step)``, and a checkpoint stores the data position and
the torch / numpy / python RNG states (which drive dropout, augmentation, random negatives and MLM
masking). On CPU a run killed at any point and resumed ends with the same weights as one that was
never interrupted.

Non-finite values: a step whose loss or (unscaled) gradient is NaN/Inf is never applied; the run
stops after saving the state before it, or skips it (``train.nan_policy=skip``). Checkpoints hold
finite weights only.

Distributed trade-off (``train.gather_local``): the global vectors of every rank are gathered with
gradients, so the global CE/triplet terms see all ``world_size * B`` negatives. The local (word-region)
terms cost O(I * T * L * R) and stay per rank by default (B negatives); gathering them too gives the
paper's objective exactly at ``world_size**2`` times the local cost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoint as ckpt
from ..config import Config, ConfigError, TrainConfig, save_config, to_dict, validate
from ..data.skips import StudySkipLog
from ..device import autocast_context, describe, make_grad_scaler, pick_device, resolve_precision, to_device
from ..distributed import (
    DistInfo,
    all_ranks_true,
    average_gradients,
    cleanup,
    gather_sizes,
    gather_with_grad,
    init_distributed,
    max_over_ranks,
)
from ..errors import UserError
from ..losses import JoImTeRNetLoss, same_report_mask
from ..models.outputs import ModelOutput
from ..models.text_encoder import mlm_mask
from .resume import (
    describe_changes,
    find_checkpoint,
    record_history,
    refuse_fresh_start,
    restore,
    set_aside_newer,
)
from .run_log import RunLog
from .schedule import make_scheduler

log = logging.getLogger(__name__)

TOWERS = ("image", "text")


class NonFiniteLossError(UserError, RuntimeError):
    """A NaN or Inf loss or gradient; the message names the step, the batch and the checkpoint of the
    last good state."""


class _NonFiniteBatch(Exception):
    """Raised inside a step when a loss or gradient is NaN/Inf on some rank; carries this rank's
    batch, what went non-finite (``loss`` or ``gradient``) and the values."""

    def __init__(self, what: str, study_ids: list[str], terms: dict[str, float | torch.Tensor]):
        self.what, self.study_ids, self.terms = what, study_ids, {k: float(v) for k, v in terms.items()}
        super().__init__(f"non-finite {what} on studies {study_ids}: {self.terms}")


@dataclass
class TrainResult:
    model: nn.Module                  # the trained model (unwrapped from DDP / compile)
    out_dir: Path
    checkpoint: Path | None           # the final checkpoint folder (None on ranks > 0)
    steps: int
    last_metrics: dict[str, float]    # the last logged step's metrics
    nan_skips: int
    skipped_samples: int
    seconds: float


# ---------------------------------------------------------------- optimizer, clipping

def _tower_of(name: str) -> str:
    """``text`` for parameters under ``text_encoder.``, else ``image``.

    Parameters outside both encoders (the similarity's optional null region) act on the image side
    of the matching, so they follow the image tower's lr and clipping.
    """
    return "text" if name.startswith("text_encoder.") else "image"


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups per tower, with and without weight decay.

    Norm weights, biases and scalars (``ndim < 2``) get no weight decay; everything else gets
    ``cfg.weight_decay``. Each group carries its ``tower`` name for per-tower clipping.
    """
    lrs = {"image": cfg.lr_image, "text": cfg.lr_text}
    groups = {(t, d): [] for t in TOWERS for d in (True, False)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[(_tower_of(name), p.ndim >= 2)].append(p)
    return [{"params": ps, "tower": t, "lr": lrs[t], "weight_decay": cfg.weight_decay if decay else 0.0}
            for (t, decay), ps in groups.items() if ps]


def clip_per_tower(optimizer: torch.optim.Optimizer, max_norms: dict[str, float]) -> dict[str, float]:
    """Clip each tower's gradients to its own global norm; returns the norms before clipping."""
    norms = {}
    for tower, max_norm in max_norms.items():
        params = [p for g in optimizer.param_groups if g["tower"] == tower for p in g["params"] if p.grad is not None]
        if params:
            norms[tower] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return norms


# ---------------------------------------------------------------- data position

class BatchStream:
    """Endless micro-batches, epoch after epoch, from a position ``(epoch, consumed)``.

    The loader's sampler is told the epoch (``set_epoch``) and, on resume, to skip the batches
    already consumed (``ResumableSampler.skip``), so no skipped batch is loaded.
    """

    def __init__(self, loader, epoch: int = 0, consumed: int = 0):
        if len(loader) == 0:
            raise ValueError(f"the training loader yields no batch: {len(loader.dataset)} samples, batch size "
                             f"{loader.batch_size} with drop_last; lower train.batch_size or add data")
        self.loader, self.epoch, self.consumed = loader, epoch, consumed
        self._iter = self._open_epoch(skip=consumed)

    def _open_epoch(self, skip: int):
        sampler = self.loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        if hasattr(sampler, "skip"):
            sampler.skip(skip * self.loader.batch_size)
            return iter(self.loader)
        if skip:
            log.warning("the loader's sampler cannot skip; loading %d batches to discard them (exact resume "
                        "needs joimternet_lite.distributed.ResumableSampler)", skip)
        it = iter(self.loader)
        for _ in range(skip):
            next(it)
        return it

    def next(self) -> dict:
        while True:
            try:
                batch = next(self._iter)
            except StopIteration:
                self.epoch, self.consumed = self.epoch + 1, 0
                self._iter = self._open_epoch(skip=0)
                continue
            self.consumed += 1
            return batch

    def position(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed}


def step_kind(cfg: TrainConfig, step: int) -> str:
    """``itm`` (image-text) or ``mlm`` (text only); the same on every rank and after a resume."""
    if not cfg.mlm:
        return "itm"
    return "itm" if random.Random(f"{cfg.seed}:{step}").random() < cfg.itm_probability else "mlm"


# ---------------------------------------------------------------- one optimizer step

@dataclass
class Engine:
    """Everything one optimizer step needs."""

    model: nn.Module                  # the plain model: parameters, checkpoints, text tower for MLM
    forward: nn.Module                # what runs the image-text forward: model, DDP(model), compiled
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    precision: str
    cfg: Config
    dist: DistInfo = field(default_factory=DistInfo)

    @property
    def ddp(self) -> DistributedDataParallel | None:
        return self.forward if isinstance(self.forward, DistributedDataParallel) else None


def _prepare_images(batch: dict, engine: Engine) -> torch.Tensor:
    images = batch["images"]
    if engine.device.type == "cuda" and engine.cfg.train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def contrastive_loss(engine: Engine, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image-text forward and loss; under DDP the global vectors of all ranks serve as negatives
    (and, with ``train.gather_local``, the regions and words too)."""
    with autocast_context(engine.device, engine.precision):
        out = engine.forward(_prepare_images(batch, engine), batch["input_ids"], batch["attention_mask"],
                             batch.get("word_ids"), batch.get("sentence_ids"))
    out = out.float()  # the loss runs in fp32
    ids = batch["input_ids"]
    if not engine.dist.enabled:
        same = same_report_mask(ids) if engine.cfg.loss.mask_duplicate_reports else None
        return engine.loss_fn(out, same_report=same)
    sizes = gather_sizes(ids.shape[0], engine.device)
    gathered = _gathered_output(out, sizes, engine.cfg.train.gather_local, engine.device)
    same = None
    if engine.cfg.loss.mask_duplicate_reports:
        all_ids = gather_with_grad(_pad_to(ids, 1, max_over_ranks(ids.shape[1], engine.device)), sizes)
        same = same_report_mask(ids, all_ids)
    return engine.loss_fn(out, gathered=gathered, rank_offset=sum(sizes[: engine.dist.rank]), same_report=same)


def _gathered_output(out: ModelOutput, sizes: list[int], gather_local: bool, device) -> ModelOutput:
    """Every rank's global vectors and, with ``gather_local``, regions and words (None otherwise)."""
    image_vectors, report_vectors = gather_with_grad(out.image_vectors, sizes), gather_with_grad(out.report_vectors, sizes)
    if not gather_local:
        return ModelOutput(image_vectors, report_vectors)
    longest = max_over_ranks(out.words.shape[1], device)
    words = gather_with_grad(_pad_to(out.words, 1, longest), sizes)
    # the collective takes numbers, not booleans
    word_mask = gather_with_grad(_pad_to(out.word_mask.to(torch.uint8), 1, longest), sizes).bool()
    return ModelOutput(image_vectors, report_vectors, gather_with_grad(out.regions, sizes), words,
                       gather_with_grad(out.lengths, sizes), word_mask=word_mask)


def _pad_to(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Zero-pad ``x`` along ``dim`` to ``size`` (ranks pad their batch to its own longest report)."""
    pad = [0, 0] * (x.ndim - dim - 1) + [0, size - x.shape[dim]]
    return F.pad(x, pad)


def mlm_loss(engine: Engine, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Text-only masked-language-model loss (15% of the words, 80/10/10) on the text tower."""
    text = engine.model.text_encoder
    masked_ids, targets = mlm_mask(batch["input_ids"], batch["attention_mask"], text.bert.config.vocab_size,
                                   engine.cfg.train.mlm_probability)
    with autocast_context(engine.device, engine.precision):
        logits = text.mlm_logits(masked_ids, batch["attention_mask"])
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
    return loss, {"mlm": loss.detach()}


def optimizer_step(engine: Engine, micro_batches: list[dict], kind: str = "itm") -> dict[str, torch.Tensor]:
    """Accumulate gradients over ``micro_batches`` (each loss / their number), clip per tower, step.

    Returns the loss terms averaged over the micro-batches and the per-tower gradient norms before
    clipping; gradients stay in ``.grad`` for inspection. Raises ``_NonFiniteBatch`` on every rank,
    before any update and with the model's buffers (BatchNorm statistics) put back, when a loss is
    NaN/Inf on some rank, or a gradient is (without a grad scaler; with one, fp16 overflow is the
    scaler's to skip).
    """
    engine.optimizer.zero_grad(set_to_none=True)
    buffers = [b.detach().clone() for b in engine.model.buffers()]  # BatchNorm stats a NaN batch would poison
    n = len(micro_batches)
    totals: Counter = Counter()
    for i, batch in enumerate(micro_batches):
        sync_now = engine.ddp is None or i == n - 1  # DDP all-reduces once, on the last micro-batch
        with contextlib.nullcontext() if sync_now else engine.ddp.no_sync():
            loss, terms = (contrastive_loss if kind == "itm" else mlm_loss)(engine, batch)
            if not all_ranks_true(bool(torch.isfinite(loss)), engine.device):
                bad = _NonFiniteBatch("loss", batch["study_ids"], {"loss": loss.detach(), **terms})
                _abandon_step(engine, buffers, bad)
            engine.scaler.scale(loss / n).backward()
        totals.update({"loss": loss.detach() / n, **{k: v / n for k, v in terms.items()}})
    if kind == "mlm":  # bypassed DDP's forward, so its hooks did not reduce the text gradients
        average_gradients(engine.model.text_encoder.parameters())
    engine.scaler.unscale_(engine.optimizer)
    norms = clip_per_tower(engine.optimizer, {"image": engine.cfg.train.clip_image, "text": engine.cfg.train.clip_text})
    finite = all(math.isfinite(v) for v in norms.values())
    if not engine.scaler.is_enabled() and not all_ranks_true(finite, engine.device):
        ids = [sid for b in micro_batches for sid in b["study_ids"]]
        bad = _NonFiniteBatch("gradient", ids, {f"grad_norm_{t}": v for t, v in norms.items()})
        _abandon_step(engine, buffers, bad)
    engine.scaler.step(engine.optimizer)
    engine.scaler.update()
    engine.scheduler.step()
    return {**totals, **{f"grad_norm_{t}": torch.tensor(v) for t, v in norms.items()}}


def _abandon_step(engine: Engine, buffers: list[torch.Tensor], bad: _NonFiniteBatch) -> None:
    """Drop the step's gradients, put the buffers back as they were before it, raise ``bad``."""
    engine.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for b, saved in zip(engine.model.buffers(), buffers, strict=True):
            b.copy_(saved)
    raise bad


# ---------------------------------------------------------------- logs and skips

def next_batch(stream: BatchStream, skips: StudySkipLog, device: torch.device) -> dict:
    """The next micro-batch on ``device`` with at least 2 pairs (a contrastive loss needs a negative)."""
    while True:
        batch = stream.next()
        skips.add_studies(batch.get("skipped", []))
        if len(batch["study_ids"]) >= 2:
            return to_device(batch, device)


# ---------------------------------------------------------------- the loop

def _save(engine: Engine, run_dir: Path, step: int, progress: dict, rng=None, vocab_size: int | None = None) -> Path | None:
    """Rank 0 writes the checkpoint of ``step``; other ranks return None."""
    if not engine.dist.is_main:
        return None
    return ckpt.save_checkpoint(run_dir, step, engine.model, optimizer=engine.optimizer, scheduler=engine.scheduler,
                                scaler=engine.scaler, progress=progress, rng=rng, config=to_dict(engine.cfg),
                                vocab_size=vocab_size, keep=engine.cfg.train.keep_checkpoints)


def _progress_of(stream: BatchStream, nan_skips: int, skips: StudySkipLog) -> dict:
    """What a checkpoint stores of the run's position: data position, NaN skips, skipped studies."""
    return {**stream.position(), "nan_skips": nan_skips,
            "skipped": skips.unreadable()}


def run_loop(engine: Engine, stream: BatchStream, runlog: RunLog, skips: StudySkipLog, step: int, nan_skips: int,
             vocab_size: int | None) -> tuple[int, dict[str, float], int]:
    """Train from optimizer step ``step`` to ``train.steps``; returns (step, last metrics, NaN skips)."""
    cfg, run_dir = engine.cfg.train, Path(engine.cfg.train.out_dir)
    metrics: dict[str, float] = {}
    pairs, tick = 0, time.perf_counter()
    while step < cfg.steps:
        good = _progress_of(stream, nan_skips, skips), ckpt.rng_snapshot()
        batches = [next_batch(stream, skips, engine.device) for _ in range(cfg.grad_accum)]
        lrs = {f"lr_{g['tower']}": g["lr"] for g in engine.optimizer.param_groups}
        try:
            terms = optimizer_step(engine, batches, step_kind(cfg, step))
        except _NonFiniteBatch as bad:
            nan_skips += 1
            if cfg.nan_policy == "skip" and nan_skips <= cfg.max_nan_skips:
                log.warning("step %d: non-finite %s, batch skipped (%d/%d): %s", step, bad.what, nan_skips,
                            cfg.max_nan_skips, bad)
                continue
            folder = _save(engine, run_dir, step, *good, vocab_size=vocab_size)
            raise NonFiniteLossError(
                f"non-finite {bad.what} at optimizer step {step + 1} (after {step} good steps), "
                f"studies {bad.study_ids}, "
                f"terms {bad.terms}. The last good state is saved in {folder or run_dir / 'checkpoints'}. Lower the "
                "learning rate or precision risk (train.precision=fp32), or set train.nan_policy=skip.") from None
        step += 1
        pairs += sum(len(b["study_ids"]) for b in batches) * engine.dist.world_size
        runlog.advance()
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed, tick = time.perf_counter() - tick, time.perf_counter()
            metrics = {k: float(v) for k, v in terms.items()} | lrs | {"pairs_per_s": pairs / elapsed}
            pairs = 0
            runlog.write(step, metrics)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save(engine, run_dir, step, _progress_of(stream, nan_skips, skips), vocab_size=vocab_size)
    return step, metrics, nan_skips


# ---------------------------------------------------------------- setup

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_engine(cfg: Config, model: nn.Module, device: torch.device, info: DistInfo) -> Engine:
    """Move the model, wrap it for DDP / compile, and build the loss, AdamW, schedule and scaler."""
    precision = resolve_precision(device, cfg.train.precision)
    mlm_head = getattr(model.text_encoder, "mlm_head", None)
    if mlm_head is not None and not cfg.train.mlm:  # frozen: AdamW skips it and DDP expects no gradient
        mlm_head.requires_grad_(False)
    model.to(device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        if cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
    forward = model
    if info.enabled:
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=cfg.train.mlm)  # the MLM head idles in image-text steps
    if cfg.train.compile and device.type == "cuda":
        forward = torch.compile(forward)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.train), weight_decay=cfg.train.weight_decay)
    return Engine(model=model, forward=forward, loss_fn=JoImTeRNetLoss(cfg.loss, model.similarity), optimizer=optimizer,
                  scheduler=make_scheduler(optimizer, cfg.train), scaler=make_grad_scaler(device, precision),
                  device=device, precision=precision, cfg=cfg, dist=info)


def load_data_and_model(cfg: Config, model: nn.Module | None, dataloader, device: torch.device):
    """The training loader, the model and the tokenizer (None when both model and loader are given)."""
    tokenizer = None
    if model is None or dataloader is None:
        from ..data.dataset import load_training_data, make_dataloader, make_dataset

        manifest, tokenizer = load_training_data(cfg, tokenizer_dir=Path(cfg.train.out_dir) / "tokenizer")
        if dataloader is None:
            dataset = make_dataset(cfg, manifest, "train", train=True)
            dataloader = make_dataloader(dataset, tokenizer, cfg, train=True, device=device)
    if model is None:
        from ..models.joimternet import model_for

        model = model_for(cfg, len(tokenizer), tokenizer)
    return dataloader, model, tokenizer


def _open_run_dir(run_dir: Path) -> None:
    """Create ``train.out_dir``; a file in its place, or a folder that cannot be written, is a ``ConfigError``."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"train.out_dir={str(run_dir)!r} is a file, not a folder; set train.out_dir to a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"train.out_dir={str(run_dir)!r} is not writable ({err.strerror}); set train.out_dir "
                          "to a folder you can write") from err
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"train.out_dir={str(run_dir)!r} is not writable; set train.out_dir to a folder you can "
                          "write, or fix its permissions")


def train(cfg: Config, resume: bool = False, model: nn.Module | None = None, dataloader=None,
          resume_from: str | None = None) -> TrainResult:
    """Train ``cfg`` (a model and a loader may be passed in; else both are built from ``cfg``).

    ``resume=True`` continues from the newest complete checkpoint in ``train.out_dir`` (or starts
    fresh when there is none); ``resume_from`` (a step number or a checkpoint folder) from that one.
    Without either, a folder that already holds checkpoints is refused. ``training/resume.py`` maps the rest.
    """
    validate(cfg)
    started = time.perf_counter()
    device = pick_device(cfg.train.device)
    owns_group = not torch.distributed.is_initialized()  # a caller's process group is left to the caller
    info = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    run_dir = Path(cfg.train.out_dir)
    _open_run_dir(run_dir)
    resume = resume or resume_from is not None
    if not resume:
        refuse_fresh_start(run_dir)
    found = find_checkpoint(run_dir, resume_from) if resume else None
    seed_everything(cfg.train.seed + info.rank)
    dataloader, model, tokenizer = load_data_and_model(cfg, model, dataloader, device)
    vocab_size = len(tokenizer) if tokenizer is not None else None
    engine = build_engine(cfg, model, device, info)
    state, changes = None, {}
    if found is not None:
        state, changes = restore(found, cfg, model, optimizer=engine.optimizer, scheduler=engine.scheduler,
                                    scaler=engine.scaler, vocab_size=vocab_size)
    progress = state["progress"] if state else {}
    step = state["step"] if state else 0
    stream = BatchStream(dataloader, progress.get("epoch", 0), progress.get("consumed", 0))
    if state:  # after the stream is open: opening a loader draws from the torch RNG in both runs
        ckpt.restore_rng(*state["rng"])
    if info.is_main:
        _announce(cfg, engine, info, run_dir, found, step, changes)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(run_dir / "tokenizer"))
    runlog = RunLog(run_dir, info.is_main, step, cfg.train.steps)
    excluded = getattr(dataloader.dataset, "excluded", [])
    skips = StudySkipLog(run_dir, len(dataloader.dataset), cfg.data.max_skip_fraction, info.is_main,
                          progress.get("skipped"), excluded)
    if excluded and info.is_main:
        print(dataloader.dataset.exclusion_note("training studies"))
    model.train()
    try:
        step, metrics, nan_skips = run_loop(engine, stream, runlog, skips, step, progress.get("nan_skips", 0), vocab_size)
    finally:
        runlog.close()
    final = ckpt.latest_checkpoint(run_dir) if info.is_main else None
    if info.is_main:
        print(skips.summary())
        if nan_skips:
            print(f"{nan_skips} optimizer step(s) were skipped for a non-finite loss or gradient "
                  "(train.nan_policy=skip).")
    if owns_group:
        cleanup()
    return TrainResult(model=model, out_dir=run_dir, checkpoint=final, steps=step, last_metrics=metrics,
                       nan_skips=nan_skips, skipped_samples=len(skips.seen), seconds=time.perf_counter() - started)


def _announce(cfg: Config, engine: Engine, info: DistInfo, run_dir: Path, found: Path | None, step: int,
             changes: dict[str, list]) -> None:
    """Rank 0: say what runs where and from which state; write config.yaml and its history."""
    start = f"resuming at step {step} from {found}" if found is not None else "from scratch"
    print(f"training {cfg.name} on {describe(engine.device, engine.precision)}, {info.world_size} process(es), "
          f"{start}; writing to {run_dir}")
    if changes:
        print(f"settings changed since {found.name}, applied from now on: {describe_changes(changes)}")
    moved = set_aside_newer(run_dir, step) if found is not None else []
    if moved:
        print(f"moved {len(moved)} newer checkpoint(s) to {moved[0].parent}: the run continues from step {step}")
    save_config(cfg, run_dir / "config.yaml")
    record_history(run_dir, step, "resume" if found is not None else "start", changes)
