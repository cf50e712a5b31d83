"""``python -m joimternet_lite ablate``: the paper's ablation table on one dataset and seed.

Taught in notebook 12. Every variant trains the same preset on the same data with the same seed and
step budget (``ablation.steps``, else ``train.steps``), and is evaluated with the demo report's
protocol (global-cosine retrieval only); one markdown table comes out in the layout of the paper's
tables (rows = variants; columns = retrieval R@K both directions, mean AUROC of a linear probe,
grounding).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .atomic import atomic_write_text
from .config import Config, apply_override
from .markdown import markdown_table

VARIANTS: dict[str, list[str]] = {
    "global CE (ConVIRT-like)": ["loss.use_local=false", "loss.use_triplet=false"],
    "global + local CE (GLoRIA-like)": ["loss.use_triplet=false"],
    "JoImTeRNet: CE + triplet, random negatives": ["loss.negatives=random"],
    "JoImTeRNet, hardest negatives": ["loss.negatives=hardest"],
    "JoImTeRNet, all negatives": ["loss.negatives=all"],
    "JoImTeRNet + MLM": ["loss.negatives=random", "train.mlm=true"],
}


def default_variants(cfg: Config) -> list[str]:
    """Every variant; without the MLM one when the text tower is pretrained (``model.text.pretrained_path``),
    since MLM trains the word-level tower only. The skip is printed."""
    if not cfg.model.text.pretrained_path:
        return list(VARIANTS)
    kept = [name for name, overrides in VARIANTS.items() if "train.mlm=true" not in overrides]
    skipped = [name for name in VARIANTS if name not in kept]
    print(f"ablation: skipping {skipped}: MLM trains the word-level text tower only, and "
          f"model.text.pretrained_path is set", flush=True)
    return kept


def variant_steps(cfg: Config) -> int:
    """Training steps of every variant: ``ablation.steps``, else ``train.steps``."""
    return cfg.train.steps if cfg.ablation.steps is None else cfg.ablation.steps


def variant_config(cfg: Config, name: str, out_root: Path) -> Config:
    """``cfg`` with the variant's overrides, ``variant_steps`` and its own out_dir."""
    variant = cfg
    for item in VARIANTS[name]:
        variant = apply_override(variant, item)
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    train = dataclasses.replace(variant.train, steps=variant_steps(cfg), out_dir=str(Path(out_root) / slug))
    return dataclasses.replace(variant, train=train)


def table_row(name: str, results: dict) -> dict:
    def r(direction, k):
        return next(x[f"R@{k}"] for x in results["retrieval"] if x["direction"] == direction
                    and x["scoring"] == "global" and x["relevance"] == "instance")

    row = {"variant": name}
    for direction, short in (("image->report", "I→T"), ("report->image", "T→I")):
        for k in (1, 5, 10):
            row[f"{short} R@{k}"] = r(direction, k)
    row["mean AUROC"] = results["classification"][0]["mean"]
    if "grounding" in results:
        row["pointing (raw, phrase)"] = next(g["hit"] for g in results["grounding"] if g["kind"] == "raw"
                                             and g["words"] == "phrase" and g["type"] == "all")
    return row


def ablation_table(rows: list[dict]) -> str:
    """The rows of :func:`table_row` as markdown: R@K in percent with one decimal, the rest three."""
    header = list(rows[0])
    digits = [1 if "R@" in key else 3 for key in header]
    return markdown_table(header, [list(row.values()) for row in rows], digits)


def run_ablation(cfg: Config, variants: list[str] | None = None) -> Path:
    """Train and evaluate each variant (resuming finished or interrupted ones); write ablation.md."""
    from .data.dataset import load_training_data
    from .device import pick_device
    from .pipeline import evaluate_model
    from .train import train

    out_root = Path(cfg.train.out_dir).parent / f"ablation_{cfg.name}"
    manifest, tokenizer = load_training_data(cfg)
    device = pick_device(cfg.train.device)
    rows = []
    for name in variants or default_variants(cfg):
        print(f"\n==> ablation variant: {name}", flush=True)
        vcfg = variant_config(cfg, name, out_root)
        result = train(vcfg, resume=True)
        results = evaluate_model(vcfg, result.model, tokenizer, manifest, device, scorings=("global",))
        rows.append(table_row(name, results))
        atomic_write_text(out_root / "ablation.json", json.dumps(rows, indent=2))
    caption = (f"Ablation on `{cfg.data.root}` ({cfg.name}, {variant_steps(cfg)} steps per variant, "
               f"seed {cfg.train.seed}); "
               "retrieval by global cosine on the full test split (R@K in %), mean AUROC of a linear probe "
               "(13 classes without No Finding, those present), pointing = raw phrase maps on SynthCXR.")
    path = out_root / "ablation.md"
    atomic_write_text(path, caption + "\n\n" + ablation_table(rows) + "\n")
    print(f"\n{ablation_table(rows)}\n\nwritten to {path}")
    return path
