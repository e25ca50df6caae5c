"""Score series cut at their own stop times: τ of every indicator and the likelihood ratio.

Series of one ensemble end at different times (each stops ``lead`` before its own
transition). Their lengths are rounded down to multiples of ``length_step`` and
each group of equal length is scored in one batched call, so the detrending
bandwidth and the window are the configured fractions of each series' own length
(as ewstools does for a series cut at its transition).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from .indicators import indicators as compute_indicators
from .likelihood import likelihood_ratio
from .tau import kendall_tau

__all__ = ["analysed_lengths", "score_series"]


def analysed_lengths(stop: np.ndarray, save_every: float, n_times: int, step: int) -> np.ndarray:
    """Points in ``[0, stop]`` on the save grid, rounded down to a multiple of ``step``
    (0 where stop is NaN or negative)."""
    stop = np.asarray(stop, dtype=np.float64)
    n = np.where(np.isfinite(stop) & (stop >= 0), np.floor(stop / save_every + 1e-9) + 1, 0)
    n = np.minimum(n, n_times)
    return (n // step * step).astype(np.int64)


def score_series(x: np.ndarray, lengths: np.ndarray, times: np.ndarray, *, names: Sequence[str], detrend: str,
                 bandwidth: float, span: float, window: float, min_points: int, likelihood: bool,
                 lr_input: str = "detrended", device=None) -> dict[str, np.ndarray]:
    """τ of each indicator (``tau_<name>``), δ (``lr``), the fitted ramp ``m`` and its standard
    error ``m_se``, fit flags and ``n_points`` for each row of ``x`` ``(N, T)`` cut to ``lengths``
    ``(N,)``. Rows shorter than ``min_points`` get NaN (``n_points`` 0).

    ``lr_input="detrended"`` fits the OU and LSN to the residuals plus the series' mean (the
    trend of the mean removed, the changing resilience kept: a ramped driver moves the
    equilibrium far more than the LSN's √R level can follow); ``"raw"`` to the series itself.
    """
    N = x.shape[0]
    out = {f"tau_{n}": np.full(N, np.nan) for n in names}
    out.update(lr=np.full(N, np.nan), m=np.full(N, np.nan), m_se=np.full(N, np.nan),
               fit_ok=np.zeros(N, dtype=bool), n_points=np.zeros(N, dtype=np.int64))
    dt = float(times[1] - times[0]) if len(times) > 1 else 1.0
    lr_x = np.zeros(x.shape, dtype=np.float64)
    for L in np.unique(lengths):
        if L < min_points:
            continue
        idx = np.flatnonzero(lengths == L)
        seg = x[idx, :L]
        da = xr.DataArray(seg, dims=("series", "time"), coords={"time": times[:L]})
        ds = compute_indicators(da, detrend=detrend, bandwidth=bandwidth, span=span, window=window,
                                indicators=list(names), device=device)
        tau = kendall_tau(ds, device=device)
        for n in names:
            out[f"tau_{n}"][idx] = tau[n].values
        out["n_points"][idx] = L
        if likelihood:
            lr_x[idx, :L] = seg if lr_input == "raw" else ds["residuals"].values + seg.mean(-1, keepdims=True)
            lr_x[idx, L:] = lr_x[idx, L - 1:L]                      # padding, outside every likelihood
    rows = np.flatnonzero(out["n_points"] > 0)
    if likelihood and rows.size:  # one batched fit for every length (the likelihoods are masked)
        longest = int(out["n_points"].max())
        delta, ou, lsn = likelihood_ratio(torch.as_tensor(lr_x[rows, :longest], dtype=torch.float64), dt,
                                          lengths=torch.as_tensor(out["n_points"][rows]))
        out["lr"][rows] = delta.numpy()
        out["m"][rows] = lsn.m.numpy()
        out["m_se"][rows] = lsn.stderr[:, 1].numpy()
        out["fit_ok"][rows] = (ou.converged & lsn.converged).numpy()
    return out


