"""Lateral SynthCXR films, for the real-layout writers only (:mod:`.real_layouts`).

Taught in notebook 12. Real OpenI and MIMIC-CXR studies often carry a lateral film beside the
frontal one, and the real-data parsers must filter views; SynthCXR itself is frontal only, so the
writers add a plain lateral film (body, lung, heart, spine; no findings) to about 30 % of studies.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .primitives import check_size, ellipse, grid, ramp

LATERAL_FRACTION = 0.3  # studies that get an extra lateral film in the real-layout writers


def render_lateral(index: int, seed: int = 0, image_size: int = 256) -> np.ndarray:
    """A plain lateral film for study ``index`` (uint8 (S, S)): used only by the real-layout writers."""
    check_size(image_size)
    rng = np.random.default_rng([seed, index, 1])
    x, y = grid(image_size)
    u, v = (x - 0.5) / rng.uniform(0.88, 1.0), y - 0.5 + rng.normal(0, 0.01)
    body = ramp(1.0 - ellipse(u, v, 0.0, 0.1, 0.36, 0.62), 0.05)
    lung = ramp(1.0 - ellipse(u, v, 0.02, -0.02, 0.26, 0.34), 0.08) * ramp(0.2 + 0.3 * u - v, 0.03)
    heart = ramp(1.0 - ellipse(u, v, -0.12, 0.14, 0.13, 0.12), 0.1)
    spine = ramp(0.04 - np.abs(u - 0.3 + 0.1 * v), 0.01) * (0.8 + 0.2 * np.cos(2 * np.pi * v / 0.06))
    density = 0.55 * body - 0.3 * lung * (1 - heart) + 0.12 * spine * body
    density += 0.02 * rng.standard_normal(density.shape, dtype=np.float32)
    return (np.clip(density * 1.55, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def has_lateral(study: str) -> bool:
    """Whether the real-layout writers give ``study`` an extra lateral film (stable per id)."""
    digest = hashlib.sha256(study.encode()).digest()
    return digest[0] < 256 * LATERAL_FRACTION
