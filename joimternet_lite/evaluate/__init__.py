"""Evaluation: retrieval, classification and grounding (notebooks 09-11).

``retrieval_metrics`` is public API; the ``evaluate_*`` functions are the entry points that return
tidy rows recording their protocol beside the numbers.
"""

from .classification import classification_row, evaluate_frozen, train_image_classifier, zero_shot_scores
from .embed import embed_dataset, embed_reports
from .grounding import (
    evaluate_grounding,
    laterality_swap,
    load_phrase_boxes,
    region_owners,
    summarize_grounding,
    synthcxr_targets,
)
from .retrieval import as_table, evaluate_retrieval, retrieval_metrics

__all__ = [
    "as_table",
    "classification_row",
    "embed_dataset",
    "embed_reports",
    "evaluate_frozen",
    "evaluate_grounding",
    "evaluate_retrieval",
    "laterality_swap",
    "load_phrase_boxes",
    "region_owners",
    "retrieval_metrics",
    "summarize_grounding",
    "synthcxr_targets",
    "train_image_classifier",
    "zero_shot_scores",
]
