"""Study dataset, collate function and DataLoader factory. Taught in notebook 02.

One item is one study: one image (a random frontal image in training, the first frontal image in
sorted path order in evaluation, so evaluation is deterministic) and its report text. Images that
cannot be read are skipped, counted and returned in the batch's ``skipped`` list, so the trainer
can summarise them and fail past ``data.max_skip_fraction``.

With ``data.frontal_only`` a study that holds only lateral images (4 % of OpenI) is an expected
exclusion, decided when the dataset is built: it is listed in ``StudyDataset.excluded`` with the
reason ``no frontal image``, never read, and never counted toward ``data.max_skip_fraction``.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ..config import Config, ConfigError
from .errors import ImageReadError
from .images import read_image
from .schema import CHEXPERT_LABELS, load_manifest, resolve_image_path
from .tokenizer import build_tokenizer, load_pretrained_tokenizer, load_tokenizer, tokenize_reports
from .transforms import build_transforms, to_tensor

log = logging.getLogger(__name__)

NO_FRONTAL = "no frontal image"  # the reason listed for a study left out by data.frontal_only


class StudyDataset(Dataset):
    """Studies of one split of a manifest.

    Item: ``{"image": (1, S, S) float in [-1, 1], "text": str, "labels": (14,) float with NaN for
    blank, "study_id": str, "index": int}``, or ``{"skipped": (study_id, reason)}`` when its image
    cannot be read. ``excluded``: ``(study_id, "no frontal image")`` for the studies left out (see
    the module docstring).
    """

    def __init__(self, manifest: datasets.Dataset, root: str | Path, split: str | None, transform,
                 train: bool, frontal_only: bool = True, image_cache=None):
        self.root = Path(root)
        rows = manifest if split is None else manifest.filter(lambda s: s == split, input_columns="split")
        self.rows = rows.select_columns(["study_id", "image_paths", "views", "text", "labels"])
        self.transform = transform
        self.train = train
        self.frontal_only = frontal_only
        self.image_cache = image_cache
        self.excluded: list[tuple[str, str]] = []
        if frontal_only:
            self._exclude_lateral_only()

    def _exclude_lateral_only(self) -> None:
        """Drop the studies whose views hold neither a frontal nor an unknown image."""
        usable = ["frontal" in v or "unknown" in v for v in self.rows["views"]]
        if not all(usable):
            ids = self.rows["study_id"]
            self.excluded = [(sid, NO_FRONTAL) for sid, ok in zip(ids, usable, strict=True) if not ok]
            self.rows = self.rows.select([i for i, ok in enumerate(usable) if ok])

    def exclusion_note(self, what: str) -> str | None:
        """One line on the excluded studies (None when there are none), for run logs."""
        if not self.excluded:
            return None
        total = len(self.rows) + len(self.excluded)
        return (f"{len(self.excluded)} of {total} {what} have no frontal image: left out as expected "
                "(data.frontal_only=true; not counted toward data.max_skip_fraction)")

    def __len__(self) -> int:
        return len(self.rows)

    def candidate_images(self, row: dict) -> list[str]:
        """Image paths usable for this study: frontal ones when asked, else all; sorted."""
        pairs = list(zip(row["image_paths"], row["views"], strict=True))
        if self.frontal_only:
            frontal = [p for p, v in pairs if v == "frontal"]
            pairs = [(p, "frontal") for p in frontal] or [(p, v) for p, v in pairs if v == "unknown"]
        return sorted(p for p, _ in pairs)

    def choose_image(self, row: dict) -> str | None:
        paths = self.candidate_images(row)
        if not paths:
            return None
        return paths[random.randrange(len(paths))] if self.train else paths[0]

    def load_pixels(self, path: str) -> np.ndarray:
        full = resolve_image_path(self.root, path)
        if self.image_cache is not None and self.image_cache.has(full):
            return self.image_cache.get(full)
        return read_image(full)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        path = self.choose_image(row)
        if path is None:  # only without frontal_only: a study with no image at all
            return {"skipped": (row["study_id"], "no image")}
        try:
            pixels = self.load_pixels(path)
        except ImageReadError as err:
            log.warning("skipping study %s: %s", row["study_id"], err)
            return {"skipped": (row["study_id"], str(err))}
        return {
            "image": self.transform(to_tensor(pixels)),
            "text": row["text"],
            "labels": labels_to_tensor(row["labels"]),
            "study_id": row["study_id"],
            "index": index,
        }


def labels_to_tensor(labels: dict) -> torch.Tensor:
    """CheXpert dict (1 / 0 / -1 / None) -> (14,) float tensor, NaN for None."""
    return torch.tensor([math.nan if labels[n] is None else float(labels[n]) for n in CHEXPERT_LABELS])


class Collate:
    """Stack images, tokenize texts; studies whose image failed are reported in ``skipped``.

    Batch: ``images`` (B, 1, S, S), ``input_ids`` / ``attention_mask`` (B, L), ``labels`` (B, 14),
    ``study_ids``, ``texts``, ``index`` (B,), ``skipped`` list of (study_id, reason); with a
    pretrained sub-word tokenizer also ``word_ids`` (B, L) (see :func:`.tokenizer.tokenize_reports`).
    """

    def __init__(self, tokenizer, max_length: int | None = None):
        """``max_length``: tokens kept per report (default: the tokenizer's ``model_max_length``)."""
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: list[dict]) -> dict:
        good = [it for it in items if "skipped" not in it]
        skipped = [it["skipped"] for it in items if "skipped" in it]
        texts = [it["text"] for it in good]
        return {
            "images": torch.stack([it["image"] for it in good]) if good else torch.empty(0),
            **tokenize_reports(self.tokenizer, texts, self.max_length),
            "labels": torch.stack([it["labels"] for it in good]) if good else torch.empty(0, 14),
            "study_ids": [it["study_id"] for it in good],
            "texts": texts,
            "index": torch.tensor([it["index"] for it in good], dtype=torch.long),
            "skipped": skipped,
        }


def make_dataset(cfg: Config, manifest: datasets.Dataset, split: str | None, train: bool,
                 image_cache=None) -> StudyDataset:
    d = cfg.data
    if image_cache is None and d.cache_dir:
        from .cache import ImageCache

        image_cache = ImageCache(d.cache_dir)
    transform = build_transforms(d.image_size, train, d.augment_rotation, d.augment_crop_scale, d.augment_jitter)
    return StudyDataset(manifest, d.root, split, transform, train, d.frontal_only, image_cache)


def make_dataloader(dataset: StudyDataset, tokenizer, cfg: Config, train: bool,
                    batch_size: int | None = None, device: torch.device | None = None) -> DataLoader:
    """DataLoader with the project's collate; pinned memory on CUDA only.

    Training shuffles with a ``ResumableSampler``: the order depends only on ``(seed, epoch)``, the
    same for 1 or N processes (each rank takes its share), so a resumed or ``torchrun`` run sees
    exactly the batches of a plain run. It drops the last incomplete batch, as the authors do, so
    every CE softmax sees the same number of negatives. Evaluation reads in order, unsharded.
    """
    from ..distributed import ResumableSampler

    workers = cfg.data.num_workers
    if train:
        sampler = ResumableSampler(dataset, shuffle=True, seed=cfg.train.seed, drop_last=True)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size or cfg.train.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=Collate(tokenizer, cfg.data.max_length),
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=train,
    )


def load_training_data(cfg: Config, tokenizer_dir: str | Path | None = None):
    """Return ``(manifest, tokenizer)`` for ``cfg.data``; generates SynthCXR when asked and absent.

    With ``model.text.pretrained_path`` the tokenizer is that folder's own. Otherwise the
    word-level tokenizer is loaded from ``tokenizer_dir`` (a run's saved tokenizer) when it exists,
    else from ``<root>/tokenizer``, else trained on the training split's reports and saved there.
    Either way it truncates at ``data.max_length``.
    """
    root = Path(cfg.data.root)
    if cfg.data.source == "synthetic" and not (root / "manifest.json").exists():
        from .synthcxr import SynthCXRFolderError, generate_synthcxr

        try:
            generate_synthcxr(root, num_studies=cfg.data.num_studies, image_size=cfg.data.synth_image_size,
                              seed=cfg.data.seed)
        except SynthCXRFolderError as err:
            raise ConfigError(
                f"data.root={root}: {err.problem}; with data.source=synthetic, training generates SynthCXR there. "
                "Set data.root to an empty or new folder (or to a SynthCXR dataset), or data.source=manifest "
                "if the folder holds a prepared manifest") from None
    manifest = load_manifest(root)
    if cfg.model.text.pretrained_path:
        return manifest, load_pretrained_tokenizer(cfg.model.text.pretrained_path, cfg.data.max_length)
    for candidate in (tokenizer_dir, root / "tokenizer"):
        if candidate is not None and (Path(candidate) / "tokenizer.json").exists():
            tokenizer = load_tokenizer(candidate)
            tokenizer.model_max_length = cfg.data.max_length
            return manifest, tokenizer
    train_texts = manifest.filter(lambda s: s == "train", input_columns="split")["text"]
    tokenizer = build_tokenizer(train_texts, min_frequency=cfg.data.min_word_frequency,
                                max_length=cfg.data.max_length)
    tokenizer.save_pretrained(str(root / "tokenizer"))
    return manifest, tokenizer
