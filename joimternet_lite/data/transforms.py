"""Image transforms (torchvision v2). Taught in notebook 02.

Input: a 2-D float32 array in [0, 1] (``read_image``) or a uint8 array (the training cache).
Output: a (1, S, S) float tensor normalised to [-1, 1], as the authors' ``Normalize(0.5, 0.5)``.

- train: random rotation, random resized crop, brightness/contrast jitter;
- eval: deterministic resize of the shorter side to S and a centre crop, so that for square
  images (SynthCXR, the cache) eval pixels line up with ground-truth masks resized to S.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) uint8 or float array -> (1, H, W) float32 tensor in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image))
    if t.dtype == torch.uint8:
        return t.unsqueeze(0).float().div_(255.0)
    return t.unsqueeze(0).float()


def build_transforms(image_size: int, train: bool, rotation: float = 10.0, crop_scale: float = 0.85,
                     jitter: float = 0.2) -> v2.Compose:
    """The train or eval pipeline for (1, H, W) tensors in [0, 1]."""
    if train:
        steps = [
            v2.RandomRotation(rotation),
            v2.RandomResizedCrop(image_size, scale=(crop_scale, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.ColorJitter(brightness=jitter, contrast=jitter),
        ]
    else:
        steps = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose([*steps, v2.Normalize(mean=[0.5], std=[0.5])])
