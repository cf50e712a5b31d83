"""SynthCXR: procedurally drawn frontal chest radiographs with reports written from the same truth.

Taught in notebook 01. Every study is a pure function of ``(seed, index, image_size, difficulty)``:
its random generator is ``numpy.random.default_rng([seed, index])``, so a process pool gives the
same bytes as one process, and any study can be redrawn alone (:func:`generate_study`).

Geometry. Images are square, ``image_size`` px (128-1024). Drawing happens in *patient
coordinates* ``(u, v)``: ``u`` runs from the image left (the patient's RIGHT, as on a real frontal
film) to the image right (patient's LEFT), ``v`` from top to bottom, both about -0.5..0.5 and
turned, scaled and shifted per patient. Anatomy: body outline and shoulders, two lungs whose bases
are the diaphragm domes (the right one higher) meeting the lateral walls in sharp costophrenic
angles, heart (two thirds left of midline), mediastinum with aortic knob and trachea, spine,
posterior ribs, clavicles, hilar vessel markings and a gastric bubble. Pixel value follows tissue
density: air black, bone and devices white.

Findings are drawn as density changes blended into that anatomy and its noise, where they occur on
real films: cardiomegaly (wider heart), enlarged cardiomediastinum (wider upper mediastinum),
pleural effusion (basal fluid with a meniscus that blunts the costophrenic angle), pneumothorax
(lucent apical-lateral rim without vessel markings, thin pleural line), lobar consolidation,
nodule, mass, plate-like atelectasis, bilateral perihilar edema, support devices (endotracheal
and enteric tubes, central line, pacemaker). How visible they are is set by :class:`Difficulty`.

Reports have a FINDINGS and an IMPRESSION section. Wording varies (synonyms, sentence order,
articles), absent findings are negated at random ("No pleural effusion."), about one finding in
eight is hedged ("Possible ..."), normal studies reuse a few fixed reports as real ones do.
Decision: the training ``text`` is ``findings + " " + impression``; every finding phrase of the
ground truth is in the FINDINGS part (the impression may repeat it), reports stay under 100 words.

Labels follow the CheXpert labeler's conventions: 1 named as present, -1 hedged, 0 negated, None
not mentioned; "No Finding" is 1 when no pathology is 1 or -1 (support devices do not count) and
blank otherwise. Ground truth per finding (``findings_gt``): type, label, side (``right`` = patient
right = image left, ``left``, ``bilateral`` or None), zone, a mask and its box in [0, 1] image
fractions, and the character spans and word indices (``tokenizer.split_words``) of the phrase and
of its head word in ``text``.

On disk (:func:`generate_synthcxr`): ``images/<id>.png`` (8-bit grey), one 1-bit PNG per finding
mask ``masks/<id>_<k>.png``, and the manifest (``schema.save_manifest``). Images and masks are
written to a staging folder and moved into place, so an interrupted run leaves no half dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..atomic import atomic_write_text
from .schema import CHEXPERT_LABELS, SPLITS, empty_labels, save_manifest
from .tokenizer import split_words

MIN_SIZE, MAX_SIZE = 128, 1024
DEMO_NUM_STUDIES, DEMO_SEED = 2000, 0
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
NORMAL_FRACTION = 0.35
HEDGE_PROBABILITY = 0.12
DEVICE_PROBABILITY = 0.18
LATERAL_FRACTION = 0.3  # studies that get an extra lateral film in the real-layout writers

# Finding type -> relative frequency among abnormal studies (1-3 pathologies each).
FINDING_WEIGHTS = {
    "effusion": 0.19, "consolidation": 0.17, "atelectasis": 0.12, "cardiomegaly": 0.14,
    "nodule": 0.08, "mass": 0.04, "pneumothorax": 0.09, "edema": 0.09, "enlarged_cardiomediastinum": 0.08,
}
DEVICE_TYPES = ("endotracheal_tube", "enteric_tube", "central_line", "pacemaker")
# Finding type -> visibility factor of the default Difficulty (see its docstring).
DEFAULT_VISIBILITY = {
    "effusion": 3.5, "pneumothorax": 3.0, "consolidation": 2.5, "atelectasis": 2.5, "nodule": 2.5, "mass": 2.0,
    "edema": 0.6, "cardiomegaly": 0.6, "enlarged_cardiomediastinum": 0.6,
    **{kind: 1.0 for kind in DEVICE_TYPES},
}
PATHOLOGY_LABELS = tuple(n for n in CHEXPERT_LABELS if n not in ("No Finding", "Support Devices"))


@dataclass(frozen=True)
class Difficulty:
    """How hard findings are to see. 1.0 everywhere is "clearly visible to a reader".

    - ``contrast``: multiplies the density a finding adds or removes;
    - ``size``: multiplies finding extents (effusion height, blob radii);
    - ``blur``: multiplies the width of finding edges (higher = softer, harder);
    - ``anatomy``: strength of ribs, vessel markings and noise the findings are blended with;
    - ``visibility``: per finding type, a further factor on its density change (for the heart and
      the mediastinum: on how much they enlarge). Types not listed get 1.0.

    The defaults are calibrated (docs/DECISIONS.md, "SynthCXR difficulty") so that a linear probe
    on the features of a randomly initialised network stays at or below 0.75 mean AUROC while a
    pre-trained one can pass 0.85: the findings a random network already sees through global
    pooling (a big heart, a wide mediastinum, diffuse edema) are turned down, the focal lung
    findings turned up. Measured with ``make demo`` (``demo_cpu``, 128 px, test split): 0.689
    untrained against 0.852 trained.
    """

    contrast: float = 0.55
    size: float = 1.0
    blur: float = 1.0
    anatomy: float = 1.0
    visibility: dict = field(default_factory=lambda: dict(DEFAULT_VISIBILITY))

    def __post_init__(self):
        for name in ("contrast", "size", "blur", "anatomy"):
            if not 0.0 < getattr(self, name) <= 5.0:
                raise ValueError(f"Difficulty.{name}={getattr(self, name)} must lie in (0, 5]")
        unknown = set(self.visibility) - set(DRAWERS)
        if unknown:
            raise ValueError(f"Difficulty.visibility names unknown finding types {sorted(unknown)}; "
                             f"known: {sorted(DRAWERS)}")
        for kind, factor in self.visibility.items():
            if not 0.0 < factor <= 5.0:
                raise ValueError(f"Difficulty.visibility[{kind!r}]={factor} must lie in (0, 5]")

    def of(self, kind: str) -> float:
        return self.visibility.get(kind, 1.0)


@dataclass
class SynthStudy:
    """One study in memory. Arrays are (S, S); ``masks[k]`` belongs to ``findings_gt[k]``."""

    study_id: str
    image: np.ndarray                      # uint8 (S, S)
    anatomy: dict[str, np.ndarray]         # bool (S, S): body, lung_right, lung_left, lungs, heart, mediastinum
    masks: list[np.ndarray]                # bool (S, S), one per finding
    findings: str
    impression: str
    text: str
    labels: dict[str, int | None]
    findings_gt: list[dict] = field(default_factory=list)  # without mask_path (added when written)


# ----------------------------------------------------------------------------------------------
# Drawing primitives (vectorised over the whole grid)


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], x to the right and y down, float32 (S, S) each."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(t, t)


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    """Soft step: 0 for x < -width/2, 1 for x > width/2 (cheaper than a sigmoid)."""
    out = x * (1.0 / width)
    out += 0.5
    return np.clip(out, 0.0, 1.0, out=out)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise (S, S) of unit-ish amplitude: a cells x cells grid, bicubic-upsampled."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))


def _segment_distance(u, v, p0, p1) -> np.ndarray:
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(u - p0[0] - t * du, v - p0[1] - t * dv)


def _polyline(u, v, points, half_width: float, edge: float) -> np.ndarray:
    dist = np.min([_segment_distance(u, v, a, b) for a, b in zip(points[:-1], points[1:], strict=False)], axis=0)
    return _ramp(half_width - dist, edge)


def _ellipse(u, v, cu, cv, a, b, angle=0.0) -> np.ndarray:
    """Normalised radius (1 on the ellipse) of an ellipse turned by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    du, dv = u - cu, v - cv
    return np.sqrt(((du * c + dv * s) / a) ** 2 + ((-du * s + dv * c) / b) ** 2)


# ----------------------------------------------------------------------------------------------
# Patient and anatomy


@dataclass
class _Patient:
    cx: float
    cy: float
    scale: float
    angle: float
    width: float          # chest width factor
    ctr: float            # cardiothoracic ratio
    dome_right: float     # v of the dome tops
    dome_left: float
    mediastinum: float    # half-width of the upper mediastinum
    exposure: float
    gamma: float
    noise: float


def _sample_patient(rng: np.random.Generator) -> _Patient:
    return _Patient(
        cx=0.5 + rng.normal(0, 0.015), cy=0.5 + rng.normal(0, 0.015), scale=rng.uniform(0.86, 1.0),
        angle=math.radians(rng.normal(0, 2.0)), width=rng.uniform(0.92, 1.06), ctr=rng.uniform(0.38, 0.46),
        dome_right=(dome := rng.uniform(0.12, 0.17)), dome_left=dome + rng.uniform(0.015, 0.035), mediastinum=rng.uniform(0.048, 0.058),
        exposure=rng.uniform(0.85, 1.15), gamma=rng.uniform(0.8, 1.2), noise=rng.uniform(0.012, 0.03),
    )


class _Chest:
    """Anatomy of one patient on one grid; finding drawers read its fields and coordinates."""

    def __init__(self, p: _Patient, size: int):
        self.p, self.size = p, size
        x, y = _grid(size)
        c, s = math.cos(p.angle), math.sin(p.angle)
        self.u = ((x - p.cx) * c + (y - p.cy) * s) / p.scale
        self.v = (-(x - p.cx) * s + (y - p.cy) * c) / p.scale
        self.px = 1.0 / (size * p.scale)          # one pixel in patient units
        self.edge = max(0.012, 2.5 * self.px)     # anatomical edge softness
        self.half_width = 0.39 * p.width          # thorax half-width (lateral lung walls)
        self._lungs()
        domes = np.where(self.u < 0, self.dome(-1, self.u), self.dome(1, self.u))
        self.above_domes = _ramp(domes - self.v, self.edge)
        self._heart()
        self._mediastinum()
        self.body = _body(self)

    def lung_centre(self, sgn: int) -> float:
        return sgn * 0.205 * self.p.width

    def dome(self, sgn: int, u) -> np.ndarray:
        top = self.p.dome_right if sgn < 0 else self.p.dome_left
        return top + 4.2 * (u - self.lung_centre(sgn)) ** 2

    def _lung(self, sgn: int):
        u, v = self.u, self.v
        a0 = 0.185 * self.p.width
        a = a0 * (0.62 + 0.38 * np.clip((v + 0.37) / 0.45, 0.0, 1.0))  # narrower apex
        f = ((u - self.lung_centre(sgn)) / a) ** 4 + ((v - 0.01) / 0.38) ** 2
        below = self.dome(sgn, u) - v
        soft = _ramp(1.0 - f, 0.12) * _ramp(below, self.edge)
        return f, soft, (f < 1.0) & (below > 0) & ((u < 0) if sgn < 0 else (u > 0))

    def _lungs(self):
        self.lung_f, self.lung_soft, self.lung_mask = {}, {}, {}
        for side, sgn in (("right", -1), ("left", 1)):
            self.lung_f[side], self.lung_soft[side], self.lung_mask[side] = self._lung(sgn)

    def _heart(self, enlarge: float = 1.0):
        p = self.p
        a = p.ctr * self.half_width * enlarge
        b = 0.115 * math.sqrt(enlarge)
        self.heart_r = _ellipse(self.u, self.v, 0.2 * a, 0.125 + 0.03 * (enlarge - 1), a, b, math.radians(-15))
        # The heart's lower border merges with the diaphragm, as on a real film.
        self.heart_soft = _ramp(1.0 - self.heart_r, 0.06) * self.above_domes
        self.heart_mask = (self.heart_r < 1.0) & (self.above_domes > 0.5)

    def _mediastinum(self, widen: float = 1.0):
        u, v = self.u, self.v
        w = self.p.mediastinum * widen
        band = _ramp(w - np.abs(u - 0.008), self.edge) * _ramp(0.12 - v, 0.05)
        knob = _ramp(1.0 - _ellipse(u, v, 0.05 + w - 0.05, -0.17, 0.04 * widen ** 0.5, 0.035), 0.3)
        self.mediastinum_soft = np.maximum(band, knob)
        self.mediastinum_mask = (self.mediastinum_soft > 0.5) & (v > -0.36)

    def side_mask(self, side: str) -> np.ndarray:
        return self.lung_mask[side]

    def anatomy_masks(self, body: np.ndarray) -> dict[str, np.ndarray]:
        lungs = self.lung_mask["right"] | self.lung_mask["left"]
        return {"body": body, "lung_right": self.lung_mask["right"], "lung_left": self.lung_mask["left"],
                "lungs": lungs, "heart": self.heart_mask, "mediastinum": self.mediastinum_mask}


def _body(ch: _Chest) -> np.ndarray:
    u, v, w = ch.u, ch.v, ch.p.width
    torso = ((u / (0.47 * w)) ** 4 + ((v - 0.12) / 0.62) ** 4)
    shoulders = ((u / (0.52 * w)) ** 4 + ((v + 0.36) / 0.12) ** 2)
    neck = _ramp(0.085 - np.abs(u), ch.edge) * _ramp(-0.3 - v, 0.05)
    return np.maximum.reduce([_ramp(1.0 - torso, 0.08), _ramp(1.0 - shoulders, 0.2), neck])


def _ribs(ch: _Chest, rng: np.random.Generator) -> np.ndarray:
    """Posterior ribs: arcs rising from the spine then falling laterally, spacing growing downward."""
    au = np.abs(ch.u)
    w = ch.v - 1.5 * (au - 0.16) ** 2
    gaps = np.cumsum(np.linspace(0.060, 0.085, 10)) + rng.uniform(-0.01, 0.01)
    pos = -0.43 + np.concatenate([[0.0], gaps])
    phase = np.interp(w, pos, np.arange(len(pos), dtype=np.float32))
    band = _ramp(np.cos(2 * np.pi * phase) - 0.5, 0.4) * (1.0 - 0.5 * np.clip(au / ch.half_width, 0.0, 1.0))
    inside = _ramp(au - 0.04, 0.02) * _ramp(ch.half_width + 0.03 - au, 0.03)
    inside *= _ramp(w - pos[0] + 0.03, 0.02) * _ramp(pos[-1] + 0.03 - w, 0.02)
    return band * inside


def _clavicles(ch: _Chest) -> np.ndarray:
    au = np.abs(ch.u)
    centre = -0.365 - 0.10 * (au - 0.05) + 0.35 * (au - 0.2) ** 2
    return _ramp(0.017 - np.abs(ch.v - centre), ch.edge) * _ramp(au - 0.035, 0.02) * _ramp(0.36 - au, 0.04)


def _spine(ch: _Chest) -> np.ndarray:
    body = _ramp(0.034 - np.abs(ch.u), ch.edge)
    return body * (0.75 + 0.25 * np.cos(2 * np.pi * ch.v / 0.058))


def _vessels(ch: _Chest, rng: np.random.Generator) -> np.ndarray:
    """Vessel markings: a network of thin curvy ridges (zero crossings of smooth noise), strongest
    at the hila and fading to the periphery."""
    ridges = np.exp(-(_smooth_noise(rng, ch.size, 20) / 0.35) ** 2)
    dist = np.hypot(np.abs(ch.u) - 0.1, ch.v + 0.02)
    return ridges * np.exp(-dist / 0.2)


# ----------------------------------------------------------------------------------------------
# Findings: each drawer returns (density field (S, S), mask (S, S) bool) and may change the chest.

LOBES = {  # lobe -> (side, zone word, (relative lateral position -1 medial..1 lateral, v centre))
    "right upper lobe": ("right", "upper", (0.1, -0.2)),
    "right middle lobe": ("right", "middle", (-0.35, 0.06)),
    "right lower lobe": ("right", "lower", (0.35, 0.12)),
    "left upper lobe": ("left", "upper", (0.1, -0.18)),
    "lingula": ("left", "middle", (-0.2, 0.07)),
    "left lower lobe": ("left", "lower", (0.3, 0.15)),
}
ZONES_V = {"upper": -0.2, "mid": -0.03, "lower": 0.12}


def _mask_within(field: np.ndarray, region: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    peak = float(field.max())
    return (field > fraction * peak) & region if peak > 0 else np.zeros_like(region)


def _lung_point(ch: _Chest, side: str, rel: float, v: float) -> tuple[float, float]:
    sgn = -1 if side == "right" else 1
    return ch.lung_centre(sgn) + sgn * rel * 0.14 * ch.p.width, v


def _draw_effusion(ch, f, rng, d):
    sgn = -1 if f.side == "right" else 1
    height = {"small": 0.05, "moderate": 0.11, "large": 0.18}[f.size] * d.size
    t = np.clip((ch.u - ch.lung_centre(sgn)) * sgn / (0.185 * ch.p.width), -1.0, 1.0)
    cp = float(ch.dome(sgn, ch.lung_centre(sgn) + sgn * 0.17))
    top = cp - height * (0.3 + ((t + 1) / 2) ** 2)  # meniscus: higher along the lateral wall
    fill = _ramp(ch.v - top, 0.02 * d.blur) * (0.6 + 0.4 * _ramp(ch.v - top - 0.04, 0.08))
    field = 0.30 * fill * ch.lung_soft[f.side]
    return field, (fill > 0.5) & ch.lung_mask[f.side]


def _draw_pneumothorax(ch, f, rng, d):
    depth = {"small": 0.12, "moderate": 0.22, "large": 0.35}[f.size] * d.size
    lf = ch.lung_f[f.side]
    upper = _ramp(0.02 - ch.v, 0.1)
    rim = _ramp(lf - (1.0 - depth), 0.04 * d.blur) * upper * ch.lung_soft[f.side]
    pleural_line = _ramp(0.05 - np.abs(lf - (1.0 - depth)), 0.04) * upper * ch.lung_soft[f.side]
    field = -0.12 * rim + 0.10 * pleural_line
    return field, (rim > 0.5) & ch.lung_mask[f.side]


def _blob(ch, rng, cu, cv, radius, d, lumpy: float) -> np.ndarray:
    r = _ellipse(ch.u, ch.v, cu, cv, radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.6, 1.0),
                 rng.uniform(-0.5, 0.5))
    texture = 1.0 + lumpy * _smooth_noise(rng, ch.size, 12)
    return np.clip(_ramp(1.0 - r, 0.5 * d.blur) * texture, 0.0, None)


def _draw_consolidation(ch, f, rng, d):
    rel, v = LOBES[f.zone][2]
    cu, cv = _lung_point(ch, f.side, rel + rng.uniform(-0.2, 0.2), v + rng.uniform(-0.03, 0.03))
    blob = _blob(ch, rng, cu, cv, 0.075 * d.size, d, lumpy=0.45) * ch.lung_soft[f.side]
    return 0.24 * blob, _mask_within(blob, ch.lung_mask[f.side], 0.35)


def _draw_lesion(ch, f, rng, d, radius: float):
    v0 = ZONES_V[f.zone] + rng.uniform(-0.04, 0.04)
    for _ in range(20):  # pick a centre that lies inside the lung, away from its edge
        cu, cv = _lung_point(ch, f.side, rng.uniform(-0.5, 0.6), v0)
        iy = int(np.clip((cv * ch.p.scale + ch.p.cy) * ch.size, 0, ch.size - 1))
        ix = int(np.clip((cu * ch.p.scale + ch.p.cx) * ch.size, 0, ch.size - 1))
        if ch.lung_mask[f.side][iy, ix] and not ch.heart_mask[iy, ix]:
            break
    r = _ellipse(ch.u, ch.v, cu, cv, radius, radius * rng.uniform(0.85, 1.0), rng.uniform(0, 3))
    disc = _ramp(1.0 - r, 0.5 * d.blur) * (1.0 + 0.15 * _smooth_noise(rng, ch.size, 24))
    return 0.26 * disc, (disc > 0.5) & ch.lung_mask[f.side]


def _draw_nodule(ch, f, rng, d):
    return _draw_lesion(ch, f, rng, d, f.extent_mm / 1000 * 1.6 * d.size + 1.5 * ch.px)


def _draw_mass(ch, f, rng, d):
    return _draw_lesion(ch, f, rng, d, f.extent_mm / 1000 * 1.2 * d.size)


def _draw_atelectasis(ch, f, rng, d):
    sgn = -1 if f.side == "right" else 1
    cu = ch.lung_centre(sgn) + sgn * rng.uniform(-0.02, 0.06)
    cv = float(ch.dome(sgn, cu)) - rng.uniform(0.04, 0.08)
    r = _ellipse(ch.u, ch.v, cu, cv, 0.075 * d.size, 0.014 * d.size + 2 * ch.px, rng.uniform(-0.25, 0.25))
    band = _ramp(1.0 - r, 0.5 * d.blur)
    return 0.30 * band * ch.lung_soft[f.side], (band > 0.5) & ch.lung_mask[f.side]


def _draw_edema(ch, f, rng, d):
    sev = {"mild": 0.7, "moderate": 1.0, "severe": 1.3}[f.size]
    dist = np.hypot((np.abs(ch.u) - 0.11) / 1.3, ch.v + 0.0)
    haze = np.exp(-((dist / (0.13 * d.size)) ** 2)) * (1.0 + 0.35 * _smooth_noise(rng, ch.size, 16))
    lungs = ch.lung_mask["right"] | ch.lung_mask["left"]
    soft = np.maximum(ch.lung_soft["right"], ch.lung_soft["left"])
    return 0.20 * sev * haze * soft, _mask_within(haze * lungs, lungs, 0.45)


def _draw_cardiomegaly(ch, f, rng, d):
    base = {"mild": 1.25, "moderate": 1.38, "severe": 1.5}[f.size]
    enlarge = (1.0 + d.of(f.type) * (base - 1.0)) ** d.size
    ch._heart(enlarge)
    return np.zeros_like(ch.u), ch.heart_mask


def _draw_enlarged_mediastinum(ch, f, rng, d):
    base = {"mild": 1.5, "moderate": 1.75, "severe": 2.0}[f.size]
    ch._mediastinum(widen=(1.0 + d.of(f.type) * (base - 1.0)) ** d.size)
    return np.zeros_like(ch.u), ch.mediastinum_mask & (ch.v < 0.08)


def _device_path(ch, kind, rng):
    j = lambda: rng.uniform(-0.01, 0.01)  # noqa: E731
    if kind == "endotracheal_tube":
        return [(0.004 + j(), -0.55), (0.006, -0.32), (0.008, -0.2 + j())], 0.007
    if kind == "enteric_tube":
        return [(0.0, -0.55), (0.0 + j(), -0.1), (0.03, 0.15), (0.14 + j(), 0.26), (0.2, 0.28)], 0.005
    if kind == "central_line":
        return [(-0.13 + j(), -0.55), (-0.09, -0.33), (-0.04, -0.2), (-0.025 + j(), -0.03 + j())], 0.004
    gen = (0.27 + j(), -0.31 + j())
    return [gen, (0.1, -0.33), (0.0, -0.2), (-0.02, 0.02), (0.06, 0.2 + j())], 0.004


def _draw_device(ch, f, rng, d):
    points, half = _device_path(ch, f.type, rng)
    line = _polyline(ch.u, ch.v, points, half, max(0.004, 1.5 * ch.px))
    if f.type == "pacemaker":
        box = _ramp(0.045 - np.abs(ch.u - points[0][0]), ch.px * 2) * _ramp(0.03 - np.abs(ch.v - points[0][1]), ch.px * 2)
        line = np.maximum(line, box)
    line *= ch.body  # the parts outside the patient are not on the film
    return 0.45 * line, line > 0.5


DRAWERS = {
    "effusion": _draw_effusion, "pneumothorax": _draw_pneumothorax, "consolidation": _draw_consolidation,
    "nodule": _draw_nodule, "mass": _draw_mass, "atelectasis": _draw_atelectasis, "edema": _draw_edema,
    "cardiomegaly": _draw_cardiomegaly, "enlarged_cardiomediastinum": _draw_enlarged_mediastinum,
    **{kind: _draw_device for kind in DEVICE_TYPES},
}
# Geometry changes first (they move the heart/mediastinum other findings are blended with).
_DRAW_ORDER = {"cardiomegaly": 0, "enlarged_cardiomediastinum": 0}


# ----------------------------------------------------------------------------------------------
# Sampling findings and writing the report


@dataclass
class _Finding:
    type: str
    label: str
    side: str | None
    zone: str | None
    size: str
    certainty: int                # 1 present, -1 hedged
    phrase: str                   # with the head word in [brackets]
    extent_mm: float = 0.0


def _sample_finding(kind: str, rng: np.random.Generator) -> _Finding:
    side = ["right", "left"][rng.integers(2)]
    certainty = -1 if rng.random() < HEDGE_PROBABILITY and kind not in DEVICE_TYPES else 1
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    size = pick(["small", "moderate", "large"])
    severity = pick(["mild", "moderate", "severe"])
    if kind == "effusion":
        phrase = pick([f"{size} {side} pleural [effusion]", f"{size} {side} [effusion]",
                       f"{side} pleural [effusion]", f"{size} {side} basilar pleural [effusion]"])
        return _Finding(kind, "Pleural Effusion", side, "basal", size, certainty, phrase)
    if kind == "pneumothorax":
        phrase = pick([f"{size} {side} apical [pneumothorax]", f"{side} [pneumothorax]",
                       f"{size} {side} [pneumothorax]"])
        return _Finding(kind, "Pneumothorax", side, "apical", size, certainty, phrase)
    if kind == "consolidation":
        lobe = pick(list(LOBES))
        side = LOBES[lobe][0]
        head, label = pick([("consolidation", "Consolidation"), ("consolidation", "Consolidation"),
                            ("pneumonia", "Pneumonia"), ("opacity", "Lung Opacity")])
        phrase = pick([f"{lobe} [{head}]", f"focal [{head}] in the {lobe}", f"patchy {lobe} [{head}]"])
        if head == "opacity":
            phrase = pick([f"{lobe} airspace [opacity]", f"patchy airspace [opacity] in the {lobe}"])
        return _Finding(kind, label, side, lobe, size, certainty, phrase)
    if kind in ("nodule", "mass"):
        zone = pick(list(ZONES_V))
        mm = float(rng.integers(5, 10)) if kind == "nodule" else 10.0 * float(rng.integers(3, 7))
        measure = f"{int(mm)} mm" if kind == "nodule" else f"{int(mm // 10)} cm"
        phrase = pick([f"{measure} {side} {zone} lung [{kind}]", f"{side} {zone} lung [{kind}]",
                       f"{measure} [{kind}] in the {side} {zone} lung"])
        return _Finding(kind, "Lung Lesion", side, zone, size, certainty, phrase, extent_mm=mm)
    if kind == "atelectasis":
        phrase = pick([f"{side} basilar [atelectasis]", f"plate-like [atelectasis] at the {side} base",
                       f"minimal {side} basal [atelectasis]", f"subsegmental {side} lower lobe [atelectasis]"])
        return _Finding(kind, "Atelectasis", side, "basal", size, certainty, phrase)
    if kind == "edema":
        phrase = pick([f"{severity} pulmonary [edema]", f"{severity} perihilar interstitial [edema]",
                       "bilateral perihilar airspace [edema]", f"{severity} bilateral pulmonary [edema]"])
        return _Finding(kind, "Edema", "bilateral", "perihilar", severity, certainty, phrase)
    if kind == "cardiomegaly":
        phrase = pick([f"{severity} [cardiomegaly]", f"{severity} [enlargement] of the cardiac silhouette",
                       "[cardiomegaly]"])
        return _Finding(kind, "Cardiomegaly", None, "cardiac", severity, certainty, phrase)
    if kind == "enlarged_cardiomediastinum":
        phrase = pick(["widened [mediastinum]", f"{severity} widening of the [mediastinum]",
                       "enlarged cardiomediastinal [silhouette]"])
        return _Finding(kind, "Enlarged Cardiomediastinum", None, "mediastinal", severity, certainty, phrase)
    if kind == "endotracheal_tube":
        return _Finding(kind, "Support Devices", None, "trachea", "", 1, "endotracheal [tube]")
    if kind == "enteric_tube":
        return _Finding(kind, "Support Devices", None, "stomach", "", 1,
                        pick(["enteric [tube]", "nasogastric [tube]"]))
    if kind == "central_line":
        return _Finding(kind, "Support Devices", "right", "svc", "", 1,
                        pick(["right internal jugular central venous [catheter]", "right internal jugular [line]"]))
    if kind == "pacemaker":
        return _Finding(kind, "Support Devices", "left", "chest wall", "", 1,
                        pick(["left-sided [pacemaker]", "left chest wall [pacemaker]"]))
    raise ValueError(f"unknown finding type {kind!r}; known: {sorted(DRAWERS)}")


def _sample_findings(rng: np.random.Generator) -> list[_Finding]:
    if rng.random() < NORMAL_FRACTION:
        return []
    kinds = list(FINDING_WEIGHTS)
    weights = np.array(list(FINDING_WEIGHTS.values()))
    count = int(rng.choice([1, 2, 3], p=[0.55, 0.32, 0.13]))
    chosen: list[_Finding] = []
    while len(chosen) < count:
        f = _sample_finding(kinds[rng.choice(len(kinds), p=weights / weights.sum())], rng)
        # One finding per label, except effusions, which may be on both sides.
        if all(g.label != f.label or (g.type == f.type == "effusion" and g.side != f.side) for g in chosen):
            chosen.append(f)
    if rng.random() < DEVICE_PROBABILITY:
        for kind in rng.choice(DEVICE_TYPES, size=int(rng.integers(1, 3)), replace=False):
            chosen.append(_sample_finding(str(kind), rng))
    return chosen


# Normal reports repeat: a few fixed texts, each with the labels it negates.
NORMAL_FINDINGS = (
    ("The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
     ("Cardiomegaly", "Pleural Effusion", "Pneumothorax")),
    ("The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
     "No pleural effusion or pneumothorax.", ("Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax")),
    ("Heart size and mediastinal contours are normal. The lungs are clear without focal consolidation. "
     "No pleural effusion or pneumothorax.",
     ("Cardiomegaly", "Enlarged Cardiomediastinum", "Consolidation", "Pleural Effusion", "Pneumothorax")),
    ("Lungs are clear. Heart size is normal. No pneumothorax or effusion.",
     ("Cardiomegaly", "Pneumothorax", "Pleural Effusion")),
    ("No focal consolidation, pleural effusion, or pneumothorax. The heart is normal in size.",
     ("Consolidation", "Pleural Effusion", "Pneumothorax", "Cardiomegaly")),
)
NORMAL_WEIGHTS = (0.4, 0.2, 0.15, 0.15, 0.1)
NORMAL_IMPRESSIONS = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "Normal chest radiograph.", "No acute disease.")

# Negations that abnormal reports add for absent findings: (text, labels negated, labels that forbid it).
_LUNG = ("Consolidation", "Pneumonia", "Lung Opacity", "Atelectasis", "Edema", "Lung Lesion")
NEGATIONS = (
    ("No pleural effusion or pneumothorax.", ("Pleural Effusion", "Pneumothorax"), ()),
    ("There is no pleural effusion.", ("Pleural Effusion",), ()),
    ("No pneumothorax is seen.", ("Pneumothorax",), ()),
    ("No focal consolidation.", ("Consolidation",), ("Pneumonia", "Lung Opacity")),
    ("No evidence of pneumonia.", ("Pneumonia",), ("Consolidation", "Lung Opacity")),
    ("No pulmonary edema.", ("Edema",), ()),
    ("The heart size is normal.", ("Cardiomegaly",), ("Enlarged Cardiomediastinum",)),
    ("The cardiac silhouette is within normal limits.", ("Cardiomegaly",), ("Enlarged Cardiomediastinum",)),
    ("The mediastinal contours are normal.", ("Enlarged Cardiomediastinum",), ("Cardiomegaly",)),
    ("No suspicious pulmonary nodules.", ("Lung Lesion",), ()),
    ("No focal airspace opacity.", ("Lung Opacity",), _LUNG),
    ("No displaced rib fracture.", ("Fracture",), ()),
)
NEGATION_PROBABILITY = 0.35
POSITIVE_TEMPLATES = ("{P}.", "There is {a}{P}.", "{P} is noted.", "{P} is present.", "{P} is seen.")
HEDGED_TEMPLATES = ("Possible {P}.", "Questionable {P}.", "{P} cannot be excluded.", "There may be {a}{P}.")
DEVICE_TEMPLATES = ("{P} in standard position.", "{P} is in satisfactory position.", "{P} is in place.")
FILLERS = ("The lungs are otherwise clear.", "Osseous structures are intact.")
_COUNTABLE = {"effusion", "pneumothorax", "nodule", "mass", "silhouette", "mediastinum"}


def _article(phrase: str, head: str) -> str:
    if head not in _COUNTABLE or phrase.startswith("widened") or "widening" in phrase:
        return ""
    return "an " if phrase.lstrip("[")[0] in "aeiou8" else "a "


def _capitalise(sentence: str) -> str:
    """Upper-case the first character after any leading phrase/head markers."""
    i = re.match(r"(?:\x01\d+\x02)?\[?", sentence).end()
    return sentence[:i] + sentence[i:i + 1].upper() + sentence[i + 1:]


def _mark(phrase: str, k: int) -> str:
    """Wrap the phrase in markers carrying the finding index; the head word keeps its [brackets]."""
    return f"\x01{k}\x02{phrase}\x03"


def _sentence(f: _Finding, k: int, rng) -> str:
    head = re.search(r"\[(\w+)\]", f.phrase).group(1)
    templates = DEVICE_TEMPLATES if f.label == "Support Devices" else (
        POSITIVE_TEMPLATES if f.certainty == 1 else HEDGED_TEMPLATES)
    template = templates[rng.integers(len(templates))]
    return _capitalise(template.format(P=_mark(f.phrase, k), a=_article(f.phrase, head)))


def _impression(findings: list[_Finding], rng) -> str:
    items = [("Possible " if f.certainty == -1 else "") + re.sub(r"[\[\]]", "", f.phrase)
             for f in findings if f.label != "Support Devices"]
    if not items:
        return NORMAL_IMPRESSIONS[rng.integers(len(NORMAL_IMPRESSIONS))]
    if len(items) == 1:
        return _capitalise(items[0]) + "."
    return " ".join(f"{i}. {_capitalise(item)}." for i, item in enumerate(items, 1))


def _labels_for(findings: list[_Finding], negated: set[str]) -> dict[str, int | None]:
    labels = empty_labels()
    for f in findings:  # a label named twice keeps its surest mention (1 beats -1)
        labels[f.label] = max(labels[f.label] or -1, f.certainty)
    for name in negated:
        if labels[name] is None:
            labels[name] = 0
    if not any(labels[n] in (1, -1) for n in PATHOLOGY_LABELS):
        labels["No Finding"] = 1
    return labels


def _write_report(findings: list[_Finding], rng) -> tuple[str, str, set[str]]:
    """Return (marked FINDINGS text, IMPRESSION, labels negated)."""
    if not findings:
        i = int(rng.choice(len(NORMAL_FINDINGS), p=NORMAL_WEIGHTS))
        text, negated = NORMAL_FINDINGS[i]
        return text, NORMAL_IMPRESSIONS[rng.integers(len(NORMAL_IMPRESSIONS))], set(negated)
    mentioned = {f.label for f in findings}
    positives = [_sentence(f, k, rng) for k, f in enumerate(findings)]
    negations, negated = [], set()
    for i in rng.permutation(len(NEGATIONS)):
        text, labels, forbidden = NEGATIONS[i]
        blocked = mentioned | negated
        if not (set(labels) & blocked or set(forbidden) & mentioned) and rng.random() < NEGATION_PROBABILITY:
            negations.append(text)
            negated.update(labels)
    if rng.random() < 0.3:
        negations.append(FILLERS[rng.integers(len(FILLERS))])
    order = list(rng.permutation(len(positives)))
    sentences = [positives[i] for i in order]
    sentences = sentences + negations if rng.random() < 0.6 else negations + sentences
    return " ".join(sentences), _impression(findings, rng), negated


_MARKERS = re.compile(r"\x01(\d+)\x02|\x03|\[|\]")


def _resolve_markers(marked: str) -> tuple[str, dict[int, tuple[tuple[int, int], tuple[int, int]]]]:
    """Strip the phrase and head markers; return the text and {k: (phrase span, head span)}."""
    out, pos, spans = [], 0, {}
    open_k, phrase_start, head_start = None, 0, 0
    cursor = 0
    for m in _MARKERS.finditer(marked):
        out.append(marked[cursor:m.start()])
        pos += m.start() - cursor
        cursor = m.end()
        token = m.group(0)
        if m.group(1) is not None:
            open_k, phrase_start = int(m.group(1)), pos
        elif token == "[":
            head_start = pos
        elif token == "]":
            spans[open_k] = (None, (head_start, pos))
        else:
            spans[open_k] = ((phrase_start, pos), spans[open_k][1])
    out.append(marked[cursor:])
    return "".join(out), spans


def _word_indices(words, span: tuple[int, int]) -> list[int]:
    return [i for i, (_, (s, e)) in enumerate(words) if s >= span[0] and e <= span[1]]


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    s = mask.shape[0]
    return [float(xs.min()) / s, float(ys.min()) / s, float(xs.max() + 1) / s, float(ys.max() + 1) / s]


# ----------------------------------------------------------------------------------------------
# One study


def study_id(index: int) -> str:
    return f"synth-{index:06d}"


def _check_size(image_size: int) -> None:
    if not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size={image_size} is outside {MIN_SIZE}..{MAX_SIZE} px; pick a size in that range")


def _render(ch: _Chest, findings: list[_Finding], rng, d: Difficulty) -> tuple[np.ndarray, list, np.ndarray]:
    """Draw the film: returns (uint8 image (S, S), finding masks, body mask)."""
    fields, masks = [None] * len(findings), [None] * len(findings)
    for k in sorted(range(len(findings)), key=lambda k: _DRAW_ORDER.get(findings[k].type, 1)):
        fields[k], masks[k] = DRAWERS[findings[k].type](ch, findings[k], rng, d)
    body = ch.body
    lungs = np.maximum(ch.lung_soft["right"], ch.lung_soft["left"])
    vessels = _vessels(ch, rng)
    for f, density_change in zip(findings, fields, strict=True):
        if f.type == "pneumothorax":  # no lung markings beyond the pleural line
            vessels *= 1.0 - np.clip(-density_change / 0.12, 0.0, 1.0)
    not_dense = 1.0 - np.maximum(ch.heart_soft, ch.mediastinum_soft)
    density = 0.55 * body - 0.36 * lungs * not_dense
    density += 0.05 * ch.heart_soft + 0.04 * ch.mediastinum_soft
    density -= 0.10 * _ramp(0.013 - np.abs(ch.u - 0.006), ch.edge) * _ramp(-0.12 - ch.v, 0.03)  # trachea
    bubble = _ellipse(ch.u, ch.v, 0.2 * ch.p.width, float(ch.p.dome_left) + 0.06, 0.05, 0.025)
    density -= 0.12 * _ramp(1.0 - bubble, 0.4)
    a = d.anatomy
    density += a * (0.06 * _ribs(ch, rng) * body + 0.11 * _clavicles(ch) + 0.07 * _spine(ch) * body)
    density += a * 0.07 * vessels * lungs * not_dense
    density += a * 0.02 * _smooth_noise(rng, ch.size, 8) * body
    for f, density_change in zip(findings, fields, strict=True):
        strength = d.of(f.type) * (1.0 if f.label == "Support Devices" else
                                   d.contrast * (0.75 if f.certainty == -1 else 1.0))
        density += strength * density_change
    density += a * ch.p.noise * rng.standard_normal(density.shape, dtype=np.float32)
    image = np.clip(density * 1.25 * ch.p.exposure, 0.0, 1.0) ** ch.p.gamma
    return (image * 255.0 + 0.5).astype(np.uint8), masks, body > 0.5


def generate_study(index: int, seed: int = 0, image_size: int = 256,
                   difficulty: Difficulty | None = None) -> SynthStudy:
    """Draw study ``index`` of the dataset with ``seed``, entirely in memory (no files)."""
    _check_size(image_size)
    d = difficulty or Difficulty()
    rng = np.random.default_rng([seed, index])
    ch = _Chest(_sample_patient(rng), image_size)
    findings = _sample_findings(rng)
    marked, impression, negated = _write_report(findings, rng)
    image, masks, body = _render(ch, findings, rng, d)
    findings_text, spans = _resolve_markers(marked)
    text = f"{findings_text} {impression}"
    words = split_words(text)
    gt = []
    for k, f in enumerate(findings):
        phrase_span, head_span = spans[k]
        gt.append({"type": f.type, "label": f.label, "certainty": f.certainty, "side": f.side, "zone": f.zone,
                   "box": _box(masks[k]), "phrase_span": list(phrase_span), "head_span": list(head_span),
                   "phrase_words": _word_indices(words, phrase_span), "head_words": _word_indices(words, head_span)})
    return SynthStudy(study_id(index), image, ch.anatomy_masks(body), masks, findings_text, impression, text,
                      _labels_for(findings, negated), gt)


def render_lateral(index: int, seed: int = 0, image_size: int = 256) -> np.ndarray:
    """A plain lateral film for study ``index`` (uint8 (S, S)): used only by the real-layout writers."""
    _check_size(image_size)
    rng = np.random.default_rng([seed, index, 1])
    x, y = _grid(image_size)
    u, v = (x - 0.5) / rng.uniform(0.88, 1.0), y - 0.5 + rng.normal(0, 0.01)
    body = _ramp(1.0 - _ellipse(u, v, 0.0, 0.1, 0.36, 0.62), 0.05)
    lung = _ramp(1.0 - _ellipse(u, v, 0.02, -0.02, 0.26, 0.34), 0.08) * _ramp(0.2 + 0.3 * u - v, 0.03)
    heart = _ramp(1.0 - _ellipse(u, v, -0.12, 0.14, 0.13, 0.12), 0.1)
    spine = _ramp(0.04 - np.abs(u - 0.3 + 0.1 * v), 0.01) * (0.8 + 0.2 * np.cos(2 * np.pi * v / 0.06))
    density = 0.55 * body - 0.3 * lung * (1 - heart) + 0.12 * spine * body
    density += 0.02 * rng.standard_normal(density.shape, dtype=np.float32)
    return (np.clip(density * 1.55, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def has_lateral(study: str) -> bool:
    """Whether the real-layout writers give ``study`` an extra lateral film (stable per id)."""
    digest = hashlib.sha256(study.encode()).digest()
    return digest[0] < 256 * LATERAL_FRACTION


# ----------------------------------------------------------------------------------------------
# The dataset on disk


def findings_gt_features() -> list:
    """``datasets`` feature for the ``findings_gt`` column (a list of per-finding dicts)."""
    return [{
        "type": datasets.Value("string"), "label": datasets.Value("string"), "certainty": datasets.Value("int8"),
        "side": datasets.Value("string"), "zone": datasets.Value("string"),
        "box": [datasets.Value("float32")], "mask_path": datasets.Value("string"),
        "phrase_span": [datasets.Value("int32")], "head_span": [datasets.Value("int32")],
        "phrase_words": [datasets.Value("int32")], "head_words": [datasets.Value("int32")],
    }]


def assign_splits(num_studies: int, seed: int, fractions=DEFAULT_SPLIT_FRACTIONS) -> list[str]:
    """Split name per study index: exact counts, a permutation fixed by ``(seed, num_studies)``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split_fractions={fractions} must be three non-negative numbers summing to 1")
    n_train = int(round(fractions[0] * num_studies))
    n_val = int(round(fractions[1] * num_studies))
    order = np.random.default_rng([seed, num_studies, 0x5EED]).permutation(num_studies)
    splits = [""] * num_studies
    for rank, i in enumerate(order):
        splits[i] = SPLITS[0] if rank < n_train else SPLITS[1] if rank < n_train + n_val else SPLITS[2]
    return splits


def split_file_payload(num_studies: int = DEMO_NUM_STUDIES, seed: int = DEMO_SEED,
                       fractions=DEFAULT_SPLIT_FRACTIONS) -> dict:
    """The published split: study ids per split and the sha256 of their canonical JSON."""
    splits = assign_splits(num_studies, seed, fractions)
    ids = {name: [study_id(i) for i, s in enumerate(splits) if s == name] for name in SPLITS}
    digest = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()
    return {"dataset": "synthcxr", "num_studies": num_studies, "seed": seed, "fractions": list(fractions),
            "sha256": digest, "splits": ids}


def _write_study(index: int, seed: int, image_size: int, difficulty: Difficulty, staging: str) -> dict:
    """Worker: draw one study, write its PNGs into ``staging``, return its manifest record."""
    study = generate_study(index, seed, image_size, difficulty)
    Image.fromarray(study.image).save(os.path.join(staging, "images", f"{study.study_id}.png"), compress_level=1)
    for k, (mask, gt) in enumerate(zip(study.masks, study.findings_gt, strict=True)):
        gt["mask_path"] = f"masks/{study.study_id}_{k}.png"
        Image.fromarray(mask).save(os.path.join(staging, gt["mask_path"]), optimize=False)
    return {"study_id": study.study_id, "image_paths": [f"images/{study.study_id}.png"], "views": ["frontal"],
            "findings": study.findings, "impression": study.impression, "text": study.text,
            "labels": study.labels, "findings_gt": study.findings_gt}


def generate_synthcxr(out_dir: str | Path, num_studies: int = DEMO_NUM_STUDIES, image_size: int = 256,
                      seed: int = DEMO_SEED, workers: int = 2, split_fractions=DEFAULT_SPLIT_FRACTIONS,
                      difficulty: Difficulty | None = None, progress: bool = True) -> datasets.Dataset:
    """Write SynthCXR under ``out_dir`` (images/, masks/, manifest) and return the manifest.

    Output is identical for any ``workers`` (each study has its own generator). Existing
    ``images/`` and ``masks/`` folders in ``out_dir`` are replaced.
    """
    _check_size(image_size)
    if num_studies < 1:
        raise ValueError(f"num_studies={num_studies} must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    difficulty = difficulty or Difficulty()
    splits = assign_splits(num_studies, seed, split_fractions)
    staging = Path(tempfile.mkdtemp(prefix=".synthcxr-", dir=out_dir))
    try:
        for sub in ("images", "masks"):
            (staging / sub).mkdir()
        job = partial(_write_study, seed=seed, image_size=image_size, difficulty=difficulty, staging=str(staging))
        bar = partial(tqdm, total=num_studies, desc="SynthCXR", unit="study", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                records = list(bar(pool.map(job, range(num_studies), chunksize=32)))
        else:
            records = [job(i) for i in bar(range(num_studies))]
        for sub in ("images", "masks"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
            os.replace(staging / sub, out_dir / sub)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for record, split in zip(records, splits, strict=True):
        record["split"] = split
    summary = {"seed": seed, "image_size": image_size, "difficulty": difficulty.__dict__,
               "label_counts": _label_counts(records)}
    return save_manifest(records, out_dir, source="synthcxr",
                         extra_features={"findings_gt": findings_gt_features()}, summary=summary)


def _label_counts(records: list[dict]) -> dict[str, dict[str, int]]:
    counts = {name: {"1": 0, "0": 0, "-1": 0} for name in CHEXPERT_LABELS}
    for r in records:
        for name, value in r["labels"].items():
            if value is not None:
                counts[name][str(value)] += 1
    return counts


def write_split_file(path: str | Path, num_studies: int = DEMO_NUM_STUDIES, seed: int = DEMO_SEED,
                     fractions=DEFAULT_SPLIT_FRACTIONS) -> dict:
    payload = split_file_payload(num_studies, seed, fractions)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return payload
