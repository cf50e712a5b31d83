"""OpenI end to end on a CPU: prepare a local OpenI folder, train a preset, evaluate trained vs untrained.

    python bench/openi_real.py --source DIR --out DIR [--preset openi_cpu] [--record] [key=value ...]

``--source`` is any layout ``prepare openi`` accepts (README, "Data access and licences"). The steps:

1. ``prepare openi`` into ``<out>/prepared`` (its counts, and the studies left out, go in the record);
2. train the preset there into ``<out>/run`` (a cut run resumes), timed: seconds and steps/s;
3. on the test split, for the trained model and the untrained one (same seed, same towers):
   global retrieval R@1/5/10 both ways on the full test pool and on disjoint random pools of 100
   (``--pool``);
   a linear probe (fit on the train split's frozen image vectors, C fixed at 1, nothing tuned)
   with per-class AUROC and the paper's OpenI mean over :data:`OPENI7` with a bootstrap interval
   over test studies; the same probe fit on 1 and 5 studies per OpenI class (the 1-/5-shot transfer).

Nothing is tuned on the test split. ``<out>/results.json`` holds every number; ``--record`` appends
the markdown section to ``bench/RESULTS.md`` (``--results-file`` elsewhere) with the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from joimternet_lite import checkpoint as ckpt
from joimternet_lite.commands.pipeline import embed_split, untrained_model
from joimternet_lite.config import load_config
from joimternet_lite.data.dataset import load_training_data
from joimternet_lite.data.openi import prepare_openi
from joimternet_lite.data.schema import CHEXPERT_LABELS
from joimternet_lite.device import pick_device
from joimternet_lite.evaluate.classification import (
    auroc_summary,
    bootstrap_ci,
    k_shot_indices,
    linear_probe_scores,
    prepare_targets,
)
from joimternet_lite.evaluate.embed import DatasetEmbeddings
from joimternet_lite.evaluate.retrieval import evaluate_retrieval
from joimternet_lite.markdown import markdown_table
from joimternet_lite.training.train import train

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# The ChestX-ray8 classes as CheXpert columns (Effusion -> Pleural Effusion, Infiltration -> Lung
# Opacity, Mass and Nodule -> Lung Lesion): the paper's 8 OpenI classes less No Finding.
OPENI7 = ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Lung Opacity", "Lung Lesion", "Pneumonia",
          "Pneumothorax")
NOT_OPENI7 = tuple(n for n in CHEXPERT_LABELS if n not in OPENI7)
SHOTS = (1, 5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path, help="a local OpenI folder (any accepted layout)")
    parser.add_argument("--out", required=True, type=Path, help="work folder: prepared/, run/, results.json")
    parser.add_argument("--preset", default="openi_cpu")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test studies")
    parser.add_argument("--pool", type=int, default=100, help="size of the disjoint random retrieval pools")
    parser.add_argument("--record", action="store_true", help="append the section to --results-file")
    parser.add_argument("--results-file", type=Path, default=RESULTS)
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Prepare, train, evaluate; returns (and writes to ``<out>/results.json``) every number."""
    prepared, run_dir = args.out / "prepared", args.out / "run"
    started = time.perf_counter()
    summary = prepare_openi(args.source, prepared)
    prepare_s = time.perf_counter() - started
    cfg = load_config(args.preset, [f"data.root={prepared}", f"train.out_dir={run_dir}", *args.overrides])
    started = time.perf_counter()
    result = train(cfg, resume=True)
    train_s = time.perf_counter() - started
    models = evaluate_pair(cfg, run_dir, args.bootstrap, args.pool)
    results = {
        "source": str(args.source), "preset": args.preset, "overrides": args.overrides,
        "prepare": {k: summary[k] for k in ("reports", "studies", "images", "frontal", "lateral", "skipped",
                                            "missing_images", "reports_without_images", "views_from")},
        "prepare_seconds": round(prepare_s, 1), "train_seconds": round(train_s, 1), "steps": result.steps,
        "steps_per_second": round(result.steps / train_s, 3), "cpus": os.cpu_count(),
        "torch_threads": _torch_threads(), **models,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def evaluate_pair(cfg, run_dir: Path, n_boot: int, pool: int) -> dict:
    """``{"trained": ..., "untrained": ..., "test_studies", "excluded"}`` on the test split."""
    folder, _, _ = ckpt.newest_verified_checkpoint(run_dir)
    manifest, tokenizer = load_training_data(cfg, tokenizer_dir=run_dir / "tokenizer")
    trained = untrained_model(cfg, tokenizer)
    ckpt.load_weights(folder, trained, len(tokenizer))
    device = pick_device(cfg.train.device)
    out = {}
    for name, model in (("trained", trained), ("untrained", untrained_model(cfg, tokenizer))):
        model.eval()
        test = embed_split(cfg, model, tokenizer, manifest, "test", device, keep_local=False)
        fit = embed_split(cfg, model, tokenizer, manifest, "train", device, keep_local=False)
        out[name] = {"retrieval": retrieval(test, pool), "probe": probes(fit, test, n_boot)}
    out["test_studies"] = len(test.study_ids)
    out["test_left_out"] = [list(s) for s in test.skipped]
    return out


def retrieval(test: DatasetEmbeddings, pool: int) -> list[dict]:
    """Global instance retrieval rows, both directions: the full test pool, then disjoint pools of ``pool``."""
    full = evaluate_retrieval(test, include_ceiling=False)
    pools = evaluate_retrieval(test, pool_mode="random", pool_size=pool, include_ceiling=False)
    return full + pools


def probes(fit: DatasetEmbeddings, test: DatasetEmbeddings, n_boot: int) -> dict:
    """Linear probes on frozen image vectors: all training studies, then 1 and 5 per OpenI class."""
    fit_y, fit_mask = prepare_targets(fit.labels)
    classes = [CHEXPERT_LABELS.index(n) for n in OPENI7]
    rows = {"all": np.arange(len(fit_y))}
    rows.update({f"{k}-shot": k_shot_indices(fit_y, k, seed=0, classes=classes) for k in SHOTS})
    return {name: probe(fit, fit_y[r], fit_mask[r], r, test, n_boot) for name, r in rows.items()}


def probe(fit: DatasetEmbeddings, fit_y, fit_mask, rows, test: DatasetEmbeddings, n_boot: int) -> dict:
    """Per-class AUROC and the OpenI-7 mean with its percentile bootstrap interval over test studies."""
    scores = linear_probe_scores(fit.images.image_vectors[rows], fit_y, fit_mask, test.images.image_vectors, seed=0)
    test_y, test_mask = prepare_targets(test.labels)
    row = {"n_train": len(rows)}
    row.update(auroc_summary(test_y, scores, test_mask, exclude=NOT_OPENI7))
    row.update(bootstrap_ci(test_y, scores, test_mask, n_boot, seed=0, exclude=NOT_OPENI7))
    return row


def markdown(results: dict, command: str) -> str:
    """The RESULTS.md section: setup, timing, retrieval and probe tables (trained against untrained)."""
    prep, n = results["prepare"], results["test_studies"]
    lines = [
        f"## OpenI end to end on a CPU ({date.today().isoformat()})", "",
        f"`{command}`", "",
        f"Source `{results['source']}`: {prep['reports']} reports, {prep['studies']} studies prepared "
        f"({prep['images']} images: {prep['frontal']} frontal, {prep['lateral']} lateral; views from "
        f"{prep['views_from']}; {prep['missing_images']} listed images missing, {prep['skipped']} studies with "
        f"failed files). Preset `{results['preset']}` {' '.join(results['overrides'])}: {results['steps']} steps in "
        f"{results['train_seconds'] / 60:.1f} min ({results['steps_per_second']:.2f} steps/s) on "
        f"{results['cpus']} cores ({platform.processor() or platform.machine()}), torch threads "
        f"{results['torch_threads']}. Test split: {n} studies ({len(results['test_left_out'])} left out, "
        f"no frontal image or unreadable); chance R@10 on the full pool {1000 / max(n, 1):.1f} %.", "",
        retrieval_table(results), "", probe_table(results), "",
    ]
    return "\n".join(lines)


def retrieval_table(results: dict) -> str:
    rows = []
    for name in ("trained", "untrained"):
        for r in results[name]["retrieval"]:
            pool = "full" if r["pool"] == "full" else f"{r['num_pools']} pools of {r['pool_size']}"
            rows.append([name, r["direction"], pool, *(f"{r[f'R@{k}']:.1f}" for k in (1, 5, 10))])
    return markdown_table(["model", "direction", "pool", "R@1", "R@5", "R@10"], rows)


def probe_table(results: dict) -> str:
    head = ["model", "probe", "OpenI-7 mean [95 % CI]", *OPENI7]
    rows = []
    for name in ("trained", "untrained"):
        for probe_name, p in results[name]["probe"].items():
            mean = f"{p['mean']:.3f} [{p['mean_ci_low']:.3f}, {p['mean_ci_high']:.3f}]"
            rows.append([name, f"{probe_name} ({p['n_train']} studies)", mean,
                         *(f"{p[f'auroc/{c}']:.3f}" for c in OPENI7)])
    return markdown_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    command = "python bench/openi_real.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    section = markdown(results, command)
    print(section)
    if args.record:
        with open(args.results_file, "a", encoding="utf-8") as f:
            f.write("\n" + section)
        print(f"recorded in {args.results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
