"""SynthCXR anatomy: one patient's frontal chest, drawn as soft density fields in patient coordinates.

Taught in notebook 01. Patient coordinates ``(u, v)``: ``u`` runs from the image left (the
patient's RIGHT, as on a real frontal film) to the image right (patient's LEFT), ``v`` from top to
bottom, both about -0.5..0.5 and turned, scaled and shifted per patient (:class:`Patient`).
:class:`Chest` holds the body outline and shoulders, two lungs whose bases are the diaphragm domes
(the right one higher) meeting the lateral walls in sharp costophrenic angles, the heart (two
thirds left of midline) and the mediastinum with the aortic knob; :func:`ribs`, :func:`clavicles`,
:func:`spine` and :func:`vessels` add the structures findings are blended with. Every field is
float32 (S, S) in [0, 1]; every mask is bool (S, S).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .primitives import ellipse, grid, ramp, smooth_noise


@dataclass
class Patient:
    """Where the chest lies on the film and how it looks: the per-patient draws of one study."""

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


def sample_patient(rng: np.random.Generator) -> Patient:
    """Draw a patient; the first draws of every study's generator (their order fixes the dataset)."""
    return Patient(
        cx=0.5 + rng.normal(0, 0.015), cy=0.5 + rng.normal(0, 0.015), scale=rng.uniform(0.86, 1.0),
        angle=math.radians(rng.normal(0, 2.0)), width=rng.uniform(0.92, 1.06), ctr=rng.uniform(0.38, 0.46),
        dome_right=(dome := rng.uniform(0.12, 0.17)), dome_left=dome + rng.uniform(0.015, 0.035), mediastinum=rng.uniform(0.048, 0.058),
        exposure=rng.uniform(0.85, 1.15), gamma=rng.uniform(0.8, 1.2), noise=rng.uniform(0.012, 0.03),
    )


class Chest:
    """Anatomy of one patient on one grid; finding drawers read its fields and coordinates."""

    def __init__(self, p: Patient, size: int) -> None:
        self.p, self.size = p, size
        x, y = grid(size)
        c, s = math.cos(p.angle), math.sin(p.angle)
        self.u = ((x - p.cx) * c + (y - p.cy) * s) / p.scale
        self.v = (-(x - p.cx) * s + (y - p.cy) * c) / p.scale
        self.px = 1.0 / (size * p.scale)          # one pixel in patient units
        self.edge = max(0.012, 2.5 * self.px)     # anatomical edge softness
        self.half_width = 0.39 * p.width          # thorax half-width (lateral lung walls)
        self._lungs()
        domes = np.where(self.u < 0, self.dome(-1, self.u), self.dome(1, self.u))
        self.above_domes = ramp(domes - self.v, self.edge)
        self.shape_heart()
        self.shape_mediastinum()
        self.body = body_outline(self)

    def lung_centre(self, sgn: int) -> float:
        """``u`` of the lung's centre; ``sgn`` is -1 for the right lung (image left), +1 for the left."""
        return sgn * 0.205 * self.p.width

    def dome(self, sgn: int, u: np.ndarray | float) -> np.ndarray:
        """``v`` of the diaphragm dome under lung ``sgn`` at ``u`` (a parabola, top at the lung centre)."""
        top = self.p.dome_right if sgn < 0 else self.p.dome_left
        return top + 4.2 * (u - self.lung_centre(sgn)) ** 2

    def _lung(self, sgn: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shape function, 1 inside; soft field; mask) of one lung."""
        u, v = self.u, self.v
        a0 = 0.185 * self.p.width
        a = a0 * (0.62 + 0.38 * np.clip((v + 0.37) / 0.45, 0.0, 1.0))  # narrower apex
        f = ((u - self.lung_centre(sgn)) / a) ** 4 + ((v - 0.01) / 0.38) ** 2
        below = self.dome(sgn, u) - v
        soft = ramp(1.0 - f, 0.12) * ramp(below, self.edge)
        return f, soft, (f < 1.0) & (below > 0) & ((u < 0) if sgn < 0 else (u > 0))

    def _lungs(self) -> None:
        self.lung_f, self.lung_soft, self.lung_mask = {}, {}, {}
        for side, sgn in (("right", -1), ("left", 1)):
            self.lung_f[side], self.lung_soft[side], self.lung_mask[side] = self._lung(sgn)

    def shape_heart(self, enlarge: float = 1.0) -> None:
        """(Re)draw the heart ``enlarge`` times wider than this patient's normal heart."""
        p = self.p
        a = p.ctr * self.half_width * enlarge
        b = 0.115 * math.sqrt(enlarge)
        self.heart_r = ellipse(self.u, self.v, 0.2 * a, 0.125 + 0.03 * (enlarge - 1), a, b, math.radians(-15))
        # The heart's lower border merges with the diaphragm, as on a real film.
        self.heart_soft = ramp(1.0 - self.heart_r, 0.06) * self.above_domes
        self.heart_mask = (self.heart_r < 1.0) & (self.above_domes > 0.5)

    def shape_mediastinum(self, widen: float = 1.0) -> None:
        """(Re)draw the upper mediastinum and aortic knob ``widen`` times wider than normal."""
        u, v = self.u, self.v
        w = self.p.mediastinum * widen
        band = ramp(w - np.abs(u - 0.008), self.edge) * ramp(0.12 - v, 0.05)
        knob = ramp(1.0 - ellipse(u, v, 0.05 + w - 0.05, -0.17, 0.04 * widen ** 0.5, 0.035), 0.3)
        self.mediastinum_soft = np.maximum(band, knob)
        self.mediastinum_mask = (self.mediastinum_soft > 0.5) & (v > -0.36)

    def anatomy_masks(self, body: np.ndarray) -> dict[str, np.ndarray]:
        """Bool (S, S) masks by name: body, lung_right, lung_left, lungs, heart, mediastinum."""
        lungs = self.lung_mask["right"] | self.lung_mask["left"]
        return {"body": body, "lung_right": self.lung_mask["right"], "lung_left": self.lung_mask["left"],
                "lungs": lungs, "heart": self.heart_mask, "mediastinum": self.mediastinum_mask}


def body_outline(ch: Chest) -> np.ndarray:
    """Torso, shoulders and neck as one soft field (S, S)."""
    u, v, w = ch.u, ch.v, ch.p.width
    torso = ((u / (0.47 * w)) ** 4 + ((v - 0.12) / 0.62) ** 4)
    shoulders = ((u / (0.52 * w)) ** 4 + ((v + 0.36) / 0.12) ** 2)
    neck = ramp(0.085 - np.abs(u), ch.edge) * ramp(-0.3 - v, 0.05)
    return np.maximum.reduce([ramp(1.0 - torso, 0.08), ramp(1.0 - shoulders, 0.2), neck])


def ribs(ch: Chest, rng: np.random.Generator) -> np.ndarray:
    """Posterior ribs: arcs rising from the spine then falling laterally, spacing growing downward."""
    au = np.abs(ch.u)
    w = ch.v - 1.5 * (au - 0.16) ** 2
    gaps = np.cumsum(np.linspace(0.060, 0.085, 10)) + rng.uniform(-0.01, 0.01)
    pos = -0.43 + np.concatenate([[0.0], gaps])
    phase = np.interp(w, pos, np.arange(len(pos), dtype=np.float32))
    band = ramp(np.cos(2 * np.pi * phase) - 0.5, 0.4) * (1.0 - 0.5 * np.clip(au / ch.half_width, 0.0, 1.0))
    inside = ramp(au - 0.04, 0.02) * ramp(ch.half_width + 0.03 - au, 0.03)
    inside *= ramp(w - pos[0] + 0.03, 0.02) * ramp(pos[-1] + 0.03 - w, 0.02)
    return band * inside


def clavicles(ch: Chest) -> np.ndarray:
    """Both clavicles: bands curving up from the sternum to the shoulders."""
    au = np.abs(ch.u)
    centre = -0.365 - 0.10 * (au - 0.05) + 0.35 * (au - 0.2) ** 2
    return ramp(0.017 - np.abs(ch.v - centre), ch.edge) * ramp(au - 0.035, 0.02) * ramp(0.36 - au, 0.04)


def spine(ch: Chest) -> np.ndarray:
    """The thoracic spine: a midline band modulated by vertebral bodies."""
    body = ramp(0.034 - np.abs(ch.u), ch.edge)
    return body * (0.75 + 0.25 * np.cos(2 * np.pi * ch.v / 0.058))


def vessels(ch: Chest, rng: np.random.Generator) -> np.ndarray:
    """Vessel markings: a network of thin curvy ridges (zero crossings of smooth noise), strongest
    at the hila and fading to the periphery."""
    ridges = np.exp(-(smooth_noise(rng, ch.size, 20) / 0.35) ** 2)
    dist = np.hypot(np.abs(ch.u) - 0.1, ch.v + 0.02)
    return ridges * np.exp(-dist / 0.2)
