"""The typed outputs of the model, read by attribute (as CLIP's outputs are), never by string keys.

Taught in notebook 06. Shapes: B pairs, N images, T reports, R = gh * gw regions, L word rows
(the longest report, [SEP] counted), D dims. :class:`~joimternet_lite.models.similarity.Similarity`
scores any image side with ``image_vectors`` and ``regions`` against any report side with
``report_vectors``, ``words``, ``lengths`` and ``word_mask``: these types, or the towers' own
``ImageOutput`` / ``TextOutput``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class ImageEmbeddings(NamedTuple):
    """Embedded images, as ``ImageTextInference.embed_images`` and ``embed_dataset`` return them."""

    image_vectors: torch.Tensor        # (N, D) float32
    regions: torch.Tensor | None       # (N, R, D) float32; None when only the global vectors were kept


class ReportEmbeddings(NamedTuple):
    """Embedded reports, as ``ImageTextInference.embed_reports``, ``embed_reports`` and ``embed_dataset`` return them."""

    report_vectors: torch.Tensor            # (T, D) float32
    words: torch.Tensor | None              # (T, L, D) float32, zeros at padding; None: global vectors only
    lengths: torch.Tensor                   # (T,) long: valid word rows per report ([SEP] counted)
    units: torch.Tensor | None = None       # (T, L) long: the row holding word k's vector (k, unless sentence units)
    word_mask: torch.Tensor | None = None   # (T, L) bool: the rows that enter the local score (None: all valid rows)


class ModelOutput(NamedTuple):
    """``JoImTeRNet.forward``'s output for B image-report pairs; the loss reads it. The local fields
    are None only where a caller builds one for the global terms alone (``ModelOutput(images, reports)``)."""

    image_vectors: torch.Tensor                 # (B, D)
    report_vectors: torch.Tensor                # (B, D)
    regions: torch.Tensor | None = None         # (B, R, D), as the local score takes them
    words: torch.Tensor | None = None           # (B, L - 1, D), zeros at padding
    lengths: torch.Tensor | None = None         # (B,) long
    units: torch.Tensor | None = None           # (B, L - 1) long with sentence units, else None
    word_mask: torch.Tensor | None = None       # (B, L - 1) bool: the rows that enter the local score

    @property
    def images(self) -> ImageEmbeddings:
        return ImageEmbeddings(self.image_vectors, self.regions)

    @property
    def reports(self) -> ReportEmbeddings:
        return ReportEmbeddings(self.report_vectors, self.words, self.lengths, self.units, self.word_mask)

    def float(self) -> ModelOutput:
        """The floating-point fields in float32 (the loss runs in fp32 after a bf16 forward)."""
        return ModelOutput(*(x.float() if x is not None and x.is_floating_point() else x for x in self))
