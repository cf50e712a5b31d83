"""Image-report similarity: the global cosine and the local region-word (DAMSM) score.

Taught in notebooks 05 (global) and 06 (local). One module scores pairs for the losses, for
retrieval and for the attention figures, so training and inference always score the same way.

Local score S_w (AttnGAN's DAMSM word-level matching, as the JoImTeRNet paper uses it), for an image with regions
v_j (j = 1..R) and a report with word vectors e_i (i = 1..n):

1. s_ij = e_i . v_j, a raw dot product;
2. a softmax over the words i, for each region j;
3. alpha_ij = softmax over the regions j of gamma1 times that value;
4. c_i = sum_j alpha_ij v_j;
5. S_w = log sum_i exp(gamma2 * cos(c_i, e_i)).

Padding words never count. ``word_mask`` (T, L) bool, when given, marks the word rows that enter
the score: the text tower leaves out the words that ``model.text.local_words`` drops, and with
sentence units every row but a sentence's first (notebook 11). Without it every word within
``lengths`` counts, a zero vector included, as in the authors' ``words_loss``.

The fast path :func:`local_similarity` is exact and never builds the (images, reports, words,
dim) tensor of the context vectors c_i: with G = V V^T, the region Gram matrix of an image,
``c_i . e_i = alpha_i . s_i`` and ``||c_i||^2 = alpha_i^T G alpha_i``, which need only
(words, regions)-sized intermediates. Pairs are scored in blocks of at most
``chunk_size`` images x ``chunk_size`` reports, so working memory is bounded for any number of
images and reports; under autograd each block is recomputed in the backward pass instead of kept
(``recompute``), which bounds training memory too. Reports are sorted by length before they are
blocked, and each block is cut to its longest report, so padding costs little.

An empty report (length 0, a padding row, or no word left in the local score) scores 0 against
every image, with zero gradient: a finite constant (log of an empty sum would be -inf, which
turns a cross-entropy into NaN).

An optional null region (``null_region``, a learnable (D,) vector owned by the model) is appended
to every image's regions, so a word can put its attention on it and opt out of the image
(words such as "no" or "normal" have no place in the image). It is never part of a map's R.

With ``cosine_scale`` set (a lever of notebook 11, not the authors' setting) the model hands the
score unit-length regions and word vectors of length ``cosine_scale``
(:meth:`Similarity.local_regions`, :meth:`Similarity.local_words`), so s_ij = cosine_scale *
cos(e_i, v_j): a word cannot win the softmax over words by its length alone. Steps 3-5 are
unchanged (the cosine in step 5 ignores lengths).

With ``word_softmax`` off (``model.score.word_softmax=false``, another lever, not the authors'),
step 2 is skipped: alpha_ij = softmax over the regions j of gamma1 * s_ij. Each word then looks
for its own evidence, and the words every report shares can no longer own the regions.

gamma1, gamma2, the chunk size and the cosine scale come from one
:class:`~joimternet_lite.config.ScoreConfig`, which the model's :class:`Similarity` holds with its
null region. :class:`Similarity` is the one scoring route: the loss, retrieval, inference,
grounding and classification all ask ``model.similarity`` for global, local and combined scores
and for maps. The plain functions below are what it calls (notebooks 05 and 06 build them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import SCORINGS, ScoreConfig

MAP_KINDS = ("alpha", "raw", "sparc", "blind")  # word_region_maps' kinds; blind reads no word
EPS = 1e-8  # cosine denominators: max(||x||, EPS), as torch.nn.functional.cosine_similarity
EMPTY_REPORT_SCORE = 0.0


def global_similarity(image_vectors: torch.Tensor, report_vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every image with every report: (I, D), (T, D) -> (I, T)."""
    _check_dims(image_vectors, 2, "image_vectors")
    _check_dims(report_vectors, 2, "report_vectors")
    return F.normalize(image_vectors, dim=-1, eps=EPS) @ F.normalize(report_vectors, dim=-1, eps=EPS).T


def word_region_attention(scores: torch.Tensor, word_mask: torch.Tensor, gamma1: float,
                          word_dim: int = -2, region_dim: int = -1, word_softmax: bool = True) -> torch.Tensor:
    """DAMSM attention alpha from raw word-region dot products s_ij.

    ``scores`` holds s_ij with the words along ``word_dim`` and the regions along ``region_dim``
    (e.g. (..., L, R)); ``word_mask`` (broadcastable to ``scores``) marks real words, at least one
    per softmax. Softmax over the valid words for each region, then softmax over the regions of
    gamma1 times that. Entries of padding words are uniform over regions: the caller masks them.

    ``word_softmax=False`` (``model.score.word_softmax``) skips the softmax over words: each word
    attends over the regions on its own, softmax_j(gamma1 * s_ij), so no word can take a region
    from another (in DAMSM the words that every report shares end up owning them; notebook 11).
    """
    if not word_softmax:
        return (gamma1 * scores).softmax(dim=region_dim)
    over_words = scores.masked_fill(~word_mask, float("-inf")).softmax(dim=word_dim)
    return (gamma1 * over_words).softmax(dim=region_dim)


def local_similarity(
    regions: torch.Tensor,
    words: torch.Tensor,
    lengths: torch.Tensor,
    gamma1: float = ScoreConfig.gamma1,
    gamma2: float = ScoreConfig.gamma2,
    chunk_size: int = ScoreConfig.chunk_size,
    *,
    null_region: torch.Tensor | None = None,
    recompute: bool | None = None,
    word_softmax: bool = ScoreConfig.word_softmax,
    word_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """S_w of every image with every report, exact and chunked.

    regions (I, R, D); words (T, L, D) with word k of report t at ``words[t, k]``; lengths (T,)
    long, the number of valid words of each report; ``word_mask`` (T, L) bool, the rows that enter
    the score (default: all valid words). Returns (I, T) in at least float32.

    ``chunk_size`` bounds a block to chunk_size images x chunk_size reports: working memory is
    about 6 x chunk_size^2 x L x (R + 1) floats. ``recompute`` (default: when autograd needs the
    result and there is more than one block) recomputes each block in the backward pass.
    """
    _check_local_inputs(regions, words, lengths)
    valid = valid_words(lengths, words.shape[1], word_mask)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    regions = _with_null_region(regions, null_region)
    num_images, num_reports = regions.shape[0], words.shape[0]
    if num_images == 0 or num_reports == 0 or words.shape[1] == 0:
        return _empty_scores(regions, words, num_images, num_reports)
    order = torch.argsort(lengths, descending=True, stable=True)
    report_blocks = [order[k:k + chunk_size] for k in range(0, num_reports, chunk_size)]
    blocks = [(i, r) for i in range(0, num_images, chunk_size) for r in report_blocks]
    needs_grad = torch.is_grad_enabled() and (regions.requires_grad or words.requires_grad)
    if recompute is None:
        recompute = needs_grad and len(blocks) > 1
    rows = []
    for start in range(0, num_images, chunk_size):
        image_chunk = regions[start:start + chunk_size]
        row = [_score_report_block(image_chunk, words, valid, lengths, idx, (gamma1, gamma2, word_softmax),
                                   recompute) for idx in report_blocks]
        rows.append(torch.cat(row, dim=1))
    return torch.cat(rows, dim=0).index_select(1, torch.argsort(order))


def _score_report_block(regions, words, valid, lengths, idx, settings, recompute):
    max_len = max(int(lengths[idx].max()), 1)  # an all-empty block still needs one column
    block_valid = valid[idx, :max_len]
    if recompute:
        # The gather runs inside the checkpoint: a gathered copy saved per (image chunk, report
        # block) would grow as B^2 / chunk. The block draws no random numbers: no RNG state kept.
        return checkpoint(_gathered_block_scores, regions, words, idx, max_len, block_valid, settings,
                          use_reentrant=False, preserve_rng_state=False)
    return _gathered_block_scores(regions, words, idx, max_len, block_valid, settings)


def _gathered_block_scores(regions, words, idx, max_len, valid, settings):
    return _block_scores(regions, words[idx, :max_len], valid, *settings)


def _block_scores(regions, words, valid, gamma1, gamma2, word_softmax=True):
    """S_w for every pair of a block: regions (Ic, R, D), words (Tc, L, D), valid (Tc, L) -> (Ic, Tc).

    Layout (Ic, R, Tc, L): the scores are one GEMM and the Gram product one batched matmul, with
    no permuted copies.
    """
    dtype = torch.promote_types(regions.dtype, torch.float32)
    (num_images, num_regions, dim), (num_reports, max_len, _) = regions.shape, words.shape
    empty = ~valid.any(dim=-1)
    first = torch.arange(max_len, device=words.device) == 0
    safe_valid = valid | (empty[:, None] & first)             # an empty report scores one dummy word
    scores = (regions.reshape(-1, dim) @ words.reshape(-1, dim).T).to(dtype)
    scores = scores.view(num_images, num_regions, num_reports, max_len)
    alpha = word_region_attention(scores, safe_valid, gamma1, word_dim=-1, region_dim=1, word_softmax=word_softmax)
    gram = (regions @ regions.transpose(1, 2)).to(dtype)     # (Ic, R, R)
    gram_alpha = (gram @ alpha.view(num_images, num_regions, -1)).view_as(alpha)
    context_sq = (gram_alpha * alpha).sum(1)                  # ||c_i||^2, (Ic, Tc, L)
    context_dot_word = (alpha * scores).sum(1)                # c_i . e_i, (Ic, Tc, L)
    word_sq = words.to(dtype).pow(2).sum(-1)                  # (Tc, L)
    cosine = context_dot_word / (_safe_norm(context_sq) * _safe_norm(word_sq))
    total = (gamma2 * cosine).masked_fill(~safe_valid, float("-inf")).logsumexp(dim=-1)
    return torch.where(empty, torch.full_like(total, EMPTY_REPORT_SCORE), total)


def _safe_norm(squared: torch.Tensor) -> torch.Tensor:
    # clamp before the sqrt so a zero vector gets a zero (not an infinite) gradient
    return squared.clamp_min(EPS * EPS).sqrt()


def word_region_maps(
    regions: torch.Tensor,
    words: torch.Tensor,
    lengths: torch.Tensor,
    kind: str = "alpha",
    gamma1: float = ScoreConfig.gamma1,
    *,
    null_region: torch.Tensor | None = None,
    word_softmax: bool = ScoreConfig.word_softmax,
    word_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Word-to-region maps of paired items: regions (B, R, D), words (B, L, D) -> (B, L, R).

    ``alpha``: the DAMSM attention used by S_w (with a null region, its column is dropped, so a
    row sums to 1 minus the mass the word put on the null region). ``raw``: the raw dot products
    softmaxed over the image's regions (no word softmax, no null region). ``blind``: a baseline
    that ignores the words, the image's region lengths ||v_j|| over their sum, the same row for
    every word; a raw map points where a long region vector is, so the two together show how much
    of a raw map's pointing needs the words (notebook 11). ``sparc``: the sparse weights of
    :func:`sparc_weights`, those the fine-grained loss trains (``loss.weight_fine_grained``).
    Rows of padding and of the words ``word_mask`` (B, L) leaves out of the local score are 0.
    """
    _check_local_inputs(regions, words, lengths)
    if regions.shape[0] != words.shape[0]:
        raise ValueError(f"word_region_maps scores paired items: got {regions.shape[0]} images "
                         f"and {words.shape[0]} reports")
    num_regions = regions.shape[1]
    dtype = torch.promote_types(regions.dtype, torch.float32)
    valid = valid_words(lengths, words.shape[1], word_mask)
    if kind == "alpha":
        extended = _with_null_region(regions, null_region)
        scores = torch.einsum("brd,bld->blr", extended, words).to(dtype)
        safe_valid = valid | ~valid.any(dim=-1, keepdim=True)
        maps = word_region_attention(scores, safe_valid[..., None], gamma1, word_softmax=word_softmax)[..., :num_regions]
    elif kind == "raw":
        maps = torch.einsum("brd,bld->blr", regions, words).to(dtype).softmax(dim=-1)
    elif kind == "sparc":
        maps = sparc_weights(torch.einsum("brd,bld->blr", regions, words).to(dtype))
    elif kind == "blind":
        lengths_j = regions.to(dtype).norm(dim=-1)
        maps = (lengths_j / lengths_j.sum(dim=-1, keepdim=True))[:, None].expand(-1, words.shape[1], -1)
    else:
        raise ValueError(f"kind {kind!r}: use 'alpha' (DAMSM attention), 'raw' (dot-product softmax), "
                         "'sparc' (sparse word-region weights) or 'blind' (region lengths, no words)")
    return maps * valid[..., None]


def sparc_weights(scores: torch.Tensor) -> torch.Tensor:
    """SPARC's word-to-region weights (Bica et al., ICML 2024): scores (..., L, R) -> (..., L, R).

    Per word, the scores over regions are min-max normalised to [0, 1], entries below 1/R are set
    to 0 (so a word keeps only the regions it prefers clearly) and the rest are renormalised to
    sum to 1. Unlike DAMSM's alpha there is no softmax over words: a word's weights do not depend
    on the other words of the report. A word whose scores are all equal gets the uniform row.
    """
    low = scores.amin(dim=-1, keepdim=True)
    span = scores.amax(dim=-1, keepdim=True) - low
    scaled = torch.where(span > 0, (scores - low) / span.clamp_min(EPS), torch.ones_like(scores))
    kept = scaled * (scaled >= 1.0 / scores.shape[-1])
    return kept / kept.sum(dim=-1, keepdim=True)


def spread_to_words(maps: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """(B, L, R) maps of the rows that hold the vectors, (B, L) long ``units`` (``TextOutput.units``:
    the row holding word k's vector) -> (B, L, R) with row k the map of row ``units[:, k]``. With
    sentence units every word gets its sentence's map; with word units (k itself) nothing changes."""
    return maps.gather(1, units[..., None].expand_as(maps))


def local_similarity_reference(
    regions: torch.Tensor,
    words: torch.Tensor,
    lengths: torch.Tensor,
    gamma1: float = ScoreConfig.gamma1,
    gamma2: float = ScoreConfig.gamma2,
    *,
    null_region: torch.Tensor | None = None,
    word_softmax: bool = ScoreConfig.word_softmax,
    word_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """S_w by a plain loop over pairs, step by step as the module docstring. Slow: for tests only."""
    regions = _with_null_region(regions, null_region)
    keep = torch.ones(words.shape[:2], dtype=torch.bool) if word_mask is None else word_mask.cpu()
    scores = []
    for image in regions:                                   # (R, D)
        for report, n, kept in zip(words, lengths.tolist(), keep, strict=True):
            e = report[:n][kept[:n].to(report.device)]      # (n, D) without the words left out
            if e.shape[0] == 0:
                scores.append(image.new_tensor(EMPTY_REPORT_SCORE, dtype=torch.promote_types(image.dtype, torch.float32)))
                continue
            s = e @ image.T                                 # (n, R)
            over_words = torch.softmax(s, dim=0) if word_softmax else s
            alpha = torch.softmax(gamma1 * over_words, dim=1)
            context = alpha @ image                         # (n, D)
            cosine = F.cosine_similarity(context, e, dim=1, eps=EPS)
            scores.append(torch.logsumexp(gamma2 * cosine, dim=0))
    return torch.stack(scores).view(regions.shape[0], words.shape[0])


class Similarity(nn.Module):
    """The model's scoring: its :class:`ScoreConfig` and, when ``null_region`` is on, the learnable
    null region vector (D,). The one route by which the loss, retrieval, inference, grounding and
    classification score pairs and draw maps: each is given ``model.similarity`` and calls it.
    Taught in notebook 06.
    """

    def __init__(self, embed_dim: int, score: ScoreConfig, null_region: bool = False):
        super().__init__()
        self.score = score
        # small init: the null region starts close to a zero vector, so it starts as an uninformative sink
        self.null_region = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim)) if null_region else None

    def local_regions(self, regions: torch.Tensor) -> torch.Tensor:
        """(..., R, D) regions as the local score takes them: unchanged (the authors' raw dot
        products), or unit length when ``score.cosine_scale`` is set."""
        return regions if self.score.cosine_scale is None else F.normalize(regions, dim=-1, eps=EPS)

    def local_words(self, words: torch.Tensor) -> torch.Tensor:
        """(..., L, D) word vectors as the local score takes them: unchanged, or of length
        ``score.cosine_scale`` (zero vectors stay zero), so s_ij = scale * cos(e_i, v_j)."""
        if self.score.cosine_scale is None:
            return words
        return F.normalize(words, dim=-1, eps=EPS) * self.score.cosine_scale

    def global_scores(self, image_vectors: torch.Tensor, report_vectors: torch.Tensor) -> torch.Tensor:
        """S_g: (I, D), (T, D) -> (I, T) cosines."""
        return global_similarity(image_vectors, report_vectors)

    def local_scores(self, regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
                     word_mask: torch.Tensor | None = None) -> torch.Tensor:
        """S_w: (I, R, D), (T, L, D), (T,), optional (T, L) bool -> (I, T), with the model's
        gamma1, gamma2, chunk size, word softmax and null region."""
        null = None if self.null_region is None else self.null_region.to(regions.device)
        return local_similarity(regions, words, lengths, self.score.gamma1, self.score.gamma2,
                                self.score.chunk_size, null_region=null, word_softmax=self.score.word_softmax,
                                word_mask=word_mask)

    def scores(self, images, reports, scoring: str = "global", combined_weight: float = 0.5) -> torch.Tensor:
        """(I, T) scores of ``images`` (``image_vectors`` (I, D), ``regions`` (I, R, D)) against
        ``reports`` (``report_vectors`` (T, D), ``words`` (T, L, D), ``lengths`` (T,), ``word_mask``),
        e.g. ``ImageEmbeddings`` and ``ReportEmbeddings``. ``global`` S_g, ``local`` S_w, or
        ``combined`` = (1 - w) * S_g + w * S_w / gamma2: S_w / gamma2 is a soft maximum of word
        cosines, so both terms are on the cosine scale. Local reads only the regions and words.
        """
        if scoring not in SCORINGS:
            raise ValueError(f"scoring {scoring!r}: use one of {SCORINGS}")
        if scoring == "global":
            return self.global_scores(images.image_vectors, reports.report_vectors)
        local = self.local_scores(images.regions, reports.words, reports.lengths, reports.word_mask)
        if scoring == "local":
            return local
        glob = self.global_scores(images.image_vectors, reports.report_vectors)
        return (1.0 - combined_weight) * glob + combined_weight * local / self.score.gamma2

    def maps(self, regions: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor, kind: str = "alpha",
             word_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Paired word-to-region maps (B, L, R); see :func:`word_region_maps`."""
        null = None if self.null_region is None else self.null_region.to(regions.device)
        return word_region_maps(regions, words, lengths, kind, self.score.gamma1, null_region=null,
                                word_softmax=self.score.word_softmax, word_mask=word_mask)


def _with_null_region(regions: torch.Tensor, null_region: torch.Tensor | None) -> torch.Tensor:
    if null_region is None:
        return regions
    if null_region.shape != regions.shape[-1:]:
        raise ValueError(f"null_region has shape {tuple(null_region.shape)}, expected ({regions.shape[-1]},)")
    null = null_region.to(regions.dtype).expand(regions.shape[0], 1, -1)
    return torch.cat([regions, null], dim=1)


def valid_words(lengths: torch.Tensor, max_len: int, word_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(T, max_len) bool: the word rows that enter the local score, those within ``lengths`` (T,)
    and, when given, marked by ``word_mask`` (T, >= max_len) bool."""
    valid = torch.arange(max_len, device=lengths.device) < lengths[:, None]
    if word_mask is None:
        return valid
    if word_mask.shape[0] != lengths.shape[0] or word_mask.shape[1] < max_len:
        raise ValueError(f"word_mask has shape {tuple(word_mask.shape)}, expected ({lengths.shape[0]}, {max_len})")
    return valid & word_mask[:, :max_len].to(device=lengths.device, dtype=torch.bool)


def _empty_scores(regions, words, num_images, num_reports):
    # no word anywhere: every pair is an empty report; keep the graph so backward still runs
    zero = (regions.sum() + words.sum()) * 0
    dtype = torch.promote_types(regions.dtype, torch.float32)
    return zero.to(dtype) + torch.full((num_images, num_reports), EMPTY_REPORT_SCORE, dtype=dtype,
                                       device=regions.device)


def _check_dims(x: torch.Tensor, dims: int, name: str) -> None:
    if x.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimensions, got shape {tuple(x.shape)}")


def _check_local_inputs(regions, words, lengths) -> None:
    _check_dims(regions, 3, "regions (images, R, D)")
    _check_dims(words, 3, "words (reports, L, D)")
    _check_dims(lengths, 1, "lengths (reports,)")
    if regions.shape[-1] != words.shape[-1]:
        raise ValueError(f"regions have dim {regions.shape[-1]} but words have dim {words.shape[-1]}")
    if lengths.shape[0] != words.shape[0]:
        raise ValueError(f"{lengths.shape[0]} lengths for {words.shape[0]} reports")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > words.shape[1]):
        raise ValueError(f"lengths must lie in [0, {words.shape[1]}] (the words' L), got "
                         f"[{int(lengths.min())}, {int(lengths.max())}]")
