"""``python -m joimternet_lite env``: what a bug report needs. Taught in notebook 00."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "torchvision", "transformers", "tokenizers", "datasets", "pydicom", "numpy",
            "scikit-learn", "safetensors", "matplotlib", "joimternet-lite")


def environment_report() -> dict:
    import torch

    from ..course import data_dir
    from ..device import pick_device, resolve_precision

    device = pick_device("auto")
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "precision": resolve_precision(device),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "bf16_supported": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        "data_dir": str(data_dir()),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", "0"),
        "smoke_mode": os.environ.get("JOIMTERNET_SMOKE", "0"),
    }
    for name in PACKAGES:
        try:
            report[f"version:{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            report[f"version:{name}"] = "not installed"
    return report


def print_environment() -> None:
    for key, value in environment_report().items():
        print(f"{key:28s} {value}")
