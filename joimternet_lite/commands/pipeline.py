"""The main job behind ``make demo``: data -> training -> evaluation -> report.

Each stage prints what it is doing. Evaluation measures the trained model and the same
architecture untrained (same initialisation seed) on the same test split with the same
protocol, so the report can show what pre-training bought. Taught across notebooks 08-11.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..atomic import atomic_write_text
from ..config import Config, flatten, from_dict, to_dict
from ..data.dataset import load_training_data, make_dataloader, make_dataset
from ..device import pick_device
from ..evaluate import embed_dataset, evaluate_frozen, evaluate_retrieval, synthcxr_targets
from ..evaluate.embed import DatasetEmbeddings
from ..evaluate.finding_search import search_precision
from ..evaluate.grounding import grounding_results
from ..models.joimternet import model_for

EVAL_BATCH = 64


def stage(number: int, total: int, text: str) -> None:
    print(f"\n==> [{number}/{total}] {text}", flush=True)


def dataset_statistics(manifest) -> dict:
    """Counts per split, label prevalence (label == 1) and report length in words."""
    from ..data.schema import CHEXPERT_LABELS
    from ..data.tokenizer import split_words

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


def embed_split(cfg: Config, model, tokenizer, manifest, split: str, device, keep_local: bool) -> DatasetEmbeddings:
    """Embed one split once (eval transform, no shuffling): row i of every output is study i; notebooks 09-11 use it."""
    dataset = make_dataset(cfg, manifest, split, train=False)
    loader = make_dataloader(dataset, tokenizer, cfg, train=False, batch_size=EVAL_BATCH, device=device)
    return embed_dataset(model, loader, device, keep_local=keep_local, progress=False)


def evaluate_model(cfg: Config, model, tokenizer, manifest, device, eval_split: str = "test",
                   scorings: tuple[str, ...] | None = None) -> dict:
    """Retrieval (for each of ``scorings``, default ``eval.scorings``), linear-probe classification
    and (on SynthCXR) grounding rows. Retrieval follows ``eval`` (relevances, pools, combined
    weight, seed) and scores through the model's own ``similarity``."""
    model = model.to(device).eval()
    test = embed_split(cfg, model, tokenizer, manifest, eval_split, device, keep_local=True)
    train = embed_split(cfg, model, tokenizer, manifest, "train", device, keep_local=False)
    ev = cfg.eval
    results = {
        "retrieval": evaluate_retrieval(test, scorings=scorings or ev.scorings, relevances=ev.relevances,
                                        pool_mode="random" if ev.pool_size else "full", pool_size=ev.pool_size,
                                        num_pools=ev.num_pools, seed=ev.seed, combined_weight=ev.combined_weight,
                                        similarity=model.similarity, device=device),
        "classification": [evaluate_frozen(train, test, "linear", cfg.eval.uncertain_policy,
                                           n_boot=cfg.eval.bootstrap, seed=cfg.eval.seed)],
    }
    if "findings_gt" in manifest.column_names:
        test_rows = manifest.filter(lambda s: s == eval_split, input_columns="split")
        targets = synthcxr_targets(list(test_rows), test.study_ids, cfg.data.root, model.grid)
        results.update(grounding_results(model, tokenizer, test.images.regions, targets, model.grid,
                                         n_boot=ev.bootstrap, seed=ev.seed, device=device))
        results["search"] = search_precision(model, tokenizer, test, list(test_rows), device=device)
    results["skipped_studies"] = {eval_split: skipped_studies(test), "train": skipped_studies(train)}
    results["embeddings"] = test
    return results


def skipped_studies(embeddings: DatasetEmbeddings) -> dict:
    """``{"studies": studies in the split, "skipped": [{"study_id", "reason"}]}`` of one embedded split."""
    skipped = [{"study_id": sid, "reason": reason} for sid, reason in embeddings.skipped]
    return {"studies": len(embeddings.study_ids) + len(skipped), "skipped": skipped}


def untrained_model(cfg: Config, tokenizer):
    torch.manual_seed(cfg.train.seed)
    return model_for(cfg, len(tokenizer), tokenizer)


def run_demo(cfg: Config, resume: bool = True) -> Path:
    """Generate SynthCXR, train ``cfg``, evaluate trained vs untrained, write ``<out_dir>/report.md``.

    A re-run resumes training from the last checkpoint (a finished run only re-evaluates). The
    evaluation is :func:`evaluate_run`'s, so the report names the checkpoint it measured.
    """
    from ..training.train import train
    from ..viz import contact_sheet

    started = time.perf_counter()
    out_dir = Path(cfg.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage(1, 3, f"data: SynthCXR in {cfg.data.root} ({cfg.data.num_studies} studies)")
    manifest, _ = load_training_data(cfg)
    print_statistics(dataset_statistics(manifest))
    contact_sheet(cfg.data.root, out_dir / "contact_sheet.png", n=16)
    print(f"contact sheet: {out_dir / 'contact_sheet.png'}")

    stage(2, 3, f"training {cfg.name} for {cfg.train.steps} steps")
    train(cfg, resume=resume)

    stage(3, 3, "evaluating the newest checkpoint and the untrained baseline on the test split; writing the report")
    report = evaluate_run(cfg)
    summary = {"seconds": round(time.perf_counter() - started, 1), "report": str(report)}
    atomic_write_text(out_dir / "demo_summary.json", json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']:.0f} s; open {report}")
    return report


def evaluate_run(cfg: Config) -> Path:
    """Evaluate the newest verified checkpoint of ``cfg.train.out_dir`` and write its report.

    The model, data and training settings are the run's own (recorded in the checkpoint); from
    ``cfg`` only ``eval``, ``train.device`` and ``train.out_dir`` apply. Newer checkpoints that fail
    verification are passed over, and the report and ``results.json`` say which and why.
    """
    from .report import write_report

    out_dir = Path(cfg.train.out_dir)
    folder, state, skipped = ckpt.newest_verified_checkpoint(out_dir)
    for item in skipped:
        print(f"warning: checkpoint {item['checkpoint']} passed over: {item['reason']}")
    if folder is None:
        reasons = "".join(f" {item['checkpoint']}: {item['reason']}" for item in skipped)
        raise ckpt.CheckpointError(f"{out_dir}: no usable checkpoint to evaluate.{reasons} Train first "
                                   f"(python -m joimternet_lite train --config {cfg.name} train.out_dir={out_dir})")
    run_cfg = run_config(state, folder, cfg)
    provenance = {"checkpoint": str(folder), "step": state["step"],
                  "model_sha256": state["files"][ckpt.MODEL_FILE]["sha256"], "skipped_checkpoints": skipped,
                  "config_from": str(folder / ckpt.STATE_FILE),
                  "command_line_settings_ignored": ignored_settings(run_cfg, cfg)}
    print(f"evaluating {folder} (step {provenance['step']}, model sha256 {provenance['model_sha256'][:16]}...) "
          f"with the run's configuration")
    if provenance["command_line_settings_ignored"]:
        print("note: the run's values are used for " + ", ".join(provenance["command_line_settings_ignored"]))
    manifest, tokenizer = load_training_data(run_cfg, tokenizer_dir=out_dir / "tokenizer")
    device = pick_device(run_cfg.train.device)
    model = untrained_model(run_cfg, tokenizer)
    ckpt.load_weights(folder, model, len(tokenizer))  # its hashes were checked by newest_verified_checkpoint
    trained = evaluate_model(run_cfg, model, tokenizer, manifest, device)
    baseline = evaluate_model(run_cfg, untrained_model(run_cfg, tokenizer), tokenizer, manifest, device)
    report = write_report(run_cfg, out_dir, dataset_statistics(manifest), trained, baseline, model, tokenizer,
                          manifest, device, provenance)
    print(f"report: {report}")
    return report


def run_config(state: dict, folder: Path, command: Config) -> Config:
    """The config a checkpoint was trained with, but ``eval``, ``train.device`` and ``train.out_dir``
    (where the run lies now) from ``command``."""
    if not state.get("config"):
        raise ckpt.CheckpointError(f"{folder / ckpt.STATE_FILE}: records no config, so the run's settings are "
                                   "unknown; evaluate a checkpoint written by `train`")
    run = from_dict(Config, state["config"], where=str(folder / ckpt.STATE_FILE))
    train = dataclasses.replace(run.train, device=command.train.device, out_dir=command.train.out_dir)
    return dataclasses.replace(run, eval=command.eval, train=train)


def ignored_settings(run: Config, command: Config) -> list[str]:
    """Dotted keys whose command-line value differs from the run's (the run's value is used)."""
    ran, asked = (flatten(to_dict(c)) for c in (run, command))
    return sorted(k for k in asked if not k.startswith("eval.") and str(asked[k]) != str(ran.get(k)))
