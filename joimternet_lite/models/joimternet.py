"""JoImTeRNet: the image tower, the text tower and the similarity module in one nn.Module.

Taught in notebook 06. ``forward`` returns the :class:`~joimternet_lite.models.outputs.ModelOutput`
the loss reads: regions (B, R, D), image_vectors (B, D), words (B, L - 1, D), lengths (B,),
report_vectors (B, D), ``units`` (B, L - 1) with sentence units, and ``word_mask`` (B, L - 1).
``get_image_features`` / ``get_text_features`` give the global vectors alone, where an engineer who
knows CLIP looks for them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..hub import PretrainedMixin
from .image_encoder import ImageOutput, build_image_encoder
from .outputs import ModelOutput
from .similarity import Similarity
from .text_encoder import TextEncoder, TextOutput


class JoImTeRNet(PretrainedMixin, nn.Module):
    """Both towers and the similarity; ``from_pretrained`` / ``save_pretrained`` come from ``joimternet_lite.hub``."""

    def __init__(self, image_encoder: nn.Module, text_encoder: TextEncoder, similarity: Similarity):
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.similarity = similarity

    @property
    def grid(self) -> tuple[int, int]:
        """(gh, gw) of the region grid at the image size the tower was built for."""
        size = self.image_encoder.image_size
        return self.image_encoder.grid_for(size, size)

    def encode_images(self, images: torch.Tensor) -> ImageOutput:
        """images (B, 1, H, W) -> ImageOutput(regions (B, R, D), image_vectors (B, D)); regions as
        the local score takes them (unit length with ``model.score.cosine_scale``)."""
        out = self.image_encoder(images)
        return out._replace(regions=self.similarity.local_regions(out.regions))

    def encode_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     word_ids: torch.Tensor | None = None, sentence_ids: torch.Tensor | None = None) -> TextOutput:
        """(B, L) ids and mask -> TextOutput(words (B, L - 1, D), lengths (B,), report_vectors (B, D), units);
        ``word_ids`` for a sub-word tower, ``sentence_ids`` (B, L - 1) for ``local_units="sentences"``."""
        out = self.text_encoder(input_ids, attention_mask, word_ids, sentence_ids)
        return out._replace(words=self.similarity.local_words(out.words))

    def get_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 1, H, W) -> the global image vectors (B, D), not normalised (as CLIP's)."""
        return self.encode_images(images).image_vectors

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          word_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids and mask -> the global report vectors (B, D), not normalised (as CLIP's)."""
        return self.text_encoder.report_vectors(input_ids, attention_mask, word_ids)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                word_ids: torch.Tensor | None = None, sentence_ids: torch.Tensor | None = None) -> ModelOutput:
        """Both towers on B pairs: images (B, 1, H, W), input_ids and attention_mask (B, L) -> ModelOutput."""
        image = self.encode_images(images)
        text = self.encode_texts(input_ids, attention_mask, word_ids, sentence_ids)
        return ModelOutput(image.image_vectors, text.report_vectors, image.regions, text.words, text.lengths,
                           text.units, text.word_mask)

    @classmethod
    def build_from_config(cls, cfg, vocab_size: int) -> JoImTeRNet:
        """What ``from_pretrained`` builds before loading weights: ``model_for(cfg, vocab_size)``."""
        return model_for(cfg, vocab_size)


def build_model(cfg: ModelConfig, vocab_size: int, image_size: int | None = None) -> JoImTeRNet:
    """Both towers and the similarity module from the config.

    ``image_size`` (the training resolution, ``cfg.data.image_size``) sets the image tower's
    strides so the region grid is ``cfg.image.grid``; it defaults to the paper's 2048 (authors'
    CNN) or 512 (torchvision). The similarity keeps ``cfg.score``, so the loss, retrieval and
    figures all score with ``model.similarity.score``.
    """
    similarity = Similarity(cfg.embed_dim, cfg.score, null_region=cfg.null_region)
    return JoImTeRNet(build_image_encoder(cfg.image, cfg.embed_dim, image_size),
                      TextEncoder(cfg.text, vocab_size, cfg.embed_dim), similarity)


def model_for(cfg, vocab_size: int, tokenizer=None) -> JoImTeRNet:
    """The model a whole ``Config`` describes: towers sized for ``cfg.data.image_size``.

    ``tokenizer`` (the run's) tells the text tower which words ``model.text.local_words`` leaves out
    of the local score; saved weights carry that, so loading them needs no tokenizer.
    """
    model = build_model(cfg.model, vocab_size, image_size=cfg.data.image_size)
    if tokenizer is not None:
        model.text_encoder.set_vocabulary(tokenizer)
    return model
