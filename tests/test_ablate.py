"""The ablation runner's variant configs and table (the training itself runs in notebook 12's smoke run)."""

from pathlib import Path

from joimternet_lite.ablate import VARIANTS, ablation_table, variant_config
from joimternet_lite.config import apply_override, load_config


def test_variants_apply_their_overrides_and_the_ablation_step_budget(tmp_path):
    cfg = load_config("demo_cpu", ["train.steps=300", "ablation.steps=200"])
    configs = {name: variant_config(cfg, name, tmp_path) for name in VARIANTS}
    assert all(c.train.steps == 200 for c in configs.values())
    assert len({c.train.out_dir for c in configs.values()}) == len(VARIANTS)
    assert all(Path(c.train.out_dir).parent == tmp_path for c in configs.values())
    baseline = configs["global CE (ConVIRT-like)"]
    assert (baseline.loss.use_local, baseline.loss.use_triplet) == (False, False)
    assert configs["JoImTeRNet, hardest negatives"].loss.negatives == "hardest"
    assert configs["JoImTeRNet + MLM"].train.mlm and not configs["JoImTeRNet, all negatives"].train.mlm
    assert cfg.train.steps == 300 and cfg.loss.use_local  # the preset itself is untouched


def test_without_ablation_steps_variants_keep_the_preset_steps(tmp_path):
    cfg = apply_override(load_config("demo_cpu", ["train.steps=123"]), "ablation.steps=null")
    assert variant_config(cfg, "JoImTeRNet, all negatives", tmp_path).train.steps == 123


def test_ablation_table_layout():
    rows = [{"variant": "a", "I→T R@1": 12.345, "mean AUROC": 0.8512},
            {"variant": "b", "I→T R@1": 1.0, "mean AUROC": float("nan")}]
    assert ablation_table(rows).splitlines() == [  # R@K in percent, one decimal; AUROC three
        "| variant | I→T R@1 | mean AUROC |", "|---|---|---|",
        "| a | 12.3 | 0.851 |", "| b | 1.0 | n/a |"]


def test_variant_out_dir_is_the_path_itself_not_its_string_override(tmp_path):
    out_root = tmp_path / "runs: a"  # YAML would read "key=runs: a" in an override as a mapping
    cfg = load_config("demo_cpu")
    variant = variant_config(cfg, "JoImTeRNet + MLM", out_root)
    assert Path(variant.train.out_dir) == out_root / "joimternet___mlm"
    assert variant.model == cfg.model and variant.data == cfg.data
