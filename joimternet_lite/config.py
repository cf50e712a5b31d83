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

from .errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(UserError, ValueError):
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
    local_words: str = "all"           # all (the authors') | content | content_no_side: words in the local score
    local_units: str = "words"         # words (the authors') | sentences: what meets the regions in the local score
    pretrained_path: str | None = None  # a local Hugging Face folder: sub-word encoder + word pooling


@dataclass
class ScoreConfig:
    """How the model scores image-report pairs: the one source of gamma1, gamma2 and chunk_size for
    the losses, retrieval, grounding maps and figures (``model.similarity.score``)."""

    gamma1: float = 4.0                # sharpens the word-to-region attention
    gamma2: float = 5.0                # sharpens the soft maximum over words in S_w
    chunk_size: int = 32               # images (and reports) per block in the fast local score
    cosine_scale: float | None = None  # None: raw e_i . v_j (the authors'); k: k * cos(e_i, v_j) (unit vectors)
    word_softmax: bool = True          # the authors' softmax over words before the one over regions; false: none


@dataclass
class ModelConfig:
    embed_dim: int = 512
    image: ImageModelConfig = field(default_factory=ImageModelConfig)
    text: TextModelConfig = field(default_factory=TextModelConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    null_region: bool = False          # opt-out region in the local attention: a word may match no region


@dataclass
class LossConfig:
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
    weight_fine_grained: float = 0.0   # SPARC's per-pair word-level term (losses.fine_grained_loss); 0: off


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
    scorings: tuple[str, ...] = ("global", "local", "combined")  # retrieval scorings reported
    combined_weight: float = 0.5
    relevances: tuple[str, ...] = ("instance", "dedup")          # instance | dedup | label
    pool_size: int | None = None       # None: one pool, the whole test split; else disjoint random pools
    num_pools: int | None = None       # with pool_size: the number of pools (None: as many as fit)
    uncertain_policy: str = "zeros"    # zeros | ones | ignore
    bootstrap: int = 200
    seed: int = 0


@dataclass
class AblationConfig:
    steps: int | None = None           # training steps of every ablation variant (None: train.steps)


@dataclass
class Config:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)


# Keys that moved (old dotted key: its section's class, the new key); a config that still uses the
# old place is told the new one.
MOVED_KEYS = {
    "loss.gamma1": ("LossConfig", "model.score.gamma1"),
    "loss.gamma2": ("LossConfig", "model.score.gamma2"),
    "loss.chunk_size": ("LossConfig", "model.score.chunk_size"),
    "eval.ablation_steps": ("EvalConfig", "ablation.steps"),
    "eval.scoring": ("EvalConfig", "eval.scorings (a list)"),
    "eval.relevance": ("EvalConfig", "eval.relevances (a list)"),
}


def _moved_hint(old_keys: list[str]) -> str:
    moved = [f"{old} is now {new}" for old, (_, new) in MOVED_KEYS.items() if old in old_keys]
    return f" ({'; '.join(moved)})" if moved else ""


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(name_or_path: str = "demo_cpu", overrides: list[str] | None = None) -> Config:
    """Load a preset by name or a YAML path, then apply ``key=value`` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(f"no config {name_or_path!r}: not a file, and not one of the presets {list_presets()}")
    raw = _load_yaml(path.read_text(), str(path)) or {}
    cfg = from_dict(Config, raw, where=str(path))
    for item in overrides or []:
        cfg = apply_override(cfg, item)
    return validate(cfg)


def _load_yaml(text: str, where: str):
    """``yaml.safe_load`` whose syntax errors name ``where`` and the line (PyYAML says ``<unicode string>``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        found, opened = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        mark = opened or found  # an unclosed bracket or quote is noticed only where the text ends
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = "; ".join(p for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p) or str(err)
        if found is not None and mark is not found:
            problem += f" (noticed at line {found.line + 1}, column {found.column + 1})"
        raise ConfigError(f"{where}{at}: not valid YAML: {problem}; fix the syntax there "
                          "(a missing bracket, quote or colon, or a tab used for indentation)") from None


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
        old = [k for k, (owner, _) in MOVED_KEYS.items() if owner == cls.__name__ and k.split(".")[-1] in unknown]
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in {cls.__name__}{_moved_hint(old)}; "
                          f"accepted keys are {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}:{k}") for k, v in raw.items()}
    return cls(**kwargs)


def apply_override(cfg: Config, item: str) -> Config:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, text = item.split("=", 1)
    value = _parse_value(text, where=f"override {item!r}")
    parts = key.strip().split(".")
    d = to_dict(cfg)
    node = d
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            raise ConfigError(f"override {item!r}: no section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise ConfigError(f"override {item!r}: unknown key {parts[-1]!r}{_moved_hint([key.strip()])}; "
                          f"accepted keys are {sorted(node)}")
    node[parts[-1]] = value
    return from_dict(Config, d, where=f"override {item!r}")


def _parse_value(text: str, where: str):
    """YAML scalars, plus ``1e-3``-style numbers (YAML 1.1 reads those as strings)."""
    value = _load_yaml(text, where)
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


# ---------------------------------------------------------------- value checks

@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (None: unbounded); ``open_low`` / ``open_high`` exclude the bound."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def accepts(self, value) -> bool:
        if value != value:  # NaN fits no range
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


POSITIVE, AT_LEAST_1, AT_LEAST_0 = Range(0, open_low=True), Range(1), Range(0)
FRACTION, PROBABILITY_OPEN = Range(0, 1), Range(0, 1, open_low=True)
LEARNING_RATE = Range(0, 1, open_low=True)  # AdamW steps move a weight by about lr: above 1 nothing trains

SCHEDULES = ("cosine", "step")
NAN_POLICIES = ("stop", "skip")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
NEGATIVE_MODES = ("random", "hardest", "all")
SYNTH_SIZES = Range(128, 1024)  # pixels SynthCXR can draw at: its anatomy needs 128, its cost grows as size^2
DROP_STRIDES = ("early", "late")
TEXT_POOLS = ("cls", "mean")
LOCAL_WORDS = ("all", "content", "content_no_side")
LOCAL_UNITS = ("words", "sentences")

# Every numeric and enumerated field: a Range, or the tuple of accepted choices. Tuple-valued fields
# (widths, milestones) are checked element by element; None (an optional field left unset) passes.
RULES: dict[str, Range | tuple[str, ...]] = {
    "data.source": ("synthetic", "manifest"),
    "data.num_studies": AT_LEAST_1,
    "data.image_size": Range(8),
    "data.synth_image_size": SYNTH_SIZES,
    "data.max_length": Range(3),            # [CLS], one word, [SEP]
    "data.min_word_frequency": AT_LEAST_1,
    "data.num_workers": AT_LEAST_0,
    "data.augment_rotation": Range(0, 180),
    "data.augment_crop_scale": PROBABILITY_OPEN,
    "data.augment_jitter": Range(0, 1, open_high=True),
    "data.max_skip_fraction": FRACTION,
    "model.embed_dim": AT_LEAST_1,
    "model.image.backbone": ("authors_cnn", "resnet18", "resnet50", "densenet121"),
    "model.image.widths": AT_LEAST_1,
    "model.image.grid": AT_LEAST_1,
    "model.image.drop_strides": DROP_STRIDES,
    "model.image.attention_heads": AT_LEAST_1,
    "model.text.layers": AT_LEAST_1,
    "model.text.hidden": AT_LEAST_1,
    "model.text.heads": AT_LEAST_1,
    "model.text.intermediate": AT_LEAST_1,
    "model.text.dropout": Range(0, 1, open_high=True),
    "model.text.pool": TEXT_POOLS,
    "model.text.local_words": LOCAL_WORDS,
    "model.text.local_units": LOCAL_UNITS,
    "model.score.gamma1": POSITIVE,
    "model.score.gamma2": POSITIVE,
    "model.score.chunk_size": AT_LEAST_1,
    "model.score.cosine_scale": POSITIVE,
    "loss.gamma3": POSITIVE,
    "loss.margin_global": AT_LEAST_0,
    "loss.margin_local": AT_LEAST_0,
    "loss.weight_ce": AT_LEAST_0,
    "loss.weight_triplet": AT_LEAST_0,
    "loss.weight_fine_grained": AT_LEAST_0,
    "loss.negatives": NEGATIVE_MODES,
    "train.steps": AT_LEAST_1,
    "train.batch_size": Range(2),          # a contrastive loss needs a negative in the batch
    "train.grad_accum": AT_LEAST_1,
    "train.lr_image": LEARNING_RATE,
    "train.lr_text": LEARNING_RATE,
    "train.weight_decay": Range(0, 1),
    "train.schedule": SCHEDULES,
    "train.warmup_steps": AT_LEAST_0,
    "train.step_milestones": AT_LEAST_1,
    "train.step_gamma": PROBABILITY_OPEN,
    "train.clip_image": POSITIVE,
    "train.clip_text": POSITIVE,
    "train.itm_probability": FRACTION,
    "train.mlm_probability": PROBABILITY_OPEN,
    "train.device": DEVICES,
    "train.precision": PRECISIONS,
    "train.checkpoint_every": AT_LEAST_1,
    "train.keep_checkpoints": AT_LEAST_0,
    "train.log_every": AT_LEAST_1,
    "train.nan_policy": NAN_POLICIES,
    "train.max_nan_skips": AT_LEAST_0,
    "eval.scorings": ("global", "local", "combined"),
    "eval.combined_weight": FRACTION,
    "eval.pool_size": Range(2),
    "eval.num_pools": AT_LEAST_1,
    "eval.relevances": ("instance", "dedup", "label"),
    "eval.uncertain_policy": ("zeros", "ones", "ignore"),
    "eval.bootstrap": AT_LEAST_0,
    "eval.seed": AT_LEAST_0,
    "ablation.steps": AT_LEAST_1,
}


def validate(cfg: Config) -> Config:
    """Check every field named in ``RULES``; raise ``ConfigError`` naming the key, value and accepted range."""
    flat = flatten(to_dict(cfg))
    for key, rule in RULES.items():
        value = flat[key]
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not _fits(rule, item):
                shown = f"{key}={value!r}" if item is value else f"{key}={value!r} holds {item!r}, which"
                raise ConfigError(f"{shown} is not accepted: {_accepted(rule)}")
    if cfg.model.text.local_words != "all" and cfg.model.text.pretrained_path:
        raise ConfigError(f"model.text.local_words={cfg.model.text.local_words!r} picks words of the word-level "
                          "vocabulary; with model.text.pretrained_path set, use model.text.local_words=all")
    if cfg.train.mlm and cfg.model.text.pretrained_path:
        raise ConfigError("train.mlm=true trains the word-level text tower's MLM head, and a pretrained tower "
                          f"(model.text.pretrained_path={cfg.model.text.pretrained_path}) has none: set "
                          "train.mlm=false or unset model.text.pretrained_path")
    return cfg


def _fits(rule: Range | tuple[str, ...], value) -> bool:
    return rule.accepts(value) if isinstance(rule, Range) else value in rule


def _accepted(rule: Range | tuple[str, ...]) -> str:
    if isinstance(rule, Range):
        return f"use a value in the range {rule}"
    return f"use one of {', '.join(rule)}"


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested sections -> ``{"train.steps": 300, ...}`` (dotted keys, as overrides name them)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out

