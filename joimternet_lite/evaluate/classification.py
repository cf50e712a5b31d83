"""Multi-label classification of the 14 CheXpert labels: probes, heads, fine-tuning, zero-shot.

Taught in notebook 10.

- Targets: labels are 1 / 0 / -1 (uncertain) / NaN (blank). Uncertain policy ``zeros`` (the
  paper: only 1 is positive), ``ones`` (uncertain counts as positive) or ``ignore`` (uncertain
  entries are masked out of training and of the AUROC). Blank is negative under every policy.
- Regimes: ``linear`` (standardised logistic regression on frozen global vectors), ``mlp`` (the
  authors' head on frozen regions + global vector), ``frozen`` / ``finetune`` (backbone lr 1e-5) /
  ``scratch`` (re-initialised encoder) trained end to end from a DataLoader.
- Metric: per-class ROC-AUC (sklearn). ``mean`` is over the 13 classes without No Finding that have
  both a positive and a negative in the test set (classes without both are NaN and left out, and
  ``classes_used`` says how many remain); ``weighted_mean`` weights the same classes by their
  test-set positive count. Confidence intervals: a seeded percentile bootstrap over studies.
- Zero-shot: each image is scored against each class's prompt pair only ("X" vs "no X", several
  phrasings), so a score never depends on the rest of the batch.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm import tqdm

from ..config import UNCERTAIN_POLICIES
from ..data.schema import CHEXPERT_LABELS
from ..device import as_numpy, to_device
from .embed import DatasetEmbeddings

log = logging.getLogger(__name__)

EXCLUDED_FROM_MEAN = ("No Finding",)


# ----------------------------------------------------------------------------- targets


def prepare_targets(labels, policy: str = "zeros") -> tuple[np.ndarray, np.ndarray]:
    """(N, C) labels with 1 / 0 / -1 / NaN -> (targets float 0/1, mask bool: entry counts)."""
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain policy {policy!r}: use one of {UNCERTAIN_POLICIES}")
    labels = as_numpy(labels).astype(np.float64)
    uncertain = labels == -1
    positive = (labels == 1) | (uncertain & (policy == "ones"))
    mask = ~uncertain if policy == "ignore" else np.ones_like(positive)
    return positive.astype(np.float64), mask


# ----------------------------------------------------------------------------- AUROC


def per_class_auroc(targets, scores, mask=None) -> np.ndarray:
    """(C,) ROC-AUC per class over the rows where mask holds; NaN where a class lacks both values."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    mask = np.ones(targets.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out = np.full(targets.shape[1], np.nan)
    for c in range(targets.shape[1]):
        y = targets[mask[:, c], c]
        if 0 < y.sum() < len(y):
            out[c] = roc_auc_score(y, scores[mask[:, c], c])
    return out


def _summary_weights(targets, mask, names, exclude) -> tuple[np.ndarray, np.ndarray]:
    """(C,) positive counts (0 for excluded classes) and (C,) bool: class may enter the means."""
    counts = (np.asarray(targets) * np.asarray(mask)).sum(axis=0)
    keep = np.array([name not in exclude for name in names])
    return counts * keep, keep


def auroc_summary(targets, scores, mask=None, names=CHEXPERT_LABELS, exclude=EXCLUDED_FROM_MEAN) -> dict:
    """Per-class AUROC (``auroc/<name>``), ``mean``, ``weighted_mean`` and ``classes_used``."""
    mask = np.ones(np.shape(targets), dtype=bool) if mask is None else mask
    aucs = per_class_auroc(targets, scores, mask)
    weights, keep = _summary_weights(targets, mask, names, exclude)
    used = keep & ~np.isnan(aucs)
    out = {f"auroc/{name}": float(a) for name, a in zip(names, aucs, strict=True)}
    out["mean"] = float(aucs[used].mean()) if used.any() else float("nan")
    out["weighted_mean"] = float(np.average(aucs[used], weights=weights[used])) if used.any() else float("nan")
    out["classes_used"] = int(used.sum())
    return out


def bootstrap_ci(targets, scores, mask=None, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                 names=CHEXPERT_LABELS, exclude=EXCLUDED_FROM_MEAN) -> dict:
    """Seeded percentile bootstrap (studies resampled with replacement) of ``mean`` and ``weighted_mean``.

    Returns ``mean_ci_low``, ``mean_ci_high``, ``weighted_mean_ci_low``, ``weighted_mean_ci_high``.
    """
    targets, scores = np.asarray(targets), np.asarray(scores)
    mask = np.ones(targets.shape, dtype=bool) if mask is None else np.asarray(mask)
    rng = np.random.default_rng(seed)
    draws = {"mean": [], "weighted_mean": []}
    for _ in range(n_boot):
        rows = rng.integers(0, len(targets), len(targets))
        summary = auroc_summary(targets[rows], scores[rows], mask[rows], names, exclude)
        for key in draws:
            draws[key].append(summary[key])
    tail = 100 * (1 - level) / 2
    out = {}
    for key, values in draws.items():
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low), float(high)
    return out


# ----------------------------------------------------------------------------- label budgets


def fraction_indices(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted seeded subset of round(fraction * n) training rows (at least 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must be in (0, 1]")
    size = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def k_shot_indices(targets, k: int, seed: int = 0, classes=None) -> np.ndarray:
    """Sorted rows holding k positives per class (seeded; the authors' 1-/5-shot = k studies per class).

    Classes are visited in order; a study already picked is not picked again. A class with fewer
    than k positives left contributes what it has, and a warning says so.
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c in range(targets.shape[1]) if classes is None else classes:
        candidates = np.setdiff1d(np.flatnonzero(targets[:, c] == 1), chosen)
        if len(candidates) < k:
            log.warning("k-shot: class %d has %d unpicked positives, fewer than k=%d", c, len(candidates), k)
        chosen += rng.choice(candidates, min(k, len(candidates)), replace=False).tolist()
    return np.sort(np.array(chosen, dtype=int))


# ----------------------------------------------------------------------------- linear probe


def linear_probe_scores(train_x, train_y, train_mask, test_x, c: float = 1.0, max_iter: int = 2000,
                        seed: int = 0) -> np.ndarray:
    """Per-class standardised logistic regression on frozen features.

    train_x: (N, D); train_y, train_mask: (N, C); test_x: (M, D). Returns (M, C) positive-class
    probabilities. A class with a single value among its training rows cannot be fit: it gets a
    constant score (AUROC 0.5) and a warning.
    """
    train_x, test_x = as_numpy(train_x), as_numpy(test_x)
    scores = np.full((len(test_x), train_y.shape[1]), 0.5)
    for cls in range(train_y.shape[1]):
        rows = np.asarray(train_mask[:, cls], dtype=bool)
        y = train_y[rows, cls]
        if len(np.unique(y)) < 2:
            log.warning("linear probe: class %d has one value in its %d training rows; scored constant", cls, len(y))
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
        probe.fit(train_x[rows], y)
        scores[:, cls] = probe.predict_proba(test_x)[:, 1]
    return scores


# ----------------------------------------------------------------------------- the authors' head


class AuthorsHead(nn.Module):
    """The authors' image classification head, as in their released code.

    GAP(regions) -> 256 ReLU and global -> 256 ReLU, concatenated -> 256 ReLU -> num_classes,
    dropout 0.5 before every linear layer. regions (B, R, D), image_vectors (B, D) -> logits (B, C).
    """

    def __init__(self, dim: int, num_classes: int = len(CHEXPERT_LABELS), hidden: int = 256, dropout: float = 0.5):
        super().__init__()

        def block(n_in, n_out):
            return nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, n_out), nn.ReLU())

        self.region_branch = block(dim, hidden)
        self.global_branch = block(dim, hidden)
        self.joint = nn.Sequential(block(2 * hidden, hidden), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, regions: torch.Tensor, image_vectors: torch.Tensor) -> torch.Tensor:
        pooled = self.region_branch(regions.mean(dim=1))
        return self.joint(torch.cat([pooled, self.global_branch(image_vectors)], dim=1))


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the entries where mask holds (B, C each)."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def fit_head_on_features(regions, image_vectors, targets, mask, epochs: int = 20, lr: float = 1e-4,
                         batch_size: int = 32, weight_decay: float = 1e-4, seed: int = 0,
                         device="cpu") -> AuthorsHead:
    """Train :class:`AuthorsHead` on frozen features (Adam, as the authors' ``fz`` regime).

    regions (N, R, D), image_vectors (N, D), targets and mask (N, C) numpy or tensors.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    data = [torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
            for x in (regions, image_vectors, targets, mask)]
    head = AuthorsHead(data[1].shape[1], data[2].shape[1]).to(device)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(data[1]), generator=generator).split(batch_size):
            r, v, y, m = (x[rows].to(device) for x in data)
            loss = masked_bce(head(r, v), y, m)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return head.eval()


def head_scores(head: AuthorsHead, regions, image_vectors, batch_size: int = 256, device="cpu") -> np.ndarray:
    """(N, C) sigmoid scores of a trained head on frozen features."""
    device = torch.device(device)
    head.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(image_vectors), batch_size):
            r = regions[start:start + batch_size].float().to(device)
            v = image_vectors[start:start + batch_size].float().to(device)
            out.append(torch.sigmoid(head(r, v)).cpu())
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------- end-to-end regimes


class ImageTower(nn.Module):
    """A JoImTeRNet's ``encode_images`` as a module (only image-side parameters get gradients)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        return self.model.encode_images(images)


class ImageClassifier(nn.Module):
    """encoder(images) -> ImageOutput(regions, image_vectors) -> AuthorsHead -> logits (B, C)."""

    def __init__(self, encoder: nn.Module, head: AuthorsHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.encoder(images)
        return self.head(out.regions, out.image_vectors)


REGIMES = {"frozen": 0.0, "finetune": 1e-5, "scratch": 1e-4}  # backbone learning rates (the authors')


def train_image_classifier(encoder: nn.Module, loader, regime: str = "finetune", epochs: int = 5,
                           lr_head: float = 1e-4, lr_backbone: float | None = None, policy: str = "zeros",
                           weight_decay: float = 1e-4, clip: float = 2.0, seed: int = 0, device="cpu",
                           progress: bool = True) -> ImageClassifier:
    """Train head + a copy of ``encoder`` on a DataLoader of batches (``images``, ``labels``).

    regime: ``frozen`` (backbone lr 0, kept in eval mode), ``finetune`` (backbone lr 1e-5) or
    ``scratch`` (the copy is re-initialised with ``seed``, backbone lr 1e-4). ``encoder`` is never
    modified. Adam, weight decay 1e-4, gradient clip 2.0, as the authors' classification configs.
    """
    if regime not in REGIMES:
        raise ValueError(f"regime {regime!r}: use one of {sorted(REGIMES)}")
    torch.manual_seed(seed)
    device = torch.device(device)
    encoder = copy.deepcopy(encoder).to(device)
    if regime == "scratch":
        _reinitialise(encoder)
    classifier = ImageClassifier(encoder, AuthorsHead(_feature_dim(encoder, loader, device))).to(device)
    lr_backbone = REGIMES[regime] if lr_backbone is None else lr_backbone
    groups = [{"params": classifier.head.parameters(), "lr": lr_head}]
    if lr_backbone > 0:
        groups.append({"params": [p for p in encoder.parameters() if p.requires_grad], "lr": lr_backbone})
    optimiser = torch.optim.Adam(groups, weight_decay=weight_decay)
    for _ in tqdm(range(epochs), desc=f"classifier ({regime})", disable=not progress):
        classifier.train()
        if lr_backbone == 0:
            encoder.eval()  # frozen: batch-norm statistics stay those of pre-training
        for batch in loader:
            batch = to_device(batch, device)
            targets, mask = (torch.as_tensor(x, dtype=torch.float32, device=device)
                             for x in prepare_targets(batch["labels"], policy))
            loss = masked_bce(classifier(batch["images"]), targets, mask)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(classifier.parameters(), clip)
            optimiser.step()
    return classifier.eval()


def _reinitialise(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def _feature_dim(encoder: nn.Module, loader, device) -> int:
    images = next(iter(loader))["images"][:1].to(device)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        dim = encoder(images).image_vectors.shape[1]
    encoder.train(was_training)
    return dim


def classifier_scores(classifier: nn.Module, loader, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores (N, C) and raw labels (N, C; 1 / 0 / -1 / NaN) over a DataLoader."""
    device = torch.device(device)
    classifier.eval()
    scores, labels = [], []
    with torch.no_grad():
        for batch in loader:
            scores.append(torch.sigmoid(classifier(batch["images"].to(device))).cpu())
            labels.append(batch["labels"].float().cpu())
    return torch.cat(scores).numpy(), torch.cat(labels).numpy()


# ----------------------------------------------------------------------------- zero-shot

ZERO_SHOT_TERMS: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectasis",),
    "Cardiomegaly": ("cardiomegaly", "enlarged heart"),
    "Consolidation": ("consolidation",),
    "Edema": ("edema", "pulmonary edema"),
    "Enlarged Cardiomediastinum": ("enlarged cardiomediastinum", "widened mediastinum"),
    "Fracture": ("fracture", "rib fracture"),
    "Lung Lesion": ("nodule", "mass", "lung lesion"),
    "Lung Opacity": ("opacity", "lung opacity"),
    "Pleural Effusion": ("pleural effusion", "effusion"),
    "Pleural Other": ("pleural thickening",),
    "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",),
    "Support Devices": ("support devices", "tube", "line"),
}
POSITIVE_TEMPLATES = ("{}", "there is {}", "{} is seen")
NEGATIVE_TEMPLATES = ("no {}", "there is no {}", "no evidence of {}")


def prompt_pairs(terms: dict[str, tuple[str, ...]] = ZERO_SHOT_TERMS) -> dict[str, tuple[list[str], list[str]]]:
    """Per class: (positive prompts, negative prompts), every term in every template."""
    return {name: ([t.format(w) for w in words for t in POSITIVE_TEMPLATES],
                   [t.format(w) for w in words for t in NEGATIVE_TEMPLATES]) for name, words in terms.items()}


def zero_shot_from_similarities(positive, negative) -> np.ndarray:
    """(N,) class score = mean similarity to the positive prompts - mean to the negative ones.

    positive (N, P), negative (N, Q): each image's scores against this class's prompts only.
    """
    return np.asarray(positive).mean(axis=1) - np.asarray(negative).mean(axis=1)


def zero_shot_scores(model, tokenizer, images, prompts=None, scoring: str = "global", device="cpu",
                     names=CHEXPERT_LABELS, **similarity_kwargs) -> np.ndarray:
    """(N, C) zero-shot scores of the embedded images; NaN columns for classes without prompts.

    images: ``ImageEmbeddings`` (``image_vectors``, and ``regions`` for local scoring), e.g.
    ``embed_dataset(...).images``. Every scoring goes through the model's ``similarity``.
    """
    from .embed import embed_reports
    from .retrieval import similarity_matrix

    prompts = prompt_pairs() if prompts is None else prompts
    out = np.full((len(images.image_vectors), len(names)), np.nan)
    for c, name in enumerate(names):
        if name not in prompts:
            continue
        pos, neg = prompts[name]
        text_side = embed_reports(model, tokenizer, pos + neg, device)
        sim = similarity_matrix(images, text_side, scoring, model.similarity, device=device,
                                **similarity_kwargs).numpy()
        out[:, c] = zero_shot_from_similarities(sim[:, :len(pos)], sim[:, len(pos):])
    return out


# ----------------------------------------------------------------------------- tidy rows


def classification_row(protocol: dict, labels, scores, policy: str = "zeros", n_boot: int = 200,
                       seed: int = 0) -> dict:
    """One tidy row: the protocol, then mean / weighted mean AUROC with CIs and per-class AUROC.

    labels: (N, C) raw test labels; scores: (N, C). Classes with NaN scores (no prompt) are masked.
    """
    targets, mask = prepare_targets(labels, policy)
    scores = np.asarray(scores)
    mask = mask & ~np.isnan(scores)
    scores = np.nan_to_num(scores)
    row = dict(protocol, policy=policy, n_test=len(targets), n_boot=n_boot, seed=seed)
    row.update(auroc_summary(targets, scores, mask))
    if n_boot:
        row.update(bootstrap_ci(targets, scores, mask, n_boot, seed))
    return row


def evaluate_frozen(train: DatasetEmbeddings, test: DatasetEmbeddings, regime: str = "linear", policy: str = "zeros",
                    fraction: float = 1.0, k_shot: int | None = None, seed: int = 0, n_boot: int = 200,
                    device="cpu", **head_kwargs) -> dict:
    """Linear probe (``linear``) or the authors' head (``mlp``) on frozen embeddings -> a tidy row.

    train, test: embed_dataset's output. Training rows: a seeded label fraction, or k shots per class.
    """
    train_y, train_mask = prepare_targets(train.labels, policy)
    rows = (k_shot_indices(train_y, k_shot, seed) if k_shot else fraction_indices(len(train_y), fraction, seed))
    fit, held_out = train.images, test.images
    if regime == "linear":
        scores = linear_probe_scores(fit.image_vectors[rows], train_y[rows], train_mask[rows],
                                     held_out.image_vectors, seed=seed)
    elif regime == "mlp":
        head = fit_head_on_features(fit.regions[rows], fit.image_vectors[rows], train_y[rows],
                                    train_mask[rows], seed=seed, device=device, **head_kwargs)
        scores = head_scores(head, held_out.regions, held_out.image_vectors, device=device)
    else:
        raise ValueError(f"frozen regime {regime!r}: use 'linear' or 'mlp'")
    protocol = dict(regime=regime, fraction=None if k_shot else fraction, k_shot=k_shot, n_train=len(rows))
    return classification_row(protocol, test.labels, scores, policy, n_boot, seed)
