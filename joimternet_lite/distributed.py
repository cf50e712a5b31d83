"""One code path for 1..N processes: ``torchrun`` + DistributedDataParallel, and plain runs.

Taught in notebook 08. ``init_distributed`` reads the variables ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``); without them the run is a single process and every helper here
degrades to the identity. Embeddings are gathered across ranks *with* gradients
(``gather_with_grad``), so each rank scores its pairs against the negatives of the whole global
batch; the gradient of the gathered copy flows back to the rank that owns each row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and reports."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes (NCCL on CUDA, gloo otherwise), or run alone.

    On CUDA each process takes the GPU ``LOCAL_RANK``. Returns this process's place in the group.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def current_info() -> DistInfo:
    """The place of this process in an already initialised group (rank 0 of 1 when none)."""
    if not dist.is_initialized():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_sizes(n: int, device: torch.device) -> list[int]:
    """The local batch size of every rank, in rank order (``[n]`` when alone)."""
    if not dist.is_initialized():
        return [n]
    sizes = [torch.zeros((), dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor(n, device=device))
    return [int(s) for s in sizes]


def max_over_ranks(n: int, device: torch.device) -> int:
    """The largest ``n`` of any rank (the padded length to gather variable-length tensors)."""
    if not dist.is_initialized():
        return n
    t = torch.tensor(n, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def gather_with_grad(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """All ranks' ``x`` (B_r, ...) concatenated in rank order: (sum_r B_r, ...).

    Differentiable: the backward sums every rank's gradient for the rows this rank owns, which,
    after DDP averages the parameter gradients, is the gradient of the mean of the per-rank losses.
    Ranks may hold different batch sizes (a skipped unreadable image): rows are padded for the
    collective and dropped again. ``sizes`` (from :func:`gather_sizes`) saves one collective.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    sizes = sizes if sizes is not None else gather_sizes(x.shape[0], x.device)
    pad = max(sizes) - x.shape[0]
    if pad:
        x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
    parts = dist_fn.all_gather(x)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """True only when ``flag`` holds on every rank, so all ranks take the same branch (no deadlock)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(1.0 if flag else 0.0, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def average_gradients(params) -> None:
    """Average ``.grad`` across ranks by hand, for steps that bypass the DDP forward (text-only MLM)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)  # gloo has no AVG
            p.grad.div_(dist.get_world_size())


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` whose order depends only on ``(seed, epoch)``, and that can skip
    the samples a resumed run has already consumed in this epoch.

    With one process it is a seeded shuffle of the whole dataset. ``skip(n)`` drops the first ``n``
    indices of the next iteration only, so a resumed run does not load the batches it skips
    (its part in resuming a run is mapped in ``training/resume.py``).
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        info = current_info()
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self._skip = 0

    def skip(self, n: int) -> None:
        self._skip = n

    def __iter__(self):
        indices = list(super().__iter__())[self._skip:]
        self._skip = 0
        return iter(indices)

    def __len__(self) -> int:
        return super().__len__() - self._skip

