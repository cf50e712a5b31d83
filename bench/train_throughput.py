"""Training throughput: the model fed from batches already on the device vs end to end.

    python bench/train_throughput.py --preset synth_gpu --image-size 512 --steps 30
    python bench/train_throughput.py --preset demo_cpu --image-size 64 --studies 48 --steps 2 --device cpu  # CPU dry run

It generates a SynthCXR set at ``--image-size``, builds the resized image cache (what the GPU
presets read), and times ``train.optimizer_step`` twice with the preset's model, loss, AdamW and
precision: (1) the "bound", cycling over batches moved to the device beforehand, and (2) end to end,
drawing each batch from the real DataLoader (decode from the cache, augment, collate, tokenise, copy).
Both are pairs/s after ``--warmup`` steps; the ratio end-to-end / bound says how much the input
pipeline costs (the target is >= 0.85 at 512 px on cached images). Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from joimternet_lite.config import load_config
from joimternet_lite.data.cache import build_cache
from joimternet_lite.data.synthcxr import generate_synthcxr
from joimternet_lite.device import pick_device, to_device
from joimternet_lite.distributed import DistInfo
from joimternet_lite.training.train import (
    BatchStream,
    build_engine,
    load_data_and_model,
    optimizer_step,
    seed_everything,
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pairs_per_second(engine, next_batch, steps: int, warmup: int) -> float:
    """Optimizer steps on ``next_batch()`` batches; pairs/s over the timed ``steps``."""
    for _ in range(warmup):
        optimizer_step(engine, [next_batch()])
    synchronize(engine.device)
    pairs, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = next_batch()
        optimizer_step(engine, [batch])
        pairs += len(batch["study_ids"])
    synchronize(engine.device)
    return pairs / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="synth_gpu")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--studies", type=int, default=2048, help="SynthCXR studies to generate (train split ~80%%)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workdir", default=None, help="where the data and cache go (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    ap.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.batch_size=64")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="train_throughput_"))
    root, cache_dir = work / "synthcxr", work / f"cache_{args.image_size}"
    if not (root / "manifest.json").exists():
        generate_synthcxr(root, num_studies=args.studies, image_size=args.image_size, seed=0,
                          workers=os.cpu_count() or 2, progress=False)
    if not (cache_dir / "index.json").exists():
        build_cache(root, cache_dir, size=args.image_size, progress=False)
    cfg = load_config(args.preset, [f"data.root={root}", f"data.cache_dir={cache_dir}", "data.source=manifest",
                                    f"data.image_size={args.image_size}", f"train.device={args.device}",
                                    f"train.out_dir={work / 'run'}", *args.overrides])
    device = pick_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    loader, model, _ = load_data_and_model(cfg, None, None, device)
    engine = build_engine(cfg, model, device, DistInfo())
    model.train()

    stream = BatchStream(loader)
    resident = [to_device(stream.next(), device) for _ in range(min(len(loader), 8))]
    cycle = iter(range(1 << 30))
    bound = pairs_per_second(engine, lambda: resident[next(cycle) % len(resident)], args.steps, args.warmup)
    end_to_end = pairs_per_second(engine, lambda: to_device(stream.next(), device), args.steps, args.warmup)

    result = {"preset": args.preset, "image_size": args.image_size, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "precision": engine.precision, "batch_size": cfg.train.batch_size,
              "num_workers": cfg.data.num_workers, "steps": args.steps,
              "bound_pairs_per_s": round(bound, 2), "end_to_end_pairs_per_s": round(end_to_end, 2),
              "ratio": round(end_to_end / bound, 3)}
    print(json.dumps(result, indent=1))
    print(f"end to end / model-only bound = {result['ratio']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
