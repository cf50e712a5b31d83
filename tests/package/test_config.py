"""Presets, the save/load round trip, overrides and the errors for bad keys and types."""

import dataclasses
import re

import pytest

from joimternet_lite.config import (
    NEGATIVE_MODES,
    Config,
    ConfigError,
    LossConfig,
    apply_override,
    choices,
    field_rules,
    list_presets,
    load_config,
    save_config,
    to_dict,
    validate,
)

PRESETS = ("demo_cpu", "demo_grounding", "synth_gpu", "openi_cpu", "openi_gpu", "mimic_paper")


def test_every_preset_is_shipped():
    assert set(PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_yaml(name, tmp_path):
    cfg = load_config(name)
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(str(tmp_path / "config.yaml"))
    assert again == cfg
    assert isinstance(again.model.image.widths, tuple)  # types survive, not just values


def test_demo_grounding_is_demo_cpu_with_its_local_score_changed_only():
    cfg = load_config("demo_grounding")
    plain = load_config("demo_cpu", ["model.score.word_softmax=false", "model.score.cosine_scale=10",
                                     "model.score.gamma1=1"])
    assert to_dict(cfg) == {**to_dict(plain), "name": "demo_grounding"}


def test_overrides_reach_nested_fields_and_keep_types():
    cfg = load_config("demo_cpu", ["train.steps=7", "model.image.widths=[4, 8]", "train.lr_image=1",
                                   "data.cache_dir=null"])
    assert cfg.train.steps == 7
    assert cfg.model.image.widths == (4, 8)
    assert cfg.train.lr_image == 1.0 and isinstance(cfg.train.lr_image, float)
    assert cfg.data.cache_dir is None
    assert load_config("demo_cpu").train.steps != 7  # the preset itself is unchanged


@pytest.mark.parametrize(("override", "message"), [
    ("train.stepz=3", "unknown key 'stepz'"),
    ("trian.steps=3", "no section 'trian'"),
    ("train.steps=three", "expected int"),
    ("train.mlm=1", "expected bool"),
    ("train.steps", "section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_override(Config(), override)


def test_unknown_key_in_a_yaml_file_names_the_file_and_the_accepted_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*batchsize.*batch_size"):
        load_config(str(path))


def test_wrong_type_in_a_yaml_file_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  clip_image: fast\n")
    with pytest.raises(ConfigError, match="clip_image"):
        load_config(str(path))


def test_mimic_paper_preset_holds_the_authors_settings():
    """The authors' recipe: AdamW 1e-4 / 1e-4, x0.1 at epoch 20 of 35, clip 1.5, batch 128, seed 42, MLM p=0.3."""
    t = load_config("mimic_paper").train
    assert (t.lr_image, t.lr_text, t.weight_decay) == (1e-4, 1e-4, 1e-4)
    assert t.schedule == "step" and t.step_gamma == 0.1 and t.warmup_steps == 0
    assert len(t.step_milestones) == 1 and t.step_milestones[0] / t.steps == pytest.approx(20 / 35, abs=1e-3)
    assert (t.clip_image, t.clip_text, t.batch_size, t.seed) == (1.5, 1.5, 128, 42)
    assert t.mlm and t.itm_probability == 0.3 and t.mlm_probability == 0.15
    m = load_config("mimic_paper").model
    assert m.image.backbone == "authors_cnn" and m.image.grid == 16 and m.embed_dim == 512
    assert (m.text.layers, m.text.hidden, m.text.heads, m.text.intermediate) == (3, 512, 8, 2048)
    assert load_config("mimic_paper").data.image_size == 2048


def test_demo_preset_is_cpu_sized():
    cfg = load_config("demo_cpu")
    assert cfg.data.source == "synthetic" and cfg.data.image_size == 128
    assert cfg.model.text.layers <= 2 and cfg.model.embed_dim <= 256


def test_to_dict_is_plain_yaml_data():
    d = to_dict(load_config("mimic_paper"))
    assert isinstance(d["model"]["image"]["widths"], list)
    assert set(d) == {f.name for f in dataclasses.fields(Config)}


def test_scientific_notation_overrides_are_numbers():
    cfg = load_config("demo_cpu", ["train.lr_image=1e-3", "train.lr_text=2E-4", "data.root=runs/x1e5"])
    assert (cfg.train.lr_image, cfg.train.lr_text, cfg.data.root) == (1e-3, 2e-4, "runs/x1e5")


@pytest.mark.parametrize(("override", "accepted"), [
    ("train.steps=-5", ">= 1"),
    ("train.steps=0", ">= 1"),
    ("train.lr_image=-1.0", "(0, 1]"),
    ("train.lr_text=.nan", "(0, 1]"),
    ("train.lr_image=1e30", "(0, 1]"),
    ("train.batch_size=0", ">= 2"),
    ("train.batch_size=1", ">= 2"),
    ("train.checkpoint_every=0", ">= 1"),
    ("train.grad_accum=0", ">= 1"),
    ("train.nan_policy=ignore", "stop, skip"),
    ("train.schedule=linear", "cosine, step"),
    ("train.precision=fp8", "auto, fp32, bf16, fp16"),
    ("train.step_milestones=[10,-1]", ">= 1"),
    ("train.itm_probability=1.5", "[0, 1]"),
    ("data.max_skip_fraction=-1", "[0, 1]"),
    ("data.source=folder", "synthetic, manifest"),
    ("model.image.backbone=vgg", "authors_cnn, resnet18"),
    ("model.text.dropout=1.0", "[0, 1)"),
    ("loss.negatives=some", "random, hardest, all"),
    ("model.score.gamma1=0", "> 0"),
    ("eval.scorings=[global,best]", "global, local, combined"),
    ("ablation.steps=0", ">= 1"),
    ("data.synth_image_size=64", "[128, 1024]"),
])
def test_out_of_range_values_are_refused_naming_key_value_and_range(override, accepted):
    key, value = override.split("=")
    with pytest.raises(ConfigError, match=re.escape(key) + ".*" + re.escape(accepted)) as err:
        load_config("demo_cpu", [override])
    shown = {"1e30": "1e+30", ".nan": "nan", "[10,-1]": "holds -1", "[global,best]": "holds 'best'"}.get(value, value)
    assert shown in str(err.value)


def test_every_preset_passes_validation():
    for name in PRESETS:
        validate(load_config(name))


def test_every_number_and_choice_field_has_a_rule_beside_it():
    flat = {}

    def walk(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                flat[f"{prefix}{f.name}"] = f.type

    walk(Config())
    rules = field_rules()
    assert set(rules) <= set(flat)
    free = {"name", "data.root", "data.cache_dir", "data.seed", "train.seed", "train.out_dir",
            "model.text.pretrained_path"}  # free text and any-integer seeds
    unchecked = {k for k, tp in flat.items() if k not in rules and k not in free and "bool" not in str(tp)}
    assert not unchecked


def test_choices_are_read_from_the_field_type_and_are_still_strings_to_yaml():
    assert choices(LossConfig, "negatives") == NEGATIVE_MODES == ("random", "hardest", "all")
    assert field_rules()["eval.relevances"] == ("instance", "dedup", "label")  # a tuple of choices: each checked
    with pytest.raises(ConfigError, match=r"loss:negatives: expected str, got 5 \(int\)"):
        apply_override(Config(), "loss.negatives=5")


def test_a_config_built_in_code_is_validated_too():
    cfg = Config()
    cfg.train.grad_accum = 0
    with pytest.raises(ConfigError, match="train.grad_accum"):
        validate(cfg)


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  steps: 10\n  lr_image: [1e-3\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line 3: not valid YAML"):
        load_config(str(path))
    path.write_text("train:\n  steps: 10\n\tlr_image: 1e-3\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line 3: not valid YAML"):
        load_config(str(path))


def test_a_yaml_syntax_error_in_an_override_names_the_override():
    with pytest.raises(ConfigError, match=r"train\.step_milestones=\[1"):
        apply_override(Config(), "train.step_milestones=[1")


def test_cosine_scale_is_off_by_default_and_positive():
    assert load_config("demo_cpu").model.score.cosine_scale is None          # the authors' raw dot products
    assert load_config("demo_cpu", ["model.score.cosine_scale=10"]).model.score.cosine_scale == 10
    with pytest.raises(ConfigError, match="cosine_scale=0"):
        load_config("demo_cpu", ["model.score.cosine_scale=0"])


def test_local_units_is_checked():
    assert load_config("demo_cpu", ["model.text.local_units=sentences"]).model.text.local_units == "sentences"
    with pytest.raises(ConfigError, match="local_units='phrases'.*sentences"):
        load_config("demo_cpu", ["model.text.local_units=phrases"])


def test_local_words_is_checked_and_needs_the_word_level_tower():
    assert load_config("demo_cpu", ["model.text.local_words=content"]).model.text.local_words == "content"
    with pytest.raises(ConfigError, match="local_words='nouns'.*content_no_side"):
        load_config("demo_cpu", ["model.text.local_words=nouns"])
    with pytest.raises(ConfigError, match="local_words='content'.*pretrained_path"):
        load_config("demo_cpu", ["model.text.local_words=content", "model.text.pretrained_path=/some/bert"])
