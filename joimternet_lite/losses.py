"""The JoImTeRNet losses: cross-entropy and triplet terms, both directions, both levels.

Taught in notebook 07. For a batch of M pairs, with S the (images, reports) score matrix of one
level (global cosine S_g or local S_w, from :mod:`joimternet_lite.models.similarity`):

- cross-entropy over the batch of gamma3 * S, image->report (rows of S) and report->image
  (columns), gamma3 = 10;
- triplet hinge [d(anchor, positive) - d(anchor, negative) + margin]_+ averaged over anchors, with
  d = 1 - cos (global) or -S_w (local); both reduce to [S_neg - S_pos + margin]_+. Negatives:
  ``random`` (the authors': one in-batch negative per anchor, never the anchor, the same draw for
  the four terms), ``hardest`` (VSE++: the highest-scoring negative), ``all`` (mean over negatives);
- total = weight_ce * (CE terms) + weight_triplet * (triplet terms).

An option beside the paper (``loss.weight_fine_grained`` > 0, off by default): SPARC's
fine-grained term (Bica et al., ICML 2024), :func:`fine_grained_loss`. Within each pair, word i
gathers the regions it prefers into a vector c_i (sparse weights, no softmax over the other
words) and must match its own word vector better than the pair's other words, and the reverse.
The words of one report then have to claim different regions, which DAMSM's softmax over words
does not ask of them (notebook 11).

``same_report`` (anchors x candidates, bool; see :func:`same_report_mask`) marks candidates whose
report is identical to the anchor's: they leave the CE softmax and are never negatives. An anchor
left with no negative contributes 0 to a triplet term. Unlike the authors' code, a negative
report is never cut to the anchor's length, so a pair scores the same whatever batch it is in.

The loss scores through the model's :class:`~joimternet_lite.models.similarity.Similarity`
(``JoImTeRNetLoss(cfg.loss, model.similarity)``), as retrieval and inference do, so training and
evaluation score the same way.

DDP: ``gathered`` (a :class:`~joimternet_lite.models.outputs.ModelOutput`) holds ``image_vectors``
and ``report_vectors`` of the global batch, this rank's pairs at rows
``rank_offset .. rank_offset + M``; the global terms then use every negative of the global batch.
The local terms use this rank's pairs unless ``gathered`` also holds ``regions``, ``words``,
``lengths`` and ``word_mask`` (its local fields are None otherwise). When the two levels have different candidate sets, ``random`` draws
one negative per level.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import NEGATIVE_MODES, LossConfig
from .models.outputs import ModelOutput
from .models.similarity import EPS, Similarity, global_similarity, sparc_weights, valid_words

DIRECTIONS = ("i2t", "t2i")


def contrastive_cross_entropy(scores: torch.Tensor, positives: torch.Tensor, gamma: float,
                              excluded: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE of softmax(gamma * scores) over each row: scores (B, N), positives (B,) column index.

    ``excluded`` (B, N) bool removes candidates from the softmax (never the positive).
    """
    logits = gamma * scores
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
    return F.cross_entropy(logits, positives)


def fine_grained_loss(regions: torch.Tensor, words: torch.Tensor, valid: torch.Tensor, gamma: float,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """SPARC's per-pair word-level cross-entropy, (regions -> words, words -> regions).

    regions (B, R, D) and words (B, L, D) of the B paired items; valid (B, L) bool marks the words
    that count. c_i = sum_j w_ij v_j with w = :func:`sparc_weights` of e_i . v_j; logits
    gamma * cos(c_i, e_k) (B, L, L) over the pair's own valid words k, the target k = i. Each
    direction is the mean over a pair's valid words, then over the pairs that have one.
    """
    grouped = sparc_weights(torch.einsum("bld,brd->blr", words, regions)) @ regions
    logits = gamma * (F.normalize(grouped, dim=-1, eps=EPS) @ F.normalize(words, dim=-1, eps=EPS).transpose(1, 2))
    return _per_pair_word_ce(logits, valid), _per_pair_word_ce(logits.transpose(1, 2), valid)


def _per_pair_word_ce(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    pairs, num_words, _ = logits.shape
    own = torch.eye(num_words, dtype=torch.bool, device=logits.device)
    # a row always keeps its own column, so padding rows stay finite (they are dropped below)
    masked = logits.masked_fill(~(valid[:, None, :] | own), float("-inf"))
    targets = torch.arange(num_words, device=logits.device).expand(pairs, num_words)
    ce = F.cross_entropy(masked.flatten(0, 1), targets.flatten(), reduction="none").view(pairs, num_words)
    per_pair = torch.where(valid, ce, 0.0).sum(1) / valid.sum(1).clamp_min(1)
    has_words = valid.any(1)
    return per_pair[has_words].mean() if has_words.any() else logits.sum() * 0


def sample_random_negatives(allowed: torch.Tensor, generator: torch.Generator | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One uniformly drawn allowed column per row: allowed (B, N) bool -> (index (B,), found (B,))."""
    found = allowed.any(dim=1)
    weights = allowed.float()
    weights[~found, 0] = 1.0  # a placeholder draw for rows without a negative; masked by `found`
    return torch.multinomial(weights, 1, generator=generator).squeeze(1), found


def hardest_negatives(scores: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VSE++: the allowed column with the highest score per row -> (index (B,), found (B,))."""
    masked = scores.detach().masked_fill(~allowed, float("-inf"))
    return masked.argmax(dim=1), allowed.any(dim=1)


def triplet_hinge(scores: torch.Tensor, positives: torch.Tensor, margin: float, allowed: torch.Tensor,
                  negatives: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Mean over rows of [S_neg - S_pos + margin]_+ for scores (B, N).

    ``negatives`` = (index, found) picks one negative per row; ``None`` averages over every allowed
    column (the ``all`` mode). Rows without a negative contribute 0.
    """
    positive = scores.gather(1, positives[:, None])
    violation = (scores - positive + margin).clamp_min(0)
    if negatives is None:
        allowed = allowed.to(scores.dtype)
        per_row = (violation * allowed).sum(1) / allowed.sum(1).clamp_min(1)
    else:
        index, found = negatives
        per_row = violation.gather(1, index[:, None]).squeeze(1) * found
    return per_row.mean()


def same_report_mask(input_ids: torch.Tensor, other_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N) bool: True where report b's token ids equal candidate n's (the diagonal included).

    input_ids (B, L); other_ids (N, L') defaults to input_ids (the square in-batch mask).
    """
    other_ids = input_ids if other_ids is None else other_ids
    length = max(input_ids.shape[1], other_ids.shape[1])
    a = F.pad(input_ids, (0, length - input_ids.shape[1]))
    b = F.pad(other_ids, (0, length - other_ids.shape[1]))
    return (a[:, None, :] == b[None, :, :]).all(dim=-1)


class JoImTeRNetLoss(nn.Module):
    """``loss(out, gathered=None, rank_offset=0, same_report=None, generator=None) -> (total, terms)``.

    ``out`` is the model's :class:`ModelOutput`; ``terms`` maps ``{ce,triplet}_{global,local}_{i2t,t2i}``
    to detached values (only the enabled levels and families). ``similarity`` is the model's
    ``model.similarity``, which scores both levels (the local one with its gamma1, gamma2, chunk
    size and null region); the local terms need it. It is held, not owned: the loss has no parameters.
    """

    def __init__(self, cfg: LossConfig, similarity: Similarity | None = None):
        super().__init__()
        if cfg.negatives not in NEGATIVE_MODES:
            raise ValueError(f"loss.negatives={cfg.negatives!r}: use one of {NEGATIVE_MODES}")
        if not (cfg.use_global or cfg.use_local or cfg.weight_fine_grained):
            raise ValueError("loss.use_global and loss.use_local are both false and loss.weight_fine_grained "
                             "is 0: nothing to train")
        if cfg.use_local and similarity is None:
            raise ValueError("the local terms score with the model's settings: build the loss as "
                             "JoImTeRNetLoss(cfg.loss, model.similarity)")
        self.cfg = cfg
        # a plain attribute (not a submodule): the model owns the null region and saves it
        object.__setattr__(self, "similarity", similarity)

    def forward(self, out: ModelOutput, gathered: ModelOutput | None = None, rank_offset: int = 0,
                same_report: torch.Tensor | None = None, generator: torch.Generator | None = None,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.cfg.mask_duplicate_reports and same_report is None:
            raise ValueError("loss.mask_duplicate_reports is on: pass same_report="
                             "same_report_mask(batch['input_ids']) (gathered ids under DDP)")
        num_pairs = out.image_vectors.shape[0]
        levels = {}
        if self.cfg.use_global:
            levels["global"] = self._global_level(out, gathered, rank_offset, same_report)
        if self.cfg.use_local:
            levels["local"] = self._local_level(out, gathered, rank_offset, same_report, num_pairs)
        terms: dict[str, torch.Tensor] = {}
        total = out.image_vectors.new_zeros((), dtype=torch.float32)
        drawn: dict[tuple[int, int], tuple] = {}  # one random draw per candidate set, shared by levels
        for name, level in levels.items():
            is_positive = _positive_mask(level.positives, level.scores[0].shape[1])
            allowed = ~(level.same | is_positive)
            margin = self.cfg.margin_global if name == "global" else self.cfg.margin_local
            for direction, s in zip(DIRECTIONS, level.scores, strict=True):
                ce = contrastive_cross_entropy(s, level.positives, self.cfg.gamma3, level.same & ~is_positive)
                terms[f"ce_{name}_{direction}"] = ce
                total = total + self.cfg.weight_ce * ce
                if self.cfg.use_triplet:
                    negatives = self._negatives(s, allowed, level.candidates, drawn, generator)
                    triplet = triplet_hinge(s, level.positives, margin, allowed, negatives)
                    terms[f"triplet_{name}_{direction}"] = triplet
                    total = total + self.cfg.weight_triplet * triplet
        if self.cfg.weight_fine_grained:
            valid = valid_words(out.lengths, out.words.shape[1], out.word_mask)
            for direction, ce in zip(DIRECTIONS, fine_grained_loss(out.regions, out.words, valid,
                                                                   self.cfg.gamma3), strict=True):
                terms[f"ce_words_{direction}"] = ce
                total = total + self.cfg.weight_fine_grained * ce
        return total, {k: v.detach() for k, v in terms.items()}

    def _negatives(self, scores, allowed, candidates, drawn, generator):
        if self.cfg.negatives == "all":
            return None
        if self.cfg.negatives == "hardest":
            return hardest_negatives(scores, allowed)
        if candidates not in drawn:
            drawn[candidates] = sample_random_negatives(allowed, generator)
        return drawn[candidates]

    def _global_level(self, out, gathered, rank_offset, same_report):
        # S_g needs no settings: a global-only loss may be built without the model's Similarity
        score = global_similarity if self.similarity is None else self.similarity.global_scores
        mine = (out.image_vectors, out.report_vectors)
        every = (gathered.image_vectors, gathered.report_vectors) if gathered else None
        scores = _both_directions(score, mine, every)
        return _level(scores, rank_offset if gathered else 0, same_report)

    def _local_level(self, out, gathered, rank_offset, same_report, num_pairs):
        def score(regions, text):
            return self.similarity.local_scores(regions, *text)

        mine = (out.regions, (out.words, out.lengths, out.word_mask))
        if gathered and gathered.regions is not None:
            every = (gathered.regions, (gathered.words, gathered.lengths, gathered.word_mask))
            return _level(_both_directions(score, mine, every), rank_offset, same_report)
        if gathered and same_report is not None:
            same_report = same_report[:, rank_offset:rank_offset + num_pairs]
        return _level(_both_directions(score, mine, None), 0, same_report)


def _both_directions(score_fn, mine, every):
    """(i2t (B, N), t2i (B, N)): rows are this rank's images, then this rank's reports."""
    if every is None:
        scores = score_fn(*mine)
        return scores, scores.T
    return score_fn(mine[0], every[1]), score_fn(every[0], mine[1]).T


class _Level(NamedTuple):
    scores: tuple[torch.Tensor, torch.Tensor]  # i2t, t2i, each (B, N)
    positives: torch.Tensor                    # (B,) column of each anchor's pair
    same: torch.Tensor                         # (B, N) bool, identical reports
    candidates: tuple[int, int]                # (N, offset): which candidate set the columns are


def _level(scores, offset, same_report):
    i2t, _ = scores
    num_pairs, num_candidates = i2t.shape
    positives = torch.arange(num_pairs, device=i2t.device) + offset
    if same_report is None:
        same_report = torch.zeros_like(i2t, dtype=torch.bool)
    elif same_report.shape != i2t.shape:
        raise ValueError(f"same_report has shape {tuple(same_report.shape)}, expected "
                         f"{tuple(i2t.shape)} (anchors x candidates)")
    return _Level(scores, positives, same_report.to(i2t.device), (num_candidates, offset))


def _positive_mask(positives: torch.Tensor, num_candidates: int) -> torch.Tensor:
    return torch.arange(num_candidates, device=positives.device)[None, :] == positives[:, None]
