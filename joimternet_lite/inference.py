"""Use a trained model: embed images and reports, score them, and map a report's words onto an image.

No notebook teaches it yet (notebook 11 draws the same maps by hand); docs/API.md shows it.
:class:`ImageTextInference` wraps a :class:`~joimternet_lite.JoImTeRNet`
(``JoImTeRNet.from_pretrained``) on one device. Images go through the package's readers (PNG, JPEG,
DICOM: ``data.images.read_image``) and the model's own eval transform (``data.transforms``, at the
training resolution), reports through the model's tokenizer. Every call is batched, runs under
``torch.inference_mode`` and, on CUDA, under the device's autocast precision. Scores use the
model's own settings (``model.similarity.score``: gamma1, gamma2, chunk size) and, for
``combined``, the config's ``eval.combined_weight``.

Shapes: N images, T reports, R = gh * gw regions, L words (the longest report, [SEP] counted), D dims.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.images import read_image, to_unit_float
from .data.tokenizer import split_words
from .data.transforms import build_transforms, to_tensor
from .device import autocast_context, pick_device, resolve_precision
from .errors import UserError
from .models.outputs import ImageEmbeddings, ReportEmbeddings

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor
FIGURE_TAG = {"joimternet-lite": "word maps"}  # a PNG text chunk: ground replaces only figures it wrote
TITLE_CHARACTERS = 90  # a figure's title is the text, shortened to about three lines
_LIBRARIES = {"PIL": "Pillow", "pydicom": "pydicom"}


class InferenceError(UserError, ValueError):
    """Input the model cannot take (an empty text, an image array of the wrong shape or range)."""


@dataclass
class WordMaps:
    """The word-region maps of one text over one image."""

    words: list[str]      # split_words(text), the words that were not cut at max_length
    maps: torch.Tensor    # (W, gh, gw) float32, CPU; alpha rows sum to at most 1, raw rows to 1
    kind: str             # alpha | raw
    image: torch.Tensor   # (1, S, S) the transformed image in [-1, 1]


class ImageTextInference:
    """Batched embedding, scoring and word maps with one model on one device."""

    def __init__(self, model, device: str | torch.device = "auto", batch_size: int = 32, precision: str = "auto"):
        """``model``: a JoImTeRNet from ``from_pretrained`` (its config and tokenizer attached); it is
        moved to ``device`` and put in eval mode. ``precision``: auto (bf16 or fp16 autocast on CUDA,
        fp32 elsewhere), fp32, bf16 or fp16, for the towers only; scores are computed in float32."""
        self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.precision = resolve_precision(self.device, precision)
        self.model = model.to(self.device).eval()
        if self.device.type in ("cpu", "cuda"):  # same numbers; the convolutions ran 1.3x faster on the CPU
            self.model.to(memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.config = model.config
        self.tokenizer = model.tokenizer
        self.transform = build_transforms(self.config.data.image_size, train=False)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "auto", **kwargs) -> ImageTextInference:
        """Load ``path`` (a saved, checkpoint or run folder, or a Hub id) and wrap it."""
        from .models.joimternet import JoImTeRNet

        return cls(JoImTeRNet.from_pretrained(path), device, **kwargs)

    # ------------------------------------------------------------------ images

    def prepare(self, image: ImageInput) -> torch.Tensor:
        """One image -> (1, S, S) in [-1, 1] through the eval transform.

        A path is read with ``read_image`` (PNG, JPEG, DICOM); an array or tensor is a grey image
        (H, W) or (1, H, W), uint8 or float in [0, 1] (``read_image``'s convention).
        """
        if isinstance(image, str | Path):
            pixels = to_tensor(read_image(image))
        elif isinstance(image, Image.Image):
            pixels = to_tensor(to_unit_float(image, Path("<PIL image>")))
        else:
            pixels = _array_to_unit(image)
        return self.transform(pixels)

    def encode_images(self, batch: torch.Tensor) -> ImageEmbeddings:
        """Prepared images (N, 1, S, S) in [-1, 1] -> ImageEmbeddings, ``batch_size`` at a time."""
        vectors, regions = [], []
        with self._context():
            for start in range(0, batch.shape[0], self.batch_size):
                out = self.model.encode_images(batch[start:start + self.batch_size].to(self.device))
                vectors.append(out.image_vectors.float().cpu())
                regions.append(out.regions.float().cpu())
        if not vectors:
            dim = self.config.model.embed_dim
            return ImageEmbeddings(torch.empty(0, dim), torch.empty(0, self._num_regions(), dim))
        return ImageEmbeddings(torch.cat(vectors), torch.cat(regions))

    def embed_images(self, images: Sequence[ImageInput]) -> ImageEmbeddings:
        """Paths, PIL images, arrays or tensors -> ImageEmbeddings (N rows, in order).

        Raises ``ImageReadError`` naming the first file that cannot be read.
        """
        return self.encode_images(torch.stack([self.prepare(im) for im in images]) if len(images) else
                                  torch.empty(0, 1, self.config.data.image_size, self.config.data.image_size))

    # ------------------------------------------------------------------ reports

    def embed_reports(self, texts: Sequence[str]) -> ReportEmbeddings:
        """Report texts -> ReportEmbeddings; word k of text t is ``split_words(texts[t])[k]``."""
        from .evaluate.embed import embed_reports

        if isinstance(texts, str):
            raise InferenceError("embed_reports takes a list of texts; wrap a single text as [text]")
        with self._context():
            return embed_reports(self.model, self.tokenizer, list(texts), self.device,
                                 max_length=self.config.data.max_length, batch_size=self.batch_size)

    # ------------------------------------------------------------------ scores and maps

    def similarity(self, images: Sequence[ImageInput] | ImageEmbeddings, texts: Sequence[str] | ReportEmbeddings,
                   scoring: str = "global") -> torch.Tensor:
        """(I, T) scores through the model's similarity: ``global`` cosine, ``local`` S_w, or ``combined``."""
        from .evaluate.retrieval import similarity_matrix

        image_side = images if isinstance(images, ImageEmbeddings) else self.embed_images(images)
        text_side = texts if isinstance(texts, ReportEmbeddings) else self.embed_reports(texts)
        with torch.inference_mode():  # float32 embeddings in, float32 scores out: no autocast here
            return similarity_matrix(image_side, text_side, scoring, self.model.similarity,
                                     self.config.eval.combined_weight, self.device)

    def word_maps(self, image: ImageInput, text: str, kind: str = "alpha") -> WordMaps:
        """Each word's map over the image's region grid: ``alpha`` (the DAMSM attention of S_w),
        ``raw`` (word-region dot products softmaxed over the regions), ``sparc`` (sparse word-region
        weights, as the fine-grained term trains them) or ``blind`` (the baseline that reads no word:
        the region lengths, the same map for every word)."""
        from .models.similarity import MAP_KINDS, spread_to_words

        if kind not in MAP_KINDS:
            raise InferenceError(f"kind {kind!r}: use one of {MAP_KINDS}")
        words = [w for w, _ in split_words(check_sentence(text, "text"))]
        prepared = self.prepare(image)
        regions = self.encode_images(prepared[None]).regions
        report = self.embed_reports([text])
        with torch.inference_mode():
            maps = self.model.similarity.maps(regions.to(self.device), report.words.to(self.device),
                                              report.lengths.to(self.device), kind, report.word_mask.to(self.device))
        maps = spread_to_words(maps, report.units.to(self.device))  # sentence units: the sentence's map
        kept = min(len(words), int(report.lengths[0]))  # the last valid word vector is [SEP]
        gh, gw = self.model.grid
        return WordMaps(words[:kept], maps[0, :kept].float().cpu().view(kept, gh, gw), kind, prepared)

    def plot_word_maps(self, image: ImageInput, text: str, kind: str = "alpha", out: str | Path | None = None):
        """A figure of the image and each word's map over it; written as a PNG when ``out`` is given
        (returns the path), else returned open (a matplotlib Figure)."""
        from .viz import save_figure

        fig = word_maps_figure(self.word_maps(image, text, kind), text)
        return save_figure(fig, out, FIGURE_TAG) if out is not None else fig

    # ------------------------------------------------------------------ helpers

    def _context(self):
        """inference_mode plus the towers' autocast: on CUDA at the device's precision by default, on
        the CPU only when asked (``precision="bf16"``: faster where the CPU has bf16 instructions,
        embeddings within about 0.3 %)."""
        from contextlib import ExitStack

        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast_context(self.device, self.precision))
        return stack

    def _num_regions(self) -> int:
        gh, gw = self.model.grid
        return gh * gw


def _array_to_unit(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A grey array (H, W) or (1, H, W), uint8 or float in [0, 1] -> (1, H, W) float32 in [0, 1]."""
    t = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).detach().cpu()
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise InferenceError(f"image array of shape {tuple(t.shape)}: expected a grey image (H, W) or (1, H, W); "
                             "convert colour to grey first, or pass the file path")
    if t.dtype == torch.uint8:
        return t.float().div(255.0)[None]
    t = t.float()
    if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
        raise InferenceError(f"image values span [{float(t.min()):.3g}, {float(t.max()):.3g}]: pass raw pixels in "
                             "[0, 1] (or uint8); the model's eval transform normalises them itself")
    return t[None]


def check_sentence(text: str | None, option: str) -> str:
    """``text`` when it is UTF-8 with at least one word, else an ``InferenceError`` naming ``option``.

    Bytes that are not UTF-8 on the command line reach Python as surrogate escapes; the tokenizer
    cannot take them.
    """
    try:
        (text or "").encode("utf-8")
    except UnicodeEncodeError:
        raise InferenceError(f"{option} {text.encode('utf-8', 'surrogateescape')!r} holds bytes that are not UTF-8 "
                             "text; pass the sentence in UTF-8 (check the terminal's or the script's encoding)") from None
    if not split_words(text or ""):
        raise InferenceError(f"{option} {text!r} has no words; give a sentence such as 'small left pleural effusion'")
    return text


@contextlib.contextmanager
def reader_warnings(notes: list[str]) -> Iterator[None]:
    """Catch the warnings raised inside the block (Pillow's, pydicom's) and append each to ``notes``
    as one line, ``<library> warned: <message>``, for the caller to report in its own words."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                parts = Path(w.filename).parts
                library = next((_LIBRARIES[p] for p in parts if p in _LIBRARIES), Path(w.filename).stem)
                notes.append(f"{library} warned: {' '.join(str(w.message).split())}")


def word_maps_figure(found: WordMaps, text: str):
    """The figure of ``found``, the maps of ``text``: its title is the text shortened, and says how
    many words were mapped when the model read only the start of it."""
    import textwrap

    from .viz import word_map_figure

    title = textwrap.shorten(text, TITLE_CHARACTERS, placeholder=" ...")
    total = len(split_words(text))
    if len(found.words) < total:
        title += f" (first {len(found.words)} of {total} words)"
    return word_map_figure(found.image, found.words, found.maps, found.kind, title=title)


def check_figure_path(out: str | Path, overwrite: bool) -> Path:
    """``out`` when ``ground`` may write it: a new path, or a word-map figure written before."""
    out = Path(out)
    if out.is_dir():
        raise InferenceError(f"{out}: is a folder; --out takes the PNG file to write, e.g. {out / 'maps.png'}")
    if out.exists() and not overwrite and not _is_word_map_png(out):
        raise InferenceError(f"{out}: exists and is not a word-map figure written by ground, so it is not replaced; "
                             "choose another --out, or add --overwrite to replace it")
    return out


def _is_word_map_png(path: Path) -> bool:
    try:
        with Image.open(path, formats=["PNG"]) as img:  # text chunks before the pixels: read on open
            return all(img.info.get(k) == v for k, v in FIGURE_TAG.items())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False

