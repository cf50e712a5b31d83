"""Embed a whole evaluation split once (:func:`embed_dataset`), or free texts (:func:`embed_reports`),
for retrieval, probes and grounding. Taught in notebook 09.

Row i of every output is study i of the loader (which must not shuffle); the dataset chooses one
image per study deterministically, so the rows are reproducible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..data.dataset import NO_FRONTAL
from ..data.tokenizer import tokenize_reports
from ..device import to_device
from ..models.outputs import ImageEmbeddings, ReportEmbeddings
from ..models.similarity import valid_words

log = logging.getLogger(__name__)


@dataclass
class DatasetEmbeddings:
    """One embedded split, N studies; row i of every field is study i of the loader."""

    images: ImageEmbeddings     # image_vectors (N, D), regions (N, R, D) or None (global only)
    reports: ReportEmbeddings   # report_vectors (N, D), words (N, L, D) or None, lengths (N,), word_mask (N, L)
    labels: torch.Tensor        # (N, 14) float: 1 / 0 / -1, NaN blank
    index: torch.Tensor         # (N,) long: manifest rows
    study_ids: list[str]
    texts: list[str]
    skipped: list[tuple[str, str]]  # (study_id, reason): left out by design (no frontal image) or unreadable

    def __len__(self) -> int:
        return len(self.study_ids)


def embed_dataset(model, loader, device, keep_local: bool = True, progress: bool = True) -> DatasetEmbeddings:
    """Encode every batch of ``loader`` with ``model`` (eval mode, no gradients) into CPU tensors.

    Words are padded to the longest report (zeros, and False in ``word_mask``). ``skipped`` lists
    the studies the dataset left out (``no frontal image``, expected) and those it could not read
    (also logged). ``keep_local=False`` keeps no regions and words (global scoring only; saves memory).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {k: [] for k in ("image_vectors", "report_vectors", "regions", "words", "lengths",
                                              "word_mask", "labels", "index", "study_ids", "texts", "skipped")}
    # a DataLoader's dataset lists the studies it excluded by design; any iterable of batches will do
    parts["skipped"] += list(getattr(getattr(loader, "dataset", None), "excluded", []))
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="embed", disable=not progress):
                parts["skipped"] += list(batch.get("skipped", []))
                if len(batch["study_ids"]) == 0:
                    continue
                _embed_batch(model, to_device(batch, device), parts, keep_local)
    finally:
        model.train(was_training)
    return _concatenate(parts, keep_local)


def _embed_batch(model, batch: dict, parts: dict, keep_local: bool) -> None:
    img = model.encode_images(batch["images"])
    txt = model.encode_texts(batch["input_ids"], batch["attention_mask"], batch.get("word_ids"),
                             batch.get("sentence_ids"))
    parts["image_vectors"].append(img.image_vectors.float().cpu())
    parts["report_vectors"].append(txt.report_vectors.float().cpu())
    parts["lengths"].append(txt.lengths.cpu())
    if keep_local:
        parts["regions"].append(img.regions.float().cpu())
        parts["words"].append(txt.words.float().cpu())
        parts["word_mask"].append(_mask_of(txt).cpu())
    parts["labels"].append(batch["labels"].float().cpu())
    parts["index"].append(batch["index"].cpu())
    parts["study_ids"] += list(batch["study_ids"])
    parts["texts"] += list(batch["texts"])


def _mask_of(txt) -> torch.Tensor:
    """(B, L) bool word mask of a text output; every valid word when the tower gives none."""
    return valid_words(txt.lengths, txt.words.shape[1], txt.word_mask)


def _concatenate(parts: dict, keep_local: bool) -> DatasetEmbeddings:
    unreadable = [s for s in parts["skipped"] if s[1] != NO_FRONTAL]
    if unreadable:
        log.warning("embed_dataset: %d studies skipped (unreadable image), e.g. %s", len(unreadable), unreadable[:3])
    regions = torch.cat(parts["regions"]) if keep_local else None
    words = pad_cat(parts["words"]) if keep_local else None
    word_mask = pad_cat(parts["word_mask"]) if keep_local else None
    return DatasetEmbeddings(
        images=ImageEmbeddings(torch.cat(parts["image_vectors"]), regions),
        reports=ReportEmbeddings(torch.cat(parts["report_vectors"]), words, torch.cat(parts["lengths"]),
                                 word_mask=word_mask),
        labels=torch.cat(parts["labels"]), index=torch.cat(parts["index"]), study_ids=parts["study_ids"],
        texts=parts["texts"], skipped=parts["skipped"])


def pad_cat(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B_i, L_i, ...) blocks along B, padding L to the longest with zeros (False)."""
    longest = max(w.shape[1] for w in blocks)
    padded = [torch.cat([w, w.new_zeros((w.shape[0], longest - w.shape[1], *w.shape[2:]))], dim=1) for w in blocks]
    return torch.cat(padded)


def embed_reports(model, tokenizer, texts: list[str], device, max_length: int | None = None,
                  batch_size: int = 64) -> ReportEmbeddings:
    """Tokenize and encode free texts (prompts, phrases, edited reports) as the dataset does reports.

    Returns ReportEmbeddings on the CPU: ``report_vectors`` (T, D), ``words`` (T, L, D), ``lengths``
    (T,), ``units`` (T, L) long and ``word_mask`` (T, L) bool; word k of text t is
    ``split_words(texts[t])[k]``, and its vector (its map) is row ``units[t, k]`` (k itself, unless
    the model matches sentences: ``model.text.local_units``). ``max_length`` defaults to the
    tokenizer's ``model_max_length`` (``data.max_length`` when loaded by ``load_training_data``).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {"report_vectors": [], "words": [], "lengths": [], "units": [], "word_mask": []}
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                enc = to_device(tokenize_reports(tokenizer, list(texts[start:start + batch_size]), max_length), device)
                txt = model.encode_texts(enc["input_ids"], enc["attention_mask"], enc.get("word_ids"),
                                         enc["sentence_ids"])
                parts["report_vectors"].append(txt.report_vectors.float().cpu())
                parts["words"].append(txt.words.float().cpu())
                parts["lengths"].append(txt.lengths.cpu())
                parts["word_mask"].append(_mask_of(txt).cpu())
                positions = torch.arange(txt.words.shape[1]).expand(txt.words.shape[:2])
                parts["units"].append((positions if txt.units is None else txt.units.cpu())[..., None])
    finally:
        model.train(was_training)
    return ReportEmbeddings(torch.cat(parts["report_vectors"]), pad_cat(parts["words"]), torch.cat(parts["lengths"]),
                            pad_cat(parts["units"])[..., 0], pad_cat(parts["word_mask"]))
