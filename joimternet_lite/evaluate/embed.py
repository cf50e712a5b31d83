"""Embed a whole evaluation split once (:func:`embed_dataset`), or free texts (:func:`embed_reports`),
for retrieval, probes and grounding. Taught in notebook 09.

Row i of every output is study i of the loader (which must not shuffle); the dataset chooses one
image per study deterministically, so the rows are reproducible.
"""

from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from ..data.dataset import NO_FRONTAL
from ..data.tokenizer import tokenize_reports
from ..device import to_device

log = logging.getLogger(__name__)


def embed_dataset(model, loader, device, keep_local: bool = True, progress: bool = True) -> dict:
    """Encode every batch of ``loader`` with ``model`` (eval mode, no gradients).

    Returns a dict of CPU tensors / lists, N studies:
    ``image_vectors`` (N, D), ``report_vectors`` (N, D), ``regions`` (N, R, D), ``words`` (N, L, D)
    (L = the longest report; zeros at padding), ``lengths`` (N,) long, ``labels`` (N, 14) float
    (1 / 0 / -1, NaN blank), ``index`` (N,) manifest rows, ``study_ids`` list[str],
    ``texts`` list[str] (from the batches of data.dataset.Collate).
    ``null_region`` (D,) or None: the model's opt-out region, which local scoring must use.
    ``skipped`` list of (study_id, reason): the studies the dataset left out (``no frontal image``,
    expected) and those it could not read (also logged).
    ``keep_local=False`` drops regions and words (global scoring only; saves memory).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {k: [] for k in ("image_vectors", "report_vectors", "regions", "words", "lengths",
                                              "labels", "index", "study_ids", "texts", "skipped")}
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
    out = _concatenate(parts, keep_local)
    out["null_region"] = model_null_region(model)
    return out


def model_null_region(model) -> torch.Tensor | None:
    """The model's opt-out region (D,) on the CPU, or None when the model has none."""
    null = getattr(getattr(model, "similarity", None), "null_region", None)
    return None if null is None else null.detach().float().cpu()


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
    parts["labels"].append(batch["labels"].float().cpu())
    parts["index"].append(batch["index"].cpu())
    parts["study_ids"] += list(batch["study_ids"])
    parts["texts"] += list(batch["texts"])


def _concatenate(parts: dict, keep_local: bool) -> dict:
    unreadable = [s for s in parts["skipped"] if s[1] != NO_FRONTAL]
    if unreadable:
        log.warning("embed_dataset: %d studies skipped (unreadable image), e.g. %s", len(unreadable), unreadable[:3])
    out = {k: torch.cat(parts[k]) for k in ("image_vectors", "report_vectors", "lengths", "labels", "index")}
    out.update(study_ids=parts["study_ids"], texts=parts["texts"], skipped=parts["skipped"])
    if keep_local:
        out["regions"] = torch.cat(parts["regions"])
        out["words"] = pad_cat(parts["words"])
    return out


def pad_cat(word_blocks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B_i, L_i, D) word blocks along B, zero-padding L to the longest."""
    longest = max(w.shape[1] for w in word_blocks)
    return torch.cat([torch.nn.functional.pad(w, (0, 0, 0, longest - w.shape[1])) for w in word_blocks])


def embed_reports(model, tokenizer, texts: list[str], device, max_length: int | None = None,
                  batch_size: int = 64) -> dict:
    """Tokenize and encode free texts (prompts, phrases, edited reports) as the dataset does reports.

    Returns ``report_vectors`` (T, D), ``words`` (T, L, D), ``lengths`` (T,) and ``units`` (T, L)
    long on the CPU; word k of text t is ``split_words(texts[t])[k]``, and its vector (its map) is
    row ``units[t, k]`` (k itself, unless the model matches sentences: ``model.text.local_units``).
    ``max_length`` defaults to the tokenizer's ``model_max_length`` (``data.max_length`` when loaded
    by ``load_training_data``).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {"report_vectors": [], "words": [], "lengths": [], "units": []}
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                enc = to_device(tokenize_reports(tokenizer, list(texts[start:start + batch_size]), max_length), device)
                txt = model.encode_texts(enc["input_ids"], enc["attention_mask"], enc.get("word_ids"),
                                         enc["sentence_ids"])
                parts["report_vectors"].append(txt.report_vectors.float().cpu())
                parts["words"].append(txt.words.float().cpu())
                parts["lengths"].append(txt.lengths.cpu())
                positions = torch.arange(txt.words.shape[1]).expand(txt.words.shape[:2])
                parts["units"].append((positions if txt.units is None else txt.units.cpu())[..., None])
    finally:
        model.train(was_training)
    return {"report_vectors": torch.cat(parts["report_vectors"]), "words": pad_cat(parts["words"]),
            "lengths": torch.cat(parts["lengths"]), "units": pad_cat(parts["units"])[..., 0]}
