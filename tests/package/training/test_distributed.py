"""DDP on CPU (gloo, 2 processes): gathered negatives give the single-process loss and gradients."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from joimternet_lite.distributed import (
    DistInfo,
    ResumableSampler,
    all_ranks_true,
    gather_sizes,
    gather_with_grad,
    init_distributed,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world, port, fn, out_dir, args):
    torch.set_num_threads(1)  # two processes on a shared 2-core machine
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    try:
        save_file(fn(rank, world, *args), f"{out_dir}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world, tmp_path, *args) -> list[dict[str, torch.Tensor]]:
    """Run ``fn(rank, world, *args) -> dict of tensors`` in ``world`` gloo processes; their results."""
    mp.spawn(_entry, args=(world, _free_port(), fn, str(tmp_path), args), nprocs=world, join=True)
    return [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(world)]


class TwoTowers(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image_encoder = nn.Linear(5, 4)
        self.text_encoder = nn.Linear(3, 4)

    def forward(self, images, texts):
        return {"image_vectors": self.image_encoder(images), "report_vectors": self.text_encoder(texts)}


def infonce(out, gathered=None, rank_offset=0):
    """CE of each local image over all (gathered) reports and of each local report over all images."""
    g = gathered or out
    n = out["image_vectors"].shape[0]
    targets = torch.arange(rank_offset, rank_offset + n)
    i2t = F.cross_entropy(5 * F.normalize(out["image_vectors"], dim=1) @ F.normalize(g["report_vectors"], dim=1).T, targets)
    t2i = F.cross_entropy(5 * F.normalize(out["report_vectors"], dim=1) @ F.normalize(g["image_vectors"], dim=1).T, targets)
    return i2t + t2i


def _global_batch(sizes):
    g = torch.Generator().manual_seed(1)
    return torch.randn(sum(sizes), 5, generator=g), torch.randn(sum(sizes), 3, generator=g)


def _ddp_rank(rank, sizes):
    images, texts = _global_batch(sizes)
    lo = sum(sizes[:rank])
    mine = slice(lo, lo + sizes[rank])
    model = nn.parallel.DistributedDataParallel(TwoTowers())
    out = model(images[mine], texts[mine])
    local_sizes = gather_sizes(sizes[rank], torch.device("cpu"))
    gathered = {k: gather_with_grad(out[k], local_sizes) for k in out}
    loss = infonce(out, gathered, rank_offset=sum(local_sizes[:rank]))
    loss.backward()
    return {"loss": loss.detach(), "sizes": torch.tensor(local_sizes),
            **{n: p.grad for n, p in model.module.named_parameters()}}


SIZES = {"equal": (3, 3), "unequal": (3, 2)}


def _all_checks(rank, world):
    """Every multi-process check in one spawn: starting processes is the slow part."""
    results = {"flag.all": torch.tensor(all_ranks_true(rank == 0, torch.device("cpu"))),
               "flag.mine": torch.tensor(all_ranks_true(True, torch.device("cpu")))}
    for case, sizes in SIZES.items():
        results.update({f"{case}.{k}": v for k, v in _ddp_rank(rank, sizes).items()})
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(_all_checks, 2, tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("case", SIZES)
def test_gathered_negatives_give_the_single_process_loss_and_gradients(ranks, case):
    sizes = SIZES[case]
    # the single process sees the whole global batch: every anchor scored against every candidate
    model = TwoTowers()
    images, texts = _global_batch(sizes)
    out = model(images, texts)
    with torch.no_grad():
        per_anchor = [infonce({k: v[i:i + 1] for k, v in out.items()}, out, rank_offset=i) for i in range(sum(sizes))]
    assert ranks[0][f"{case}.sizes"].tolist() == list(sizes)
    for r, res in enumerate(ranks):  # each rank's loss is the mean over its own anchors
        lo = sum(sizes[:r])
        assert float(res[f"{case}.loss"]) == pytest.approx(float(torch.stack(per_anchor[lo:lo + sizes[r]]).mean()),
                                                            abs=1e-6)
    if sizes[0] == sizes[1]:  # then DDP's averaged gradient is the gradient of the global mean loss
        infonce(out).backward()
        for name, p in model.named_parameters():
            assert torch.allclose(ranks[0][f"{case}.{name}"], p.grad, atol=1e-6), name
            assert torch.equal(ranks[0][f"{case}.{name}"], ranks[1][f"{case}.{name}"]), name


def test_a_flag_false_on_one_rank_is_false_on_every_rank(ranks):
    for res in ranks:
        assert not res["flag.all"] and res["flag.mine"]


def test_alone_every_helper_is_the_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert gather_sizes(3, torch.device("cpu")) == [3]
    assert init_distributed(torch.device("cpu")) == DistInfo()


def test_sampler_order_depends_only_on_seed_and_epoch_and_skips_a_prefix():
    data = list(range(20))
    a, b = ResumableSampler(data, seed=3), ResumableSampler(data, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    full = list(a)
    assert sorted(full) == data and full != data
    assert list(b) == full
    b.skip(8)
    assert len(b) == 12 and list(b) == full[8:]
    assert list(b) == full  # the skip applies to one pass only
    a.set_epoch(3)
    assert list(a) != full
