"""Seeded hash splits: a study's train / validate / test split from its id alone.

Taught in notebook 12. Used by OpenI (always) and MIMIC-CXR (when the official split file is
absent). The split of a study does not depend on which other studies are present, so adding or
losing files never moves a study from test into train.
"""

from __future__ import annotations

import hashlib

SPLIT_FRACTIONS = {"train": 0.7, "validate": 0.1, "test": 0.2}
DEFAULT_SEED = 42


def split_for(study_id: str, seed: int = DEFAULT_SEED) -> str:
    """Deterministic split from a hash of (seed, id), in the proportions of ``SPLIT_FRACTIONS``."""
    digest = hashlib.sha256(f"{seed}:{study_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS.items():
        edge += fraction
        if u < edge:
            return name
    return "test"
