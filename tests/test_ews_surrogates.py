"""Surrogate significance, τ sensitivity and transition detection."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from dynlab.ews.sensitivity import plot_tau_sensitivity, tau_sensitivity
from dynlab.ews.surrogates import ar1_scan, phase_surrogates, surrogate_test
from dynlab.ews.transitions import allee_threshold, first_crossing, may_threshold


def test_ar1_scan_equals_the_recursion():
    phi = torch.tensor([[0.9], [-0.5]], dtype=torch.float64)
    eps = torch.randn(2, 77, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = eps.clone()
    for t in range(1, 77):
        ref[:, t] = phi[:, 0] * ref[:, t - 1] + eps[:, t]
    torch.testing.assert_close(ar1_scan(phi, eps), ref, rtol=1e-12, atol=1e-12)


def test_phase_surrogates_keep_the_power_spectrum():
    r = torch.randn(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s = phase_surrogates(r, 5, torch.Generator().manual_seed(2))
    torch.testing.assert_close(torch.fft.rfft(s).abs(), torch.fft.rfft(r)[:, None].abs().expand(3, 5, -1),
                               rtol=1e-9, atol=1e-9)


def test_surrogate_p_values_small_for_rising_variance_and_spread_under_the_null():
    rng = np.random.default_rng(3)
    n = 300
    rising = rng.normal(size=(4, n)) * np.linspace(0.5, 3.0, n)
    null = rng.normal(size=(40, n))
    res = surrogate_test(rising, n_surrogates=60, indicators=["variance"], seed=0)
    assert (res["variance_p"].values < 0.05).all()
    res0 = surrogate_test(null, n_surrogates=60, indicators=["variance"], seed=1, method="phase")
    p = res0["variance_p"].values
    assert 0.2 < np.mean(p) < 0.8 and (p < 0.05).mean() < 0.2
    assert res0["variance_surrogates"].shape == (40, 60)


def test_tau_sensitivity_grid_and_figure(tmp_path):
    x = np.random.default_rng(4).normal(size=(2, 200)) * np.linspace(1, 2, 200)
    tau = tau_sensitivity(x, bandwidths=(0.1, 0.3), windows=(0.2, 0.4))
    assert tau.dims == ("bandwidth", "window", "series_0") and np.all(np.abs(tau.values) <= 1)
    assert (tau.values > 0).all()
    plot_tau_sensitivity(tau, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_may_threshold_is_the_unstable_root_and_the_fold_beyond():
    from simulators.tipping import may_drift, may_drift_derivative

    thr = may_threshold([2.0, 2.3, 2.7])
    for c, x in zip((2.0, 2.3), thr[:2]):
        assert abs(may_drift(x, c)) < 1e-9 and may_drift_derivative(x, c) > 0
    assert thr[2] == pytest.approx(4.781, abs=1e-3)
    assert may_threshold([2.0], method="fraction", fraction=0.3)[0] == pytest.approx(3.0)


def test_allee_threshold_and_first_crossing():
    thr = allee_threshold([0.4, 1.5], N=10)
    lower = (2.6 - np.sqrt(2.6 ** 2 - 1.6)) / 2            # x^2 - 2.6x + 0.4 = 0
    assert thr[0] == pytest.approx(10 * lower) and thr[1] == pytest.approx(10.0)
    x = xr.DataArray([[5, 4, 1, 0], [5, 5, 5, 5]], dims=("member", "time"), coords={"time": [0.0, 1, 2, 3]})
    t = first_crossing(x, 2.0)
    assert t.values[0] == 2.0 and np.isnan(t.values[1])
    with pytest.raises(ValueError, match="method"):
        may_threshold([2.0], method="middle")
