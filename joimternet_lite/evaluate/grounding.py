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

Masks are downsampled to the grid by area averaging (adaptive average pooling); boxes are
intersected with the cells exactly. Everything is deterministic.

User boxes (e.g. MS-CXR) come from a CSV, one box per line, read by :func:`load_phrase_boxes`::

    study_id,phrase,x,y,w,h,image_width,image_height[,category]
    s123,small left pleural effusion,610,1400,420,300,2544,3056,Pleural Effusion

x, y (top-left corner), w, h in pixels of the stored image of width x height. MS-CXR's
``label_text`` and ``category_name`` columns are accepted for phrase and category. Lines with the
same study and phrase are one target (boxes combined). Boxes are mapped through the evaluation
transform (resize of the shorter side, centre square crop) before they meet the grid.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.tokenizer import sentence_of_words, split_words
from ..models.similarity import spread_to_words

log = logging.getLogger(__name__)

MAP_KINDS = ("alpha", "raw", "blind")
WORD_MAP_KINDS = ("alpha", "raw")  # the maps that read the words (the laterality swap needs them)
LATERALITY_VALUES = ("mass_true_before", "mass_mirror_before", "mass_true_after", "mass_mirror_after", "moved")


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


def score_target(word_maps: torch.Tensor, target: GroundingTarget, kind: str,
                 min_overlap: float = 0.0) -> list[dict]:
    """Rows (one per word set) with hit, mass and chance for one target's (W, R) word maps."""
    inside = inside_cells(target.cells, min_overlap)
    rows = []
    for name, indices in target.word_sets.items():
        valid = [k for k in indices if k < len(word_maps)]
        if len(valid) < len(indices):
            log.warning("grounding: study %s %s words %s cut by truncation; kept %s",
                        target.study_id, name, indices, valid)
        if not valid or not inside.any():
            continue
        region_map = pooled_map(word_maps, valid)
        rows.append(dict(study_id=target.study_id, type=target.type, side=target.side, kind=kind, words=name,
                         hit=pointing_hit(region_map, inside), mass=mass_inside(region_map, inside),
                         chance=chance_level(inside)))
    return rows


def summarize_grounding(rows: list[dict], values=("hit", "mass", "chance")) -> list[dict]:
    """Means of ``values`` per (kind, words, type), plus type ``all``; n = findings.

    Works for evaluate_grounding rows (hit, mass, chance) and laterality_swap rows
    (values=LATERALITY_VALUES).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        for finding_type in (r["type"], "all"):
            groups.setdefault((r["kind"], r["words"], finding_type), []).append(r)
    return [dict(kind=k, words=w, type=t, n=len(g), **{v: float(np.mean([r[v] for r in g])) for v in values})
            for (k, w, t), g in sorted(groups.items())]


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
            maps = model.similarity.maps(regions[rows].to(device), text_side["words"].to(device),
                                         text_side["lengths"].to(device), kind=kind)
        maps = spread_to_words(maps, text_side["units"].to(device))
        out += [m[:n].float().cpu() for m, n in zip(maps, text_side["lengths"].tolist(), strict=True)]
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
                  texts: list[str], sentences: bool = False) -> tuple[torch.Tensor, Counter]:
    """Who claims each region in the alpha attention's softmax over words. Taught in notebook 11.

    regions (B, R, D), words (B, L, D), lengths (B,) of paired images and reports, ``texts`` the
    reports. A region's *owner* is the word with the largest dot product, the winner of the softmax
    over words. Returns the owner's share of that softmax for every region of every pair (a flat
    (B * R,) tensor; 1 = the region belongs to one word alone) and a Counter of regions owned per
    word. Zero word vectors (words left out of the local score) own nothing. ``sentences=True``
    (a model with ``model.text.local_units=sentences``) names each owner by its whole sentence.
    """
    shares, owned = [], Counter()
    for b, text in enumerate(texts):
        n = int(lengths[b])
        names = ([w for w, _ in split_words(text)] + ["[SEP]"])[:n]
        if sentences:
            of_word = sentence_of_words(text)
            names = [" ".join(w for w, s in zip(names, of_word, strict=False) if s == of_word[k])
                     if k < len(of_word) else name for k, name in enumerate(names)]
        keep = words[b, :n].ne(0).any(dim=1)
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

    For each target with side left or right, the phrase map of the original and of the swapped text
    (same image) is measured on the finding's cells and on the mirrored cells. Rows hold
    ``mass_true_before``, ``mass_mirror_before``, ``mass_true_after``, ``mass_mirror_after`` and
    ``moved`` = mass_mirror_after - mass_mirror_before (a model that reads laterality moves mass).
    """
    lateral = [t for t in targets if t.side in ("left", "right") and word_set in t.word_sets]
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
