"""95 % intervals for a paired difference between two trained variants. Taught in notebook 12.

Two sources of doubt, two intervals (the ablation table shows both):

- across training seeds: a t-interval on the per-seed paired differences (variant minus baseline,
  same seed), ``scipy.stats.t`` with n - 1 degrees of freedom; needs two seeds or more;
- across test studies: a paired percentile bootstrap (``scipy.stats.bootstrap``) that resamples
  test studies with replacement and recomputes the metric difference on each resample. A metric
  is a ratio over studies, sum(numerators) / sum(weights): R@K has one query per study (numerator
  100 * hit, weight 1), pointing has one row per finding (numerator = the study's hits, weight = its
  findings), so a study's findings are resampled together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided interval (NaN ends: no interval could be formed)."""

    estimate: float
    low: float
    high: float

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def excludes_zero(self) -> bool:
        return self.defined and (self.low > 0 or self.high < 0)


def t_interval(differences, confidence: float = 0.95) -> Interval:
    """t-interval of the mean of (n,) per-seed paired differences.

    mean +- t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n). With n < 2 the ends are NaN; when every
    seed gives the same difference the interval is that single value.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"differences must be a non-empty 1-D sequence; got shape {d.shape}")
    mean = float(d.mean())
    if d.size < 2:
        return Interval(mean, math.nan, math.nan)
    sem = float(stats.sem(d))
    if sem == 0.0:  # scipy's t.interval needs a positive scale
        return Interval(mean, mean, mean)
    low, high = stats.t.interval(confidence, df=d.size - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high))


def paired_bootstrap(differences, weights, n_resamples: int, seed: int, confidence: float = 0.95) -> Interval:
    """Percentile bootstrap over studies of sum(differences) / sum(weights).

    differences: (S,) per study, the variant's numerator minus the baseline's (averaged over seeds);
    weights: (S,) per study, the metric's denominator (1 per retrieval query, findings for pointing).
    Studies with weight 0 do not enter the metric and are left out of the resampling. Seeded
    (``numpy.random.default_rng(seed)``); with ``n_resamples`` 0 or no weighted study the ends are NaN.
    """
    d, w = (np.asarray(x, dtype=np.float64) for x in (differences, weights))
    if d.shape != w.shape or d.ndim != 1:
        raise ValueError(f"differences and weights must be 1-D of one length; got {d.shape} and {w.shape}")
    used = w > 0
    if not used.any():
        return Interval(math.nan, math.nan, math.nan)
    d, w = d[used], w[used]
    estimate = float(d.sum() / w.sum())
    if n_resamples < 1 or d.size < 2:
        return Interval(estimate, math.nan, math.nan)
    result = stats.bootstrap((d, w), _ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                             confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high))


def _ratio(d: np.ndarray, w: np.ndarray, axis: int = -1) -> np.ndarray:
    return d.sum(axis=axis) / w.sum(axis=axis)
