"""Cross-modal retrieval with explicit protocols. Taught in notebook 09.

Every number this module returns says what it measured: direction (``image->report`` or
``report->image``), scoring (``global`` cosine, ``local`` S_w, ``combined``), pool protocol
(``full`` test set, seeded ``random`` pools, or the authors' file-order ``blocks``), relevance
(``instance``, ``dedup``, ``label``) and the number of queries.

Ranks count ties against the model: a query's rank is 1 + the number of non-relevant candidates
scoring at least as high as its best relevant candidate. Identical reports get identical
embeddings, so under ``instance`` relevance even a perfect model is capped; the ``ceiling`` rows
report that cap (ties against) and its expectation under random tie-breaking.

One image per study: the dataset chooses it deterministically (``data.dataset``, the first
frontal image of the study); this module assumes row i of the image side and row i of the report
side are the same study.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import RELEVANCES, SCORINGS
from ..data.tokenizer import split_words
from ..device import as_numpy
from ..models.similarity import Similarity, global_similarity

DIRECTIONS = ("image->report", "report->image")
POOL_MODES = ("full", "random", "blocks")


# ----------------------------------------------------------------------------- metrics


def query_ranks(similarity, relevance=None) -> np.ndarray:
    """Rank of each query's best relevant candidate, ties counted against the model.

    similarity: (Q, C) scores; relevance: (Q, C) bool, default the identity (query i <-> candidate i).
    Returns (Q,) int ranks, 1 = best.
    """
    sim = as_numpy(similarity).astype(np.float64)
    rel = np.eye(*sim.shape, dtype=bool) if relevance is None else as_numpy(relevance).astype(bool)
    if sim.ndim != 2 or rel.shape != sim.shape:
        raise ValueError(f"similarity must be 2-D and relevance the same shape; got {sim.shape} and {rel.shape}")
    if not rel.any(axis=1).all():
        missing = np.flatnonzero(~rel.any(axis=1))[:5].tolist()
        raise ValueError(f"queries {missing} have no relevant candidate; every query needs at least one")
    best_relevant = np.where(rel, sim, -np.inf).max(axis=1, keepdims=True)
    return 1 + ((sim >= best_relevant) & ~rel).sum(axis=1)


def metrics_from_ranks(ranks: np.ndarray, ks=(1, 5, 10)) -> dict:
    """R@k (percent), median and mean rank and MRR from (Q,) ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"R@{k}": float(100.0 * (ranks <= k).mean()) for k in ks}
    out.update(median_rank=float(np.median(ranks)), mean_rank=float(ranks.mean()), mrr=float((1.0 / ranks).mean()))
    return out


def retrieval_metrics(similarity, relevance=None, ks=(1, 5, 10)) -> dict:
    """Public API: R@k (percent) for each k, ``median_rank``, ``mean_rank`` and ``mrr``.

    similarity: (queries, candidates) tensor or array. relevance: optional bool matrix of the same
    shape; without it query i's only relevant candidate is candidate i. A query's rank is 1 + the
    number of non-relevant candidates that score at least as high as its best relevant candidate.
    """
    return metrics_from_ranks(query_ranks(similarity, relevance), ks)


def expected_metrics_random_ties(similarity, relevance=None, ks=(1, 5, 10)) -> dict:
    """Expected metrics when exact ties are broken uniformly at random.

    For a query, let a = non-relevant candidates strictly above its best relevant score, and m
    non-relevant plus r relevant candidates exactly at it. In a random order of the tied ones, the
    number X of non-relevant before the first relevant has P(X >= x) = C(m, x) / C(m + r, x), and
    rank = 1 + a + X. ``median_rank`` is NaN (an expected median is not defined per query).
    """
    sim = as_numpy(similarity).astype(np.float64)
    rel = np.eye(*sim.shape, dtype=bool) if relevance is None else as_numpy(relevance).astype(bool)
    query_ranks(sim, rel)  # validates shapes and relevance
    best = np.where(rel, sim, -np.inf).max(axis=1, keepdims=True)
    above = ((sim > best) & ~rel).sum(axis=1)
    tied_nonrel = ((sim == best) & ~rel).sum(axis=1)
    tied_rel = ((sim == best) & rel).sum(axis=1)
    recall = {k: 0.0 for k in ks}
    mean_rank = mrr = 0.0
    for a, m, r in zip(above, tied_nonrel, tied_rel, strict=True):
        p_x = _first_relevant_distribution(int(m), int(r))  # P(X = x), x = 0..m
        ranks = 1 + a + np.arange(m + 1)
        for k in ks:
            recall[k] += p_x[ranks <= k].sum()
        mean_rank += (p_x * ranks).sum()
        mrr += (p_x / ranks).sum()
    q = sim.shape[0]
    out = {f"R@{k}": float(100.0 * recall[k] / q) for k in ks}
    out.update(median_rank=math.nan, mean_rank=float(mean_rank / q), mrr=float(mrr / q))
    return out


def _first_relevant_distribution(m: int, r: int) -> np.ndarray:
    """P(X = x), x = 0..m: X non-relevant items precede the first of r relevant in a random order."""
    x = np.arange(m + 2)
    # survival S(x) = prod_{i<x} (m - i) / (m + r - i); S(m + 1) = 0
    factors = np.clip((m - x[:-1]) / (m + r - x[:-1]), 0.0, None)
    survival = np.concatenate([[1.0], np.cumprod(factors)])
    return survival[:-1] - survival[1:]


# ----------------------------------------------------------------------------- relevance


def normalise_report(text: str) -> str:
    """The word sequence the tokenizer sees (lower-case, numbers -> ``number``, no punctuation)."""
    return " ".join(word for word, _ in split_words(text))


def text_relevance(query_texts, candidate_texts) -> np.ndarray:
    """(Q, C) bool: same normalised report text (``dedup``: identical reports count as one)."""
    keys = {}
    q = np.array([keys.setdefault(normalise_report(t), len(keys)) for t in query_texts])
    c = np.array([keys.setdefault(normalise_report(t), len(keys)) for t in candidate_texts])
    return q[:, None] == c[None, :]


def label_relevance(query_labels, candidate_labels) -> np.ndarray:
    """(Q, C) bool: same set of positive CheXpert labels.

    labels: (N, 14) with 1 / 0 / -1 / NaN; only 1 counts as positive (the paper's ``zeros`` policy),
    so uncertain and blank labels are treated as absent. Studies with no positive label match each other.
    """
    qp = as_numpy(query_labels) == 1
    cp = as_numpy(candidate_labels) == 1
    return (qp[:, None, :] == cp[None, :, :]).all(axis=2)


def relevance_matrix(kind: str, texts=None, labels=None, n: int | None = None) -> np.ndarray:
    """(N, N) bool relevance between the studies of one test set (row = column = study)."""
    if kind == "instance":
        size = n if n is not None else len(texts if texts is not None else labels)
        return np.eye(size, dtype=bool)
    if kind == "dedup":
        if texts is None:
            raise ValueError("relevance='dedup' needs the report texts")
        return text_relevance(texts, texts)
    if kind == "label":
        if labels is None:
            raise ValueError("relevance='label' needs the (N, 14) label matrix")
        return label_relevance(labels, labels)
    raise ValueError(f"relevance {kind!r}: use one of {RELEVANCES}")


# ----------------------------------------------------------------------------- scoring


def similarity_matrix(images, reports, scoring: str = "global", similarity: Similarity | None = None,
                      combined_weight: float = 0.5, device: str | torch.device = "cpu") -> torch.Tensor:
    """(I, T) image-by-text scores, through the model's own :class:`Similarity` (``model.similarity``).

    images: ``ImageEmbeddings`` (``image_vectors`` (I, D), ``regions`` (I, R, D) for local scoring);
    reports: ``ReportEmbeddings`` (``report_vectors`` (T, D); ``words``, ``lengths`` and
    ``word_mask`` for local scoring). Local and combined scoring need ``similarity``, which holds
    gamma1, gamma2, the chunk size and the null region; global cosines need no settings.
    ``Similarity.scores`` scores blocks of ``chunk_size`` images x ``chunk_size`` reports, so memory
    stays bounded on a GPU. Returns a CPU float tensor.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring {scoring!r}: use one of {SCORINGS}")
    if similarity is None and scoring != "global":
        raise ValueError(f"{scoring} scoring needs the model's similarity: pass similarity=model.similarity")
    device = torch.device(device)
    images, reports = _on(images, device), _on(reports, device)
    with torch.no_grad():
        if similarity is None:
            sim = global_similarity(images.image_vectors, reports.report_vectors)
        else:
            sim = similarity.scores(images, reports, scoring, combined_weight)
    return sim.float().cpu()


def _on(embeddings, device):
    """A NamedTuple of tensors (None fields kept) moved to ``device``."""
    return embeddings._replace(**{k: v.to(device) for k, v in embeddings._asdict().items() if torch.is_tensor(v)})


# ----------------------------------------------------------------------------- pools


def pool_indices(n: int, pool_size: int | None = None, num_pools: int | None = None, mode: str = "random",
                 seed: int = 0) -> list[np.ndarray]:
    """Index sets of the candidate pools.

    ``full``: one pool of all n. ``blocks``: the authors' consecutive file-order blocks of pool_size.
    ``random``: disjoint pools cut from one seeded permutation. num_pools defaults to n // pool_size
    and may not exceed it (pools never overlap). Indices inside a pool are sorted.
    """
    if mode == "full" or pool_size is None:
        return [np.arange(n)]
    if mode not in POOL_MODES:
        raise ValueError(f"pool mode {mode!r}: use one of {POOL_MODES}")
    available = n // pool_size
    num_pools = available if num_pools is None else num_pools
    if pool_size < 1 or num_pools < 1 or num_pools > available:
        raise ValueError(f"{num_pools} disjoint pools of {pool_size} do not fit in {n} studies; "
                         f"use at most {available} pools or a smaller pool_size")
    order = np.arange(n) if mode == "blocks" else np.random.default_rng(seed).permutation(n)
    return [np.sort(order[i * pool_size:(i + 1) * pool_size]) for i in range(num_pools)]


def pooled_metrics(similarity, relevance, pools, ks=(1, 5, 10), expected_ties: bool = False) -> dict:
    """Metrics of each pool's square sub-matrix, averaged over pools (a pool is queries = candidates).

    similarity, relevance: (N, N) for all studies, query rows; pools: index arrays from pool_indices.
    """
    sim = as_numpy(similarity)
    rel = as_numpy(relevance).astype(bool)
    metric = expected_metrics_random_ties if expected_ties else retrieval_metrics
    per_pool = [metric(sim[np.ix_(p, p)], rel[np.ix_(p, p)], ks) for p in pools]
    return {key: float(np.mean([m[key] for m in per_pool])) for key in per_pool[0]}


# ----------------------------------------------------------------------------- ceiling


def perfect_similarity(texts) -> np.ndarray:
    """(N, N) scores of a perfect model: 1 for the same normalised report text, else 0.

    A model sees only the text, so identical reports must score the same for every image.
    """
    return text_relevance(texts, texts).astype(np.float64)


# ----------------------------------------------------------------------------- tidy table


def evaluate_retrieval(embeddings: dict, scorings=("global",), relevances=("instance",), directions=DIRECTIONS,
                       pool_mode: str = "full", pool_size: int | None = None, num_pools: int | None = None,
                       ks=(1, 5, 10), seed: int = 0, include_ceiling: bool = True, combined_weight: float = 0.5,
                       similarity: Similarity | None = None, device: str | torch.device = "cpu") -> list[dict]:
    """Retrieval rows, one per (direction, scoring, relevance), each recording its protocol.

    embeddings: the :class:`~joimternet_lite.evaluate.embed.DatasetEmbeddings` of ``embed_dataset``
    (row i = study i, one image per study). ``similarity`` (``model.similarity``) is needed for local
    and combined scorings. Each row holds direction, scoring, relevance, pool, pool_size, num_pools,
    n (queries per pool), seed, then R@k, median_rank, mean_rank, mrr (averaged over pools).
    With include_ceiling, scorings ``ceiling`` (a perfect model, ties against) and
    ``ceiling_random_ties`` (its expectation under random tie-breaking) are added.
    """
    n = len(embeddings.study_ids)
    pools = pool_indices(n, pool_size, num_pools, pool_mode, seed)
    protocol = dict(pool=pool_mode if pool_size else "full", pool_size=len(pools[0]), num_pools=len(pools),
                    n=len(pools[0]), seed=seed)
    relevance = {r: relevance_matrix(r, embeddings.texts, embeddings.labels, n) for r in relevances}
    scores = {s: similarity_matrix(embeddings.images, embeddings.reports, s, similarity, combined_weight,
                                   device).numpy() for s in scorings}
    rows = []
    for scoring, sim in scores.items():
        rows += _rows_for(sim, relevance, pools, directions, ks, dict(protocol, scoring=scoring))
    if include_ceiling:
        perfect = perfect_similarity(embeddings.texts)
        rows += _rows_for(perfect, relevance, pools, directions, ks, dict(protocol, scoring="ceiling"))
        rows += _rows_for(perfect, relevance, pools, directions, ks, dict(protocol, scoring="ceiling_random_ties"),
                          expected_ties=True)
    return rows


def _rows_for(sim, relevance, pools, directions, ks, protocol, expected_ties=False) -> list[dict]:
    rows = []
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: use one of {DIRECTIONS}")
        query_sim = sim if direction == "image->report" else sim.T
        for name, rel in relevance.items():
            query_rel = rel if direction == "image->report" else rel.T
            numbers = pooled_metrics(query_sim, query_rel, pools, ks, expected_ties)
            rows.append(dict(direction=direction, relevance=name, **protocol, **numbers))
    return rows


def as_table(rows: list[dict]):
    """The rows as a pandas DataFrame when pandas is installed, else the list unchanged."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)
