"""Benchmark: the fast exact local score (S_w) against the per-caption loop, forward + backward.

The loop is how public DAMSM implementations score a batch: one caption at a time, batched over
the images, building the context vectors c_i. Both sides compute the same (I, T) matrix and the
local cross-entropy of both directions, then backward.

Peak memory is the most bytes live in torch's allocator during the call, above the level at its
start: CUDA's max_memory_allocated on a GPU; on the CPU, the running total of the allocation and
free events of torch's CPU allocator that torch.profiler records with profile_memory=True. Both
count exactly the tensors torch allocates, so a run gives the same number every time (the
process's resident set did not: it includes the C library's caching). Times come from separate
runs without the profiler.

    python bench/local_similarity.py                          # CPU defaults: B=32, words 64, 64 regions, 128-d
    python bench/local_similarity.py --device cuda            # authors' scale: B=128, words 160, 256 regions, 512-d
    python bench/local_similarity.py --budget-check           # B=512: peak within chunk_budget_bytes, else exit 1
    python bench/local_similarity.py --sweep --plot bench/local_similarity_scaling.png
    python bench/local_similarity.py --device cuda --retrieval 3000   # N x N local retrieval scores, no grad
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from joimternet_lite.models.similarity import local_similarity

CPU_DEFAULTS = {"batch": 32, "words": 64, "regions": 64, "dim": 128}
GPU_DEFAULTS = {"batch": 128, "words": 160, "regions": 256, "dim": 512}
BUDGET_CHECK_BATCH = 512
# small enough that the loop's largest point stays a few seconds on one CPU thread
SWEEP_SIZES = {"batch": 32, "words": 32, "regions": 32, "dim": 64}
SWEEP_BATCHES = (8, 16, 32, 64, 128)
SWEEP_WORDS = (8, 16, 32, 64, 128)


def per_caption_loop(regions, words, lengths, gamma1=4.0, gamma2=5.0):
    """S_w (I, T), one caption at a time, batched over images, as public implementations do."""
    columns = []
    for t in range(words.shape[0]):
        e = words[t, :int(lengths[t])]                              # (n, D)
        s = torch.einsum("ird,nd->inr", regions, e)                 # (I, n, R)
        alpha = (gamma1 * s.softmax(dim=1)).softmax(dim=2)
        context = alpha @ regions                                   # (I, n, D)
        cosine = F.cosine_similarity(context, e.expand_as(context), dim=-1, eps=1e-8)
        columns.append((gamma2 * cosine).logsumexp(dim=1))
    return torch.stack(columns, dim=1)


def make_inputs(batch, words, regions, dim, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, words + 1, (batch,), generator=g)
    valid = torch.arange(words) < lengths[:, None]
    w = torch.randn(batch, words, dim, generator=g) * valid[..., None] / dim ** 0.5
    r = torch.randn(batch, regions, dim, generator=g) / dim ** 0.5
    return r.to(device), w.to(device), lengths.to(device)


def local_ce(scores):
    target = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(10 * scores, target) + F.cross_entropy(10 * scores.T, target)


class PeakMemory:
    """Peak bytes live in torch's allocator above the level at entry, on CUDA or on the CPU."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self.profiler.__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.profiler.__exit__(*exc)
            self.peak = peak_of_cpu_allocator_events(self.profiler)


def peak_of_cpu_allocator_events(prof):
    """Largest running total of the CPU allocator's +/- byte events, starting from 0.

    This is the change of the profiler's "Total Allocated". Frees of blocks allocated before any
    profiling are not reported (the allocator does not know their size): they can only lower
    the level, so the peak stays an upper bound.
    """
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    return max(itertools.accumulate((nbytes for _, nbytes in events), initial=0))


def fresh_leaves(inputs):
    return [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_run(fn, inputs, device):
    r, w, lengths = fresh_leaves(inputs)
    start = time.perf_counter()
    local_ce(fn(r, w, lengths)).backward()
    synchronize(device)
    return time.perf_counter() - start


def peak_run(fn, inputs, device):
    """Peak bytes of one forward + backward, beyond the inputs (allocated before the region)."""
    r, w, lengths = fresh_leaves(inputs)
    with PeakMemory(device) as mem:
        local_ce(fn(r, w, lengths)).backward()
    return mem.peak


def measure(fn, inputs, device, repeats):
    timed_run(fn, inputs, device)                                   # warm-up
    best = min(timed_run(fn, inputs, device) for _ in range(repeats))  # least disturbed by other load
    return best, peak_run(fn, inputs, device)


def fast(chunk_size):
    return lambda r, w, lengths: local_similarity(r, w, lengths, chunk_size=chunk_size)


def relative_differences(inputs, reference, candidate):
    """Max |candidate - reference| / max |reference| of the (I, T) scores and of the inputs' gradients."""
    results = []
    for fn in (reference, candidate):
        r, w, lengths = fresh_leaves(inputs)
        scores = fn(r, w, lengths)
        local_ce(scores).backward()
        results.append((scores.detach(), r.grad, w.grad))
    (ref_s, *ref_g), (cand_s, *cand_g) = results

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    return rel(cand_s, ref_s), max(rel(c, r) for c, r in zip(cand_g, ref_g, strict=True))


def compare(batch, words, regions, dim, device, chunk_size, repeats):
    inputs = make_inputs(batch, words, regions, dim, device)
    loop_t, loop_m = measure(per_caption_loop, inputs, device, repeats)
    fast_t, fast_m = measure(fast(chunk_size), inputs, device, repeats)
    score_rel, grad_rel = relative_differences(inputs, per_caption_loop, fast(chunk_size))
    print(f"B={batch:4d} words<={words:3d} R={regions:3d} D={dim:3d} chunk={chunk_size:3d} | "
          f"loop {loop_t * 1e3:8.1f} ms {loop_m / 2**20:8.2f} MiB | fast {fast_t * 1e3:8.1f} ms "
          f"{fast_m / 2**20:8.2f} MiB | loop/fast time {loop_t / fast_t:5.2f}x | "
          f"rel diff scores {score_rel:.1e} grads {grad_rel:.1e}", flush=True)
    return {"loop_ms": loop_t * 1e3, "fast_ms": fast_t * 1e3, "loop_mib": loop_m / 2**20, "fast_mib": fast_m / 2**20,
            "score_rel": score_rel, "grad_rel": grad_rel}


def chunk_budget_bytes(batch, chunk_size, words, regions, dim, element_size=4):
    """Peak bytes that fwd + bwd of ``local_similarity`` and ``local_ce`` should hold beyond the inputs.

    B = batch (images = reports), c = min(chunk_size, B) images and reports per block,
    L = words (a block's longest report, at most), R = regions (add one for a null region),
    D = dim; tensors of ``element_size`` bytes. With recomputation the call passes through three
    peaks, and the budget is the largest, plus the blocks' bookkeeping.

    Block backward (``_block_backward_peak``), where the chunk budget is spent. Recomputing a
    block keeps what its autograd graph saved: the softmax over words, alpha and Gram @ alpha,
    each (c, R, c, L). Backward of (Gram @ alpha) * alpha then holds four (c, R, c, L)
    gradients at once: of alpha from alpha * scores and from this product, of the scores, of
    Gram @ alpha. Seven (c, R, c, L) tensors in all. Smaller block terms at the same moment: the
    Gram matrix (c, R, R); one (c, c, L) gradient; the gathered words (c, L, D) and the partial
    gradient of their squared norms (c, L, D); the image chunk's gradient (c, R, D), summed over
    its report blocks. O(B) terms: the gradients of the inputs, B x (R + L) x D, as big as the
    inputs themselves (any method returns them). O(B^2): the gradient of the (B, B) score matrix.

    Gradient scatter (``_gradient_scatter_peak``), between blocks: autograd turns a block's
    gradient into a zero-filled full-size tensor before adding it to the input's gradient. For
    the words, gathered then cut to the block's length, that is two (B, L, D) tensors beside the
    running sum; for an image chunk, one (B, R, D). These are the part of the O(B) memory that
    is not the result itself.

    Loss (``_loss_peak``): the (B, B) scores, 10 x their transpose and its contiguous copy, and
    the two log-softmax outputs that cross-entropy saves: five B x B.

    Bookkeeping (``_block_bookkeeping_bytes``): until its backward, each block keeps its
    reports' lengths (c int64) and two 8-byte scalars (the profiler shows them allocated outside
    any aten op); the reports' length order (B int64) is kept to unsort the scores; the block
    being recomputed has two (c, L) bool word masks.

    Exact (to a few hundred bytes, from above) where the block phase is the largest, the regime
    the check is for. The scatter and loss phases count only their full-size tensors: where one
    of them is the largest (tiny blocks, large B), the peak can pass the budget by a few percent.
    """
    images = reports = min(chunk_size, batch)
    peaks = (_block_backward_peak(batch, images, reports, words, regions, dim),
             _gradient_scatter_peak(batch, images, words, regions, dim),
             _loss_peak(batch))
    return element_size * max(peaks) + _block_bookkeeping_bytes(batch, reports, words)


def _block_backward_peak(batch, images, reports, words, regions, dim):
    block = (7 * images * regions * reports * words + images * regions * regions + images * reports * words
             + 2 * reports * words * dim + images * regions * dim)
    return block + batch * (regions + words) * dim + batch * batch


def _gradient_scatter_peak(batch, images, words, regions, dim):
    scatter = batch * dim * max(regions + 3 * words, 2 * regions + words)
    return scatter + images * regions * dim + batch * batch


def _loss_peak(batch):
    return 5 * batch * batch


def _block_bookkeeping_bytes(batch, reports, words):
    blocks = math.ceil(batch / reports) ** 2
    int64, bool_ = torch.int64.itemsize, torch.bool.itemsize
    return blocks * (reports + 2) * int64 + batch * int64 + 2 * reports * words * bool_


def context_tensor_bytes(batch, words, dim, element_size=4):
    """The (images, reports, words, dim) context vectors c_i that the fast path never builds."""
    return element_size * batch * batch * words * dim


def budget_check(batch, words, regions, dim, chunk_size, device):
    """Print the measured peak against ``chunk_budget_bytes``; True when within it."""
    inputs = make_inputs(batch, words, regions, dim, device)
    start = time.perf_counter()
    peak = peak_run(fast(chunk_size), inputs, device)
    elapsed = time.perf_counter() - start
    budget = chunk_budget_bytes(batch, chunk_size, words, regions, dim)
    within = peak <= budget
    print(f"B={batch} words<={words} R={regions} D={dim} chunk={chunk_size}: fast fwd+bwd {elapsed:.1f} s "
          f"(profiled), peak {peak / 2**20:.2f} MiB, budget {budget / 2**20:.2f} MiB "
          f"({peak / budget:.2f} of it): {'within' if within else 'OVER'}")
    print(f"  the full context tensor (B x B x words x D) would take {context_tensor_bytes(batch, words, dim) / 2**30:.2f} GiB")
    return within


def sweep(args, device):
    sizes = {key: getattr(args, key) or value for key, value in SWEEP_SIZES.items()}
    results = {"batch": [], "words": []}
    for b in SWEEP_BATCHES:
        row = compare(b, sizes["words"], sizes["regions"], sizes["dim"], device, args.chunk_size, args.repeats)
        results["batch"].append((b, row))
    for n in SWEEP_WORDS:
        row = compare(sizes["batch"], n, sizes["regions"], sizes["dim"], device, args.chunk_size, args.repeats)
        results["words"].append((n, row))
    if args.plot:
        plot(results, sizes, args.chunk_size, args.plot)


def plot(results, sizes, chunk_size, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from joimternet_lite.atomic import atomic_path

    fig, axes = plt.subplots(2, 2, figsize=(9, 7))
    for col, (axis, rows) in enumerate(results.items()):
        xs = [x for x, _ in rows]
        for row, (unit, key) in enumerate((("ms", "_ms"), ("MiB", "_mib"))):
            ax = axes[row, col]
            for name in ("loop", "fast"):
                ax.plot(xs, [r[name + key] for _, r in rows], marker="o", label=name)
            ax.set_xlabel(f"B (max words {sizes['words']})" if axis == "batch" else f"max words (B={sizes['batch']})")
            ax.set_ylabel(f"fwd+bwd {unit}" if unit == "ms" else "peak allocated MiB")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.legend()
    fig.suptitle(f"Local similarity S_w, per-caption loop vs fast exact (fwd + bwd, CPU, 1 thread)\n"
                 f"R={sizes['regions']}, D={sizes['dim']}, chunk {chunk_size}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    print(f"wrote {path}")


def retrieval_seconds(n, words, regions, dim, device, chunk_size=32, repeats=1):
    """Seconds to score n images x n reports with S_w for retrieval (no grad), best of ``repeats``.

    One small warm-up call first, so CUDA context creation and kernel selection are not timed.
    """
    r, w, lengths = make_inputs(n, words, regions, dim, device)
    with torch.no_grad():
        local_similarity(r[:chunk_size], w[:chunk_size], lengths[:chunk_size], chunk_size=chunk_size)
        best = math.inf
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            scores = local_similarity(r, w, lengths, chunk_size=chunk_size)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    assert scores.shape == (n, n) and torch.isfinite(scores).all()
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--words", type=int)
    parser.add_argument("--regions", type=int)
    parser.add_argument("--dim", type=int)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-check", action="store_true",
                        help=f"B={BUDGET_CHECK_BATCH} unless --batch: peak within chunk_budget_bytes, else exit 1")
    parser.add_argument("--sweep", action="store_true", help="time and memory over B and over words (small sizes)")
    parser.add_argument("--plot", help="PNG path for the sweep's scaling plot")
    parser.add_argument("--retrieval", type=int, metavar="N",
                        help="time N x N local retrieval scoring (no grad) at the device's default sizes")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {device} ({name}), threads {torch.get_num_threads()}")
    if args.sweep:
        sweep(args, device)
        return
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    if args.budget_check:
        defaults = {**defaults, "batch": BUDGET_CHECK_BATCH}
    sizes = {key: getattr(args, key) or value for key, value in defaults.items()}
    if args.retrieval:
        seconds = retrieval_seconds(args.retrieval, sizes["words"], sizes["regions"], sizes["dim"], device,
                                    chunk_size=args.chunk_size, repeats=args.repeats)
        print(f"retrieval N={args.retrieval} words<={sizes['words']} R={sizes['regions']} D={sizes['dim']} "
              f"chunk={args.chunk_size}: {args.retrieval} x {args.retrieval} local scores in {seconds:.2f} s (best of {args.repeats})")
        return
    if args.budget_check:
        sys.exit(0 if budget_check(**sizes, chunk_size=args.chunk_size, device=device) else 1)
    compare(**sizes, device=device, chunk_size=args.chunk_size, repeats=args.repeats)


if __name__ == "__main__":
    main()
