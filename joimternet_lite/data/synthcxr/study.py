"""One SynthCXR study in memory: the film, its report, its labels and its per-finding ground truth.

Taught in notebook 01. Every study is a pure function of ``(seed, index, image_size, difficulty)``:
its random generator is ``numpy.random.default_rng([seed, index])``, drawn from in a fixed order
(patient, findings, report, film), so a process pool gives the same bytes as one process and any
study can be redrawn alone (:func:`generate_study`). Pixel value follows tissue density: air
black, bone and devices white.

Ground truth per finding (``findings_gt``): type, label, side (``right`` = patient right = image
left, ``left``, ``bilateral`` or None), zone, a mask and its box in [0, 1] image fractions, and the
character spans and word indices (``tokenizer.split_words``) of the phrase and of its head word in
``text`` = ``findings + " " + impression``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tokenizer import split_words
from .anatomy import Chest, clavicles, ribs, sample_patient, spine, vessels
from .findings import FINDING_TYPES, SUPPORT_DEVICES, Difficulty, Finding, sample_findings
from .primitives import check_size, ellipse, ramp, smooth_noise
from .reports import Span, labels_for, write_report


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


def study_id(index: int) -> str:
    return f"synth-{index:06d}"


def _render(ch: Chest, findings: list[Finding], rng: np.random.Generator,
            d: Difficulty) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Draw the film: returns (uint8 image (S, S), finding masks, body mask)."""
    fields, masks = [None] * len(findings), [None] * len(findings)
    for k in sorted(range(len(findings)), key=lambda k: not FINDING_TYPES[findings[k].type].reshapes_anatomy):
        fields[k], masks[k] = FINDING_TYPES[findings[k].type].draw(ch, findings[k], rng, d)
    body = ch.body
    lungs = np.maximum(ch.lung_soft["right"], ch.lung_soft["left"])
    markings = vessels(ch, rng)
    for f, density_change in zip(findings, fields, strict=True):
        if f.type == "pneumothorax":  # no lung markings beyond the pleural line
            markings *= 1.0 - np.clip(-density_change / 0.12, 0.0, 1.0)
    not_dense = 1.0 - np.maximum(ch.heart_soft, ch.mediastinum_soft)
    density = 0.55 * body - 0.36 * lungs * not_dense
    density += 0.05 * ch.heart_soft + 0.04 * ch.mediastinum_soft
    density -= 0.10 * ramp(0.013 - np.abs(ch.u - 0.006), ch.edge) * ramp(-0.12 - ch.v, 0.03)  # trachea
    bubble = ellipse(ch.u, ch.v, 0.2 * ch.p.width, float(ch.p.dome_left) + 0.06, 0.05, 0.025)
    density -= 0.12 * ramp(1.0 - bubble, 0.4)
    a = d.anatomy
    density += a * (0.06 * ribs(ch, rng) * body + 0.11 * clavicles(ch) + 0.07 * spine(ch) * body)
    density += a * 0.07 * markings * lungs * not_dense
    density += a * 0.02 * smooth_noise(rng, ch.size, 8) * body
    for f, density_change in zip(findings, fields, strict=True):
        strength = d.of(f.type) * (1.0 if f.label == SUPPORT_DEVICES else
                                   d.contrast * (0.75 if f.certainty == -1 else 1.0))
        density += strength * density_change
    density += a * ch.p.noise * rng.standard_normal(density.shape, dtype=np.float32)
    image = np.clip(density * 1.25 * ch.p.exposure, 0.0, 1.0) ** ch.p.gamma
    return (image * 255.0 + 0.5).astype(np.uint8), masks, body > 0.5


def _word_indices(words: list[tuple[str, tuple[int, int]]], span: Span) -> list[int]:
    return [i for i, (_, (s, e)) in enumerate(words) if s >= span.start and e <= span.end]


def _box(mask: np.ndarray) -> list[float]:
    """[x0, y0, x1, y1] of the mask's bounding box in image fractions; zeros for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    s = mask.shape[0]
    return [float(xs.min()) / s, float(ys.min()) / s, float(xs.max() + 1) / s, float(ys.max() + 1) / s]


def generate_study(index: int, seed: int = 0, image_size: int = 256,
                   difficulty: Difficulty | None = None) -> SynthStudy:
    """Draw study ``index`` of the dataset with ``seed``, entirely in memory (no files)."""
    check_size(image_size)
    d = difficulty or Difficulty()
    rng = np.random.default_rng([seed, index])
    ch = Chest(sample_patient(rng), image_size)
    findings = sample_findings(rng)
    report = write_report(findings, rng)
    image, masks, body = _render(ch, findings, rng, d)
    text = f"{report.findings} {report.impression}"
    words = split_words(text)
    gt = []
    for k, f in enumerate(findings):
        phrase_span, head_span = report.spans[k]
        gt.append({"type": f.type, "label": f.label, "certainty": f.certainty, "side": f.side, "zone": f.zone,
                   "box": _box(masks[k]), "phrase_span": list(phrase_span), "head_span": list(head_span),
                   "phrase_words": _word_indices(words, phrase_span), "head_words": _word_indices(words, head_span)})
    return SynthStudy(study_id(index), image, ch.anatomy_masks(body), masks, report.findings, report.impression,
                      text, labels_for(findings, report.negated), gt)
