"""OU/LSN maximum likelihood, the likelihood ratio, its bootstrap and ROC/AUC."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from dynlab.ews.bootstrap import bootstrap_lr
from dynlab.ews.likelihood import fit_lsn, fit_ou, likelihood_ratio, lsn_loglik, ou_loglik, simulate_lsn, simulate_ou
from dynlab.ews.roc import auc, detection_rate, roc_curve


def _ou_paths(B, T, seed, r=0.2, theta=2.0, sigma=0.3):
    g = torch.Generator().manual_seed(seed)
    full = lambda v: torch.full((B,), v, dtype=torch.float64)  # noqa: E731
    return simulate_ou(full(theta), T - 1, 1.0, full(r), full(theta), full(sigma), g)


def test_ou_fit_recovers_parameters_within_standard_errors():
    x = _ou_paths(150, 500, seed=1)
    fit = fit_ou(x, 1.0)
    assert fit.converged.all()
    for k, (name, true) in enumerate((("r", 0.2), ("theta", 2.0), ("sigma", 0.3))):
        z = ((getattr(fit, name) - true) / fit.stderr[:, k]).numpy()
        assert abs(z.mean()) < 0.35 and 0.75 < z.std() < 1.3, (name, z.mean(), z.std())


def test_ou_fit_is_the_maximum_of_the_likelihood():
    x = _ou_paths(3, 300, seed=2)
    fit = fit_ou(x, 1.0)
    best = ou_loglik(x, 1.0, fit.r, fit.theta, fit.sigma)
    torch.testing.assert_close(best, fit.loglik)
    for dr, dth, ds in ((1.02, 0, 1), (0.98, 0, 1), (1, 0.01, 1), (1, 0, 1.01)):
        assert (ou_loglik(x, 1.0, fit.r * dr, fit.theta + dth, fit.sigma * ds) < best).all()


def test_lsn_with_m_zero_is_the_ou_model():
    x = _ou_paths(4, 200, seed=3)
    r, theta_ou, sigma_ou = 0.3, 2.0, 0.4
    full = lambda v: torch.full((4,), v, dtype=torch.float64)  # noqa: E731
    ll_lsn = lsn_loglik(x, 1.0, full((r / 2) ** 2), full(0.0), full(theta_ou - r / 2), full(sigma_ou / theta_ou ** 0.5))
    ll_ou = ou_loglik(x, 1.0, full(r), full(theta_ou), full(sigma_ou))
    torch.testing.assert_close(ll_lsn, ll_ou, rtol=1e-12, atol=1e-10)


def test_lsn_fit_recovers_parameters_within_standard_errors():
    g = torch.Generator().manual_seed(4)
    B, T = 80, 500
    full = lambda v: torch.full((B,), v, dtype=torch.float64)  # noqa: E731
    true = dict(R0=0.04, m=-6e-5, theta=1.8, sigma=0.2)
    x = simulate_lsn(full(2.0), T - 1, 1.0, *(full(v) for v in true.values()), g)
    fit = fit_lsn(x, 1.0)
    assert fit.converged.float().mean() > 0.9
    ok = fit.converged
    for k, (name, value) in enumerate(true.items()):
        z = ((getattr(fit, name)[ok] - value) / fit.stderr[ok, k]).numpy()
        # the observed-information errors are asymptotic; check calibration robustly
        assert abs(np.median(z)) < 0.4 and 0.4 < np.median(np.abs(z)) < 1.0, (name, np.median(z))
        assert (np.abs(z) > 4).mean() < 0.05, name


def test_likelihood_ratio_under_the_null_is_chi2_1_and_never_negative():
    x = _ou_paths(250, 400, seed=5)
    delta, ou, lsn = likelihood_ratio(x, 1.0)
    d = delta[ou.converged & lsn.converged].numpy()
    assert d.size > 230
    assert (delta[ou.converged] >= -1e-9).all()
    assert scipy.stats.kstest(d, scipy.stats.chi2(1).cdf).pvalue > 1e-3
    assert 0.75 < d.mean() < 1.3


@pytest.mark.slow
def test_likelihood_ratio_null_distribution_large_n():
    x = _ou_paths(2000, 2000, seed=6)
    delta, ou, lsn = likelihood_ratio(x, 1.0)
    d = delta[ou.converged & lsn.converged].numpy()
    assert scipy.stats.kstest(d, scipy.stats.chi2(1).cdf).pvalue > 1e-3
    assert abs(np.quantile(d, 0.95) - scipy.stats.chi2(1).ppf(0.95)) < 0.5


def test_fits_of_series_of_different_lengths_in_one_batch_equal_separate_fits():
    x = _ou_paths(3, 300, seed=8)
    lengths = torch.tensor([300, 120, 57])
    padded = x.clone()
    padded[1, 120:], padded[2, 57:] = 1e6, -3.0                 # anything beyond a length is ignored
    delta, ou, lsn = likelihood_ratio(padded, 1.0, lengths=lengths)
    for i, L in enumerate(lengths.tolist()):
        d1, ou1, lsn1 = likelihood_ratio(x[i:i + 1, :L], 1.0)
        torch.testing.assert_close(ou.r[i:i + 1], ou1.r, rtol=1e-10, atol=0)
        torch.testing.assert_close(ou.stderr[i:i + 1], ou1.stderr, rtol=1e-8, atol=0)
        torch.testing.assert_close(lsn.loglik[i:i + 1], lsn1.loglik, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(delta[i:i + 1], d1, rtol=1e-6, atol=1e-7)


def test_bootstrap_counts_and_separates_an_lsn_series():
    g = torch.Generator().manual_seed(7)
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    x = simulate_lsn(one(2.0), 399, 1.0, one(0.09), one(-2e-4), one(1.7), one(0.2), g)
    res = bootstrap_lr(x, 1.0, n_replicates=30, seed=0)
    assert res.null.shape == res.test.shape == (1, 30)
    assert 0 < res.p_value[0] <= 1 and res.failed[0] >= 0 and res.negative[0] == (np.r_[res.null, res.test] < 0).sum()
    assert np.nanmean(res.test) > np.nanmean(res.null)
    assert res.auc[0] > 0.6


def test_auc_and_detection_rate_exact():
    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 5, 60).astype(float), rng.integers(1, 7, 40).astype(float)
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert auc(neg, pos) == pytest.approx(pairs, abs=1e-15)
    fpr, tpr, _ = roc_curve(neg, pos)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairs, abs=1e-12)
    neg = np.arange(100.0)
    pos = np.array([93.5, 94.0, 94.5, 200.0])
    assert detection_rate(neg, pos, 0.05) == 0.5                  # threshold 94: 5 negatives above it
    assert detection_rate(neg, np.array([np.nan, 1e9]), 0.05) == 0.5   # NaN never alarms
    with pytest.raises(ValueError, match="alpha"):
        detection_rate(neg, pos, 1.5)


def test_fit_inputs_are_checked():
    with pytest.raises(ValueError, match="dt"):
        fit_ou(torch.zeros(2, 50), 0.0)
    with pytest.raises(ValueError, match="finite"):
        fit_lsn(torch.full((1, 50), float("nan")), 1.0)
