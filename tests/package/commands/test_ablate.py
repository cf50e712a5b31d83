"""The ablation runner: variant configs, the interval code against hand-computed values, the
table's format, and a tiny end-to-end ``ablate --seeds 2``."""

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL

from joimternet_lite.commands.ablate import (
    BASELINE,
    MLM_EQUAL_IMAGE_TEXT,
    VARIANTS,
    Run,
    ablation_markdown,
    differences,
    variant_config,
)
from joimternet_lite.config import apply_override, load_config
from joimternet_lite.evaluate.intervals import paired_bootstrap, t_interval
from joimternet_lite.training.train import step_kind

# ----------------------------------------------------------------------------- variant configs


def test_variants_apply_their_overrides_the_ablation_step_budget_and_the_seed(tmp_path):
    cfg = load_config("demo_cpu", ["train.steps=300", "ablation.steps=200"])
    configs = {name: variant_config(cfg, name, tmp_path, seed=43) for name in VARIANTS}
    assert all(c.train.steps == 200 for n, c in configs.items() if n != MLM_EQUAL_IMAGE_TEXT)
    assert all(c.train.seed == 43 for c in configs.values())
    assert len({c.train.out_dir for c in configs.values()}) == len(VARIANTS)
    assert all(Path(c.train.out_dir).parent.parent == tmp_path for c in configs.values())
    assert Path(configs[BASELINE].train.out_dir).name == "seed_43"
    baseline = configs[BASELINE]
    assert (baseline.loss.use_local, baseline.loss.use_triplet) == (False, False)
    assert configs["JoImTeRNet, hardest negatives"].loss.negatives == "hardest"
    assert configs["JoImTeRNet + MLM, equal steps"].train.mlm and not configs["JoImTeRNet, all negatives"].train.mlm
    assert cfg.train.steps == 300 and cfg.loss.use_local  # the preset itself is untouched
    assert variant_config(cfg, BASELINE, tmp_path).train.seed == cfg.train.seed == 42


def test_the_equal_image_text_mlm_variant_has_exactly_the_others_image_text_steps(tmp_path):
    cfg = load_config("demo_cpu", ["ablation.steps=200", "train.itm_probability=0.3"])
    train = variant_config(cfg, MLM_EQUAL_IMAGE_TEXT, tmp_path).train
    kinds = [step_kind(train, s) for s in range(train.steps)]
    assert train.mlm and kinds.count("itm") == 200 and kinds[-1] == "itm"  # the fewest steps that hold 200
    assert 200 / 0.3 * 0.85 < train.steps < 200 / 0.3 * 1.15  # about steps / itm_probability


def test_without_ablation_steps_variants_keep_the_preset_steps(tmp_path):
    cfg = apply_override(load_config("demo_cpu", ["train.steps=123"]), "ablation.steps=null")
    assert variant_config(cfg, "JoImTeRNet, all negatives", tmp_path).train.steps == 123


def test_variant_out_dir_is_the_path_itself_not_its_string_override(tmp_path):
    out_root = tmp_path / "runs: a"  # YAML would read "key=runs: a" in an override as a mapping
    cfg = load_config("demo_cpu")
    variant = variant_config(cfg, "JoImTeRNet + MLM, equal steps", out_root)
    assert Path(variant.train.out_dir) == out_root / "joimternet___mlm__equal_steps" / "seed_42"
    assert variant.model == cfg.model and variant.data == cfg.data


def test_ablate_takes_seeds_and_the_step_budget_as_an_override():
    from joimternet_lite.cli import build_parser

    args = build_parser().parse_args(["ablate", "--seeds", "3", "ablation.steps=300"])
    assert args.seeds == 3 and args.overrides == ["ablation.steps=300"]
    assert build_parser().parse_args(["ablate"]).seeds == 1
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        build_parser().parse_args(["ablate", "--seeds", "0"])


# ----------------------------------------------------------------------------- intervals


def test_t_interval_matches_the_hand_computed_one():
    # mean 2, sd 1, se 1/sqrt(3), t_{0.975, 2 df} = 4.3027 (tables): 2 -+ 2.4841
    iv = t_interval([1.0, 2.0, 3.0])
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((2.0, -0.4841, 4.4841), abs=1e-4)
    assert not iv.excludes_zero()
    one = t_interval([5.0])
    assert one.estimate == 5.0 and not one.defined  # one seed: no interval
    same = t_interval([0.5, 0.5, 0.5])
    assert (same.low, same.high) == (0.5, 0.5) and same.excludes_zero()


def test_paired_bootstrap_on_cases_with_known_answers():
    zeros = paired_bootstrap(np.zeros(30), np.ones(30), n_resamples=500, seed=0)  # identical variants
    assert zeros.low <= 0 <= zeros.high and not zeros.excludes_zero()
    shift = paired_bootstrap(np.ones(30), np.ones(30), n_resamples=500, seed=0)  # a constant +1 shift
    assert (shift.estimate, shift.low, shift.high) == (1.0, 1.0, 1.0)
    # two studies, differences 0 and 1: resampled means 0 (p 1/4), 0.5 (1/2), 1 (1/4) -> [0, 1]
    two = paired_bootstrap(np.array([0.0, 1.0]), np.ones(2), n_resamples=2000, seed=0)
    assert (two.estimate, two.low, two.high) == (0.5, 0.0, 1.0)
    # a ratio: 2 hits over 3 findings; the weight-0 study does not enter the metric
    ratio = paired_bootstrap(np.array([2.0, 0.0, 7.0]), np.array([2.0, 1.0, 0.0]), n_resamples=200, seed=0)
    assert ratio.estimate == pytest.approx(2 / 3) and 0 <= ratio.low <= ratio.high <= 1
    again = paired_bootstrap(np.array([2.0, 0.0, 7.0]), np.array([2.0, 1.0, 0.0]), n_resamples=200, seed=0)
    assert again == ratio  # seeded


# ----------------------------------------------------------------------------- differences and the table


def _run(variant, seed, r10, auroc, hits):
    return Run(variant, seed, 2, {"I→T R@10": r10, "mean AUROC": auroc},
               {"I→T R@10": (100.0 * np.array(hits, dtype=float), np.ones(4))}, ["s1", "s2", "s3", "s4"])


BASE = [_run(BASELINE, 42, 25.0, 0.6, [1, 0, 0, 0]), _run(BASELINE, 43, 50.0, 0.7, [1, 1, 0, 0])]
BETTER = [_run("B", 42, 50.0, 0.8, [1, 1, 0, 0]), _run("B", 43, 100.0, 0.9, [1, 1, 1, 1])]


def test_differences_of_identical_variants_contain_zero_and_of_a_shift_are_the_shift():
    same = differences(BASE, BASE, n_resamples=300, seed=0)["I→T R@10"]
    assert all(iv.low <= 0 <= iv.high for iv in same.values())
    shifted = [Run("C", r.seed, 2, {k: v + 1 for k, v in r.values.items()},
                   {k: (num + 1, w) for k, (num, w) in r.per_study.items()}, r.study_ids) for r in BASE]
    shift = differences(shifted, BASE, n_resamples=300, seed=0)
    assert (shift["I→T R@10"]["studies"].low, shift["I→T R@10"]["studies"].high) == (1.0, 1.0)
    assert (shift["I→T R@10"]["seeds"].low, shift["I→T R@10"]["seeds"].high) == pytest.approx((1.0, 1.0))
    assert "studies" not in shift["mean AUROC"]  # no per-study AUROC
    moved = [Run(r.variant, r.seed, 2, r.values, r.per_study, ["s1", "s2", "s3", "other"]) for r in BASE]
    with pytest.raises(Exception, match="test studies"):
        differences(moved, BASE, n_resamples=10, seed=0)


def test_the_ablation_markdown_has_mean_sd_cells_difference_rows_claims_and_wall_time():
    cfg = load_config("demo_cpu", ["eval.seed=0"])
    text = ablation_markdown(cfg, {BASELINE: BASE, "B": BETTER}, n_resamples=2000, wall_seconds=123.4)
    lines = text.splitlines()
    # R@10: baseline 25, 50 -> 37.5 +- 17.7; B 50, 100 -> 75.0 +- 35.4; AUROC sd of (0.6, 0.7) = 0.071
    assert f"| {BASELINE} | 37.5 ± 17.7 | 0.650 ± 0.071 |" in lines
    assert "| B | 75.0 ± 35.4 | 0.850 ± 0.071 |" in lines
    # per-seed differences 25, 50: 37.5 -+ 12.706 * 12.5 = [-121.3, 196.3]; AUROC 0.2, 0.2 -> [0.2, 0.2]
    assert "| B − global CE | +37.5 [-121.3, 196.3] | +0.200 [0.200, 0.200] |" in lines
    # per-study differences averaged over seeds: 0, 50, 50, 50; resampled means: 0 w.p. 1/256, 12.5
    # w.p. 12/256 (so the 2.5 % point), ..., 50 w.p. 81/256 -> [12.5, 50.0]
    assert "| B − global CE | +37.5 [12.5, 50.0] | n/a |" in lines
    assert ("- B vs global CE, I→T R@10: +37.5 points, 95 % CI [-121.3, 196.3] across 2 seeds, [12.5, 50.0] "
            "over 4 test studies; includes zero: no evidence of a difference at this budget.") in lines
    assert ("- B vs global CE, mean AUROC: +0.200, 95 % CI [0.200, 0.200] across 2 seeds; excludes zero: "
            "evidence that it is higher at this budget.") in lines
    assert lines[-1] == "Wall time of the whole ablation: 123 s (2.1 min)."


def test_one_seed_gives_plain_cells_and_only_the_bootstrap_interval():
    cfg = load_config("demo_cpu")
    text = ablation_markdown(cfg, {BASELINE: BASE[:1], "B": BETTER[:1]}, n_resamples=500, wall_seconds=1.0)
    assert f"| {BASELINE} | 25.0 | 0.600 |" in text.splitlines()
    assert "t-interval" not in text and "percentile bootstrap" in text
    claim = next(x for x in text.splitlines() if x.startswith("- B vs global CE, I→T R@10"))
    assert "over 4 test studies" in claim and "across" not in claim
    auroc = next(x for x in text.splitlines() if x.startswith("- B vs global CE, mean AUROC"))
    assert "no interval" in auroc


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_ablate_with_two_seeds_through_the_cli(tmp_path):
    from joimternet_lite.cli import main as cli_main

    overrides = [*TINY_MODEL, "data.num_studies=40", "ablation.steps=2", "eval.bootstrap=50",
                 f"data.root={tmp_path / 'synth'}", f"train.out_dir={tmp_path / 'run'}"]
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        assert cli_main(["ablate", "--seeds", "2", "--config", "demo_cpu", *overrides]) == 0
    out_root = tmp_path / "ablation_demo_cpu"
    lines = (out_root / "ablation.md").read_text().splitlines()
    table = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and "−" not in line}
    assert all(table[name].count(" ± ") == 8 for name in VARIANTS)  # 6 R@K, AUROC, pointing
    for kind in ("t-interval across the 2 seeds", "bootstrap over the"):
        start = next(i for i, line in enumerate(lines) if kind in line)
        rows = [line for line in lines[start + 4:] if line.startswith("| ")][:len(VARIANTS) - 1]
        assert [r.split(" | ")[0][2:] for r in rows] == [f"{n} − global CE" for n in VARIANTS if n != BASELINE]
        assert all(re.search(r"\| [+-]\d+\.\d \[", r) for r in rows)
    seeds_rows, studies_rows = (
        [line for line in lines[next(i for i, x in enumerate(lines) if kind in x):] if "− global CE |" in line]
        [:len(VARIANTS) - 1] for kind in ("t-interval", "bootstrap over the"))
    # the per-study parts add up to the table's values: both tables agree on every R@K estimate
    for a, b in zip(seeds_rows, studies_rows, strict=True):
        assert [c.split(" [")[0] for c in a.split(" | ")[1:7]] == [c.split(" [")[0] for c in b.split(" | ")[1:7]]
    assert sum(line.startswith("- ") for line in lines) == 4 * (len(VARIANTS) - 1)
    assert re.fullmatch(r"Wall time of the whole ablation: \d+ s \(\d+\.\d min\)\.", lines[-1])
    assert "Wall time of the whole ablation" in console.getvalue()
    saved = json.loads((out_root / "ablation.json").read_text())
    assert len(saved["runs"]) == 2 * len(VARIANTS) and saved["wall_seconds"] > 0
    assert {r["seed"] for r in saved["runs"]} == {42, 43}
    mlm = [r["steps"] for r in saved["runs"] if r["variant"] == MLM_EQUAL_IMAGE_TEXT]
    assert all(s > 2 for s in mlm) and not math.isnan(saved["runs"][0]["I→T R@1"])
