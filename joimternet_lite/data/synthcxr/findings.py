"""SynthCXR findings: what can be wrong on a film, how it is drawn, worded and labelled.

Taught in notebook 01. :data:`FINDING_TYPES` is the one table of finding types: per type its
CheXpert label, its drawer, its phrase templates and where it lies. Findings are drawn as density
changes blended into the anatomy and its noise, where they occur on real films: cardiomegaly
(wider heart), enlarged cardiomediastinum (wider upper mediastinum), pleural effusion (basal fluid
with a meniscus that blunts the costophrenic angle), pneumothorax (lucent apical-lateral rim
without vessel markings, thin pleural line), lobar consolidation, nodule, mass, plate-like
atelectasis, bilateral perihilar edema, support devices (endotracheal and enteric tubes, central
line, pacemaker). How visible they are is set by :class:`Difficulty`.

A drawer takes ``(chest, finding, rng, difficulty)`` and returns ``(density change, mask)``, float32
and bool (S, S); the two heart/mediastinum drawers reshape the chest instead of adding density.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .anatomy import Chest
from .primitives import ellipse, polyline, ramp, smooth_noise

NORMAL_FRACTION = 0.35
HEDGE_PROBABILITY = 0.12
DEVICE_PROBABILITY = 0.18
SUPPORT_DEVICES = "Support Devices"

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

    def __post_init__(self) -> None:
        for name in ("contrast", "size", "blur", "anatomy"):
            if not 0.0 < getattr(self, name) <= 5.0:
                raise ValueError(f"Difficulty.{name}={getattr(self, name)} must lie in (0, 5]")
        unknown = set(self.visibility) - set(FINDING_TYPES)
        if unknown:
            raise ValueError(f"Difficulty.visibility names unknown finding types {sorted(unknown)}; "
                             f"known: {sorted(FINDING_TYPES)}")
        for kind, factor in self.visibility.items():
            if not 0.0 < factor <= 5.0:
                raise ValueError(f"Difficulty.visibility[{kind!r}]={factor} must lie in (0, 5]")

    def of(self, kind: str) -> float:
        return self.visibility.get(kind, 1.0)



@dataclass(frozen=True)
class Phrase:
    """A finding's words, split around the head word that names it: ``before + head + after``."""

    before: str
    head: str
    after: str

    @property
    def text(self) -> str:
        return self.before + self.head + self.after


@dataclass
class Finding:
    """One sampled finding of a study."""

    type: str
    label: str
    side: str | None
    zone: str | None
    size: str                     # size or severity word the drawer reads ("" for devices)
    certainty: int                # 1 present, -1 hedged
    phrase: Phrase
    extent_mm: float = 0.0


# ----------------------------------------------------------------------------------------------
# Drawers

Drawn = tuple[np.ndarray, np.ndarray]  # (density change float32 (S, S), mask bool (S, S))

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
    """Where ``field`` exceeds ``fraction`` of its peak, inside ``region``."""
    peak = float(field.max())
    return (field > fraction * peak) & region if peak > 0 else np.zeros_like(region)


def _lung_point(ch: Chest, side: str, rel: float, v: float) -> tuple[float, float]:
    """(u, v) at relative lateral position ``rel`` (-1 medial..1 lateral) in the lung on ``side``."""
    sgn = -1 if side == "right" else 1
    return ch.lung_centre(sgn) + sgn * rel * 0.14 * ch.p.width, v


def _draw_effusion(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    sgn = -1 if f.side == "right" else 1
    height = {"small": 0.05, "moderate": 0.11, "large": 0.18}[f.size] * d.size
    t = np.clip((ch.u - ch.lung_centre(sgn)) * sgn / (0.185 * ch.p.width), -1.0, 1.0)
    cp = float(ch.dome(sgn, ch.lung_centre(sgn) + sgn * 0.17))
    top = cp - height * (0.3 + ((t + 1) / 2) ** 2)  # meniscus: higher along the lateral wall
    fill = ramp(ch.v - top, 0.02 * d.blur) * (0.6 + 0.4 * ramp(ch.v - top - 0.04, 0.08))
    field = 0.30 * fill * ch.lung_soft[f.side]
    return field, (fill > 0.5) & ch.lung_mask[f.side]


def _draw_pneumothorax(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    depth = {"small": 0.12, "moderate": 0.22, "large": 0.35}[f.size] * d.size
    lf = ch.lung_f[f.side]
    upper = ramp(0.02 - ch.v, 0.1)
    rim = ramp(lf - (1.0 - depth), 0.04 * d.blur) * upper * ch.lung_soft[f.side]
    pleural_line = ramp(0.05 - np.abs(lf - (1.0 - depth)), 0.04) * upper * ch.lung_soft[f.side]
    field = -0.12 * rim + 0.10 * pleural_line
    return field, (rim > 0.5) & ch.lung_mask[f.side]


def _blob(ch: Chest, rng: np.random.Generator, cu: float, cv: float, radius: float, d: Difficulty,
          lumpy: float) -> np.ndarray:
    r = ellipse(ch.u, ch.v, cu, cv, radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.6, 1.0),
                 rng.uniform(-0.5, 0.5))
    texture = 1.0 + lumpy * smooth_noise(rng, ch.size, 12)
    return np.clip(ramp(1.0 - r, 0.5 * d.blur) * texture, 0.0, None)


def _draw_consolidation(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    rel, v = LOBES[f.zone][2]
    cu, cv = _lung_point(ch, f.side, rel + rng.uniform(-0.2, 0.2), v + rng.uniform(-0.03, 0.03))
    blob = _blob(ch, rng, cu, cv, 0.075 * d.size, d, lumpy=0.45) * ch.lung_soft[f.side]
    return 0.24 * blob, _mask_within(blob, ch.lung_mask[f.side], 0.35)


def _draw_lesion(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty, radius: float) -> Drawn:
    v0 = ZONES_V[f.zone] + rng.uniform(-0.04, 0.04)
    for _ in range(20):  # pick a centre that lies inside the lung, away from its edge
        cu, cv = _lung_point(ch, f.side, rng.uniform(-0.5, 0.6), v0)
        iy = int(np.clip((cv * ch.p.scale + ch.p.cy) * ch.size, 0, ch.size - 1))
        ix = int(np.clip((cu * ch.p.scale + ch.p.cx) * ch.size, 0, ch.size - 1))
        if ch.lung_mask[f.side][iy, ix] and not ch.heart_mask[iy, ix]:
            break
    r = ellipse(ch.u, ch.v, cu, cv, radius, radius * rng.uniform(0.85, 1.0), rng.uniform(0, 3))
    disc = ramp(1.0 - r, 0.5 * d.blur) * (1.0 + 0.15 * smooth_noise(rng, ch.size, 24))
    return 0.26 * disc, (disc > 0.5) & ch.lung_mask[f.side]


def _draw_nodule(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    return _draw_lesion(ch, f, rng, d, f.extent_mm / 1000 * 1.6 * d.size + 1.5 * ch.px)


def _draw_mass(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    return _draw_lesion(ch, f, rng, d, f.extent_mm / 1000 * 1.2 * d.size)


def _draw_atelectasis(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    sgn = -1 if f.side == "right" else 1
    cu = ch.lung_centre(sgn) + sgn * rng.uniform(-0.02, 0.06)
    cv = float(ch.dome(sgn, cu)) - rng.uniform(0.04, 0.08)
    r = ellipse(ch.u, ch.v, cu, cv, 0.075 * d.size, 0.014 * d.size + 2 * ch.px, rng.uniform(-0.25, 0.25))
    band = ramp(1.0 - r, 0.5 * d.blur)
    return 0.30 * band * ch.lung_soft[f.side], (band > 0.5) & ch.lung_mask[f.side]


def _draw_edema(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    sev = {"mild": 0.7, "moderate": 1.0, "severe": 1.3}[f.size]
    dist = np.hypot((np.abs(ch.u) - 0.11) / 1.3, ch.v + 0.0)
    haze = np.exp(-((dist / (0.13 * d.size)) ** 2)) * (1.0 + 0.35 * smooth_noise(rng, ch.size, 16))
    lungs = ch.lung_mask["right"] | ch.lung_mask["left"]
    soft = np.maximum(ch.lung_soft["right"], ch.lung_soft["left"])
    return 0.20 * sev * haze * soft, _mask_within(haze * lungs, lungs, 0.45)


def _draw_cardiomegaly(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    base = {"mild": 1.25, "moderate": 1.38, "severe": 1.5}[f.size]
    enlarge = (1.0 + d.of(f.type) * (base - 1.0)) ** d.size
    ch.shape_heart(enlarge)
    return np.zeros_like(ch.u), ch.heart_mask


def _draw_enlarged_mediastinum(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    base = {"mild": 1.5, "moderate": 1.75, "severe": 2.0}[f.size]
    ch.shape_mediastinum(widen=(1.0 + d.of(f.type) * (base - 1.0)) ** d.size)
    return np.zeros_like(ch.u), ch.mediastinum_mask & (ch.v < 0.08)


def _device_path(kind: str, rng: np.random.Generator) -> tuple[list[tuple[float, float]], float]:
    """(points in patient coordinates, half width) of a tube, line or pacemaker lead."""
    j = lambda: rng.uniform(-0.01, 0.01)  # noqa: E731
    if kind == "endotracheal_tube":
        return [(0.004 + j(), -0.55), (0.006, -0.32), (0.008, -0.2 + j())], 0.007
    if kind == "enteric_tube":
        return [(0.0, -0.55), (0.0 + j(), -0.1), (0.03, 0.15), (0.14 + j(), 0.26), (0.2, 0.28)], 0.005
    if kind == "central_line":
        return [(-0.13 + j(), -0.55), (-0.09, -0.33), (-0.04, -0.2), (-0.025 + j(), -0.03 + j())], 0.004
    gen = (0.27 + j(), -0.31 + j())
    return [gen, (0.1, -0.33), (0.0, -0.2), (-0.02, 0.02), (0.06, 0.2 + j())], 0.004


def _draw_device(ch: Chest, f: Finding, rng: np.random.Generator, d: Difficulty) -> Drawn:
    points, half = _device_path(f.type, rng)
    line = polyline(ch.u, ch.v, points, half, max(0.004, 1.5 * ch.px))
    if f.type == "pacemaker":
        box = ramp(0.045 - np.abs(ch.u - points[0][0]), ch.px * 2) * ramp(0.03 - np.abs(ch.v - points[0][1]), ch.px * 2)
        line = np.maximum(line, box)
    line *= ch.body  # the parts outside the patient are not on the film
    return 0.45 * line, line > 0.5


# ----------------------------------------------------------------------------------------------
# The table of finding types, and sampling findings from it

SAMPLED_SIDE = "right or left"  # the side is drawn per finding
Details = Callable[[np.random.Generator], dict]


def _pick(rng: np.random.Generator, options: tuple | list):
    return options[rng.integers(len(options))]


@dataclass(frozen=True)
class FindingType:
    """One row of :data:`FINDING_TYPES`.

    ``phrases`` are ``str.format`` templates with the head word in ``[brackets]``; they may use
    ``{side}``, ``{size}``, ``{severity}`` and whatever ``details`` returns. ``details`` draws the
    type's own variables (lobe, zone, measurement) and may override ``side``, ``zone``, ``label``
    and ``extent_mm``. ``reworded`` maps a head word to templates that replace the phrase drawn.
    ``grade`` names the drawn word the drawer reads as :attr:`Finding.size`. ``reshapes_anatomy``
    types are drawn first: they move the heart and mediastinum other findings are blended with.
    """

    label: str
    draw: Callable[[Chest, Finding, np.random.Generator, Difficulty], Drawn]
    phrases: tuple[str, ...]
    side: str | None = SAMPLED_SIDE
    zone: str | None = None
    grade: str = "size"
    details: Details | None = None
    reworded: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reshapes_anatomy: bool = False


_CONSOLIDATION_HEADS = (("consolidation", "Consolidation"), ("consolidation", "Consolidation"),
                        ("pneumonia", "Pneumonia"), ("opacity", "Lung Opacity"))


def _lobe_details(rng: np.random.Generator) -> dict:
    lobe = _pick(rng, list(LOBES))
    head, label = _pick(rng, _CONSOLIDATION_HEADS)
    return {"lobe": lobe, "side": LOBES[lobe][0], "zone": lobe, "head": head, "label": label}


def _lesion_details(unit_mm: float, low: int, high: int, unit: str) -> Details:
    """Zone and size of a nodule (whole mm) or a mass (whole cm)."""
    def details(rng: np.random.Generator) -> dict:
        zone = _pick(rng, list(ZONES_V))
        mm = unit_mm * float(rng.integers(low, high))
        return {"zone": zone, "extent_mm": mm, "measure": f"{int(mm // unit_mm)} {unit}"}
    return details


FINDING_TYPES: dict[str, FindingType] = {
    "effusion": FindingType(
        "Pleural Effusion", _draw_effusion, zone="basal",
        phrases=("{size} {side} pleural [effusion]", "{size} {side} [effusion]", "{side} pleural [effusion]",
                 "{size} {side} basilar pleural [effusion]")),
    "pneumothorax": FindingType(
        "Pneumothorax", _draw_pneumothorax, zone="apical",
        phrases=("{size} {side} apical [pneumothorax]", "{side} [pneumothorax]", "{size} {side} [pneumothorax]")),
    "consolidation": FindingType(
        "Consolidation", _draw_consolidation, details=_lobe_details,
        phrases=("{lobe} [{head}]", "focal [{head}] in the {lobe}", "patchy {lobe} [{head}]"),
        reworded={"opacity": ("{lobe} airspace [opacity]", "patchy airspace [opacity] in the {lobe}")}),
    "nodule": FindingType(
        "Lung Lesion", _draw_nodule, details=_lesion_details(1.0, 5, 10, "mm"),
        phrases=("{measure} {side} {zone} lung [nodule]", "{side} {zone} lung [nodule]",
                 "{measure} [nodule] in the {side} {zone} lung")),
    "mass": FindingType(
        "Lung Lesion", _draw_mass, details=_lesion_details(10.0, 3, 7, "cm"),
        phrases=("{measure} {side} {zone} lung [mass]", "{side} {zone} lung [mass]",
                 "{measure} [mass] in the {side} {zone} lung")),
    "atelectasis": FindingType(
        "Atelectasis", _draw_atelectasis, zone="basal",
        phrases=("{side} basilar [atelectasis]", "plate-like [atelectasis] at the {side} base",
                 "minimal {side} basal [atelectasis]", "subsegmental {side} lower lobe [atelectasis]")),
    "edema": FindingType(
        "Edema", _draw_edema, side="bilateral", zone="perihilar", grade="severity",
        phrases=("{severity} pulmonary [edema]", "{severity} perihilar interstitial [edema]",
                 "bilateral perihilar airspace [edema]", "{severity} bilateral pulmonary [edema]")),
    "cardiomegaly": FindingType(
        "Cardiomegaly", _draw_cardiomegaly, side=None, zone="cardiac", grade="severity", reshapes_anatomy=True,
        phrases=("{severity} [cardiomegaly]", "{severity} [enlargement] of the cardiac silhouette", "[cardiomegaly]")),
    "enlarged_cardiomediastinum": FindingType(
        "Enlarged Cardiomediastinum", _draw_enlarged_mediastinum, side=None, zone="mediastinal", grade="severity",
        reshapes_anatomy=True,
        phrases=("widened [mediastinum]", "{severity} widening of the [mediastinum]",
                 "enlarged cardiomediastinal [silhouette]")),
    "endotracheal_tube": FindingType(
        SUPPORT_DEVICES, _draw_device, side=None, zone="trachea", grade="", phrases=("endotracheal [tube]",)),
    "enteric_tube": FindingType(
        SUPPORT_DEVICES, _draw_device, side=None, zone="stomach", grade="",
        phrases=("enteric [tube]", "nasogastric [tube]")),
    "central_line": FindingType(
        SUPPORT_DEVICES, _draw_device, side="right", zone="svc", grade="",
        phrases=("right internal jugular central venous [catheter]", "right internal jugular [line]")),
    "pacemaker": FindingType(
        SUPPORT_DEVICES, _draw_device, side="left", zone="chest wall", grade="",
        phrases=("left-sided [pacemaker]", "left chest wall [pacemaker]")),
}


def _phrase(rng: np.random.Generator, templates: tuple[str, ...], words: dict) -> Phrase:
    """Fill one of ``templates`` (a single one is not drawn) and split it around its [head]."""
    template = templates[0] if len(templates) == 1 else _pick(rng, templates)
    before, rest = template.format(**words).split("[", 1)
    head, after = rest.split("]", 1)
    return Phrase(before, head, after)


def sample_finding(kind: str, rng: np.random.Generator) -> Finding:
    """Draw one finding of type ``kind`` (a key of :data:`FINDING_TYPES`)."""
    if kind not in FINDING_TYPES:
        raise ValueError(f"unknown finding type {kind!r}; known: {sorted(FINDING_TYPES)}")
    row = FINDING_TYPES[kind]
    # Every type makes these four draws, in this order, before its own: the dataset depends on it.
    side = ("right", "left")[rng.integers(2)]
    hedged = rng.random() < HEDGE_PROBABILITY
    words = {"side": side if row.side == SAMPLED_SIDE else row.side,
             "size": _pick(rng, ("small", "moderate", "large")),
             "severity": _pick(rng, ("mild", "moderate", "severe"))}
    if row.details:
        words.update(row.details(rng))
    phrase = _phrase(rng, row.phrases, words)
    if words.get("head") in row.reworded:
        phrase = _phrase(rng, row.reworded[words["head"]], words)
    certainty = -1 if hedged and row.label != SUPPORT_DEVICES else 1
    return Finding(kind, words.get("label", row.label), words["side"], words.get("zone", row.zone),
                   words.get(row.grade, ""), certainty, phrase, words.get("extent_mm", 0.0))


def sample_findings(rng: np.random.Generator) -> list[Finding]:
    """The findings of one study: none (a normal study), 1-3 pathologies, sometimes 1-2 devices."""
    if rng.random() < NORMAL_FRACTION:
        return []
    kinds = list(FINDING_WEIGHTS)
    weights = np.array(list(FINDING_WEIGHTS.values()))
    count = int(rng.choice([1, 2, 3], p=[0.55, 0.32, 0.13]))
    chosen: list[Finding] = []
    while len(chosen) < count:
        f = sample_finding(kinds[rng.choice(len(kinds), p=weights / weights.sum())], rng)
        # One finding per label, except effusions, which may be on both sides.
        if all(g.label != f.label or (g.type == f.type == "effusion" and g.side != f.side) for g in chosen):
            chosen.append(f)
    if rng.random() < DEVICE_PROBABILITY:
        for kind in rng.choice(DEVICE_TYPES, size=int(rng.integers(1, 3)), replace=False):
            chosen.append(sample_finding(str(kind), rng))
    return chosen
