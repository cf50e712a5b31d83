"""The one device and precision helper of the package and notebooks. Taught in notebooks 00 and 08.

Device: CUDA, then MPS, then CPU. Precision: bf16 autocast where the GPU supports it, else fp16
with a GradScaler, plain fp32 on the CPU (a null context). Pinned, non-blocking copies on CUDA only.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .config import PRECISIONS, ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit name is checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r}: torch sees no CUDA GPU; use train.device=cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name!r}: MPS is not available; use train.device=cpu or auto")
    return device


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """``fp32`` on CPU/MPS; on CUDA ``bf16`` when supported, else ``fp16``."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: use auto, fp32, bf16 or fp16")
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device: torch.device, precision: str):
    """Autocast for bf16/fp16, a null context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def make_grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a batch; non-blocking (from pinned memory) only on CUDA."""
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


def as_numpy(x) -> np.ndarray:
    """A tensor (any device, any float dtype; detached, as float32) or an array-like -> numpy array."""
    return x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def describe(device: torch.device, precision: str) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda ({name}), precision {precision}"
    return f"{device.type}, precision {precision}"
