"""Checkpoints as safetensors + JSON: resumable, atomic, and never unpickled.

Taught in notebook 08. A checkpoint is a folder ``<run>/checkpoints/step_000100/`` holding

- ``model.safetensors``  the weights (what evaluation loads);
- ``trainer.safetensors`` every tensor of the trainer's state: optimizer moments, RNG states;
- ``trainer.json``       everything else: step, data position, optimizer structure, scheduler and
  grad-scaler state, python/numpy RNG scalars, the resolved config, and the size and sha256 of
  the two tensor files.

``trainer.json`` is written last (each file through ``joimternet_lite.atomic``), so it is the commit
marker: a folder without it, or whose files do not match it, is half-written and is never loaded
(``latest_checkpoint`` passes over it, ``load_checkpoint`` refuses it). Only finite weights are
written, a write that fails (a full disk) removes its folder and says so, and nothing here calls
``pickle`` or ``torch.load``. How a run resumes from these folders is mapped in ``training/resume.py``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file

from .atomic import atomic_path, atomic_write_text
from .errors import UserError

FORMAT_VERSION = 1
MODEL_FILE, TENSORS_FILE, STATE_FILE = "model.safetensors", "trainer.safetensors", "trainer.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (a full disk, no permission); its folder is removed."""


class NonFiniteWeightsError(CheckpointError):
    """Weights holding NaN or Inf: never written, so every checkpoint is a state training can go on from."""


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


# ---------------------------------------------------------------- RNG state

def rng_snapshot() -> tuple[dict[str, torch.Tensor], dict]:
    """Torch (CPU and CUDA), numpy and python RNG states, split into tensors and JSON scalars."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, list(py_state), py_gauss]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = meta["python"]
    random.setstate((version, tuple(py_state), py_gauss))


# ---------------------------------------------------------------- optimizer state

def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state dict -> (tensors keyed ``optim.<param>.<name>``, JSON structure)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------- save

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Write ``model``'s weights to ``path`` (safetensors), each tied tensor once, byte-reproducibly.

    ``safetensors.torch.save_model`` records each dropped tied name as a metadata key, and safetensors
    writes metadata keys in a random order: two saves of one state would differ in their sha256.
    ``load_model`` re-ties from the model's own sharing and needs no such record.
    """
    tensors, seen = {}, set()
    for name, tensor in model.state_dict().items():
        where = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and where in seen:
            continue  # a tied copy: the same memory under a second name
        seen.add(where)
        tensors[name] = tensor.contiguous()
    save_file(tensors, str(path), metadata={"format": "joimternet_lite"})


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, *,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None, scaler=None,
                    progress: dict | None = None, rng: tuple[dict, dict] | None = None,
                    config: dict | None = None, vocab_size: int | None = None, keep: int = 0) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the newest ``keep`` (0: keep all).

    ``progress`` holds the JSON-able trainer position (epoch, batches consumed, counters); ``rng``
    a snapshot from :func:`rng_snapshot` (taken now when omitted). Returns the folder.
    """
    check_finite(model, step)
    folder = checkpoint_dir(run_dir, step)
    if folder.exists():  # a stale or half-written folder of the same step, from a killed run
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng_tensors, rng_meta = rng if rng is not None else rng_snapshot()
    optim_tensors, optim_meta = _split_optimizer(optimizer) if optimizer is not None else ({}, None)
    with _removed_on_failure(folder, MODEL_FILE), atomic_path(folder / MODEL_FILE) as tmp:
        save_weights(model, tmp)
    with _removed_on_failure(folder, TENSORS_FILE), atomic_path(folder / TENSORS_FILE) as tmp:
        save_file({**rng_tensors, **optim_tensors}, str(tmp))
    files = {name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
             for name in (MODEL_FILE, TENSORS_FILE)}
    state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "vocab_size": vocab_size,
        "progress": progress or {},
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_meta,
        "config": config,
        "files": files,
    }
    with _removed_on_failure(folder, STATE_FILE):
        atomic_write_text(folder / STATE_FILE, json.dumps(state, indent=1))
    prune_checkpoints(run_dir, keep)
    return folder


def check_finite(model: torch.nn.Module, step: int) -> None:
    """Raise ``NonFiniteWeightsError`` naming the first weight tensor that holds a NaN or Inf."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteWeightsError(
                f"{name} holds NaN or Inf at step {step}, so no checkpoint of that state is written; lower the "
                "learning rate (train.lr_image / train.lr_text) or use train.precision=fp32, then resume")


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@contextlib.contextmanager
def _removed_on_failure(folder: Path, name: str) -> Iterator[None]:
    """Turn a failed write of ``folder / name`` into ``CheckpointWriteError``; remove the folder."""
    try:
        yield
    except (OSError, SafetensorError) as err:
        shutil.rmtree(folder, ignore_errors=True)  # a half-written folder would only hold the space
        text = str(err)
        full = getattr(err, "errno", None) in _DISK_FULL or "File too large" in text or "No space left" in text
        problem = ("the disk is full. Free space on that disk, or set train.out_dir to a folder on another disk"
                   if full else f"{text}. Check that the folder is writable and the disk has space")
        raise CheckpointWriteError(f"{folder / name}: cannot write the checkpoint: {problem}; then run again "
                                   "with --resume (the older checkpoints are intact)") from err


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete complete checkpoints beyond the newest ``keep``, and half-written ones older than the newest."""
    folders = step_folders(run_dir)
    complete = [f for f in folders if _is_complete(f)]
    if not complete:
        return
    newest = step_of(complete[0])
    doomed = complete[keep:] if keep > 0 else []
    doomed += [f for f in folders if f not in complete and step_of(f) < newest]
    for f in doomed:
        shutil.rmtree(f, ignore_errors=True)


# ---------------------------------------------------------------- find and load

def step_of(folder: Path) -> int:
    return int(_STEP_DIR.match(folder.name).group(1))


def step_folders(run_dir: str | Path) -> list[Path]:
    """``step_*`` folders under ``<run_dir>/checkpoints``, newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)), key=step_of, reverse=True)


def read_state(folder: Path) -> dict:
    """``trainer.json``, after checking that it exists, parses and matches the sizes of the tensor
    files (cheap; ``load_checkpoint`` also checks their sha256); else ``CheckpointError``."""
    path = folder / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"{folder}: no {STATE_FILE}, so this checkpoint was never completed "
                              "(the run was killed while writing it). --resume passes over it; "
                              "--resume-from STEP picks another one.")
    try:
        state = json.loads(path.read_text())
        files = {name: int(info["bytes"]) for name, info in state["files"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
        problem = f"not valid JSON ({err})" if isinstance(err, json.JSONDecodeError) else \
            f"lacks the fields a checkpoint records ({type(err).__name__}: {err})"
        raise CheckpointError(f"{path}: {problem}; the checkpoint is damaged; resume from an "
                              "older one with --resume-from STEP") from err
    for name, size in files.items():
        file = folder / name
        if not file.exists() or file.stat().st_size != size:
            raise CheckpointError(f"{file}: missing or not the size {STATE_FILE} records ({size} bytes); "
                                  "the checkpoint is incomplete; resume from an older one with --resume-from STEP")
    return state


def _is_complete(folder: Path) -> bool:
    try:
        read_state(folder)
    except CheckpointError:
        return False
    return True


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``<run_dir>/checkpoints``, or None."""
    return next((f for f in step_folders(run_dir) if _is_complete(f)), None)


def _verify_hashes(folder: Path, state: dict) -> None:
    for name, info in state["files"].items():
        if _sha256(folder / name) != info["sha256"]:
            raise CheckpointError(f"{folder / name}: sha256 differs from the one in {STATE_FILE}; the file "
                                  "was modified or damaged after the checkpoint was written. Resume from an older "
                                  "checkpoint with --resume-from STEP")


def newest_verified_checkpoint(run_dir: str | Path) -> tuple[Path | None, dict | None, list[dict]]:
    """The newest checkpoint whose files match ``trainer.json`` (sizes and sha256), for evaluation.

    Returns ``(folder, state, skipped)``: its folder and ``trainer.json`` content (None, None when
    no checkpoint passes), and ``{"checkpoint": folder name, "reason": message}`` for every newer
    one passed over, so a caller can say which weights it used and why.
    """
    skipped = []
    for folder in step_folders(run_dir):
        try:
            state = read_state(folder)
            _verify_hashes(folder, state)
        except CheckpointError as err:
            skipped.append({"checkpoint": folder.name, "reason": " ".join(str(err).split())})
            continue
        except (KeyError, TypeError) as err:
            skipped.append({"checkpoint": folder.name, "reason": f"{folder / STATE_FILE}: malformed ({err!r})"})
            continue
        return folder, state, skipped
    return None, None, skipped


# safetensors' own words for a damaged header -> what happened to the file, in ours
_HEADER_PROBLEMS = {
    "file not fully covered": "its tensor data does not end where the file ends (the file was cut short, or "
                              "bytes were appended)",
    "offset for tensor": "its header gives a tensor a shape, data type or offset that the file's bytes do not hold "
                         "(a damaged header)",
    "overflow": "its header gives a tensor a shape too large to count (a damaged header)",
    "invalid header": "its header is not the JSON a safetensors file starts with",
    "header too large": "its header is larger than safetensors allows (100 MB)",
}


def read_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of the safetensors file at ``path`` from its header alone: the 8-byte
    little-endian header length, then that many bytes of JSON. No tensor data is read, so a config or
    a header that claims a huge tensor costs nothing. Raises ``CheckpointError`` naming the file when
    it is not a whole safetensors file (cut short, cut inside its header, a damaged header)."""
    path = Path(path)
    if not path.is_file():  # a FIFO would block the read below
        raise CheckpointError(f"{path}: no such weights file (or not a regular file); pass the model's "
                              f"{MODEL_FILE} or the folder that holds it")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise _damaged(path, f"{size} bytes, too short for a safetensors file")
    length = int.from_bytes(head, "little")
    if 8 + length > size:
        raise _damaged(path, f"its header length field says {length} bytes, but the file holds {size} bytes in all "
                             "(it was cut inside its header, or is not a safetensors file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}
            return {k: (s.get_dtype(), tuple(s.get_shape())) for k, s in slices.items()}
    except SafetensorError as err:
        said = " ".join(str(err).split())
        raise _damaged(path, next((ours for theirs, ours in _HEADER_PROBLEMS.items() if theirs in said),
                                  f"safetensors cannot read its header ({said})")) from err


def _damaged(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a whole safetensors file: {problem}. The file is damaged: copy or download "
                          "it again, or save the model again (a checkpoint: resume from an older one with "
                          "--resume-from STEP)")


def check_compatible(path: str | Path, model: torch.nn.Module, vocab_size: int | None = None) -> None:
    """Raise ``CheckpointError`` naming ``path`` when its tensors do not fit ``model``."""
    path = Path(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    stored = {k: shape for k, (_, shape) in read_header(path).items()}
    wrong = [f"{k}: file {stored[k]} vs model {expected[k]}" for k in stored if k in expected
             and stored[k] != expected[k]]
    unknown = sorted(set(stored) - set(expected))
    if wrong or unknown:
        vocab = f" This model has a vocabulary of {vocab_size} words." if vocab_size is not None else ""
        raise CheckpointError(
            f"{path} does not fit this model (another vocabulary or model size).{vocab} Mismatched tensors: "
            f"{'; '.join(wrong[:5]) or 'none'}; unknown tensors: {unknown[:5] or 'none'}. Load it with the "
            "config.yaml and tokenizer/ saved beside the checkpoints of the run that wrote it.")


def load_weights(path: str | Path, model: torch.nn.Module, vocab_size: int | None = None) -> None:
    """Load ``model.safetensors`` (or a checkpoint folder holding it) into ``model``, strictly."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"{file}: no such weights file; pass a checkpoint folder or a .safetensors file")
    check_compatible(file, model, vocab_size)
    missing, unexpected = load_model(model, str(file), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{file}: tensors missing from the file {sorted(missing)[:5]}; "
                              "it was written by another model. Use the config of the run that wrote it.")


def load_checkpoint(folder: str | Path, model: torch.nn.Module, *, optimizer=None, scheduler=None, scaler=None,
                    vocab_size: int | None = None) -> dict:
    """Restore weights and (when given) optimizer, scheduler and scaler from ``folder``.

    Returns ``{"step", "progress", "rng": (tensors, meta), "config"}``; the caller restores the RNG
    with :func:`restore_rng` at the moment the data stream is back in place.
    """
    folder = Path(folder)
    state = read_state(folder)
    _verify_hashes(folder, state)
    if vocab_size is not None and state.get("vocab_size") not in (None, vocab_size):
        raise CheckpointError(f"{folder / STATE_FILE}: written with a vocabulary of {state['vocab_size']} words, "
                              f"but this model has {vocab_size}. Use the tokenizer/ saved with that run.")
    load_weights(folder / MODEL_FILE, model, vocab_size)
    tensors = load_file(str(folder / TENSORS_FILE))
    if optimizer is not None:
        optimizer.load_state_dict(_join_optimizer(tensors, state["optimizer"]))
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return {"step": state["step"], "progress": state["progress"], "rng": (rng_tensors, state["rng"]),
            "config": state["config"]}
