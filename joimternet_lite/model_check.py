"""A saved model's config checked against its weights file before the model is built.

No notebook teaches it; ``hub.load_folder`` calls it. A model folder's config decides how much memory
building the model takes, so a hand-edited or damaged ``config.json`` (``embed_dim`` 10^6) used to
take gigabytes, or every byte, before the weights could say it was wrong. Here, before anything is
allocated:

1. the config's values are checked by ``config.validate`` and against :data:`MAXIMA`, so the
   shape-only build below cannot run for hours (10^6 text layers);
2. the model is built on the ``meta`` device (shapes and dtypes, no storage) and its tensors compared
   with the weights file's safetensors header (``checkpoint.read_header``: read without the data);
3. on a mismatch, the config key at fault is found by rebuilding, shapes only, with each size setting
   changed: the setting whose change makes the tensors agree is named, with the value the weights
   were saved with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import Config, ConfigError, apply_override, flatten, to_dict, validate
from .errors import UserError

# The largest published encoders stay below these; a bigger value is a typo or a damaged file.
MAXIMA = {"data.image_size": 8192, "model.embed_dim": 16384, "model.image.widths": 16384, "model.image.grid": 1024,
          "model.image.attention_heads": 1024, "model.text.layers": 128, "model.text.hidden": 16384,
          "model.text.heads": 1024, "model.text.intermediate": 65536}
VOCABULARY = "the tokenizer's vocabulary"  # the one size that comes from tokenizer.json, not the config


class ModelSizeError(UserError, ValueError):
    """A config that does not describe the weights beside it, or describes an absurd model."""


def check_model_sizes(model_class, cfg: Config, vocab_size: int, weights: Path, config_file: Path,
                      tokenizer_file: Path) -> None:
    """Refuse, before any memory is taken, a ``cfg`` whose model is not the one in ``weights``.

    ``model_class.build_from_config(cfg, vocab_size)`` is what will be built; ``config_file`` is
    where ``cfg`` was read and ``tokenizer_file`` where ``vocab_size`` was (named in the message).
    Raises ``ModelSizeError`` or, for a damaged weights file, ``checkpoint.CheckpointError``.
    """
    check_maxima(cfg, config_file)
    stored = ckpt.read_header(weights)
    wrong = _mismatches(_meta_tensors(model_class, cfg, vocab_size, config_file), stored)
    if not wrong:
        return
    fixes, keys = _culprits(model_class, cfg, vocab_size, stored, wrong)
    example = "; ".join(_describe(m) for m in wrong[:2])
    if VOCABULARY in fixes:
        now, saved = fixes[VOCABULARY]
        raise ModelSizeError(f"{tokenizer_file}: the tokenizer has {now} entries, but the weights in {weights} were "
                             f"saved with a vocabulary of {saved} ({example}). Put back the tokenizer saved with "
                             "these weights.")
    if fixes:
        key, (now, saved) = next(iter(fixes.items()))
        raise ModelSizeError(f"{config_file}: {key} is {now}, but the weights in {weights} were saved with {saved} "
                             f"({example}). Set it back to {saved}, or put the weights saved with this config beside "
                             "it.")
    raise ModelSizeError(
        f"{config_file}: the model it describes is not the one in {weights}: {len(wrong)} tensor(s) differ ({example}); "
        f"the setting(s) that size them: {', '.join(keys) or 'none found'}. Restore {config_file.name} as it was "
        "saved with these weights, or pass the folder whose config matches them.")


def check_maxima(cfg: Config, config_file: Path) -> None:
    """``config.validate``'s ranges and the :data:`MAXIMA`; ``ModelSizeError`` naming the key and file."""
    try:
        validate(cfg)
    except ConfigError as err:
        raise ModelSizeError(f"{config_file}: {err}; the file was edited or damaged: restore it") from err
    flat = flatten(to_dict(cfg))
    for key, most in MAXIMA.items():
        values = flat[key] if isinstance(flat[key], list) else [flat[key]]
        if max(values) > most:
            raise ModelSizeError(f"{config_file}: {key}={flat[key]} is larger than any model this package builds "
                                 f"(at most {most}); the file was edited or damaged: restore it, or save the "
                                 "model again")


def _meta_tensors(model_class, cfg: Config, vocab_size: int, config_file: Path | None) -> dict:
    """``{name: (kind, shape, tensor id)}`` of the model ``cfg`` describes, built without storage;
    tied names share a tensor id. None when ``cfg`` cannot be built and ``config_file`` is None."""
    try:
        with torch.device("meta"):
            model = model_class.build_from_config(cfg, vocab_size)
    except (ValueError, TypeError) as err:  # the towers refuse sizes that do not fit together
        if config_file is None:
            return None
        raise ModelSizeError(f"{config_file}: the model it describes cannot be built ({err}); the file was edited "
                             "or damaged: restore it") from err
    return {name: (_kind_of_torch(t.dtype), tuple(t.shape), id(t))
            for name, t in model.state_dict(keep_vars=True).items()}


def _kind_of_torch(dtype: torch.dtype) -> str:
    return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point else "integer"


def _kind_of_header(dtype: str) -> str:
    """A safetensors dtype name (F32, BF16, I64, U8, BOOL, F8_E4M3...) -> bool / float / integer."""
    return "bool" if dtype == "BOOL" else "float" if dtype.startswith(("F", "BF")) else "integer"


def _mismatches(expected: dict, stored: dict) -> list[tuple[str, tuple | None, tuple | None]]:
    """``(name, (dtype, shape) in the file or None, (kind, shape) from the config or None)`` for every
    tensor that differs. A file may lack the second name of a tied tensor (``checkpoint.save_weights``
    writes each tie once); a float tensor stored in another float precision loads (it is cast), so
    only the kind (float, integer, bool) of the dtypes is compared."""
    wrong = []
    for name, (dtype, shape) in stored.items():
        if name not in expected or (_kind_of_header(dtype), shape) != expected[name][:2]:
            wrong.append((name, (dtype, shape), expected[name][:2] if name in expected else None))
    ties: dict[int, list[str]] = {}
    for name, (_, _, tensor) in expected.items():
        ties.setdefault(tensor, []).append(name)
    wrong += [(names[0], None, expected[names[0]][:2]) for names in ties.values() if not any(n in stored for n in names)]
    return wrong


def _describe(mismatch: tuple) -> str:
    name, in_file, from_config = mismatch
    if from_config is None:
        return f"{name} {list(in_file[1])} is in the file, not in the model the config describes"
    if in_file is None:
        return f"{name} {list(from_config[1])} is in the model the config describes, not in the file"
    return f"{name}: {in_file[0]} {list(in_file[1])} in the file, {from_config[0]} {list(from_config[1])} from the config"


def _culprits(model_class, cfg: Config, vocab_size: int, stored: dict, wrong: list):
    """``({key: (value, saved value)}, keys)``: the size settings whose change makes every tensor
    agree (with the value that does), and those whose change at least makes fewer tensors differ."""
    fixes, keys = {}, []
    for key, now, trials in _trials(cfg, vocab_size, wrong):
        value, count = now, len(wrong)
        while trials:
            best_count, best = min((_count_after(model_class, cfg, vocab_size, stored, key, v), v) for v in trials)
            if best_count >= count:
                break
            count, value, trials = best_count, best, [v for v in (2 * best - value,) if best_count and v >= 1]
        if count == 0:
            fixes[key] = (now, value)
        if count < len(wrong):
            keys.append(key)
    return fixes, keys


def _trials(cfg: Config, vocab_size: int, wrong: list):
    """``(key, value, values to try)`` for every size setting: where a tensor's shape differs, the
    file's size in place of the config's; where names differ, one more and one less, followed on in
    the direction that helps (a layer count)."""
    swaps: dict[int, set[int]] = {}
    for _, in_file, from_config in wrong:
        if in_file and from_config and len(in_file[1]) == len(from_config[1]):
            for saved, now in zip(in_file[1], from_config[1], strict=True):
                if saved != now:
                    swaps.setdefault(now, set()).add(saved)
    names_differ = any(in_file is None or from_config is None for _, in_file, from_config in wrong)
    settings = [(VOCABULARY, vocab_size)]
    for key, value in flatten(to_dict(cfg)).items():
        if key.startswith("model.") and isinstance(value, list) and all(type(v) is int for v in value):
            settings += [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        elif key.startswith("model.") and type(value) is int:
            settings.append((key, value))
    for key, value in settings:
        steps = {value - 1, value + 1} if names_differ else set()
        yield key, value, sorted(v for v in swaps.get(value, set()) | steps if v >= 1)


def _count_after(model_class, cfg: Config, vocab_size: int, stored: dict, key: str, value: int) -> int:
    """How many tensors differ once ``key`` is set to ``value`` (a build that fails: all of them)."""
    if key == VOCABULARY:
        vocab_size = value
    else:
        name, _, index = key.partition("[")
        if index:
            items = list(flatten(to_dict(cfg))[name])
            items[int(index[:-1])] = value
            value = items
        try:
            cfg = apply_override(cfg, f"{name}={value}")
        except ConfigError:
            return len(stored) + 1
    expected = _meta_tensors(model_class, cfg, vocab_size, None)
    return len(stored) + 1 if expected is None else len(_mismatches(expected, stored))
