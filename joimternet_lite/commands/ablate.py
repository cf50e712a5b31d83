"""``python -m joimternet_lite ablate``: the paper's ablation table, with intervals.

Taught in notebook 12. Every variant trains the same preset on the same data for each training
seed ``train.seed``, ``train.seed + 1``, ... (``--seeds``; the data and its test split stay fixed,
so every comparison is paired over the same test studies) with the step budget ``ablation.steps``
(else ``train.steps``). MLM runs twice: at equal steps, and at equal image-text steps (its steps
raised until its image-text steps equal the others' steps, since an MLM step trains text only).
Each run is evaluated with the demo report's protocol (global-cosine retrieval only).

``ablation.md`` holds the table in the paper's layout (rows = variants; columns = retrieval R@K
both directions, mean AUROC of a linear probe, grounding), each cell mean ± sd over seeds; each
variant's paired difference from global CE only with 95 % intervals across seeds and over test
studies (``evaluate/intervals.py``); one sentence per headline claim saying whether its intervals
exclude zero; and the wall time of the whole ablation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..config import Config, ConfigError, TrainConfig, apply_override
from ..errors import UserError
from ..evaluate.intervals import Interval, paired_bootstrap, t_interval
from ..markdown import format_cell, markdown_table

BASELINE = "global CE (ConVIRT-like)"
MLM_EQUAL_IMAGE_TEXT = "JoImTeRNet + MLM, equal image-text steps"
VARIANTS: dict[str, list[str]] = {
    BASELINE: ["loss.use_local=false", "loss.use_triplet=false"],
    "global + local CE (GLoRIA-like)": ["loss.use_triplet=false"],
    "JoImTeRNet: CE + triplet, random negatives": ["loss.negatives=random"],
    "JoImTeRNet, hardest negatives": ["loss.negatives=hardest"],
    "JoImTeRNet, all negatives": ["loss.negatives=all"],
    "JoImTeRNet + MLM, equal steps": ["loss.negatives=random", "train.mlm=true"],
    MLM_EQUAL_IMAGE_TEXT: ["loss.negatives=random", "train.mlm=true"],
}
DIRECTIONS = {"image->report": "I→T", "report->image": "T→I"}
KS = (1, 5, 10)
AUROC = "mean AUROC"
POINTING = "pointing (raw, phrase)"
CLAIM_METRICS = ("I→T R@10", "T→I R@10", AUROC, POINTING)  # the sentences under the table
CONFIDENCE = 0.95


class AblationError(UserError):
    """Runs that cannot be compared (their test studies differ)."""


@dataclass
class Run:
    """One variant trained with one seed and evaluated: table values and per-study metric parts.

    per_study: column -> ((S,) numerators, (S,) weights) over ``study_ids``; the column's value is
    sum(numerators) / sum(weights) (see evaluate/intervals.py).
    """

    variant: str
    seed: int
    steps: int
    values: dict[str, float]
    per_study: dict[str, tuple[np.ndarray, np.ndarray]]
    study_ids: list[str]


def default_variants(cfg: Config) -> list[str]:
    """Every variant; without the MLM ones when the text tower is pretrained (``model.text.pretrained_path``),
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


def steps_for_image_text_steps(train: TrainConfig, image_text_steps: int) -> int:
    """The fewest steps of an MLM run that hold ``image_text_steps`` image-text steps
    (the run's own per-step draw, ``train.step_kind``, so the count is exact, not expected)."""
    from ..training.train import step_kind

    if train.mlm and train.itm_probability <= 0:
        raise ConfigError("train.itm_probability=0 leaves an MLM run no image-text step; "
                          "set train.itm_probability above 0 (e.g. 0.3)")
    done = step = 0
    while done < image_text_steps:
        done += step_kind(train, step) == "itm"
        step += 1
    return step


def variant_config(cfg: Config, name: str, out_root: Path, seed: int | None = None) -> Config:
    """``cfg`` with the variant's overrides, its steps, ``train.seed = seed`` (default the preset's)
    and its own out_dir ``out_root/<variant>/seed_<seed>``."""
    variant = cfg
    for item in VARIANTS[name]:
        variant = apply_override(variant, item)
    seed = cfg.train.seed if seed is None else seed
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    train = dataclasses.replace(variant.train, seed=seed, steps=variant_steps(cfg),
                                out_dir=str(Path(out_root) / slug / f"seed_{seed}"))
    if name == MLM_EQUAL_IMAGE_TEXT:
        train = dataclasses.replace(train, steps=steps_for_image_text_steps(train, train.steps))
    return dataclasses.replace(variant, train=train)


# ----------------------------------------------------------------------------- one run's numbers


def table_values(results: dict) -> dict[str, float]:
    """The table's columns from evaluate_model's results (global scoring, instance relevance)."""
    def recall(direction, k):
        return next(x[f"R@{k}"] for x in results["retrieval"] if x["direction"] == direction
                    and x["scoring"] == "global" and x["relevance"] == "instance")

    values = {f"{short} R@{k}": recall(direction, k) for direction, short in DIRECTIONS.items() for k in KS}
    values[AUROC] = results["classification"][0]["mean"]
    if "grounding" in results:
        values[POINTING] = next(g["hit"] for g in results["grounding"] if g["kind"] == "raw"
                                and g["words"] == "phrase" and g["type"] == "all")
    return values


def study_values(cfg: Config, results: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per test study, the parts of each R@K and of pointing: column -> (numerators, weights).

    R@K: 100 * (the study's query ranks within k) with weight 1, for studies in an ``eval`` pool
    (weight 0 outside); pools are equal-sized, so the ratio equals the table's pool average.
    Pointing: the study's hits summed over its findings (raw map, phrase words), weight = findings.
    """
    from ..evaluate.retrieval import pool_indices, query_ranks, similarity_matrix

    test, ev = results["embeddings"], cfg.eval
    n = len(test.study_ids)
    pools = pool_indices(n, ev.pool_size, ev.num_pools, "random" if ev.pool_size else "full", ev.seed)
    sim = similarity_matrix(test.images, test.reports, "global").numpy()
    weights = np.zeros(n)
    for pool in pools:
        weights[pool] = 1.0
    out = {}
    for direction, short in DIRECTIONS.items():
        query_sim = sim if direction == "image->report" else sim.T
        ranks = np.full(n, np.inf)
        for pool in pools:
            ranks[pool] = query_ranks(query_sim[np.ix_(pool, pool)])
        out.update({f"{short} R@{k}": (100.0 * (ranks <= k), weights) for k in KS})
    if "grounding_rows" in results:
        row_of = {sid: i for i, sid in enumerate(test.study_ids)}
        hits, findings = np.zeros(n), np.zeros(n)
        for r in results["grounding_rows"]:
            if r["kind"] == "raw" and r["words"] == "phrase":
                hits[row_of[r["study_id"]]] += r["hit"]
                findings[row_of[r["study_id"]]] += 1
        out[POINTING] = (hits, findings)
    return out


# ----------------------------------------------------------------------------- differences


def differences(runs: list[Run], baseline: list[Run], n_resamples: int, seed: int) -> dict[str, dict[str, Interval]]:
    """column -> {"seeds": t-interval of the per-seed differences, "studies": paired bootstrap over
    test studies of the seed-averaged difference (absent for columns without per-study parts)}.

    runs and baseline: one Run per seed, the same seeds in the same order.
    """
    _check_paired(runs, baseline)
    out = {}
    for column in runs[0].values:
        per_seed = [r.values[column] - b.values[column] for r, b in zip(runs, baseline, strict=True)]
        out[column] = {"seeds": t_interval(per_seed, CONFIDENCE)}
        if column in runs[0].per_study:
            delta = np.mean([r.per_study[column][0] - b.per_study[column][0]
                             for r, b in zip(runs, baseline, strict=True)], axis=0)
            out[column]["studies"] = paired_bootstrap(delta, baseline[0].per_study[column][1], n_resamples, seed,
                                                      CONFIDENCE)
    return out


def _check_paired(runs: list[Run], baseline: list[Run]) -> None:
    if [r.seed for r in runs] != [b.seed for b in baseline]:
        raise ValueError(f"{runs[0].variant}: seeds {[r.seed for r in runs]} differ from the baseline's "
                         f"{[b.seed for b in baseline]}")
    reference = baseline[0]
    for run in [*runs, *baseline]:
        same_weights = all(np.array_equal(w, reference.per_study[c][1]) for c, (_, w) in run.per_study.items())
        if run.study_ids != reference.study_ids or not same_weights:
            raise AblationError(f"{run.variant}, seed {run.seed}: its test studies (or their findings) differ from "
                                f"{reference.variant}'s, so the paired comparison is undefined; rerun the ablation "
                                "into a fresh folder (train.out_dir) so every run reads the same data")


# ----------------------------------------------------------------------------- the report


def _digits(column: str) -> int:
    return 1 if "R@" in column else 3


def mean_sd(values: list[float], digits: int) -> str:
    """``mean ± sd`` (sample sd) over seeds; the mean alone for one seed; ``n/a`` if any is NaN."""
    v = np.asarray(values, dtype=np.float64)
    if np.isnan(v).any():
        return "n/a"
    if v.size == 1:
        return format_cell(float(v[0]), digits)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def interval_cell(interval: Interval | None, digits: int) -> str:
    """``+3.1 [-1.2, 7.4]``; the estimate alone when no interval could be formed."""
    if interval is None or math.isnan(interval.estimate):
        return "n/a"
    if not interval.defined:
        return f"{interval.estimate:+.{digits}f} [n/a]"
    return f"{interval.estimate:+.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def ablation_table(runs: dict[str, list[Run]]) -> str:
    """Rows = variants, cells mean ± sd over seeds (R@K in percent, one decimal; the rest three)."""
    columns = list(next(iter(runs.values()))[0].values)
    rows = [[name, *(mean_sd([r.values[c] for r in variant_runs], _digits(c)) for c in columns)]
            for name, variant_runs in runs.items()]
    return markdown_table(["variant", *columns], rows)


def difference_table(diffs: dict[str, dict[str, dict[str, Interval]]], kind: str) -> str:
    """One row per variant: its difference from global CE and the 95 % interval of ``kind``
    (``seeds`` or ``studies``) in each column."""
    columns = list(next(iter(diffs.values())))
    rows = [[f"{name} − global CE", *(interval_cell(d[c].get(kind), _digits(c)) for c in columns)]
            for name, d in diffs.items()]
    return markdown_table(["variant", *columns], rows)


def claim_sentence(variant: str, column: str, intervals: dict[str, Interval], n_seeds: int, n_studies: int) -> str:
    """Whether the difference from global CE in ``column`` has intervals that exclude zero.

    Evidence of a difference needs every interval formed to exclude zero (training seeds and
    test studies are two separate sources of doubt).
    """
    unit, digits = (" points", 1) if "R@" in column else ("", 3)
    where = {"seeds": f"across {n_seeds} seeds", "studies": f"over {n_studies} test studies"}
    estimate = intervals["seeds"].estimate
    if math.isnan(estimate):
        return f"{variant} vs global CE, {column}: not measured in every run."
    head = f"{variant} vs global CE, {column}: {estimate:+.{digits}f}{unit}"
    formed = {k: iv for k, iv in intervals.items() if iv.defined}
    if not formed:
        return f"{head}, no interval (a second seed, --seeds 2, gives one): no claim either way."
    ci = ", ".join(f"[{iv.low:.{digits}f}, {iv.high:.{digits}f}] {where[k]}" for k, iv in formed.items())
    if all(iv.excludes_zero() for iv in formed.values()):
        verdict = f"excludes zero: evidence that it is {'higher' if estimate > 0 else 'lower'} at this budget"
    else:
        verdict = "includes zero: no evidence of a difference at this budget"
    return f"{head}, 95 % CI {ci}; {verdict}."


def ablation_markdown(cfg: Config, runs: dict[str, list[Run]], n_resamples: int, wall_seconds: float) -> str:
    """ablation.md: caption, the mean ± sd table, the difference tables, the claims, the wall time."""
    seeds = [r.seed for r in next(iter(runs.values()))]
    n_studies = len(next(iter(runs.values()))[0].study_ids)
    steps = "; ".join(f"{name}: {'/'.join(str(r.steps) for r in rs)}" for name, rs in runs.items()
                      if any(r.steps != variant_steps(cfg) for r in rs))
    cells = "Cells: mean ± sd over seeds." if len(seeds) > 1 else "One seed: no sd (use --seeds 2 or more)."
    caption = (f"Ablation on `{cfg.data.root}` ({cfg.name}, {variant_steps(cfg)} steps per variant"
               f"{f' (steps per seed, {steps})' if steps else ''}, seeds {', '.join(map(str, seeds))}); "
               "retrieval by global cosine on the full test split (R@K in %), mean AUROC of a linear probe "
               f"(13 classes without No Finding, those present), pointing = raw phrase maps on SynthCXR. {cells}")
    parts = [caption, ablation_table(runs)]
    if BASELINE in runs and len(runs) > 1:
        diffs = {name: differences(rs, runs[BASELINE], n_resamples, cfg.eval.seed)
                 for name, rs in runs.items() if name != BASELINE}
        if len(seeds) > 1:
            parts += [f"Paired difference from global CE, 95 % t-interval across the {len(seeds)} seeds "
                      f"({len(seeds) - 1} degree{'s' if len(seeds) > 2 else ''} of freedom):", difference_table(diffs, "seeds")]
        parts += [f"Paired difference from global CE (averaged over seeds), 95 % percentile bootstrap over the "
                  f"{n_studies} test studies ({n_resamples} resamples, seed {cfg.eval.seed}; mean AUROC has no "
                  "per-study value):", difference_table(diffs, "studies")]
        parts.append("\n".join(f"- {claim_sentence(name, c, d[c], len(seeds), n_studies)}"
                               for name, d in diffs.items() for c in CLAIM_METRICS if c in d))
    else:
        parts.append(f"No differences: `{BASELINE}` is not among the variants run.")
    parts.append(f"Wall time of the whole ablation: {wall_seconds:.0f} s ({wall_seconds / 60:.1f} min).")
    return "\n\n".join(parts) + "\n"


def runs_json(runs: dict[str, list[Run]], wall_seconds: float | None = None) -> str:
    return json.dumps({"wall_seconds": wall_seconds,
                       "runs": [{"variant": r.variant, "seed": r.seed, "steps": r.steps, **r.values}
                                for rs in runs.values() for r in rs]}, indent=2)


def run_ablation(cfg: Config, variants: list[str] | None = None, seeds: int = 1) -> Path:
    """Train and evaluate each variant for ``seeds`` seeds (resuming finished or interrupted runs);
    write ablation.md and ablation.json into ``<train.out_dir>/../ablation_<name>``."""
    from ..data.dataset import load_training_data
    from ..device import pick_device
    from ..training.train import train
    from .pipeline import evaluate_model

    if seeds < 1:
        raise ValueError(f"seeds={seeds}: run at least one seed")
    started = time.perf_counter()
    out_root = Path(cfg.train.out_dir).parent / f"ablation_{cfg.name}"
    manifest, tokenizer = load_training_data(cfg)
    device = pick_device(cfg.train.device)
    runs: dict[str, list[Run]] = {}
    for name in variants or default_variants(cfg):
        for seed in range(cfg.train.seed, cfg.train.seed + seeds):
            vcfg = variant_config(cfg, name, out_root, seed)
            print(f"\n==> ablation variant: {name}, seed {seed}, {vcfg.train.steps} steps", flush=True)
            result = train(vcfg, resume=True)
            results = evaluate_model(vcfg, result.model, tokenizer, manifest, device, scorings=("global",))
            runs.setdefault(name, []).append(Run(name, seed, vcfg.train.steps, table_values(results),
                                                 study_values(vcfg, results), list(results["embeddings"].study_ids)))
            atomic_write_text(out_root / "ablation.json", runs_json(runs))
    wall = time.perf_counter() - started
    text = ablation_markdown(cfg, runs, cfg.eval.bootstrap, wall)
    path = out_root / "ablation.md"
    atomic_write_text(path, text)
    atomic_write_text(out_root / "ablation.json", runs_json(runs, round(wall, 1)))
    print(f"\n{text}\nwritten to {path}")
    return path
