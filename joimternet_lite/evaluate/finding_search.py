"""Search as a user meets it: one plain query per SynthCXR finding, precision@10 over the test images.

Each query ranks every test image by the score ``search`` ranks a folder with (global cosine of the
query's report vector and the image vector: ``ImageTextInference.similarity``, the same embedding and
scoring functions), with no index file. An image is relevant when its ground truth
(``findings_gt``) holds the query's finding type and, for a query that names a side, on that side.
A query's prevalence (the fraction of relevant test images) is the precision of a random ranking.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.outputs import ImageEmbeddings
from .embed import DatasetEmbeddings, embed_reports
from .retrieval import similarity_matrix

# (query, finding type, side or None): one plain query per SynthCXR finding type.
FINDING_QUERIES = (
    ("left pleural effusion", "effusion", "left"),
    ("right pneumothorax", "pneumothorax", "right"),
    ("consolidation", "consolidation", None),
    ("lung nodule", "nodule", None),
    ("lung mass", "mass", None),
    ("atelectasis", "atelectasis", None),
    ("pulmonary edema", "edema", None),
    ("cardiomegaly", "cardiomegaly", None),
    ("widened mediastinum", "enlarged_cardiomediastinum", None),
    ("endotracheal tube", "endotracheal_tube", None),
    ("enteric tube", "enteric_tube", None),
    ("central venous catheter", "central_line", None),
    ("pacemaker", "pacemaker", None),
)


def query_relevance(records: list[dict], queries=FINDING_QUERIES) -> np.ndarray:
    """(N, Q) bool: record n holds query q's finding type (on its side, when the query names one)."""
    return np.array([[any(gt["type"] == kind and (side is None or gt.get("side") == side)
                          for gt in record.get("findings_gt") or [])
                      for _, kind, side in queries] for record in records], dtype=bool).reshape(len(records),
                                                                                            len(queries))


def precision_at_k(scores: torch.Tensor, relevant: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """scores (N, Q), relevant (N, Q) -> (Q,) precision of each query's top k, and (Q, k) top rows.

    Ranked by ``argsort(descending=True)`` as ``search`` ranks (stable among ties)."""
    k = min(k, scores.shape[0])
    top = scores.argsort(dim=0, descending=True, stable=True)[:k].T.numpy()  # (Q, k)
    return np.array([relevant[rows, q].mean() for q, rows in enumerate(top)]), top


def query_scores(model, tokenizer, image_vectors: torch.Tensor, queries: list[str], device="cpu",
                 scoring: str = "global", regions: torch.Tensor | None = None,
                 combined_weight: float = 0.5) -> torch.Tensor:
    """(N, Q) the scores ``search`` ranks images by for image vectors (N, D): its default global
    cosine, or ``search --scoring local|combined`` (``eval.combined_weight``), which also need the
    images' regions (N, R, D)."""
    images = ImageEmbeddings(image_vectors, regions)
    return similarity_matrix(images, embed_reports(model, tokenizer, queries, device), scoring, model.similarity,
                             combined_weight, device=device)


def search_precision(model, tokenizer, embeddings: DatasetEmbeddings, records: list[dict], k: int = 10, device="cpu",
                     queries=FINDING_QUERIES, scoring: str = "global", combined_weight: float = 0.5) -> dict:
    """Precision@k of every query over the embedded images (``embed_dataset``'s output), ranked by
    ``scoring`` (``search``'s default, global, unless asked).

    records: manifest rows; embeddings' row i is the study ``embeddings.study_ids[i]``. Returns
    ``mean_precision``, ``mean_prevalence`` and, per query, ``precision``, ``prevalence``,
    ``relevant`` (count), ``top`` (the study ids of the top k, best first) and ``top_relevant``.
    """
    by_id = {r["study_id"]: r for r in records}
    relevant = query_relevance([by_id[s] for s in embeddings.study_ids], queries)
    scores = query_scores(model, tokenizer, embeddings.images.image_vectors, [q for q, _, _ in queries], device,
                          scoring, embeddings.images.regions, combined_weight)
    precision, top = precision_at_k(scores, relevant, k)
    rows = [dict(query=q, type=kind, side=side, precision=float(p), prevalence=float(relevant[:, i].mean()),
                 relevant=int(relevant[:, i].sum()), top=[embeddings.study_ids[j] for j in top[i]],
                 top_relevant=relevant[top[i], i].tolist())
            for i, ((q, kind, side), p) in enumerate(zip(queries, precision, strict=True))]
    return {"k": k, "scoring": scoring, "images": len(embeddings.study_ids), "queries": rows,
            "mean_precision": float(precision.mean()), "mean_prevalence": float(relevant.mean(axis=0).mean())}
