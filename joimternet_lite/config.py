"""Typed configuration: dataclasses, YAML presets and command-line overrides.

Taught in notebook 08. A preset is a YAML file in ``joimternet_lite/configs/``; any field can be
overridden with a dotted ``key=value`` (``train.steps=200``). Unknown keys and wrong types are
refused with a message that names the key and the accepted fields, so a typo never silently
falls back to a default. Each field's range (``checked``) or choices (``Literal``) sit beside it,
and ``validate`` checks them all.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from .errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the key and the fix."""


# ---------------------------------------------------------------- value rules

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
BELOW_1 = Range(0, 1, open_high=True)
LEARNING_RATE = Range(0, 1, open_low=True)  # AdamW steps move a weight by about lr: above 1 nothing trains
SYNTH_SIZES = Range(128, 1024)  # pixels SynthCXR can draw at: its anatomy needs 128, its cost grows as size^2


def checked(default, rule: Range):
    """A field whose value (each element of a tuple; None passes) ``validate`` checks against ``rule``.

    Fields with choices need no rule: their ``Literal`` type lists them.
    """
    return field(default=default, metadata={"rule": rule})


# ---------------------------------------------------------------- the config

@dataclass
class DataConfig:
    source: Literal["synthetic", "manifest"] = "synthetic"  # manifest: a prepared dataset at root
    root: str = "data/synthcxr"        # dataset root holding manifest/ and manifest.json
    num_studies: int = checked(2000, AT_LEAST_1)  # SynthCXR only: studies to generate when root is empty
    image_size: int = checked(128, Range(8))      # training / eval resolution (square)
    synth_image_size: int = checked(256, SYNTH_SIZES)  # SynthCXR only: resolution the images are drawn at
    seed: int = 0
    max_length: int = checked(160, Range(3))      # [CLS], one word, [SEP] at least
    min_word_frequency: int = checked(2, AT_LEAST_1)
    num_workers: int = checked(0, AT_LEAST_0)
    cache_dir: str | None = None       # a build_cache.py output to read instead of the raw images
    frontal_only: bool = True
    augment_rotation: float = checked(10.0, Range(0, 180))  # degrees; the authors use 15 (mimic_paper preset)
    augment_crop_scale: float = checked(0.85, PROBABILITY_OPEN)  # smallest area fraction a random crop keeps
    augment_jitter: float = checked(0.2, BELOW_1)  # brightness / contrast jitter; the authors' [0.5, 1.8] is 0.8
    max_skip_fraction: float = checked(0.01, FRACTION)  # more skipped samples than this fraction fails the run


@dataclass
class ImageModelConfig:
    backbone: Literal["authors_cnn", "resnet18", "resnet50", "densenet121"] = "authors_cnn"
    widths: tuple[int, ...] = checked((8, 16, 32, 64, 128, 256, 512), AT_LEAST_1)
    grid: int = checked(16, AT_LEAST_1)  # region grid side; strides adapt so the grid is kept
    drop_strides: Literal["early", "late"] = "early"  # authors_cnn below 2048 px: the stages losing their stride
    soft_attention: bool = True
    attention_heads: int = checked(16, AT_LEAST_1)
    pretrained: bool = False           # torchvision ImageNet weights: only when asked, never in tests


@dataclass
class TextModelConfig:
    layers: int = checked(3, AT_LEAST_1)
    hidden: int = checked(512, AT_LEAST_1)
    heads: int = checked(8, AT_LEAST_1)
    intermediate: int = checked(2048, AT_LEAST_1)
    dropout: float = checked(0.1, BELOW_1)
    pool: Literal["cls", "mean"] = "cls"  # cls: the authors' trainer
    # the words of the local score (all: the authors'), and what meets the regions there (words: the authors')
    local_words: Literal["all", "content", "content_no_side"] = "all"
    local_units: Literal["words", "sentences"] = "words"
    pretrained_path: str | None = None  # a local Hugging Face folder: sub-word encoder + word pooling


@dataclass
class ScoreConfig:
    """How the model scores image-report pairs: the one source of gamma1, gamma2 and chunk_size for
    the losses, retrieval, grounding maps and figures (``model.similarity.score``)."""

    gamma1: float = checked(4.0, POSITIVE)  # sharpens the word-to-region attention
    gamma2: float = checked(5.0, POSITIVE)  # sharpens the soft maximum over words in S_w
    chunk_size: int = checked(32, AT_LEAST_1)  # images (and reports) per block in the fast local score
    cosine_scale: float | None = checked(None, POSITIVE)  # None: raw e_i . v_j (the authors'); k: k * cos(e_i, v_j)
    word_softmax: bool = True          # the authors' softmax over words before the one over regions; false: none


@dataclass
class ModelConfig:
    embed_dim: int = checked(512, AT_LEAST_1)
    image: ImageModelConfig = field(default_factory=ImageModelConfig)
    text: TextModelConfig = field(default_factory=TextModelConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    null_region: bool = False          # opt-out region in the local attention: a word may match no region


@dataclass
class LossConfig:
    gamma3: float = checked(10.0, POSITIVE)
    margin_global: float = checked(0.5, AT_LEAST_0)
    margin_local: float = checked(0.5, AT_LEAST_0)
    weight_ce: float = checked(1.0, AT_LEAST_0)
    weight_triplet: float = checked(2.0, AT_LEAST_0)
    use_global: bool = True
    use_local: bool = True
    use_triplet: bool = True
    negatives: Literal["random", "hardest", "all"] = "random"  # random: the authors'; hardest: VSE++
    mask_duplicate_reports: bool = False
    weight_fine_grained: float = checked(0.0, AT_LEAST_0)  # SPARC's word-level term, losses.fine_grained_loss; 0: off


@dataclass
class TrainConfig:
    steps: int = checked(300, AT_LEAST_1)
    batch_size: int = checked(32, Range(2))  # a contrastive loss needs a negative in the batch
    grad_accum: int = checked(1, AT_LEAST_1)
    lr_image: float = checked(1e-3, LEARNING_RATE)
    lr_text: float = checked(1e-3, LEARNING_RATE)
    weight_decay: float = checked(1e-4, FRACTION)
    schedule: Literal["cosine", "step"] = "cosine"
    warmup_steps: int = checked(20, AT_LEAST_0)
    step_milestones: tuple[int, ...] = checked((), AT_LEAST_1)
    step_gamma: float = checked(0.1, PROBABILITY_OPEN)
    clip_image: float = checked(1.5, POSITIVE)
    clip_text: float = checked(1.5, POSITIVE)
    mlm: bool = False
    itm_probability: float = checked(0.3, FRACTION)  # with mlm: probability that a step is image-text
    mlm_probability: float = checked(0.15, PROBABILITY_OPEN)
    seed: int = 42
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    gather_local: bool = False         # local loss over the global batch (costly); per rank by default
    checkpoint_every: int = checked(100, AT_LEAST_1)
    keep_checkpoints: int = checked(2, AT_LEAST_0)
    log_every: int = checked(10, AT_LEAST_1)
    out_dir: str = "runs/demo"
    nan_policy: Literal["stop", "skip"] = "stop"
    max_nan_skips: int = checked(10, AT_LEAST_0)


@dataclass
class EvalConfig:
    scorings: tuple[Literal["global", "local", "combined"], ...] = ("global", "local", "combined")  # reported
    combined_weight: float = checked(0.5, FRACTION)
    relevances: tuple[Literal["instance", "dedup", "label"], ...] = ("instance", "dedup")
    # None: one pool, the whole test split; else disjoint random pools, num_pools of them (None: as many as fit)
    pool_size: int | None = checked(None, Range(2))
    num_pools: int | None = checked(None, AT_LEAST_1)
    uncertain_policy: Literal["zeros", "ones", "ignore"] = "zeros"
    bootstrap: int = checked(200, AT_LEAST_0)
    seed: int = checked(0, AT_LEAST_0)


@dataclass
class AblationConfig:
    steps: int | None = checked(None, AT_LEAST_1)  # training steps of every ablation variant (None: train.steps)


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
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError:
                pass  # try the union's next type
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is typing.Literal:  # its type here; validate checks the choices, as it checks ranges
        return _coerce(type(typing.get_args(tp)[0]), value, where)
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


# ---------------------------------------------------------------- validation

def choices(cls, name: str) -> tuple[str, ...]:
    """The values field ``name`` of config class ``cls`` accepts, read from its ``Literal`` type
    (also inside a tuple): the one list of them, for code that checks or offers them elsewhere."""
    return _choices(typing.get_type_hints(cls)[name]) or ()


def _choices(tp) -> tuple[str, ...] | None:
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None


def field_rules(cls=Config, prefix: str = "") -> dict[str, Range | tuple[str, ...]]:
    """Dotted key -> the field's rule (``checked``) or choices (``Literal``), for every field that has one."""
    hints, rules = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rules |= field_rules(tp, f"{prefix}{f.name}.")
        elif (rule := f.metadata.get("rule") or _choices(tp)) is not None:
            rules[f"{prefix}{f.name}"] = rule
    return rules


# The choices other modules check or offer (argparse choices, error messages), read from the fields
SCHEDULES = choices(TrainConfig, "schedule")
PRECISIONS = choices(TrainConfig, "precision")
DEVICES = choices(TrainConfig, "device")
NEGATIVE_MODES = choices(LossConfig, "negatives")
DROP_STRIDES = choices(ImageModelConfig, "drop_strides")
TEXT_POOLS = choices(TextModelConfig, "pool")
LOCAL_WORDS = choices(TextModelConfig, "local_words")
SCORINGS = choices(EvalConfig, "scorings")
RELEVANCES = choices(EvalConfig, "relevances")
UNCERTAIN_POLICIES = choices(EvalConfig, "uncertain_policy")


def validate(cfg: Config) -> Config:
    """Check every field that has a rule or choices; raise ``ConfigError`` naming the key, value and what fits."""
    flat = flatten(to_dict(cfg))
    for key, rule in field_rules().items():
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

