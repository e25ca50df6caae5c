"""dynlab.ews indicators and Kendall τ: agreement with ewstools/scipy/statsmodels and exact cases."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
import xarray as xr

from dynlab.ews import indicators, kendall_tau
from dynlab.ews.kendall import kendall_tau_tensor

INDICATOR_COLUMNS = {"variance": "variance", "std": "std", "cv": "cv", "ac1": "ac1", "skewness": "skew",
                     "kurtosis": "kurtosis"}


def _ar1_with_trend(rng, n, phi_from=0.3, phi_to=0.95):
    phi = np.linspace(phi_from, phi_to, n)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi[i] * x[i - 1] + rng.normal()
    return x + 5.0 + 0.01 * np.arange(n)


@pytest.mark.parametrize("detrend", ["gaussian", "lowess", "none"])
def test_values_equal_ewstools(detrend):
    ewstools = pytest.importorskip("ewstools")
    rng = np.random.default_rng(1)
    x = np.stack([_ar1_with_trend(rng, 300) for _ in range(2)])
    ds = indicators(x, detrend=detrend)
    tau = kendall_tau(ds)
    for b in range(2):
        ts = ewstools.TimeSeries(x[b])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if detrend != "none":
                ts.detrend(method=detrend.capitalize())
                np.testing.assert_allclose(ds["trend"].values[b], ts.state["smoothing"].values, rtol=1e-12)
            ts.compute_var(), ts.compute_std(), ts.compute_cv(), ts.compute_auto(lag=1)
            ts.compute_skew(), ts.compute_kurt()
            ts.compute_ktau()
        for ours, theirs in INDICATOR_COLUMNS.items():
            a, e = ds[ours].values[b], ts.ews[theirs].values
            assert np.array_equal(np.isnan(a), np.isnan(e)), ours          # same rolling alignment
            # pandas' rolling skew/kurt accumulate rounding ~1e-10 on values near zero
            rtol = 1e-8 if ours in ("variance", "std", "cv", "ac1") else 1e-6
            np.testing.assert_allclose(a, e, rtol=rtol, atol=0, err_msg=ours)
            assert float(tau[ours][b]) == pytest.approx(ts.ktau[theirs], abs=1e-12), ours


def test_gaussian_detrend_is_scipy_gaussian_filter_any_length():
    rng = np.random.default_rng(0)
    for n, bw in ((7, 0.9), (50, 0.2), (64, 30.0), (401, 0.05)):
        x = rng.normal(size=(3, n)).cumsum(-1)
        ds = indicators(x, detrend="gaussian", bandwidth=bw, window=0.9 if n < 10 else 0.25,
                        indicators=["variance"])
        bw_points = bw * n if bw <= 1 else bw
        ref = scipy.ndimage.gaussian_filter1d(x, sigma=0.25 / 0.675 * bw_points, mode="reflect", axis=-1)
        np.testing.assert_allclose(ds["trend"].values, ref, rtol=1e-12, atol=1e-12)


def test_lowess_equals_statsmodels_irregular_times():
    sm = pytest.importorskip("statsmodels.nonparametric.smoothers_lowess")
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.5, 1.5, 120))
    y = np.sin(t / 10) + rng.standard_t(3, size=t.size) * 0.2
    ds = indicators(xr.DataArray(y, dims="time", coords={"time": t}), detrend="lowess", span=0.3,
                    indicators=["variance"])
    ref = sm.lowess(y, t, frac=0.3, return_sorted=False)
    np.testing.assert_allclose(ds["trend"].values, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("detrend", ["gaussian", "lowess", "linear"])
def test_linear_trend_detrends_to_zero(detrend):
    t = np.arange(200.0)
    x = np.stack([3.0 + 0.2 * t, -1.0 - 0.05 * t])
    ds = indicators(x, detrend=detrend, indicators=["variance"])
    if detrend == "gaussian":  # reflection bends the ends of a ramp; the interior is exact
        # the kernel is symmetric, so away from the ends a straight line is reproduced
        radius = int(4 * 0.25 / 0.675 * 0.2 * 200 + 0.5)
        np.testing.assert_allclose(ds["residuals"].values[:, radius:-radius], 0, atol=1e-10)
    else:
        np.testing.assert_allclose(ds["residuals"].values, 0, atol=1e-10)


def test_ar1_lag1_autocorrelation_converges_to_phi():
    rng = np.random.default_rng(5)
    phi, n = 0.7, 20000
    e = rng.normal(size=(4, n))
    x = np.zeros_like(e)
    for i in range(1, n):
        x[:, i] = phi * x[:, i - 1] + e[:, i]
    ds = indicators(x, detrend="none", window=1.0, indicators=["ac1", "variance"])
    np.testing.assert_allclose(ds["ac1"].values[:, -1], phi, atol=0.02)
    np.testing.assert_allclose(ds["variance"].values[:, -1], 1 / (1 - phi ** 2), rtol=0.06)


def test_rolling_window_alignment_and_nan_prefix():
    x = np.arange(40.0) ** 1.5
    ds = indicators(x, detrend="none", window=10, indicators=["variance"])
    v = ds["variance"].values
    assert np.isnan(v[:9]).all() and np.isfinite(v[9:]).all()
    assert v[25] == pytest.approx(np.var(x[16:26], ddof=1), rel=1e-12)


def test_tau_of_monotone_series_and_scipy_with_ties_and_nan():
    t = torch.arange(1000, dtype=torch.float64)
    assert kendall_tau_tensor(torch.stack([t, -t, t ** 3]))[:].tolist() == [1.0, -1.0, 1.0]
    rng = np.random.default_rng(0)
    for n in (2, 3, 17, 128, 1001):
        y = rng.integers(0, 6, size=(3, n)).astype(float)
        y[1] = rng.normal(size=n)
        y[2, ::5] = np.nan
        ours = kendall_tau_tensor(torch.as_tensor(y)).numpy()
        for row, value in zip(y, ours):
            ok = ~np.isnan(row)
            ref = scipy.stats.kendalltau(np.arange(n)[ok], row[ok]).statistic if ok.sum() > 1 else np.nan
            np.testing.assert_allclose(value, ref, atol=1e-13)


def test_tau_window_per_series_stop():
    x = np.stack([np.r_[np.arange(50.0), -np.arange(50.0)]] * 2)
    ds = xr.Dataset({"variance": (("member", "time"), x)}, coords={"time": np.arange(100.0)})
    ds.attrs["indicators"] = ["variance"]
    stop = xr.DataArray([49.0, 99.0], dims="member")
    tau = kendall_tau(ds, stop=stop)
    assert tau["variance"].values[0] == 1.0 and tau["variance"].values[1] < 0.5
    assert tau["n_variance"].values.tolist() == [50, 100]


def test_dataarray_batch_dims_and_coords_survive():
    rng = np.random.default_rng(2)
    da = xr.DataArray(rng.normal(size=(2, 3, 80)), dims=("member", "variable", "time"),
                      coords={"member": [10, 11], "time": np.linspace(0, 8, 80)})
    ds = indicators(da.transpose("time", "member", "variable"), indicators=["ac1", "cv"])
    assert ds["ac1"].dims == ("member", "variable", "time")
    assert ds["member"].values.tolist() == [10, 11]
    assert ds.attrs["window_points"] == 20


@pytest.mark.parametrize("kwargs, match", [
    (dict(detrend="spline"), "detrend"),
    (dict(indicators=["variance", "entropy"]), "indicators"),
    (dict(window=0.01), "window"),
    (dict(window=-1), "window"),
    (dict(bandwidth=0.0), "bandwidth"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        indicators(np.zeros((2, 100)) + np.arange(100), **kwargs)


@pytest.mark.gpu
def test_cuda_equals_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(9)
    x = np.stack([_ar1_with_trend(rng, 500) for _ in range(64)])
    cpu, gpu = indicators(x), indicators(x, device="cuda")
    for name in ("trend", "variance", "ac1", "skewness", "kurtosis", "cv"):
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(kendall_tau(gpu, device="cuda")["ac1"].values, kendall_tau(cpu)["ac1"].values)
