"""Does `search` find more findings when it ranks by the local or combined score?

    python bench/search_scoring.py runs/lab/nows_s42 runs/lab/nows_s43 runs/lab/nows_s44

For each trained run folder (its newest complete checkpoint, its own config and tokenizer, the
SynthCXR test split it was evaluated on): precision@10 of the one plain query per finding
(``evaluate.finding_search``) when the test images are ranked by ``global`` (the default of
``search``), ``local`` and ``combined`` (``eval.combined_weight``). Prints a markdown table, one row
per run and the mean over runs; bench/RESULTS.md quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from joimternet_lite.commands.pipeline import embed_split
from joimternet_lite.config import SCORINGS, load_config
from joimternet_lite.data.dataset import load_training_data
from joimternet_lite.evaluate.finding_search import search_precision
from joimternet_lite.markdown import markdown_table
from joimternet_lite.models.joimternet import JoImTeRNet


def run_precisions(run_dir: Path) -> dict[str, float]:
    """Mean precision@10 over the finding queries, per scoring, for one run folder."""
    cfg = load_config(str(run_dir / "config.yaml"))
    model = JoImTeRNet.from_pretrained(run_dir)
    manifest, tokenizer = load_training_data(cfg, tokenizer_dir=run_dir / "tokenizer")
    device = torch.device("cpu")
    with torch.inference_mode():
        test = embed_split(cfg, model, tokenizer, manifest, "test", device, keep_local=True)
        records = list(manifest.filter(lambda s: s == "test", input_columns="split"))
        return {scoring: search_precision(model, tokenizer, test, records, device=device, scoring=scoring,
                                          combined_weight=cfg.eval.combined_weight)["mean_precision"]
                for scoring in SCORINGS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run folders (train.out_dir)")
    args = parser.parse_args(argv)
    rows = {run: run_precisions(run) for run in args.runs}
    table = [[str(run), *(f"{p[s]:.3f}" for s in SCORINGS)] for run, p in rows.items()]
    means = {s: np.mean([p[s] for p in rows.values()]) for s in SCORINGS}
    sds = {s: np.std([p[s] for p in rows.values()], ddof=1) if len(rows) > 1 else 0.0 for s in SCORINGS}
    table.append(["mean ± sd", *(f"{means[s]:.3f} ± {sds[s]:.3f}" for s in SCORINGS)])
    print(markdown_table(["run", *(f"P@10, {s}" for s in SCORINGS)], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
