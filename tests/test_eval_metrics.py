"""Metric functions against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from dynlab.emulators.codec import FieldSpec, StateCodec
from dynlab.eval import metrics as M
from dynlab.eval.spectra import mean_power_spectrum, spectral_divergence, spectral_residual

GROUPS = {"a": slice(0, 1), "b": slice(1, 3)}


def test_rmse_by_lead_and_variable_by_hand():
    truth = np.zeros((2, 2, 3))
    forecast = np.zeros((2, 2, 3))
    forecast[0, 0] = [1.0, 2.0, 2.0]  # lead 1: errors 1,2,2 and 0,0,0 -> mean sq = 9/6
    forecast[1, 1] = [0.0, 3.0, 4.0]  # lead 2: 25/6
    np.testing.assert_allclose(M.rmse_by_lead(forecast, truth), [math.sqrt(1.5), math.sqrt(25 / 6)])
    by_var = M.rmse_by_lead_and_variable(torch.as_tensor(forecast), truth, GROUPS)
    np.testing.assert_allclose(by_var, [[math.sqrt(0.5), 0.0], [math.sqrt(8 / 4), math.sqrt(25 / 4)]])
    # xarray in, same numbers
    da = xr.DataArray(forecast, dims=("n", "lead", "d"))
    np.testing.assert_allclose(M.rmse_by_lead(da, truth), M.rmse_by_lead(forecast, truth))


def test_anomaly_correlation_by_hand():
    clim = np.array([1.0, 1.0])
    truth = np.array([[[2.0, 0.0]], [[1.0, 3.0]]])  # anomalies (1, -1), (0, 2)
    forecast = np.array([[[3.0, 1.0]], [[1.0, 2.0]]])  # anomalies (2, 0), (0, 1)
    # Σ f'a' = 2 + 0 + 0 + 2 = 4; Σ f'^2 = 4 + 1 = 5; Σ a'^2 = 1 + 1 + 4 = 6
    np.testing.assert_allclose(M.anomaly_correlation(forecast, truth, clim), [4 / math.sqrt(30)])
    np.testing.assert_allclose(M.anomaly_correlation(truth, truth, clim), [1.0])
    np.testing.assert_allclose(M.anomaly_correlation(2 * clim - truth, truth, clim), [-1.0])  # mirrored anomalies
    per_var = M.anomaly_correlation_by_variable(forecast, truth, clim, {"x": slice(0, 1), "y": slice(1, 2)})
    np.testing.assert_allclose(per_var[:, 0], [2 / math.sqrt(4 * 1), 2 / math.sqrt(1 * 5)])
    assert np.isnan(M.anomaly_correlation(np.ones((1, 1, 2)), np.ones((1, 1, 2)), clim))[0]
    with pytest.raises(ValueError, match=r"climatology must have shape \(2,\), got \(3,\)"):
        M.anomaly_correlation(forecast, truth, np.zeros(3))


def test_climate_scale_and_vpt_by_hand():
    x = np.array([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 2.0], [2.0, 2.0]]])  # mean (1, 1); every |x - mean|^2 = 2
    assert M.climate_scale(x) == pytest.approx(math.sqrt(2.0))
    truth = np.zeros((3, 4, 2))
    forecast = np.zeros((3, 4, 2))
    forecast[0, :, 0] = [0.1, 0.3, 0.5, 0.9]  # exceeds 0.4 at lead 3: last valid lead 2
    forecast[1, :, 0] = [0.5, 0.0, 0.0, 0.0]  # at lead 1: never valid
    forecast[2, :, 0] = [0.1, 0.1, 0.1, 0.4]  # never (0.4 is not > 0.4): censored, the horizon
    vpt, censored = M.valid_prediction_time(forecast, truth, scale=1.0, dt=0.5)
    np.testing.assert_allclose(vpt, [1.0, 0.0, 2.0])  # the last valid time
    assert censored.tolist() == [False, False, True]
    # the older first-exceedance convention is one save later
    np.testing.assert_allclose(M.first_exceedance_time(M.normalized_error(forecast, truth, 1.0), 0.4, 0.5)[0],
                               [1.5, 0.5, 2.0])
    # non-finite errors count as exceeded
    forecast[2, 1, 0] = np.nan
    assert M.valid_prediction_time(forecast, truth, scale=1.0, dt=0.5)[0][2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scale must be a finite number > 0, got 0"):
        M.normalized_error(forecast, truth, 0)
    with pytest.raises(ValueError, match="same shape"):
        M.rmse_by_lead(forecast, truth[:, :2])


def test_wasserstein_by_hand():
    truth = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])[..., None].repeat(3, -1)  # a: {0, 1}; b: zeros
    shifted = truth + 2.0
    w, frac = M.wasserstein_by_variable(shifted, truth, GROUPS)
    np.testing.assert_allclose(w, [2.0, 2.0])  # a shift moves every unit of mass by 2
    pred = shifted.copy()
    pred[0, 0, 0] = np.inf
    w, frac = M.wasserstein_by_variable(pred, truth, GROUPS)
    assert frac[0] == pytest.approx(5 / 6) and frac[1] == 1.0


def test_conservation_drift():
    values = np.array([[2.0, 2.0, 2.2, 1.9], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(M.conservation_drift(values), [0.1, 0.0])
    np.testing.assert_allclose(M.conservation_drift(values, relative=False), [0.2, 0.0])


def test_variable_groups():
    codec = StateCodec((FieldSpec("X", ("k",), (4,)), FieldSpec("Y", ("k", "j"), (4, 2))))
    assert M.variable_groups(codec) == {"X": slice(0, 4), "Y": slice(4, 12)}


def test_power_spectrum_of_a_sine_and_spectral_scores():
    dt, T = 0.1, 400
    t = np.arange(T) * dt
    f0 = 1.25  # on the Welch grid of nperseg=80: frequencies k / (80 · 0.1) = k / 8
    x = np.stack([np.sin(2 * np.pi * f0 * t + p) for p in (0.0, 1.0)])[..., None]  # (2, T, 1)
    freqs, spec = mean_power_spectrum(x, dt, {"s": slice(0, 1)}, nperseg=80)
    assert freqs[np.argmax(spec[0])] == pytest.approx(f0)
    assert spectral_divergence(freqs, spec, spec)[0] == pytest.approx(0.0, abs=1e-12)
    assert spectral_residual(freqs, spec, spec)[0] == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    _, noise = mean_power_spectrum(rng.standard_normal((2, T, 1)), dt, {"s": slice(0, 1)}, nperseg=80)
    # ten times the power everywhere: log10 residual is exactly one decade, the tail shape is unchanged
    assert spectral_residual(freqs, noise, 10 * noise)[0] == pytest.approx(1.0)
    assert spectral_divergence(freqs, noise, 10 * noise)[0] == pytest.approx(0.0, abs=1e-12)
    # white noise has far more high-frequency power than a sine: a positive divergence
    assert spectral_divergence(freqs, noise, spec)[0] > 1.0
    with pytest.raises(ValueError, match="nperseg must be an integer in \\[4, T=400\\], got 500"):
        mean_power_spectrum(x, dt, {"s": slice(0, 1)}, nperseg=500)
