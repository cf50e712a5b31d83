"""Frontal / lateral classifier of data/views.py on SynthCXR films and hand-made arrays (notebook 12)."""

import numpy as np
import pytest

from joimternet_lite.data import views
from joimternet_lite.data.synthcxr import generate_study, render_lateral


def drawn_profile_film(profile: np.ndarray, rows: int = 64) -> np.ndarray:
    """A film whose every row is ``profile`` (W,) in [0, 1]."""
    return np.tile(profile.astype(np.float32), (rows, 1))


def test_features_of_a_hand_made_frontal_profile():
    # A 64-wide film (no resizing): lung bands at columns 8..25 and 39..56, mirror images about
    # column 32, where a bright band peaks (a tent, so the best centre is unique).
    profile = np.full(64, 0.6)
    profile[8:26] = profile[39:57] = 0.2
    profile[26:39] = 0.9 - 0.05 * np.abs(np.arange(26, 39) - 32)
    peak, mirror = views.view_features(drawn_profile_film(profile))
    grey = (profile * 255).astype(np.uint8).astype(np.float64)  # what the 8-bit working copy holds
    assert peak == pytest.approx((grey[29:36].mean() - grey[16:24].mean()) / grey.std(), rel=1e-4)
    assert mirror == pytest.approx(1.0, abs=1e-6)
    assert views.guess_view(drawn_profile_film(profile)) == "frontal"


def test_one_dark_field_with_no_central_peak_is_lateral():
    profile = np.full(64, 0.8)
    profile[6:44] = 0.25  # one lung field across the middle, bright spine at the right
    assert views.guess_view(drawn_profile_film(profile)) == "lateral"


def test_features_ignore_exposure_and_contrast():
    film = generate_study(3, seed=5, image_size=128).image / 255.0
    np.testing.assert_allclose(views.view_features(0.3 + 0.5 * film), views.view_features(film), atol=0.05)


def test_unseen_synthcxr_films_are_classified():
    # seed 9: other patients than the seed-1 films the weights were fitted on
    frontal = [generate_study(i, seed=9, image_size=128).image / 255.0 for i in range(12)]
    lateral = [render_lateral(i, seed=9, image_size=128) / 255.0 for i in range(12)]
    assert [views.guess_view(x) for x in frontal] == ["frontal"] * 12
    assert [views.guess_view(x) for x in lateral] == ["lateral"] * 12


def test_fisher_discriminant_weighs_the_reliable_feature(monkeypatch):
    # Both features differ in the mean, but feature 2 is noisy (sd 2) and feature 1 tight (sd 0.1):
    # Fisher's weights ~ (mean difference) / variance favour feature 1; a plain mean difference would not.
    rng = np.random.default_rng(0)
    frontal = [np.array([2.0, 1.0]) + rng.standard_normal(2) * (0.1, 2.0) for _ in range(400)]
    lateral = [np.array([0.0, 0.0]) + rng.standard_normal(2) * (0.1, 2.0) for _ in range(400)]
    monkeypatch.setattr(views, "view_features", lambda x: x)
    weights, bias = views.fit_view_classifier(frontal, lateral)
    assert weights[0] > 0 and abs(weights[1]) < 0.05 * weights[0]
    assert -(bias + 0.5 * weights[1]) / weights[0] == pytest.approx(1.0, abs=0.05)  # boundary halfway


@pytest.mark.slow
def test_shipped_weights_are_the_synthcxr_fit():
    weights, bias = views.fit_view_classifier(*views.synth_training_films(200))
    np.testing.assert_allclose(weights, views.VIEW_WEIGHTS, atol=1e-3)
    assert bias == pytest.approx(views.VIEW_BIAS, abs=1e-3)
