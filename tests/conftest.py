"""Test-wide settings: offline hub, one torch thread (small tensors run faster and more
reproducibly on one thread than on two cores shared with other processes)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)
