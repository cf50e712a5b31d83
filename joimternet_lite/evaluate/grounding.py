"""Grounding: does a finding's word-region map point at the finding? Taught in notebook 11.

A *target* is one finding in one study: the text whose words are mapped (the report itself, or a
user's phrase), the word indices to pool (``head`` word(s), whole ``phrase``; index k is
``split_words(text)[k]`` = the model's word position k), and the finding's footprint on the region
grid. Three maps per word (the model's ``similarity.maps``, i.e. models.similarity.word_region_maps
with the model's gamma1):

- ``alpha``: the DAMSM attention (per word, a softmax over regions, after the softmax over words);
- ``raw``: the raw word-region similarity e_i . v_j, softmaxed over regions;
- ``blind``: the baseline that reads no word, the image's region lengths ||v_j|| normalised to
  sum 1. Where a raw map scores about as well, its hits come from the image, not from the words.

A word set's map is the mean of its words' region distributions.

Scores per target and word set, with the chance level of a map that ignores the image beside each:

- pointing: the map's maximum falls in a cell *inside* the finding. A cell is inside when the
  finding covers at least ``min_overlap`` of its area and at least one of its pixels (default
  ``min_overlap=0``: any overlap). Tied maxima (equal to float32 resolution) count as the
  fraction of them inside, so a flat map scores exactly chance. Chance = the fraction of cells inside.
- mass: the map's total mass in the inside cells. Chance (a uniform map) = the same fraction.

- cnr, cnr_abs: MS-CXR's contrast-to-noise ratio (mean inside minus mean outside, over the root of
  the summed variances; signed and absolute), on the map min-max normalised to [0, 1]; 0 for a flat map.
- miou: MS-CXR's mIoU, the IoU of the normalised map above t with the footprint, averaged over
  t = 0.1, 0.2, ..., 0.5.

CNR and mIoU read the map as upsampled to pixels by nearest neighbour (a cell's value covers the
cell) and the footprint at pixel level: a cell counts inside with the fraction the finding covers
(``min_overlap`` does not apply), so a mask or box that cuts a cell is weighed exactly.

Controls that no word-blind map can pass (chance 0.5; any map that ignores the words scores exactly
0.5, ties count one half):

- paired phrases: in a study with two findings A and B whose footprints share no cell, A's phrase
  map must put more mass on A's footprint than B's phrase map does (every ordered pair);
- left/right: a lateral finding's phrase must put more mass on its footprint than the same phrase
  with left and right swapped (:func:`laterality_swap`; phrases that name no side are left out);
- the word-agnostic control map: the model's mean map over :data:`UNRELATED_SENTENCES`, one map per
  image whatever the finding; pointing is reported against the best of it and ``blind``.

Each is computed for the phrase read inside its report (word set ``phrase``) and for the phrase
typed alone, as a user types it into ``ground`` (word set ``phrase alone``, :func:`typed_alone`).

Masks are downsampled to the grid by area averaging (adaptive average pooling); boxes are
intersected with the cells exactly. Everything is deterministic.

User boxes (e.g. MS-CXR) come from a CSV, one box per line, read by :func:`load_phrase_boxes`::

    study_id,phrase,x,y,w,h,image_width,image_height[,category]
    s123,small left pleural effusion,610,1400,420,300,2544,3056,Pleural Effusion

x, y (top-left corner), w, h in pixels of the stored image of width x height. MS-CXR's
``label_text`` and ``category_name`` columns are accepted for phrase and category. Lines with the
same study and phrase are one target (boxes combined). Boxes are mapped through the evaluation
transform (resize of the shorter side, centre square crop) before they meet the grid. MS-CXR's own
numbers for such boxes: ``summarize_grounding(evaluate_grounding(model, tokenizer, regions,
box_targets(load_phrase_boxes(csv), study_ids, model.grid)), SCORE_VALUES)`` (CNR, mIoU, pointing);
``grounding_results`` on the same targets adds the paired-phrase test where a study has two phrases.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np
import torch

from ..data.tokenizer import sentence_of_words, split_words
from ..models.similarity import MAP_KINDS, spread_to_words, valid_words
from .intervals import paired_bootstrap

log = logging.getLogger(__name__)

WORD_MAP_KINDS = tuple(k for k in MAP_KINDS if k != "blind")  # the maps that read the words (the laterality swap needs them)
LATERALITY_VALUES = ("mass_true_before", "mass_mirror_before", "mass_true_after", "mass_mirror_after", "moved",
                     "left_right")
SCORE_VALUES = ("hit", "mass", "chance", "cnr", "cnr_abs", "miou")
MIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
ALONE = "phrase alone"  # the word set of a phrase typed alone (typed_alone)
UNRELATED = "unrelated"  # the word set of the word-agnostic control map
# Sentences about nothing in a chest film (no finding, place or side word): the control map is
# the model's mean map over them.
UNRELATED_SENTENCES = (
    "the weather was mild on tuesday",
    "she bought bread and milk at the market",
    "the train departed the station on time",
    "please call the office in the morning",
    "the garden needs water after a dry week",
    "he read a long book about old ships",
    "the meeting is moved to next friday",
    "a cup of tea is on the kitchen table",
)
_TIE = dict(rtol=1e-6, atol=1e-9)  # maps come from float32: closer masses tie


@dataclass
class GroundingTarget:
    """One finding to ground. cells: (R,) fraction of each region cell the finding covers."""

    row: int                                  # row of the embedded images (embed_dataset order)
    text: str                                 # the text whose word maps are read
    word_sets: dict[str, list[int]]           # e.g. {"head": [5], "phrase": [3, 4, 5]}
    cells: np.ndarray
    type: str
    side: str | None = None
    study_id: str = ""
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- footprints on the grid


def cell_fractions_from_mask(mask, grid: tuple[int, int]) -> np.ndarray:
    """(H, W) bool / 0-1 mask -> (gh * gw,) fraction of each cell covered (row-major, area pooling)."""
    t = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
    return torch.nn.functional.adaptive_avg_pool2d(t, grid).flatten().numpy().astype(np.float64)


def cell_fractions_from_box(box, grid: tuple[int, int]) -> np.ndarray:
    """Box [x0, y0, x1, y1] in [0, 1] image coordinates -> (gh * gw,) exact covered fraction per cell."""
    x0, y0, x1, y1 = box
    gh, gw = grid

    def overlap(lo, hi, n):
        edges = np.arange(n + 1) / n
        return np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0, None) * n

    return np.outer(overlap(y0, y1, gh), overlap(x0, x1, gw)).flatten()


def inside_cells(fractions, min_overlap: float = 0.0) -> np.ndarray:
    """(R,) bool: covered by at least min_overlap of the cell's area, and by at least one pixel."""
    fractions = np.asarray(fractions)
    return (fractions > 0) & (fractions >= min_overlap)


def mirror_cells(cells, grid: tuple[int, int]) -> np.ndarray:
    """(R,) cell values mirrored left <-> right across the image's vertical midline."""
    return np.asarray(cells).reshape(grid)[:, ::-1].flatten()


# ----------------------------------------------------------------------------- map scores


def pooled_map(word_maps: torch.Tensor, word_indices) -> np.ndarray:
    """(R,) mean of the chosen words' maps (word_maps: (W, R), each row a distribution over regions).

    All-zero rows (words left out of the local score, ``model.text.local_words``) do not count;
    a map of such words only is all zero.
    """
    rows = word_maps[list(word_indices)].double()
    rows = rows[rows.sum(dim=1) > 0]
    return rows.mean(dim=0).numpy() if len(rows) else np.zeros(word_maps.shape[1])


def pointing_hit(region_map, inside) -> float:
    """1 when the map's maximum is inside, 0 when outside; tied maxima count fractionally.

    Maps come from float32, so values within float32 resolution (relative 1e-6) of the maximum tie.
    """
    region_map, inside = np.asarray(region_map, dtype=np.float64), np.asarray(inside, dtype=bool)
    top = np.isclose(region_map, region_map.max(), rtol=1e-6, atol=0.0)
    return float(inside[top].mean())


def mass_inside(region_map, inside) -> float:
    """Fraction of the map's mass over the image's regions that lies in the inside cells.

    (With a null region, alpha rows sum to less than 1; the mass is taken among real regions.)
    """
    region_map = np.asarray(region_map, dtype=np.float64)
    return float(region_map[np.asarray(inside, dtype=bool)].sum() / region_map.sum())


def chance_level(inside) -> float:
    """Pointing and mass chance: the fraction of cells inside (a uniform map)."""
    return float(np.asarray(inside, dtype=bool).mean())


def min_max(region_map) -> np.ndarray:
    """(R,) map rescaled to [0, 1] (MS-CXR's normalisation); a flat map becomes all zeros."""
    region_map = np.asarray(region_map, dtype=np.float64)
    span = region_map.max() - region_map.min()
    return (region_map - region_map.min()) / span if span > 0 else np.zeros_like(region_map)


def contrast_to_noise(region_map, cells) -> float:
    """Signed CNR: (mu_in - mu_out) / sqrt(var_in + var_out) of the min-max normalised (R,) map.

    cells (R,): the footprint's covered fraction of each cell, the pixel weight of the cell inside
    (1 - cells outside); variances are the pixels' (population) variances. A flat map has no
    contrast and no noise: 0, as MS-CXR's evaluation counts it; a map constant inside and constant
    outside has no noise: +-inf (float maps of a trained model never are).
    """
    x, inside = min_max(region_map), np.asarray(cells, dtype=np.float64)
    outside = 1.0 - inside
    if inside.sum() == 0 or outside.sum() == 0:
        return 0.0
    mu_in, mu_out = np.average(x, weights=inside), np.average(x, weights=outside)
    var = np.average((x - mu_in) ** 2, weights=inside) + np.average((x - mu_out) ** 2, weights=outside)
    if var > 0:
        return float((mu_in - mu_out) / np.sqrt(var))
    return 0.0 if mu_in == mu_out else math.copysign(math.inf, mu_in - mu_out)


def mean_iou(region_map, cells, thresholds=MIOU_THRESHOLDS) -> float:
    """IoU of {normalised map > t} with the footprint (covered fractions cells (R,)), mean over t."""
    x, covered = min_max(region_map), np.asarray(cells, dtype=np.float64)
    ious = []
    for t in thresholds:
        chosen = (x > t).astype(np.float64)
        ious.append((chosen * covered).sum() / (chosen + covered - chosen * covered).sum())
    return float(np.mean(ious))


def map_scores(region_map, cells, min_overlap: float = 0.0) -> dict:
    """hit, mass, chance (on the inside cells), cnr, cnr_abs and miou (on the covered fractions)."""
    inside = inside_cells(cells, min_overlap)
    cnr = contrast_to_noise(region_map, cells)
    return dict(hit=pointing_hit(region_map, inside), mass=mass_inside(region_map, inside),
                chance=chance_level(inside), cnr=cnr, cnr_abs=abs(cnr), miou=mean_iou(region_map, cells))


def score_target(word_maps: torch.Tensor, target: GroundingTarget, kind: str,
                 min_overlap: float = 0.0) -> list[dict]:
    """Rows (one per word set) with :func:`map_scores` for one target's (W, R) word maps."""
    inside = inside_cells(target.cells, min_overlap)
    rows = []
    for name, indices in target.word_sets.items():
        valid = [k for k in indices if k < len(word_maps)]
        if len(valid) < len(indices):
            log.warning("grounding: study %s %s words %s cut by truncation; kept %s",
                        target.study_id, name, indices, valid)
        if not valid or not inside.any():
            continue
        rows.append(dict(study_id=target.study_id, type=target.type, side=target.side, kind=kind, words=name,
                         **map_scores(pooled_map(word_maps, valid), target.cells, min_overlap)))
    return rows


def summarize_grounding(rows: list[dict], values=("hit", "mass", "chance"), n_boot: int = 0,
                        seed: int = 0) -> list[dict]:
    """Means of ``values`` per (kind, words, type), plus type ``all``; n = findings (or pairs).

    Works for evaluate_grounding rows (hit, mass, chance, or SCORE_VALUES), laterality_swap rows
    (values=LATERALITY_VALUES) and paired_phrase_rows (values=("paired",)). With ``n_boot`` > 0 each
    value but ``chance`` gets ``<value>_low`` / ``<value>_high``: a 95 % percentile bootstrap over
    studies (a study's rows resampled together; evaluate.intervals.paired_bootstrap, ``seed``).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        for finding_type in (r["type"], "all"):
            groups.setdefault((r["kind"], r["words"], finding_type), []).append(r)
    out = []
    for (k, w, t), g in sorted(groups.items()):
        row = dict(kind=k, words=w, type=t, n=len(g), **{v: float(np.mean([r[v] for r in g])) for v in values})
        if n_boot > 0:
            for v in values:
                if v != "chance":
                    ci = study_interval(g, v, n_boot, seed)
                    row[f"{v}_low"], row[f"{v}_high"] = ci.low, ci.high
        out.append(row)
    return out


def study_interval(rows: list[dict], value: str, n_boot: int, seed: int):
    """Bootstrap interval of the mean of ``value`` over rows, resampling studies (``study_id``)."""
    sums, counts = defaultdict(float), defaultdict(int)
    for r in rows:
        sums[r["study_id"]] += r[value]
        counts[r["study_id"]] += 1
    studies = sorted(sums)
    return paired_bootstrap([sums[s] for s in studies], [counts[s] for s in studies], n_boot, seed)


# ----------------------------------------------------------------------------- targets


def synthcxr_targets(records, study_ids: list[str], root: str | Path, grid: tuple[int, int]) -> list[GroundingTarget]:
    """Targets for every finding in ``findings_gt`` of the records (SynthCXR lists positive findings).

    records: manifest rows (dicts); study_ids: embed_dataset's order (row i = study_ids[i]).
    The footprint is the mask at ``root/mask_path`` (PNG or .npy) when present, else the box.
    """
    row_of = {sid: i for i, sid in enumerate(study_ids)}
    targets = []
    for record in records:
        if record["study_id"] not in row_of:
            continue
        for gt in record.get("findings_gt") or []:
            cells = _finding_cells(gt, Path(root), grid)
            targets.append(GroundingTarget(
                row=row_of[record["study_id"]], text=record["text"], cells=cells, type=gt["type"],
                word_sets={"head": list(gt["head_words"]), "phrase": list(gt["phrase_words"])},
                side=gt.get("side"), study_id=record["study_id"]))
    return targets


def _finding_cells(gt: dict, root: Path, grid) -> np.ndarray:
    if gt.get("mask_path"):
        return cell_fractions_from_mask(_read_mask(root / gt["mask_path"]), grid)
    return cell_fractions_from_box(gt["box"], grid)


def _read_mask(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path}: finding mask not found; regenerate the SynthCXR data "
                                "(python -m joimternet_lite generate) or fix the manifest's root")
    if path.suffix == ".npy":
        return np.load(path) > 0
    from PIL import Image

    return np.asarray(Image.open(path).convert("L")) > 127


@dataclass
class PhraseBoxes:
    """User boxes for one (study, phrase): boxes as [x0, y0, x1, y1] in [0, 1] of the eval crop."""

    study_id: str
    phrase: str
    boxes: list[list[float]]
    category: str = "phrase"


_CSV_ALIASES = {"phrase": ("phrase", "label_text"), "category": ("category", "category_name")}
_CSV_NUMBERS = ("x", "y", "w", "h", "image_width", "image_height")


def load_phrase_boxes(path: str | Path) -> list[PhraseBoxes]:
    """Read the box CSV described in the module docstring; boxes of one (study, phrase) are grouped."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        phrase_col = _pick_column(columns, "phrase", path)
        category_col = next((c for c in _CSV_ALIASES["category"] if c in columns), None)
        missing = {"study_id", *_CSV_NUMBERS} - columns
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected "
                             f"study_id,phrase,x,y,w,h,image_width,image_height[,category]")
        grouped: dict[tuple[str, str], PhraseBoxes] = {}
        for line, row in enumerate(reader, start=2):
            box = _crop_box(_numbers(row, path, line), path, line)
            key = (row["study_id"], row[phrase_col])
            entry = grouped.setdefault(key, PhraseBoxes(*key, [], row[category_col] if category_col else "phrase"))
            entry.boxes.append(box)
    return list(grouped.values())


def _pick_column(columns, name, path) -> str:
    for candidate in _CSV_ALIASES[name]:
        if candidate in columns:
            return candidate
    raise ValueError(f"{path}: no {name} column (accepted names: {_CSV_ALIASES[name]})")


def _numbers(row: dict, path, line) -> dict:
    try:
        values = {k: float(row[k]) for k in _CSV_NUMBERS}
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}:{line}: x, y, w, h, image_width, image_height must be numbers ({e})") from e
    if values["w"] <= 0 or values["h"] <= 0 or values["image_width"] <= 0 or values["image_height"] <= 0:
        raise ValueError(f"{path}:{line}: box and image sizes must be positive, got {values}")
    return values


def _crop_box(v: dict, path, line) -> list[float]:
    """Pixel box -> [0, 1] coordinates of the eval transform's centre square crop (clipped to it)."""
    side = min(v["image_width"], v["image_height"])
    ox, oy = (v["image_width"] - side) / 2, (v["image_height"] - side) / 2
    box = [(v["x"] - ox) / side, (v["y"] - oy) / side, (v["x"] + v["w"] - ox) / side, (v["y"] + v["h"] - oy) / side]
    clipped = [min(max(c, 0.0), 1.0) for c in box]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise ValueError(f"{path}:{line}: the box lies outside the centre crop the model sees")
    return clipped


def box_targets(phrase_boxes: list[PhraseBoxes], study_ids: list[str], grid: tuple[int, int]) -> list[GroundingTarget]:
    """Targets for user phrases: the phrase is the text, all its words form the ``phrase`` word set.

    Several boxes of one phrase combine cell-wise by their maximum coverage. Studies that are not
    among study_ids are skipped with a counted warning.
    """
    row_of = {sid: i for i, sid in enumerate(study_ids)}
    targets, missing = [], 0
    for pb in phrase_boxes:
        if pb.study_id not in row_of:
            missing += 1
            continue
        cells = np.max([cell_fractions_from_box(b, grid) for b in pb.boxes], axis=0)
        words = list(range(len(split_words(pb.phrase))))
        targets.append(GroundingTarget(row=row_of[pb.study_id], text=pb.phrase, word_sets={"phrase": words},
                                       cells=cells, type=pb.category, study_id=pb.study_id))
    if missing:
        log.warning("box_targets: %d of %d phrases name studies that were not embedded; skipped",
                    missing, len(phrase_boxes))
    return targets


# ----------------------------------------------------------------------------- with a model


def word_maps_for(model, tokenizer, regions: torch.Tensor, pairs: list[tuple[int, str]], kind: str,
                  device="cpu", batch_size: int = 32) -> list[torch.Tensor]:
    """For each (image row, text) pair, its (W, R) word-region maps; W = the text's valid words.

    regions: (N, R, D) from embed_dataset. Texts are encoded like the dataset's reports (word k =
    ``split_words(text)[k]``, for word-level and pretrained sub-word tokenizers alike). The maps are
    the model's own (``model.similarity.maps``): its gamma1 and, in the alpha maps, its opt-out region;
    a model that matches sentences (``model.text.local_units``) gives each word its sentence's map.
    """
    from .embed import embed_reports

    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        text_side = embed_reports(model, tokenizer, [t for _, t in chunk], device)
        rows = torch.tensor([r for r, _ in chunk])
        with torch.no_grad():
            maps = model.similarity.maps(regions[rows].to(device), text_side.words.to(device),
                                         text_side.lengths.to(device), kind, text_side.word_mask.to(device))
        maps = spread_to_words(maps, text_side.units.to(device))
        out += [m[:n].float().cpu() for m, n in zip(maps, text_side.lengths.tolist(), strict=True)]
    return out


def evaluate_grounding(model, tokenizer, regions: torch.Tensor, targets: list[GroundingTarget],
                       kinds=MAP_KINDS, min_overlap: float = 0.0, device="cpu") -> list[dict]:
    """Per-target rows (kind, words, type, hit, mass, chance); summarise with summarize_grounding."""
    pairs = sorted({(t.row, t.text) for t in targets})
    rows = []
    for kind in kinds:
        maps = dict(zip(pairs, word_maps_for(model, tokenizer, regions, pairs, kind, device), strict=True))
        for t in targets:
            rows += score_target(maps[(t.row, t.text)], t, kind, min_overlap)
    return rows


_SIDE_WORDS = re.compile(r"\b(left|right)\b", flags=re.IGNORECASE)


def region_owners(regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
                  texts: list[str], sentences: bool = False,
                  word_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Counter]:
    """Who claims each region in the alpha attention's softmax over words. Taught in notebook 11.

    regions (B, R, D), words (B, L, D), lengths (B,) of paired images and reports, ``texts`` the
    reports. A region's *owner* is the word with the largest dot product, the winner of the softmax
    over words. Returns the owner's share of that softmax for every region of every pair (a flat
    (B * R,) tensor; 1 = the region belongs to one word alone) and a Counter of regions owned per
    word. The words ``word_mask`` (B, L) leaves out of the local score own nothing. ``sentences=True``
    (a model with ``model.text.local_units=sentences``) names each owner by its whole sentence.
    """
    shares, owned = [], Counter()
    valid = valid_words(lengths, words.shape[1], word_mask)
    for b, text in enumerate(texts):
        n = int(lengths[b])
        names = ([w for w, _ in split_words(text)] + ["[SEP]"])[:n]
        if sentences:
            of_word = sentence_of_words(text)
            names = [" ".join(w for w, s in zip(names, of_word, strict=False) if s == of_word[k])
                     if k < len(of_word) else name for k, name in enumerate(names)]
        keep = valid[b, :n]
        over_words = (words[b, :n][keep].float() @ regions[b].float().T).softmax(dim=0)   # (n', R)
        shares.append(over_words.max(dim=0).values)
        kept = [w for w, k in zip(names, keep.tolist(), strict=True) if k]
        owned.update(kept[k] for k in over_words.argmax(dim=0).tolist())
    return torch.cat(shares), owned


def swap_laterality(text: str) -> str:
    """Swap the words left <-> right (keeping case); word positions do not change."""
    def swap(match):
        word = match.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.upper() if word.isupper() else other.capitalize() if word[0].isupper() else other

    return _SIDE_WORDS.sub(swap, text)


def laterality_swap(model, tokenizer, regions: torch.Tensor, targets: list[GroundingTarget],
                    grid: tuple[int, int], kinds=WORD_MAP_KINDS, word_set: str = "phrase", min_overlap: float = 0.0,
                    device="cpu") -> list[dict]:
    """Counterfactual: swap left/right in the text and see where the phrase map goes.

    For each target with side left or right whose phrase names a side (``left`` or ``right``), the
    phrase map of the original and of the swapped text (same image) is measured on the finding's
    cells and on the mirrored cells. Rows hold ``mass_true_before``, ``mass_mirror_before``,
    ``mass_true_after``, ``mass_mirror_after``, ``moved`` = mass_mirror_after - mass_mirror_before
    (a model that reads laterality moves mass) and ``left_right``, the left/right test: 1 when the
    phrase puts more mass on the finding than the swapped phrase does, 0.5 on a tie, else 0.
    """
    lateral = [t for t in targets if t.side in ("left", "right") and word_set in t.word_sets
               and names_side(t.text, t.word_sets[word_set])]
    rows = []
    for kind in kinds:
        before = phrase_maps(model, tokenizer, regions, lateral, kind, word_set, device)
        after = phrase_maps(model, tokenizer, regions, lateral, kind, word_set, device, edit=swap_laterality)
        for t, m0, m1 in zip(lateral, before, after, strict=True):
            true, mirror = inside_cells(t.cells, min_overlap), inside_cells(mirror_cells(t.cells, grid), min_overlap)
            if not true.any() or not mirror.any() or m0 is None or m1 is None:
                continue
            row = dict(study_id=t.study_id, type=t.type, side=t.side, kind=kind, words=word_set,
                       mass_true_before=mass_inside(m0, true), mass_mirror_before=mass_inside(m0, mirror),
                       mass_true_after=mass_inside(m1, true), mass_mirror_after=mass_inside(m1, mirror))
            row["moved"] = row["mass_mirror_after"] - row["mass_mirror_before"]
            row["left_right"] = beats(row["mass_true_before"], row["mass_true_after"])
            rows.append(row)
    return rows


def phrase_maps(model, tokenizer, regions, targets, kind, word_set, device, edit=None) -> list[np.ndarray | None]:
    """(R,) pooled map of each target's word set for its text (optionally edited); None if truncated away."""
    texts = [edit(t.text) if edit else t.text for t in targets]
    pairs = [(t.row, text) for t, text in zip(targets, texts, strict=True)]
    maps = word_maps_for(model, tokenizer, regions, pairs, kind, device) if pairs else []
    out = []
    for t, m in zip(targets, maps, strict=True):
        valid = [k for k in t.word_sets[word_set] if k < len(m)]
        out.append(pooled_map(m, valid) if valid else None)
    return out


def names_side(text: str, word_indices) -> bool:
    """Whether any of the words ``word_indices`` of ``text`` is left or right."""
    words = [w for w, _ in split_words(text)]
    return any(words[k] in ("left", "right") for k in word_indices if k < len(words))


def beats(mass: float, other: float) -> float:
    """1 when ``mass`` exceeds ``other``, 0.5 when they tie (to float32 resolution), else 0."""
    return 0.5 if np.isclose(mass, other, **_TIE) else float(mass > other)


# ----------------------------------------------------------------------------- controls


def phrase_text(text: str, word_indices) -> str:
    """The stretch of ``text`` from the first to the last of its words ``word_indices``."""
    spans = [span for _, span in split_words(text)]
    return text[spans[min(word_indices)][0]:spans[max(word_indices)][1]]


def typed_alone(targets: list[GroundingTarget], word_set: str = "phrase") -> list[GroundingTarget]:
    """Each target's phrase typed alone, as a ``ground`` user types it: the text is the phrase
    (cut from its report), every word of it is word set ``phrase alone``; same image and footprint."""
    out = []
    for t in targets:
        if word_set not in t.word_sets or not t.word_sets[word_set]:
            continue
        text = phrase_text(t.text, t.word_sets[word_set])
        out.append(GroundingTarget(row=t.row, text=text, word_sets={ALONE: list(range(len(split_words(text))))},
                                   cells=t.cells, type=t.type, side=t.side, study_id=t.study_id))
    return out


def control_maps(model, tokenizer, regions: torch.Tensor, rows: list[int], kind: str, device="cpu",
                 sentences=UNRELATED_SENTENCES) -> dict[int, np.ndarray]:
    """Image row -> (R,) the word-agnostic control: the mean over ``sentences`` of each sentence's
    map (the mean of its words' ``kind`` maps) over that image.

    Sentences whose words all lie outside the local score (all-zero maps) do not count; with none
    left the control is the uniform map (logged), which reads nothing at all.
    """
    pairs = [(r, s) for r in rows for s in sentences]
    maps = word_maps_for(model, tokenizer, regions, pairs, kind, device) if pairs else []
    pooled = {r: [] for r in rows}
    for (r, s), m in zip(pairs, maps, strict=True):
        region_map = pooled_map(m, range(min(len(split_words(s)), len(m))))
        if region_map.sum() > 0:
            pooled[r].append(region_map)
    if any(not v for v in pooled.values()):
        log.warning("control_maps: no %s map for any unrelated sentence on some images; using the uniform map", kind)
    uniform = np.full(regions.shape[1], 1.0 / regions.shape[1])
    return {r: np.mean(v, axis=0) if v else uniform for r, v in pooled.items()}


def control_rows(model, tokenizer, regions: torch.Tensor, targets: list[GroundingTarget], kinds=WORD_MAP_KINDS,
                 min_overlap: float = 0.0, device="cpu") -> list[dict]:
    """evaluate_grounding rows of the control map: kind ``<kind> control``, word set ``unrelated``."""
    rows = []
    for kind in kinds:
        maps = control_maps(model, tokenizer, regions, sorted({t.row for t in targets}), kind, device)
        rows += [dict(study_id=t.study_id, type=t.type, side=t.side, kind=f"{kind} control", words=UNRELATED,
                      **map_scores(maps[t.row], t.cells, min_overlap))
                 for t in targets if inside_cells(t.cells, min_overlap).any()]
    return rows


def paired_phrase_rows(targets: list[GroundingTarget], maps: list, kind: str, word_set: str,
                       min_overlap: float = 0.0) -> list[dict]:
    """The paired-phrase test, one row per ordered pair (A, B) of findings of one study whose inside
    cells do not overlap: ``paired`` = beats(mass of A's map on A, mass of B's map on A).

    maps: each target's (R,) phrase map (``phrase_maps``; None = cut by truncation, left out).
    """
    by_study = defaultdict(list)
    for t, m in zip(targets, maps, strict=True):
        if m is not None and inside_cells(t.cells, min_overlap).any():
            by_study[t.row].append((t, m))
    rows = []
    for found in by_study.values():
        for (a, map_a), (b, map_b) in permutations(found, 2):
            inside_a = inside_cells(a.cells, min_overlap)
            if (inside_a & inside_cells(b.cells, min_overlap)).any():
                continue
            rows.append(dict(study_id=a.study_id, type=a.type, other=b.type, kind=kind, words=word_set,
                             paired=beats(mass_inside(map_a, inside_a), mass_inside(map_b, inside_a))))
    return rows


def grounding_results(model, tokenizer, regions: torch.Tensor, targets: list[GroundingTarget],
                      grid: tuple[int, int], n_boot: int = 0, seed: int = 0, device="cpu") -> dict:
    """Every grounding number of the demo report for one model, phrase in its report and typed alone.

    ``grounding``: summarised pointing, mass, CNR and mIoU of every map kind and word set, and of the
    control maps; ``paired_phrase`` and ``laterality_swap`` (with the left/right test): summaries
    over all findings. Intervals: ``n_boot`` bootstrap resamples of the studies.
    ``grounding_rows`` keeps the per-finding rows (ablate's intervals).
    """
    alone = typed_alone(targets)
    rows = evaluate_grounding(model, tokenizer, regions, targets + alone, device=device)
    rows += control_rows(model, tokenizer, regions, targets, device=device)
    paired, swap = [], []
    for found, word_set in ((targets, "phrase"), (alone, ALONE)):
        for kind in MAP_KINDS:
            maps = phrase_maps(model, tokenizer, regions, found, kind, word_set, device)
            paired += paired_phrase_rows(found, maps, kind, word_set)
        swap += laterality_swap(model, tokenizer, regions, found, grid, kinds=MAP_KINDS, word_set=word_set,
                                device=device)

    def overall(found, values):
        return [r for r in summarize_grounding(found, values, n_boot, seed) if r["type"] == "all"]

    return {"grounding": summarize_grounding(rows, SCORE_VALUES, n_boot, seed), "grounding_rows": rows,
            "paired_phrase": overall(paired, ("paired",)), "laterality_swap": overall(swap, LATERALITY_VALUES)}
