"""The demo model's targets, lever by lever: each lever is ``make demo`` with a few overrides.

    python bench/demo_levers.py                      # every lever not yet in the log
    python bench/demo_levers.py --only lr_2e-3 baseline
    python bench/demo_levers.py --owners             # region owners and blind pointing of the runs
    python bench/demo_levers.py --owners --only steps_600   # ... of some runs, keeping the other rows
    python bench/demo_levers.py --table              # the table of bench/RESULTS.md

Each lever runs ``python -m joimternet_lite demo --config demo_cpu train.steps=300`` (the budget
``demo_cpu`` had when the levers were measured; a lever's own overrides come after it) into
``runs/levers/<lever>`` on the same SynthCXR data, then reads the run's ``results.json`` for the
five numbers the demo is held to (the 200-study test split): raw and alpha phrase pointing with
chance, image->report global R@10, and the linear probe's mean AUROC, trained and untrained, plus
the wall time of the whole command. One JSON line per run goes to ``bench/demo_levers.jsonl``;
bench/RESULTS.md quotes it, docs/DECISIONS.md says which levers were kept.

``--owners`` reads the finished lever runs again and writes ``bench/demo_levers_owners.jsonl``:
per lever, which words own the test images' regions in the alpha attention's softmax over words
(``evaluate.grounding.region_owners``; notebook 11 explains why that decides the alpha maps), and
how well the word-blind map (the region vectors' lengths) points at the same findings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BASE = ["train.steps=300"]
LEVERS: dict[str, list[str]] = {
    "baseline": [],
    "lr_2e-3": ["train.lr_image=2e-3", "train.lr_text=2e-3"],
    "steps_600": ["train.steps=600"],
    "batch_64": ["train.batch_size=64"],
    "gamma3_20": ["loss.gamma3=20"],
    "null_region": ["model.null_region=true"],
    "gamma1_30": ["model.score.gamma1=30"],
    "content_words": ["model.text.local_words=content"],
    "content_words_no_side": ["model.text.local_words=content_no_side"],
    "steps_450": ["train.steps=450"],
    "steps_600_content_words": ["train.steps=600", "model.text.local_words=content"],
    "steps_600_half_image_widths": ["train.steps=600", "model.image.widths=[4,8,16,24,32,48,64]"],
    "steps_600_lr_text_5e-4": ["train.steps=600", "train.lr_text=5e-4"],
    "steps_600_warmup_60": ["train.steps=600", "train.warmup_steps=60"],
    "steps_600_sentences": ["train.steps=600", "model.text.local_units=sentences"],
    "sentences": ["model.text.local_units=sentences"],
    "steps_600_cosine_10": ["train.steps=600", "model.score.cosine_scale=10"],
    "steps_600_cosine_10_sentences": ["train.steps=600", "model.score.cosine_scale=10",
                                      "model.text.local_units=sentences"],
    "steps_600_cosine_20_sentences": ["train.steps=600", "model.score.cosine_scale=20",
                                      "model.text.local_units=sentences"],
    "steps_600_cosine_5_sentences": ["train.steps=600", "model.score.cosine_scale=5",
                                     "model.text.local_units=sentences"],
    "steps_600_cosine_20_sentences_seed43": ["train.steps=600", "model.score.cosine_scale=20",
                                             "model.text.local_units=sentences", "train.seed=43"],
    "steps_600_cosine_20_sentences_seed44": ["train.steps=600", "model.score.cosine_scale=20",
                                             "model.text.local_units=sentences", "train.seed=44"],
}


def measures(results: dict) -> dict[str, float]:
    """The demo's five target numbers from a run's results.json."""
    out = {}
    for tag in ("trained", "untrained"):
        part = results[tag]
        out[f"auroc_{tag}"] = part["classification"][0]["mean"]
    trained = results["trained"]
    for row in trained["grounding"]:
        if row["words"] == "phrase" and row["type"] == "all":
            out[f"{row['kind']}_pointing"] = row["hit"]
            out["chance"] = row["chance"]
    for row in trained["retrieval"]:
        if (row["direction"], row["scoring"], row["relevance"]) == ("image->report", "global", "instance"):
            out["i2r_R@10"] = row["R@10"]
        if (row["direction"], row["scoring"], row["relevance"]) == ("report->image", "global", "instance"):
            out["r2i_R@10"] = row["R@10"]
    return out


def run_lever(name: str, overrides: list[str], root: Path) -> dict:
    out_dir = root / name
    cmd = [sys.executable, "-m", "joimternet_lite", "demo", "--config", "demo_cpu",
           f"train.out_dir={out_dir}", *BASE, *overrides]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    results = json.loads((out_dir / "results.json").read_text())
    return {"lever": name, "overrides": overrides, "seconds": round(seconds, 1), **measures(results)}


def owners_of_run(run_dir: Path, top: int = 5) -> dict:
    """The owner's mean share and the ``top`` region owners (% of regions) of a finished run's test
    split, and the pointing of the word-blind map (region lengths) on the phrase targets."""
    import torch

    from joimternet_lite import JoImTeRNet
    from joimternet_lite.commands.pipeline import embed_split
    from joimternet_lite.config import load_config
    from joimternet_lite.data.dataset import load_training_data
    from joimternet_lite.evaluate.grounding import (
        evaluate_grounding,
        region_owners,
        summarize_grounding,
        synthcxr_targets,
    )

    cfg = load_config(str(run_dir / "config.yaml"))
    model = JoImTeRNet.from_pretrained(run_dir)
    manifest, tokenizer = load_training_data(cfg, tokenizer_dir=run_dir / "tokenizer")
    with torch.inference_mode():
        test = embed_split(cfg, model, tokenizer, manifest, "test", torch.device("cpu"), keep_local=True)
    reports = test.reports
    shares, owned = region_owners(test.images.regions, reports.words, reports.lengths, test.texts,
                                  sentences=cfg.model.text.local_units == "sentences", word_mask=reports.word_mask)
    total = sum(owned.values())
    test_rows = manifest.filter(lambda s: s == "test", input_columns="split")
    targets = synthcxr_targets(list(test_rows), test.study_ids, cfg.data.root, model.grid)
    blind = summarize_grounding(evaluate_grounding(model, tokenizer, test.images.regions, targets, kinds=("blind",)))
    return {"owner_share": round(float(shares.mean()), 3),
            "owners": [[word, round(100 * count / total, 1)] for word, count in owned.most_common(top)],
            "blind_pointing": round(next(r["hit"] for r in blind if r["words"] == "phrase" and r["type"] == "all"), 3)}


def owner_rows(levers: list[dict], known: list[dict], only: list[str] | None, measure) -> list[dict]:
    """The owners log in the levers' order: ``measure(lever)`` for the levers in ``only`` (all when
    None), the ``known`` rows for the others (a lever with neither is left out)."""
    by_lever = {r["lever"]: r for r in known}
    for r in levers:
        if not only or r["lever"] in only:
            by_lever[r["lever"]] = {"lever": r["lever"], **measure(r["lever"])}
    return [by_lever[r["lever"]] for r in levers if r["lever"] in by_lever]


def markdown_table(levers: list[dict], owners: list[dict]) -> str:
    """bench/RESULTS.md's lever table from the two logs (``--table``)."""
    owned = {row["lever"]: row for row in owners}
    lines = ["| lever | overrides (after `train.steps=300`) | alpha pointing | raw pointing | blind pointing "
             "| I→R R@10 | R→I R@10 | AUROC trained / untrained | owner share | top owners (% of regions) | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in levers:
        o = owned.get(r["lever"], {})
        top = ", ".join(f"{word} {share}" for word, share in o.get("owners", [])[:3])
        blind = f"{o['blind_pointing']:.3f}" if "blind_pointing" in o else "-"
        share = f"{o['owner_share']:.3f}" if "owner_share" in o else "-"
        overrides = " ".join(f"`{x}`" for x in r["overrides"]) or "(none)"
        lines.append(f"| {r['lever']} | {overrides} | {r['alpha_pointing']:.3f} | {r['raw_pointing']:.3f} | {blind} "
                     f"| {r['i2r_R@10']:.1f} | {r['r2i_R@10']:.1f} | {r['auroc_trained']:.3f} / "
                     f"{r['auroc_untrained']:.3f} | {share} | {top} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="levers to run (default: those not yet logged)")
    ap.add_argument("--log", default="bench/demo_levers.jsonl")
    ap.add_argument("--root", default="runs/levers")
    ap.add_argument("--owners", action="store_true", help="region owners of the logged runs instead")
    ap.add_argument("--table", action="store_true", help="print bench/RESULTS.md's table from the logs")
    args = ap.parse_args()
    owners_log = Path(args.log).with_name("demo_levers_owners.jsonl")
    if args.table:
        print(markdown_table(_read_jsonl(Path(args.log)), _read_jsonl(owners_log)))
        return
    if args.owners:
        rows = owner_rows(_read_jsonl(Path(args.log)), _read_jsonl(owners_log), args.only,
                          lambda name: owners_of_run(Path(args.root) / name))
        owners_log.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(owners_log.read_text(), end="")
        return
    log = Path(args.log)
    done = {json.loads(line)["lever"] for line in log.read_text().splitlines()} if log.exists() else set()
    names = args.only or [name for name in LEVERS if name not in done]
    for name in names:
        row = run_lever(name, LEVERS[name], Path(args.root))
        print(json.dumps(row), flush=True)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
