r"""Temporal power spectra of trajectories and the spectral scores of ChaosBench.

The mean power spectrum of a variable is Welch's estimate (Hann window,
half-overlapping segments of ``nperseg`` samples, linear trend removed per
segment) of each feature's time series, averaged over members and the
variable's features: :math:`S(f)` on :math:`f = 0, 1/(n Δt), …, 1/(2Δt)`.

Scores (Nathaniel et al., ChaosBench 2024; PHYSICS.md, Emulator scores), with
spectra floored at ``1e-12 · max S_true`` so that a flat forecast (persistence)
stays finite:

* spectral divergence on the high-frequency tail :math:`f \ge q\,f_{\rm Nyquist}`,
  each spectrum normalised to unit sum on the tail:
  :math:`\mathrm{SpecDiv} = \sum_{f} \tilde S_{\rm true} \log(\tilde S_{\rm true}/\tilde S_{\rm pred})`
  (a Kullback–Leibler divergence, ≥ 0, 0 iff the tail shapes agree);
* spectral residual: the RMS difference of the log-spectra over all
  :math:`f > 0`, in decades: :math:`\sqrt{\mathrm{mean}_f (\log_{10} S_{\rm pred} − \log_{10} S_{\rm true})^2}`.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .metrics import as_array

__all__ = ["mean_power_spectrum", "spectral_divergence", "spectral_residual", "SPECTRUM_FLOOR"]

SPECTRUM_FLOOR = 1e-12


def mean_power_spectrum(x: Any, dt: float, groups: Mapping[str, slice], nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean temporal power spectrum per variable.

    Args:
        x: trajectories ``(M, T, D)``; series (member, feature) with non-finite
            values are left out of the average.
        dt: sampling interval (model time).
        groups: variable → feature slice.
        nperseg: samples per Welch segment (``<= T``).

    Returns:
        ``(frequencies (F,), spectra (V, F))`` with ``F = nperseg // 2 + 1``;
        a variable with no finite series gets NaN.
    """
    from scipy.signal import welch

    a = as_array(x, "x")
    if a.ndim != 3:
        raise ValueError(f"x must have shape (M, T, D), got {a.shape}")
    if isinstance(nperseg, bool) or not isinstance(nperseg, (int, np.integer)) or not 4 <= nperseg <= a.shape[1]:
        raise ValueError(f"nperseg must be an integer in [4, T={a.shape[1]}], got {nperseg!r}")
    series = np.moveaxis(a, 1, -1)  # (M, D, T)
    finite = np.isfinite(series).all(axis=-1)  # (M, D)
    freqs, power = welch(np.where(np.isfinite(series), series, 0.0), fs=1.0 / dt, nperseg=int(nperseg),
                         detrend="linear", axis=-1)  # power: (M, D, F)
    out = []
    for sl in groups.values():
        ok = finite[:, sl]
        p = power[:, sl]
        out.append(p[ok].mean(axis=0) if ok.any() else np.full(freqs.shape, np.nan))
    return freqs, np.stack(out)


def _floored(s_true: np.ndarray, s_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = as_array(s_true, "s_true"), as_array(s_pred, "s_pred")
    if t.shape != p.shape:
        raise ValueError(f"spectra must have the same shape, got {t.shape} and {p.shape}")
    floor = SPECTRUM_FLOOR * np.nanmax(t, axis=-1, keepdims=True)
    floor = np.where(floor > 0, floor, np.finfo(np.float64).tiny)
    return np.maximum(t, floor), np.maximum(p, floor)


def spectral_divergence(frequencies: Any, s_true: Any, s_pred: Any, tail: float = 0.5) -> np.ndarray:
    """SpecDiv over ``f >= tail · f_max`` of spectra ``(..., F)`` → ``(...)``."""
    f = as_array(frequencies, "frequencies")
    if not (isinstance(tail, (int, float)) and 0 <= tail < 1):
        raise ValueError(f"tail must be a number in [0, 1), got {tail!r}")
    t, p = _floored(s_true, s_pred)
    sel = f >= tail * f.max()
    sel &= f > 0
    t, p = t[..., sel], p[..., sel]
    t = t / t.sum(axis=-1, keepdims=True)
    p = p / p.sum(axis=-1, keepdims=True)
    return np.sum(t * np.log(t / p), axis=-1)


def spectral_residual(frequencies: Any, s_true: Any, s_pred: Any) -> np.ndarray:
    """RMS of ``log10 S_pred − log10 S_true`` over ``f > 0``: ``(..., F)`` → ``(...)``."""
    f = as_array(frequencies, "frequencies")
    t, p = _floored(s_true, s_pred)
    sel = f > 0
    return np.sqrt(np.mean((np.log10(p[..., sel]) - np.log10(t[..., sel])) ** 2, axis=-1))
