"""Frontal or lateral from the pixels alone, for OpenI sources without ``indiana_projections.csv``.

Taught in notebook 12. Two cues that hold on real films, both read from the column profile of the
upper chest (rows 1/8 .. 5/8 of a 64 x 64 copy; the copy is squashed, as the profile only needs
columns):

- ``peak``: a frontal film has a bright mediastinum and spine between two dark lung fields. The
  profile is z-scored (so exposure and contrast do not matter) and the best centre position
  ``c`` in the middle quarter scores ``mean(profile[c-3 .. c+3]) - max(left lung, right lung)``.
  A lateral film has one dark lung field and no such peak.
- ``mirror``: a frontal profile is near mirror-symmetric about that centre; the correlation of
  the left side with the mirrored right side.

The decision is a linear score on these two features whose weights are fitted on SynthCXR
frontal and lateral films (:func:`fit_view_classifier`, Fisher's linear discriminant), so the
real films used to measure it were not used to set it. ``bench/view_accuracy.py`` prints its
accuracy on real OpenI films.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SMALL = 64  # side of the working copy
_ROWS = slice(8, 40)  # upper chest: lungs and mediastinum, above the diaphragm
_CENTRES = range(24, 41)  # where the mediastinum may sit (patients are not always centred)
_HALF_PEAK, _LUNG_NEAR, _LUNG_FAR = 3, 8, 16  # columns, at SMALL = 64
_MIRROR_SPAN = 22

# Fitted by fit_view_classifier(*synth_training_films(200)); the test refits and compares.
VIEW_WEIGHTS = np.array([2.9795, 0.3505])
VIEW_BIAS = -3.5844


def view_features(image: np.ndarray) -> np.ndarray:
    """Features ``[peak, mirror]`` (float64 (2,)) of a film (H, W) in [0, 1]; see the module docstring."""
    small = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).resize((SMALL, SMALL), Image.BILINEAR)
    profile = np.asarray(small, dtype=np.float64)[_ROWS].mean(axis=0)
    profile = (profile - profile.mean()) / (profile.std() + 1e-6)
    peak, centre = max((_peak_at(profile, c), c) for c in _CENTRES)
    span = min(centre, SMALL - 1 - centre, _MIRROR_SPAN)
    left, right = profile[centre - span:centre], profile[centre + 1:centre + 1 + span][::-1]
    mirror = float(np.corrcoef(left, right)[0, 1]) if left.std() > 0 and right.std() > 0 else 0.0
    return np.array([peak, mirror])


def _peak_at(profile: np.ndarray, c: int) -> float:
    centre = profile[c - _HALF_PEAK:c + _HALF_PEAK + 1].mean()
    lungs = max(profile[c - _LUNG_FAR:c - _LUNG_NEAR].mean(), profile[c + _LUNG_NEAR + 1:c + _LUNG_FAR + 1].mean())
    return float(centre - lungs)


def view_score(image: np.ndarray) -> float:
    """Linear score of a film (H, W) in [0, 1]: > 0 frontal, < 0 lateral."""
    return float(view_features(image) @ VIEW_WEIGHTS + VIEW_BIAS)


def guess_view(image: np.ndarray) -> str:
    """``"frontal"`` or ``"lateral"`` for a film (H, W) in [0, 1]."""
    return "frontal" if view_score(image) > 0 else "lateral"


def fit_view_classifier(frontal: list[np.ndarray], lateral: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Fisher's linear discriminant on :func:`view_features`: (weights (2,), bias), frontal scoring > 0.

    The bias puts the boundary halfway between the two class means along the weights.
    """
    f = np.stack([view_features(x) for x in frontal])
    lat = np.stack([view_features(x) for x in lateral])
    scatter = np.cov(f, rowvar=False) + np.cov(lat, rowvar=False) + 1e-6 * np.eye(2)
    weights = np.linalg.solve(scatter, f.mean(0) - lat.mean(0))
    weights /= np.linalg.norm(weights) / 3.0  # scale is free; keep scores in a readable range
    bias = -float((f.mean(0) + lat.mean(0)) @ weights) / 2
    return weights, bias


def synth_training_films(n: int, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` SynthCXR frontal and ``n`` lateral films in [0, 1], each randomly cropped (80-100 % of
    each side) so the classifier does not rely on the generator's perfect centring."""
    from .synthcxr import generate_study, render_lateral  # the generator is only needed to fit

    rng = np.random.default_rng(seed)
    frontal = [_random_crop(generate_study(i, seed=seed).image, rng) for i in range(n)]
    lateral = [_random_crop(render_lateral(i, seed=seed), rng) for i in range(n)]
    return frontal, lateral


def _random_crop(film: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = film.shape
    ch, cw = int(h * rng.uniform(0.8, 1.0)), int(w * rng.uniform(0.8, 1.0))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return film[y:y + ch, x:x + cw].astype(np.float32) / 255.0


def views_line(views: list[str], decided_by: str) -> str:
    """The ``prepare`` log line saying how views were decided and how many of each."""
    counts = ", ".join(f"{views.count(v)} {v}" for v in ("frontal", "lateral", "unknown"))
    return f"views of {len(views)} images decided by {decided_by}: {counts}"
