"""Benchmark: the fast exact local score (S_w) against the per-caption loop, forward + backward.

The loop is how public DAMSM implementations score a batch: one caption at a time, batched over
the images, building the context vectors c_i. Both sides compute the same (I, T) matrix and the
local cross-entropy of both directions, then backward.

Peak memory: CUDA's max_memory_allocated on a GPU. On the CPU, the process's peak resident set
(VmHWM in /proc/self/status, reset before each run by writing 5 to /proc/self/clear_refs) minus
the resident set before the run; tracemalloc does not see torch's allocator.

    python bench/local_similarity.py                          # CPU defaults: B=32, words 64, 64 regions, 128-d
    python bench/local_similarity.py --device cuda            # authors' scale: B=128, words 160, 256 regions, 512-d
    python bench/local_similarity.py --budget-check           # B=512: peak stays within the chunk budget
    python bench/local_similarity.py --sweep --plot bench/local_similarity_scaling.png
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from joimternet_lite.models.attention import local_similarity

CPU_DEFAULTS = {"batch": 32, "words": 64, "regions": 64, "dim": 128}
GPU_DEFAULTS = {"batch": 128, "words": 160, "regions": 256, "dim": 512}


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
    """Peak bytes above the starting level, on CUDA or (Linux) from the process's VmHWM."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.start = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.peak = _status_kib("VmHWM") * 1024 - self.start


def _status_kib(key):
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def run_once(fn, inputs, device):
    r, w, lengths = (x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs)
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        local_ce(fn(r, w, lengths)).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return elapsed, mem.peak


def measure(fn, inputs, device, repeats):
    run_once(fn, inputs, device)                                    # warm-up
    runs = [run_once(fn, inputs, device) for _ in range(repeats)]
    return min(t for t, _ in runs), max(m for _, m in runs)         # best time: least disturbed by other load


def fast(chunk_size):
    return lambda r, w, lengths: local_similarity(r, w, lengths, chunk_size=chunk_size)


def compare(batch, words, regions, dim, device, chunk_size, repeats):
    inputs = make_inputs(batch, words, regions, dim, device)
    loop_t, loop_m = measure(per_caption_loop, inputs, device, repeats)
    fast_t, fast_m = measure(fast(chunk_size), inputs, device, repeats)
    print(f"B={batch:4d} words<={words:3d} R={regions:3d} D={dim:3d} chunk={chunk_size:3d} | "
          f"loop {loop_t * 1e3:8.1f} ms {loop_m / 2**20:8.1f} MiB | fast {fast_t * 1e3:8.1f} ms "
          f"{fast_m / 2**20:8.1f} MiB | loop/fast time {loop_t / fast_t:5.2f}x", flush=True)
    return {"loop_ms": loop_t * 1e3, "fast_ms": fast_t * 1e3, "loop_mib": loop_m / 2**20, "fast_mib": fast_m / 2**20}


def chunk_budget_bytes(chunk_size, words, regions, element_size=4):
    """Working set of one block: about 6 (Ic, R, Tc, L) tensors, plus the recomputed backward's."""
    return 12 * chunk_size * chunk_size * words * (regions + 1) * element_size


def budget_check(args, device):
    batch = 512
    inputs = make_inputs(batch, args.words, args.regions, args.dim, device)
    elapsed, peak = measure(fast(args.chunk_size), inputs, device, 1)
    budget = chunk_budget_bytes(args.chunk_size, args.words, args.regions)
    outputs = 8 * batch * batch * 4                                 # the (I, T) scores and their grads
    verdict = "within" if peak <= budget + outputs else "OVER"
    print(f"B={batch} fast fwd+bwd {elapsed:.2f} s, peak {peak / 2**20:.1f} MiB, chunk budget "
          f"{budget / 2**20:.1f} MiB + scores {outputs / 2**20:.1f} MiB: {verdict}")


def sweep(args, device):
    results = {"batch": [], "words": []}
    for b in (8, 16, 32, 64):
        results["batch"].append((b, compare(b, args.words, args.regions, args.dim, device, args.chunk_size, args.repeats)))
    for n in (16, 32, 64, 128):
        results["words"].append((n, compare(args.batch, n, args.regions, args.dim, device, args.chunk_size, args.repeats)))
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
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
            ax.set_xlabel("B" if axis == "batch" else "max words")
            ax.set_ylabel(f"fwd+bwd {unit}")
            ax.set_xscale("log", base=2)
            ax.legend()
    fig.suptitle("Local similarity S_w: per-caption loop vs fast exact (fwd + bwd)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--words", type=int)
    parser.add_argument("--regions", type=int)
    parser.add_argument("--dim", type=int)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-check", action="store_true", help="B=512: peak memory within the chunk budget")
    parser.add_argument("--sweep", action="store_true", help="time and memory over B and over words")
    parser.add_argument("--plot", help="PNG path for the sweep's scaling plot")
    args = parser.parse_args()
    device = torch.device(args.device)
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {device} ({name}), threads {torch.get_num_threads()}")
    if args.budget_check:
        budget_check(args, device)
    elif args.sweep:
        sweep(args, device)
    else:
        compare(args.batch, args.words, args.regions, args.dim, device, args.chunk_size, args.repeats)


if __name__ == "__main__":
    main()
