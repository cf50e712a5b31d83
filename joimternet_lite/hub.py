"""Save and load a trained model in one line, in the Hugging Face Hub layout.

No notebook teaches it yet; docs/API.md shows it. ``JoImTeRNet.from_pretrained(path)`` accepts

- a folder written by ``model.save_pretrained(dir)`` (or a Hub repo id such as ``"user/repo"``),
- a checkpoint folder ``<run>/checkpoints/step_000300`` (verified as ``checkpoint.load_checkpoint``
  does; the tokenizer is the run's ``tokenizer/``),
- a run folder ``<run>`` (its newest complete checkpoint).

``save_pretrained(dir)`` writes ``model.safetensors``, the tokenizer (``tokenizer.json`` and
friends), ``text_encoder/`` for a pretrained sub-word text tower, ``config.json`` (the whole
resolved config, the vocabulary size, the step, the dataset and the format version; written after
the weights, so a folder without it is incomplete) and a ``README.md`` model card that states the
data and its licence, the training steps and, when the run's ``results.json`` exists, the
evaluation numbers with their protocol. ``push_to_hub`` comes from ``huggingface_hub``'s
``ModelHubMixin``. Nothing here unpickles.

Before a model is built, its config is checked against the weights' safetensors header and sane
maxima (``model_check``), so a damaged or hand-edited folder takes no memory before it is refused;
each JSON file it reads (``config.json``, ``trainer.json``, a run's ``results.json``) that is damaged
or not UTF-8 is refused by name (:func:`read_json`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelHubMixin, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from . import checkpoint as ckpt
from .atomic import atomic_path, atomic_write_text
from .config import Config, ConfigError, from_dict, to_dict
from .errors import UserError
from .headline import improvement_checks
from .model_check import check_model_sizes

HUB_FORMAT_VERSION = 1
LIBRARY, ARCHITECTURE = "joimternet_lite", "JoImTeRNet"
CONFIG_FILE, TEXT_ENCODER_DIR = "config.json", "text_encoder"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # "user/repo"; anything else is a local path

# dataset source (manifest.json "source") -> (card licence id, licence statement)
DATA_LICENCES = {
    "synthcxr": ("mit", "SynthCXR is synthetic: images and reports drawn by this project's generator "
                        "(`joimternet_lite.data.synthcxr`), no patient data. The weights carry the "
                        "project's MIT licence."),
    "openi": ("cc-by-nc-nd-4.0", "OpenI-IU (Indiana University chest X-ray collection), licensed CC BY-NC-ND "
                                 "4.0: non-commercial use, attribution, no derivatives of the data itself."),
    "mimic-cxr": ("other", "MIMIC-CXR under the PhysioNet Credentialed Health Data License 1.5.0: these "
                           "weights were trained on credentialed data; share them only with credentialed "
                           "PhysioNet users who signed the data use agreement, never publicly."),
}
UNKNOWN_LICENCE = ("other", "The training data's source is not recorded; state its licence before sharing.")


class PretrainedError(UserError, ValueError):
    """A folder that is not a loadable model; the message says what it is and the fix."""


@dataclass
class Provenance:
    """What a saved model says about itself: its config, tokenizer, step, data and results."""

    config: Config
    tokenizer: Any                     # the word-level tokenizer, or the pretrained text tower's sub-word one
    step: int | None = None
    dataset: str | None = None         # manifest.json "source": synthcxr | openi | mimic-cxr
    results: dict | None = None        # the run's results.json
    source: str = ""                   # the folder it was loaded from


class PretrainedMixin(ModelHubMixin, library_name=LIBRARY, tags=["chest-x-ray", "image-text", "joimternet"]):
    """``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` for :class:`JoImTeRNet`."""

    provenance: Provenance | None = None

    def attach(self, config: Config, tokenizer, *, step: int | None = None, dataset: str | None = None,
               results: dict | None = None):
        """Record the config and tokenizer a fresh model was built from, so it can be saved."""
        self.provenance = Provenance(config, tokenizer, step, dataset or dataset_of(config), results)
        return self

    @property
    def config(self) -> Config:
        """The resolved training config this model was built from."""
        return _require_provenance(self).config

    @property
    def tokenizer(self):
        """The tokenizer of this model's text tower (word level, or the pretrained sub-word one)."""
        return _require_provenance(self).tokenizer

    def save_pretrained(self, save_directory: str | Path, *, config: Config | None = None, tokenizer=None,
                        **kwargs) -> str | None:
        """Write the Hub folder (see the module docstring); ``config`` and ``tokenizer`` are
        needed only for a model built by hand (``model_for``), not for one from ``from_pretrained``."""
        if config is not None or tokenizer is not None:
            if config is None or tokenizer is None:
                raise PretrainedError("save_pretrained: pass both config= and tokenizer= (or neither)")
            self.attach(config, tokenizer)
        _require_provenance(self)
        return super().save_pretrained(save_directory, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        write_folder(self, Path(save_directory))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, map_location: str = "cpu", **kwargs):
        """Load from a save_pretrained folder, a checkpoint folder, a run folder or a Hub repo id."""
        name = str(pretrained_model_name_or_path)
        if Path(name).exists() or not HUB_ID.fullmatch(name):
            return load_folder(cls, Path(name), map_location)
        try:
            return super().from_pretrained(name, map_location=map_location, **kwargs)
        except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
            raise PretrainedError(f"{name}: no such local folder, and the Hub gave no model of that id "
                                  f"({type(err).__name__}: {str(err).splitlines()[0]})") from err

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu", **_unused):
        folder = snapshot_download(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                                   local_files_only=local_files_only, token=token)
        return load_folder(cls, Path(folder), map_location)

    @classmethod
    def build_from_config(cls, cfg: Config, vocab_size: int):
        """A freshly initialised model for ``cfg``; the model class says how (hub cannot import models)."""
        raise NotImplementedError

    def generate_model_card(self, *args, **kwargs):
        from huggingface_hub import ModelCard

        return ModelCard(model_card(self))


def _require_provenance(model) -> Provenance:
    if model.provenance is None:
        raise PretrainedError("this model has no config or tokenizer attached: load it with "
                              "JoImTeRNet.from_pretrained(run_dir), or call model.attach(cfg, tokenizer) "
                              "(or save_pretrained(dir, config=cfg, tokenizer=tokenizer))")
    return model.provenance


# ----------------------------------------------------------------------------- save


def write_folder(model, folder: Path) -> None:
    """Weights, tokenizer, text_encoder/ (sub-word tower only), config.json, README.md."""
    info = _require_provenance(model)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / ckpt.MODEL_FILE) as tmp:
        ckpt.save_weights(model, tmp)
    info.tokenizer.save_pretrained(str(folder))
    if model.text_encoder.pretrained:  # the pretrained text tower is rebuilt from this folder on load
        model.text_encoder.bert.save_pretrained(str(folder / TEXT_ENCODER_DIR))
        info.tokenizer.save_pretrained(str(folder / TEXT_ENCODER_DIR))
    atomic_write_text(folder / CONFIG_FILE, json.dumps(folder_config(info, len(info.tokenizer)), indent=1))
    atomic_write_text(folder / "README.md", model_card(model))


def folder_config(info: Provenance, vocab_size: int) -> dict:
    from . import __version__

    return {"library": LIBRARY, "architecture": ARCHITECTURE, "format_version": HUB_FORMAT_VERSION,
            "package_version": __version__, "vocab_size": vocab_size, "step": info.step,
            "dataset": info.dataset, "results": info.results, "config": to_dict(info.config)}


# ----------------------------------------------------------------------------- load


def load_folder(model_class, path: Path, map_location: str | torch.device = "cpu"):
    """The model in ``path`` (see the module docstring), in eval mode, with its provenance attached."""
    if not path.is_dir():
        what = "a file, not a model folder" if path.is_file() else "not a folder" if path.exists() else \
            "no such model folder"
        raise PretrainedError(f"{path}: {what}. Pass a folder written by save_pretrained, a run folder "
                              "(train.out_dir) or one of its checkpoints/step_* folders.")
    if (path / CONFIG_FILE).exists():
        return _load_saved(model_class, path, map_location)
    if (path / ckpt.STATE_FILE).exists():
        return _load_checkpoint(model_class, path, map_location)
    if (path / "checkpoints").is_dir():
        found = ckpt.latest_checkpoint(path)
        if found is None:
            raise PretrainedError(f"{path}: a run folder without a complete checkpoint; train it first "
                                  "(python -m joimternet_lite train ...) or pass another folder")
        return _load_checkpoint(model_class, found, map_location)
    raise PretrainedError(f"{path}: not a model folder: it holds no {CONFIG_FILE} (save_pretrained), no "
                          f"{ckpt.STATE_FILE} (a checkpoint) and no checkpoints/ (a run folder)")


def _load_saved(model_class, folder: Path, map_location) -> Any:
    meta = read_folder_config(folder)
    if not isinstance(meta.get("config"), dict):
        raise PretrainedError(f"{folder / CONFIG_FILE}: its \"config\" entry is not a mapping of settings; the file "
                              "was edited or damaged: save the model again")
    cfg = _config_from(meta["config"], folder / CONFIG_FILE, meta.get("package_version"))
    if (folder / TEXT_ENCODER_DIR).is_dir():
        cfg.model.text.pretrained_path = str(folder / TEXT_ENCODER_DIR)
    tokenizer = _tokenizer(folder, cfg)
    check_model_sizes(model_class, cfg, len(tokenizer), folder / ckpt.MODEL_FILE, folder / CONFIG_FILE,
                      folder / "tokenizer.json")
    model = _build(model_class, cfg, tokenizer, folder / ckpt.MODEL_FILE, map_location)
    model.provenance = Provenance(cfg, tokenizer, meta.get("step"), meta.get("dataset"), meta.get("results"),
                                  str(folder))
    return model


def read_folder_config(folder: Path) -> dict:
    """config.json of a saved folder, refused unless this package wrote it in a format it reads."""
    path = folder / CONFIG_FILE
    meta = read_json(path, "save the model again")
    if not isinstance(meta, dict) or meta.get("library") != LIBRARY:
        raise PretrainedError(f"{path}: {_describe_foreign(meta)}, not a {LIBRARY} model. Load it with the "
                              "library that wrote it, or pass a folder written by JoImTeRNet.save_pretrained.")
    if meta.get("architecture") != ARCHITECTURE:
        raise PretrainedError(f"{path}: a {LIBRARY} {meta.get('architecture')!r} folder; this loader builds "
                              f"{ARCHITECTURE} only")
    if meta.get("format_version") != HUB_FORMAT_VERSION:
        from . import __version__

        raise PretrainedError(f"{path}: written by {LIBRARY} {meta.get('package_version')} in folder format "
                              f"{meta.get('format_version')}; this is {LIBRARY} {__version__}, which reads format "
                              f"{HUB_FORMAT_VERSION}. Install the version that wrote it.")
    return meta


def read_json(path: Path, fix: str):
    """The JSON in ``path``; ``PretrainedError`` naming it and ``fix`` when it is not UTF-8 JSON."""
    if not path.is_file():  # a FIFO would block the read
        raise PretrainedError(f"{path}: not a regular file; {fix}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise PretrainedError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}), "
                              f"so not the JSON this package writes; {fix}") from err
    except (json.JSONDecodeError, RecursionError) as err:  # RecursionError: nested deeper than Python parses
        raise PretrainedError(f"{path}: not valid JSON ({err}); {fix}") from err


def _describe_foreign(meta) -> str:
    if not isinstance(meta, dict):
        return f"a JSON {type(meta).__name__}"
    if "model_type" in meta or "architectures" in meta:
        return f"a transformers {meta.get('model_type', '?')!r} model ({', '.join(meta.get('architectures') or [])})"
    return f"a config.json of another library (keys {sorted(meta)[:6]})"


def _config_from(raw: dict, where: Path, package_version: str | None) -> Config:
    try:
        return from_dict(Config, raw, where=str(where))
    except ConfigError as err:
        from . import __version__

        writer = f"{LIBRARY} {package_version}" if package_version else f"another version of {LIBRARY}"
        raise PretrainedError(f"{err}. The folder was written by {writer}, this is {__version__}: install the "
                              "version that wrote it.") from err


def _load_checkpoint(model_class, folder: Path, map_location) -> Any:
    run_dir = folder.parent.parent
    state = read_json(folder / ckpt.STATE_FILE, "the checkpoint is damaged, use an older one")
    if not isinstance(state, dict) or not state.get("config"):
        raise PretrainedError(f"{folder / ckpt.STATE_FILE}: records no config, so the model cannot be rebuilt; "
                              "pass a checkpoint written by `python -m joimternet_lite train`")
    if not (run_dir / "tokenizer" / "tokenizer.json").exists():
        raise PretrainedError(f"{run_dir / 'tokenizer'}: the run's tokenizer is missing; a checkpoint loads "
                              "from inside its run folder (<run>/checkpoints/step_*)")
    cfg = _config_from(state["config"], folder / ckpt.STATE_FILE, None)
    tokenizer = _tokenizer(run_dir / "tokenizer", cfg)
    results_file = run_dir / "results.json"
    results = read_json(results_file, "evaluate the run again (python -m joimternet_lite evaluate --config "
                                      f"{run_dir / 'config.yaml'}) or delete it") if results_file.exists() else None
    check_model_sizes(model_class, cfg, len(tokenizer), folder / ckpt.MODEL_FILE, folder / ckpt.STATE_FILE,
                      run_dir / "tokenizer" / "tokenizer.json")
    model = _build(model_class, cfg, tokenizer, None, map_location)
    ckpt.load_checkpoint(folder, model, vocab_size=len(tokenizer))  # verifies sizes and hashes
    model.provenance = Provenance(cfg, tokenizer, state.get("step"), dataset_of(cfg), results, str(folder))
    return model  # _build put it on map_location in eval mode; the weights load in place


def _tokenizer(folder: Path, cfg: Config):
    """The word-level tokenizer, or the pretrained text tower's sub-word one, cut at data.max_length."""
    from .data.tokenizer import load_pretrained_tokenizer, load_tokenizer

    if cfg.model.text.pretrained_path:
        return load_pretrained_tokenizer(folder, cfg.data.max_length)
    tokenizer = load_tokenizer(folder)
    tokenizer.model_max_length = cfg.data.max_length
    return tokenizer


def _build(model_class, cfg: Config, tokenizer, weights: Path | None, map_location):
    model = model_class.build_from_config(cfg, len(tokenizer))
    if weights is not None:
        ckpt.load_weights(weights, model, len(tokenizer))
    return model.to(map_location).eval()


def dataset_of(cfg: Config) -> str | None:
    """The ``source`` recorded in the data root's manifest.json (None when the root is gone)."""
    meta = Path(cfg.data.root) / "manifest.json"
    if meta.exists():
        found = read_json(meta, "prepare or generate the dataset again")
        return found.get("source") if isinstance(found, dict) else None
    return "synthcxr" if cfg.data.source == "synthetic" else None


# ----------------------------------------------------------------------------- model card


def model_card(model) -> str:
    """The README.md: YAML card data, data and licence, training, evaluation with its protocol."""
    info = _require_provenance(model)
    cfg = info.config
    licence_id, licence_text = DATA_LICENCES.get(info.dataset or "", UNKNOWN_LICENCE)
    params = sum(p.numel() for p in model.parameters())
    return "\n\n".join([
        f"---\nlibrary_name: {LIBRARY}\nlicense: {licence_id}\ntags:\n- chest-x-ray\n- image-text\n- joimternet\n---",
        f"# JoImTeRNet-lite `{cfg.name}`",
        "Chest X-ray image / report embeddings: global vectors and a grid of region vectors per image, "
        "a report vector and one vector per word per report, trained jointly with the global and the "
        "word-region (DAMSM) matching losses.",
        "## Use\n\n```python\nfrom joimternet_lite import ImageTextInference, JoImTeRNet\n\n"
        "model = JoImTeRNet.from_pretrained(\"<this folder or user/repo>\")\n"
        "engine = ImageTextInference(model)\n"
        "scores = engine.similarity([\"cxr.png\"], [\"small left pleural effusion\"])\n```",
        "## Training data\n\n" + _data_section(cfg, info.dataset),
        "## Training\n\n" + _training_section(cfg, info.step, params),
        "## Evaluation\n\n" + _evaluation_section(info.results),
        f"## Licence\n\nData: {licence_text}\n\nCode: MIT ({LIBRARY}).",
    ]) + "\n"


def _data_section(cfg: Config, dataset: str | None) -> str:
    names = {"synthcxr": "SynthCXR (synthetic, generated by this project)", "openi": "OpenI-IU",
             "mimic-cxr": "MIMIC-CXR"}
    size = f"{cfg.data.num_studies} studies, " if dataset == "synthcxr" else ""
    return (f"- dataset: {names.get(dataset or '', 'not recorded')}\n"
            f"- {size}images at {cfg.data.image_size} px, reports of at most {cfg.data.max_length} tokens, "
            f"{'frontal views only' if cfg.data.frontal_only else 'all views'}")


def _training_section(cfg: Config, step: int | None, params: int) -> str:
    t, m = cfg.train, cfg.model
    text = ("a pretrained sub-word encoder (saved in `text_encoder/`)" if m.text.pretrained_path
            else f"a word-level BERT of {m.text.layers} layer(s), {m.text.hidden} hidden")
    terms = [name for name, on in (("global", cfg.loss.use_global), ("local", cfg.loss.use_local),
                                   ("triplet", cfg.loss.use_triplet)) if on]
    return (f"- {step if step is not None else 'unknown'} of {t.steps} optimizer steps, batch {t.batch_size} x "
            f"{t.grad_accum} accumulation, {t.schedule} schedule, lr image {t.lr_image:g} / text {t.lr_text:g}\n"
            f"- image tower `{m.image.backbone}` (grid {m.image.grid}x{m.image.grid}), text tower {text}, "
            f"embedding {m.embed_dim}, {params:,} parameters\n"
            f"- loss terms: {', '.join(terms)}; gamma1 {m.score.gamma1:g}, gamma2 {m.score.gamma2:g}, "
            f"gamma3 {cfg.loss.gamma3:g}")


def _evaluation_section(results: dict | None) -> str:
    if not results or "trained" not in results or "untrained" not in results:
        return ("No evaluation was recorded with this run (no results.json). Evaluate it with "
                "`python -m joimternet_lite evaluate --config <its config.yaml>`.")
    rows = improvement_checks(results["trained"], results["untrained"])
    pool = next((r["pool_size"] for r in results["trained"].get("retrieval", []) if "pool_size" in r), None)
    table = "\n".join(f"| {name} | {t:.3f} | {b:.3f} |" for name, t, b in rows)
    return ("The test split of the training dataset, one image per study; the same architecture untrained "
            "(same initialisation seed) beside it. Retrieval: R@10 in percent over the full test pool "
            f"({pool} studies), instance relevance, ties counted against the model. Classification: a linear "
            "probe (logistic regression) on frozen global image vectors fitted on the training split, mean "
            "per-class ROC-AUC on the test split. Grounding (SynthCXR only): pointing game of the raw "
            "word-region map averaged over each finding's phrase.\n\n"
            "| metric | trained | untrained |\n|---|---|---|\n" + table)
