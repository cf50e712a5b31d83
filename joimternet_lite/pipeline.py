"""The main job behind ``make demo``: data -> training -> evaluation -> report.

Each stage prints what it is doing. Evaluation measures the trained model and the same
architecture untrained (same initialisation seed) on the same test split with the same
protocol, so the report can show what pre-training bought. Taught across notebooks 08-11.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data.dataset import load_training_data, make_dataloader, make_dataset
from .device import pick_device
from .evaluate import (
    embed_dataset,
    evaluate_frozen,
    evaluate_grounding,
    evaluate_retrieval,
    laterality_swap,
    summarize_grounding,
    synthcxr_targets,
)
from .evaluate.grounding import LATERALITY_VALUES
from .models.joimternet import model_for

EVAL_BATCH = 64


def stage(number: int, total: int, text: str) -> None:
    print(f"\n==> [{number}/{total}] {text}", flush=True)


def dataset_statistics(manifest) -> dict:
    """Counts per split, label prevalence (label == 1) and report length in words."""
    from .data.schema import CHEXPERT_LABELS
    from .data.tokenizer import split_words

    splits = {str(s): int(n) for s, n in zip(*np.unique(manifest["split"], return_counts=True), strict=True)}
    labels = manifest["labels"]
    prevalence = {n: float(np.mean([lab[n] == 1 for lab in labels])) for n in CHEXPERT_LABELS}
    lengths = [len(split_words(t)) for t in manifest["text"]]
    return {"studies": len(manifest), "splits": splits,
            "prevalence": {k: round(v, 3) for k, v in prevalence.items() if v > 0},
            "words_per_report": {"mean": round(float(np.mean(lengths)), 1), "max": int(np.max(lengths))},
            "distinct_reports": len(set(manifest["text"]))}


def print_statistics(stats: dict) -> None:
    print(f"{stats['studies']} studies {stats['splits']}; {stats['distinct_reports']} distinct reports; "
          f"words per report: mean {stats['words_per_report']['mean']}, max {stats['words_per_report']['max']}")
    print("label prevalence: " + ", ".join(f"{k} {v:.2f}" for k, v in stats["prevalence"].items()))


def embed_split(cfg: Config, model, tokenizer, manifest, split: str, device, keep_local: bool) -> dict:
    dataset = make_dataset(cfg, manifest, split, train=False)
    loader = make_dataloader(dataset, tokenizer, cfg, train=False, batch_size=EVAL_BATCH, device=device)
    return embed_dataset(model, loader, device, keep_local=keep_local, progress=False)


def evaluate_model(cfg: Config, model, tokenizer, manifest, device, eval_split: str = "test",
                   scorings: tuple[str, ...] = ("global", "local", "combined")) -> dict:
    """Retrieval (for each of ``scorings``), linear-probe classification and (on SynthCXR) grounding rows."""
    model = model.to(device).eval()
    test = embed_split(cfg, model, tokenizer, manifest, eval_split, device, keep_local=True)
    train = embed_split(cfg, model, tokenizer, manifest, "train", device, keep_local=False)
    gamma = dict(gamma1=cfg.loss.gamma1, gamma2=cfg.loss.gamma2, chunk_size=cfg.loss.chunk_size)
    results = {
        "retrieval": evaluate_retrieval(test, scorings=scorings,
                                        relevances=("instance", "dedup"), device=device, seed=cfg.eval.seed,
                                        combined_weight=cfg.eval.combined_weight, **gamma),
        "classification": [evaluate_frozen(train, test, "linear", cfg.eval.uncertain_policy,
                                           n_boot=cfg.eval.bootstrap, seed=cfg.eval.seed)],
    }
    if "findings_gt" in manifest.column_names:
        test_rows = manifest.filter(lambda s: s == eval_split, input_columns="split")
        targets = synthcxr_targets(list(test_rows), test["study_ids"], cfg.data.root, model.grid)
        rows = evaluate_grounding(model, tokenizer, test["regions"], targets, device=device)
        results["grounding"] = summarize_grounding(rows)
        swap = laterality_swap(model, tokenizer, test["regions"], targets, model.grid, device=device)
        results["laterality_swap"] = [r for r in summarize_grounding(swap, values=LATERALITY_VALUES)
                                      if r["type"] == "all"]
    results["embeddings"] = test
    return results


def untrained_model(cfg: Config, vocab_size: int):
    torch.manual_seed(cfg.train.seed)
    return model_for(cfg, vocab_size)


def run_demo(cfg: Config, resume: bool = True) -> Path:
    """Generate SynthCXR, train ``cfg``, evaluate trained vs untrained, write ``<out_dir>/report.md``.

    A re-run resumes training from the last checkpoint (a finished run only re-evaluates).
    """
    from .report import write_report
    from .train import train
    from .viz import contact_sheet

    started = time.perf_counter()
    out_dir = Path(cfg.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage(1, 4, f"data: SynthCXR in {cfg.data.root} ({cfg.data.num_studies} studies)")
    manifest, tokenizer = load_training_data(cfg)
    stats = dataset_statistics(manifest)
    print_statistics(stats)
    contact_sheet(cfg.data.root, out_dir / "contact_sheet.png", n=16)
    print(f"contact sheet: {out_dir / 'contact_sheet.png'}")

    stage(2, 4, f"training {cfg.name} for {cfg.train.steps} steps")
    result = train(cfg, resume=resume)

    stage(3, 4, "evaluating the trained model and the untrained baseline on the test split")
    device = pick_device(cfg.train.device)
    trained = evaluate_model(cfg, result.model, tokenizer, manifest, device)
    baseline = evaluate_model(cfg, untrained_model(cfg, len(tokenizer)), tokenizer, manifest, device)

    stage(4, 4, f"writing the report to {out_dir / 'report.md'}")
    report = write_report(cfg, out_dir, stats, trained, baseline, result.model, tokenizer, manifest, device)
    summary = {"seconds": round(time.perf_counter() - started, 1), "report": str(report)}
    (out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']:.0f} s; open {report}")
    return report


def evaluate_run(cfg: Config) -> Path:
    """Evaluate the final checkpoint of ``cfg.train.out_dir`` and write its report."""
    from . import checkpoint as ckpt
    from .report import write_report

    out_dir = Path(cfg.train.out_dir)
    found = ckpt.latest_checkpoint(out_dir)
    if found is None:
        raise FileNotFoundError(f"{out_dir}: no checkpoint to evaluate; train first "
                                f"(python -m joimternet_lite train --config {cfg.name})")
    manifest, tokenizer = load_training_data(cfg, tokenizer_dir=out_dir / "tokenizer")
    device = pick_device(cfg.train.device)
    model = untrained_model(cfg, len(tokenizer))
    ckpt.load_checkpoint(found, model, vocab_size=len(tokenizer))
    trained = evaluate_model(cfg, model, tokenizer, manifest, device)
    baseline = evaluate_model(cfg, untrained_model(cfg, len(tokenizer)), tokenizer, manifest, device)
    return write_report(cfg, out_dir, dataset_statistics(manifest), trained, baseline, model, tokenizer, manifest,
                        device)
