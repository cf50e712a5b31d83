"""Search speed: embed a folder of images into the search index, then answer a second query.

    python bench/search_speed.py --images 1000 --threads 2             # targets: >= 50 images/s, < 2 s
    python bench/search_speed.py --images 32 --model runs/demo          # a trained model instead

The model is the ``demo_cpu`` architecture (128 px, grid 8, 128-d), untrained unless ``--model``
names a trained one (speed does not depend on the weights); its tokenizer is built from the SynthCXR
reports. The images are ``--images`` SynthCXR PNGs drawn at 128 px. Timed: (1) the first search,
which reads, transforms and embeds every image and writes the index (images/s), (2) a second
query with the index in place (seconds, the engine already loaded: what a long-lived process pays),
and (3) the same second query through ``python -m joimternet_lite search`` in a fresh process
(imports and model loading included); once per ``--precisions`` entry (fp32, and bf16 autocast,
which a CPU with bf16 instructions runs faster). Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from joimternet_lite.commands.search import search_images
from joimternet_lite.config import load_config
from joimternet_lite.data.synthcxr import generate_synthcxr
from joimternet_lite.data.tokenizer import build_tokenizer
from joimternet_lite.inference import ImageTextInference
from joimternet_lite.models.joimternet import JoImTeRNet, model_for

EMBED_TARGET, SECOND_QUERY_TARGET = 50.0, 2.0


def demo_model(work: Path, synth: Path) -> Path:
    """An untrained demo_cpu model saved with save_pretrained, so the CLI loads it like a real one."""
    from joimternet_lite.data.schema import load_manifest

    cfg = load_config("demo_cpu", [f"data.root={synth}"])
    tokenizer = build_tokenizer(load_manifest(synth)["text"], min_frequency=cfg.data.min_word_frequency)
    torch.manual_seed(0)
    folder = work / "model"
    model_for(cfg, len(tokenizer)).save_pretrained(folder, config=cfg, tokenizer=tokenizer)
    return folder


def image_folder(work: Path, count: int) -> Path:
    synth = work / "synth"
    generate_synthcxr(synth, num_studies=count, image_size=128, seed=0, progress=False)
    return synth


def timed_searches(model_path: Path, images: Path, args, precision: str) -> dict:
    """First search (embeds everything), second query in-process and through the CLI, at ``precision``."""
    engine = ImageTextInference(JoImTeRNet.from_pretrained(model_path), device=args.device,
                                batch_size=args.batch_size, precision=precision)
    index = images.parent / f"index-{precision}.safetensors"
    start, cpu_start = time.perf_counter(), time.process_time()
    first = search_images(engine, images, "small left pleural effusion", top=5, index_path=index, progress=False)
    first_s, first_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    second = search_images(engine, images, "right upper lobe consolidation", top=5, index_path=index, progress=False)
    second_s = time.perf_counter() - start
    cli = [sys.executable, "-m", "joimternet_lite", "search", "--model", str(model_path), "--images", str(images),
           "--query", "no acute cardiopulmonary abnormality", "--top", "5", "--device", args.device,
           "--precision", precision, "--index", str(index)]
    start = time.perf_counter()
    done = subprocess.run(cli, capture_output=True, text=True, check=True)
    cli_s = time.perf_counter() - start
    rate = first.update.embedded / first_s
    return {
        "precision": precision, "images": first.indexed, "skipped": len(first.update.skipped),
        "first_search_s": round(first_s, 2), "embed_images_per_s": round(rate, 1),
        "first_search_cpu_s": round(first_cpu_s, 2),  # all threads; wall >> cpu / threads means a busy machine
        "second_query_s": round(second_s, 3), "second_query_reused": second.update.reused,
        "cli_second_query_s": round(cli_s, 2), "cli_lines": len(done.stdout.splitlines()),
        "embed_target_met": rate >= EMBED_TARGET, "second_query_target_met": second_s < SECOND_QUERY_TARGET,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="SynthCXR studies to draw (one PNG each)")
    ap.add_argument("--model", help="a trained model folder (default: an untrained demo_cpu model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16", "fp16"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth = image_folder(work, args.images)
        model_path = Path(args.model) if args.model else demo_model(work, synth)
        runs = [timed_searches(model_path, synth / "images", args, p) for p in args.precisions]
    print(json.dumps({"threads": args.threads, "device": args.device, "torch": torch.__version__,
                      "model": "trained" if args.model else "demo_cpu untrained", "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
