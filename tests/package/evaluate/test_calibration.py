"""SynthCXR's default difficulty leaves pre-training something to show: a trained model must beat
a random network by a margin a learner can see.

A linear probe on the global features of the randomly initialised ``demo_cpu`` image tower must
stay at or below 0.75 mean AUROC. (The trained side, at least 0.85, takes the demo's training run:
``make demo`` records it in its report, bench/RESULTS.md the lever runs behind it.)
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from joimternet_lite.config import load_config
from joimternet_lite.data.dataset import labels_to_tensor
from joimternet_lite.data.schema import CHEXPERT_LABELS
from joimternet_lite.data.synthcxr import generate_study
from joimternet_lite.data.transforms import build_transforms, to_tensor
from joimternet_lite.evaluate.classification import linear_probe_scores, prepare_targets
from joimternet_lite.models.image_encoder import build_image_encoder

NUM_STUDIES, NUM_TRAIN = 1000, 750


def random_network_features(cfg, images: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(cfg.train.seed)
    encoder = build_image_encoder(cfg.model.image, cfg.model.embed_dim, cfg.data.image_size).eval()
    with torch.no_grad():
        return torch.cat([encoder(chunk).image_vectors for chunk in images.split(100)])


@pytest.mark.slow
def test_a_probe_on_random_network_features_stays_at_or_below_075():
    cfg = load_config("demo_cpu")
    studies = [generate_study(i, cfg.train.seed, cfg.data.synth_image_size) for i in range(NUM_STUDIES)]
    transform = build_transforms(cfg.data.image_size, train=False)
    images = torch.stack([transform(to_tensor(s.image)) for s in studies])
    targets, mask = prepare_targets(torch.stack([labels_to_tensor(s.labels) for s in studies]), "zeros")
    features = random_network_features(cfg, images)
    train, test = slice(0, NUM_TRAIN), slice(NUM_TRAIN, NUM_STUDIES)
    scores = linear_probe_scores(features[train], targets[train], mask[train], features[test])
    aucs = [roc_auc_score(targets[test][:, k], scores[:, k]) for k, name in enumerate(CHEXPERT_LABELS)
            if name != "No Finding" and 0 < targets[test][:, k].sum() < len(targets[test])]
    assert len(aucs) >= 10
    assert np.mean(aucs) <= 0.75
