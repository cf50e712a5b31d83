"""Typed configuration: dataclasses, YAML presets and command-line overrides.

Taught in notebook 08. A preset is a YAML file in ``joimternet_lite/configs/``; any field can be
overridden with a dotted ``key=value`` (``train.steps=200``). Unknown keys and wrong types are
refused with a message that names the key and the accepted fields, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the fix."""


@dataclass
class DataConfig:
    source: str = "synthetic"          # synthetic | manifest
    root: str = "data/synthcxr"        # dataset root holding manifest/ and manifest.json
    num_studies: int = 2000            # SynthCXR only: studies to generate when root is empty
    image_size: int = 128              # training / eval resolution (square)
    synth_image_size: int = 256        # SynthCXR only: resolution the images are drawn at
    seed: int = 0
    max_length: int = 160
    min_word_frequency: int = 2
    num_workers: int = 0
    cache_dir: str | None = None       # a build_cache.py output to read instead of the raw images
    frontal_only: bool = True
    augment_rotation: float = 10.0     # degrees; the authors use 15 (mimic_paper preset)
    augment_crop_scale: float = 0.85   # smallest crop area fraction kept by the random resized crop
    augment_jitter: float = 0.2        # brightness / contrast jitter; the authors' [0.5, 1.8] is 0.8
    max_skip_fraction: float = 0.01    # more skipped samples than this fraction fails the run


@dataclass
class ImageModelConfig:
    backbone: str = "authors_cnn"      # authors_cnn | resnet18 | resnet50 | densenet121
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
    grid: int = 16                     # region grid side; strides adapt so the grid is kept
    drop_strides: str = "early"        # authors_cnn below 2048 px: early | late stages lose their stride
    soft_attention: bool = True
    attention_heads: int = 16
    pretrained: bool = False           # torchvision ImageNet weights: only when asked, never in tests


@dataclass
class TextModelConfig:
    layers: int = 3
    hidden: int = 512
    heads: int = 8
    intermediate: int = 2048
    dropout: float = 0.1
    pool: str = "cls"                  # cls (the authors' trainer) | mean
    pretrained_path: str | None = None  # a local Hugging Face folder: sub-word encoder + word pooling


@dataclass
class ModelConfig:
    embed_dim: int = 512
    image: ImageModelConfig = field(default_factory=ImageModelConfig)
    text: TextModelConfig = field(default_factory=TextModelConfig)
    null_region: bool = False          # opt-out region in the local attention (DESIGN.md §4)


@dataclass
class LossConfig:
    gamma1: float = 4.0
    gamma2: float = 5.0
    gamma3: float = 10.0
    margin_global: float = 0.5
    margin_local: float = 0.5
    weight_ce: float = 1.0
    weight_triplet: float = 2.0
    use_global: bool = True
    use_local: bool = True
    use_triplet: bool = True
    negatives: str = "random"          # random (the authors') | hardest (VSE++) | all
    mask_duplicate_reports: bool = False
    chunk_size: int = 32               # images per chunk in the fast local score


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 32
    grad_accum: int = 1
    lr_image: float = 1e-3
    lr_text: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"           # cosine | step
    warmup_steps: int = 20
    step_milestones: tuple[int, ...] = ()
    step_gamma: float = 0.1
    clip_image: float = 1.5
    clip_text: float = 1.5
    mlm: bool = False
    itm_probability: float = 0.3       # with mlm: probability that a step is image-text
    mlm_probability: float = 0.15
    seed: int = 42
    device: str = "auto"               # auto | cpu | cuda | mps
    precision: str = "auto"            # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    compile: bool = False
    gather_local: bool = False         # local loss over the global batch (costly); per rank by default
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    out_dir: str = "runs/demo"
    nan_policy: str = "stop"           # stop | skip
    max_nan_skips: int = 10


@dataclass
class EvalConfig:
    scoring: str = "global"            # global | local | combined
    combined_weight: float = 0.5
    pool_size: int | None = None
    num_pools: int = 3
    relevance: str = "instance"        # instance | dedup | label
    uncertain_policy: str = "zeros"    # zeros | ones | ignore
    bootstrap: int = 200
    seed: int = 0
    ablation_steps: int | None = None  # training steps per ablation variant (None: train.steps)


@dataclass
class Config:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(name_or_path: str = "demo_cpu", overrides: list[str] | None = None) -> Config:
    """Load a preset by name or a YAML path, then apply ``key=value`` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(f"no config {name_or_path!r}: not a file, and not one of the presets {list_presets()}")
    raw = yaml.safe_load(path.read_text()) or {}
    cfg = from_dict(Config, raw, where=str(path))
    for item in overrides or []:
        cfg = apply_override(cfg, item)
    return cfg


def to_dict(cfg) -> dict:
    return _plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    from .atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def from_dict(cls, raw: dict, where: str = "config"):
    """Build dataclass ``cls`` from ``raw``, refusing unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in {cls.__name__}; "
                          f"accepted keys are {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}:{k}") for k, v in raw.items()}
    return cls(**kwargs)


def apply_override(cfg: Config, item: str) -> Config:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, text = item.split("=", 1)
    value = _parse_value(text)
    parts = key.strip().split(".")
    d = to_dict(cfg)
    node = d
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            raise ConfigError(f"override {item!r}: no section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise ConfigError(f"override {item!r}: unknown key {parts[-1]!r}; accepted keys are {sorted(node)}")
    node[parts[-1]] = value
    return from_dict(Config, d, where=f"override {item!r}")


def _parse_value(text: str):
    """YAML scalars, plus ``1e-3``-style numbers (YAML 1.1 reads those as strings)."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (elem, *_rest) = typing.get_args(tp)
        return tuple(_coerce(elem, v, where) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
        return value
    return value


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
