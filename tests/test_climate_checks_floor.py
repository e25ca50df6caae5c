"""Member-bootstrap intervals of the climate-floor ratios (dynlab.eval.climate, issue 14).

A third independent truth sample E of the AR(1) climate gives ratios whose interval holds 1
for most seeds (the interval carries the noise of score and floor); a sample with 1.5× the
spread has W1 and sliced-W1 intervals entirely above 1; a blown-up sample gets [inf, inf]."""
from __future__ import annotations

import numpy as np

from dynlab.eval.climate import climate_scores

GROUPS = {"u": slice(0, 2), "v": slice(2, 4)}
KEYS = ["wasserstein", "acf", "spec_time", "sliced_wasserstein"]
R, T, D = 8, 300, 4


def ar1(rng, phi=0.9, std=1.0):
    """Stationary unit-variance AR(1), ``(R, T, D)``, times ``std``."""
    x = np.empty((R, T, D))
    x[:, 0] = rng.standard_normal((R, D))
    eps = rng.standard_normal((R, T, D)) * np.sqrt(1 - phi ** 2)
    for t in range(1, T):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return std * x


def scores(e, a, b, seed=0):
    return climate_scores(e, a, b, GROUPS, max_lag=10, nperseg=64, n_projections=16, n_boot=100, seed=seed)


def test_intervals_of_a_third_truth_sample_hold_one():
    covered, total = 0, 0
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        out = scores(ar1(rng), ar1(rng), ar1(rng), seed)
        for k in KEYS:
            ratio = np.atleast_1d(out[f"{k}_ratio"].values)
            low, high = np.atleast_1d(out[f"{k}_ratio_low"].values), np.atleast_1d(out[f"{k}_ratio_high"].values)
            assert np.all(low <= high) and np.all(low >= 0.5 - 1e-12), k  # ratios >= 1/2 (triangle inequality)
            covered += int(np.sum((low <= 1.0) & (1.0 <= high)))
            total += ratio.size
        assert out.attrs["climate_n_boot"] == 100
    assert covered >= 0.75 * total, (covered, total)


def test_intervals_of_a_wrong_spread_exclude_one_and_blow_ups_are_infinite():
    rng = np.random.default_rng(7)
    a, b = ar1(rng), ar1(rng)
    out = scores(ar1(rng, std=1.5), a, b)
    for k in ("wasserstein", "sliced_wasserstein"):
        assert np.all(np.atleast_1d(out[f"{k}_ratio_low"].values) > 1.2), k
    e = ar1(rng)
    e[:, 10:] = np.inf  # every run blows up (one alone would leave finite replicates without it)
    out = scores(e, a, b)
    assert np.all(np.isinf(out["wasserstein_ratio_low"].values)) and np.all(np.isinf(out["wasserstein_ratio_high"]))
    # one run per sample: no resampling, the interval is the point
    one = climate_scores(a[:1], b[:1], ar1(rng)[:1], GROUPS, max_lag=10, nperseg=64, n_projections=8, n_boot=50)
    np.testing.assert_array_equal(one["acf_ratio_low"].values, one["acf_ratio"].values)
