"""Drawing primitives of SynthCXR: the pixel grid and soft shapes, vectorised over the whole image.

Taught in notebook 01. Every function returns float32 arrays of shape (S, S), S = ``image_size``
(checked by :func:`check_size`); coordinates are the caller's, usually the patient coordinates
``(u, v)`` of :class:`~.anatomy.Chest`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from ...config import SYNTH_SIZES

MIN_SIZE, MAX_SIZE = int(SYNTH_SIZES.low), int(SYNTH_SIZES.high)


def check_size(image_size: int) -> None:
    if not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size={image_size} is outside {MIN_SIZE}..{MAX_SIZE} px; pick a size in that range")


@lru_cache(maxsize=4)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], x to the right and y down, float32 (S, S) each."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(t, t)


def ramp(x: np.ndarray, width: float) -> np.ndarray:
    """Soft step: 0 for x < -width/2, 1 for x > width/2 (cheaper than a sigmoid)."""
    out = x * (1.0 / width)
    out += 0.5
    return np.clip(out, 0.0, 1.0, out=out)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise (S, S) of unit-ish amplitude: a cells x cells grid, bicubic-upsampled."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))


def _segment_distance(u: np.ndarray, v: np.ndarray, p0: tuple[float, float],
                      p1: tuple[float, float]) -> np.ndarray:
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(u - p0[0] - t * du, v - p0[1] - t * dv)


def polyline(u: np.ndarray, v: np.ndarray, points: list[tuple[float, float]], half_width: float,
             edge: float) -> np.ndarray:
    """A soft line of ``half_width`` through ``points``: 1 on it, falling to 0 over ``edge``."""
    dist = np.min([_segment_distance(u, v, a, b) for a, b in zip(points[:-1], points[1:], strict=False)], axis=0)
    return ramp(half_width - dist, edge)


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float,
            angle: float = 0.0) -> np.ndarray:
    """Normalised radius (1 on the ellipse) of an ellipse turned by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    du, dv = u - cu, v - cv
    return np.sqrt(((du * c + dv * s) / a) ** 2 + ((-du * s + dv * c) / b) ** 2)
