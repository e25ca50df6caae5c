r"""Early-warning indicators of many series at once: detrend, then rolling statistics.

``indicators(x)`` follows ewstools' conventions (Bury 2023; Dakos et al. 2012):
detrend each series (:mod:`dynlab.ews.detrend`), then compute trailing
rolling-window statistics of the residuals (:mod:`dynlab.ews.rolling`), with
the window ``w = int(window·T)`` points for a window in (0, 1] (a larger value
is a number of points), NaN before the first full window. Everything runs in
torch on the device of the data, batched over every dimension but ``time``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from .detrend import DETRENDERS, points
from .rolling import ROLLING, Windows

__all__ = ["indicators", "INDICATORS", "as_batch", "window_points"]

INDICATORS = tuple(ROLLING)


def window_points(window: float, length: int) -> int:
    """ewstools' rolling window: ``int(window·T)`` for a window in (0, 1], else ``int(window)``."""
    w = int(points(window, length, "window"))
    return w


def as_batch(x, device=None) -> tuple[torch.Tensor, tuple[str, ...], dict, np.ndarray, tuple[int, ...]]:
    """``x`` (DataArray with ``time`` or array ``(..., T)``) → ``(B, T)`` float64 tensor, the batch
    dims, their coords, the times ``(T,)`` and the batch shape."""
    if isinstance(x, xr.DataArray):
        if "time" not in x.dims:
            raise ValueError(f"x must have a 'time' dimension, got dims {x.dims}")
        x = x.transpose(..., "time")
        dims = tuple(d for d in x.dims if d != "time")
        coords = {k: v for k, v in x.coords.items() if "time" not in v.dims}
        times = np.asarray(x["time"].values if "time" in x.coords else np.arange(x.sizes["time"]))
        data = torch.as_tensor(np.array(x.values))
    else:
        data = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        if data.ndim < 1:
            raise ValueError("x must have a time axis (the last one), got a scalar")
        dims = tuple(f"series_{i}" for i in range(data.ndim - 1))
        coords = {}
        times = np.arange(data.shape[-1])
    if not (data.is_floating_point() or data.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"x must hold real numbers, got dtype {data.dtype}")
    batch_shape = tuple(data.shape[:-1])
    data = data.to(dtype=torch.float64, device=device or data.device).reshape(-1, data.shape[-1])
    return data, dims, coords, times, batch_shape


def indicators(x, *, detrend: str = "gaussian", bandwidth: float = 0.2, span: float = 0.2, window: float = 0.25,
               indicators: Sequence[str] = INDICATORS, device=None) -> xr.Dataset:
    r"""Trend, residuals and rolling-window indicators of every series in ``x``.

    Args:
        x: an ``xarray.DataArray`` with a ``time`` dimension (every other dimension is a
            batch: member, path, variable, …) or an array/tensor ``(..., T)``.
        detrend: ``gaussian`` (kernel smoother, σ = (0.25/0.675)·bandwidth points),
            ``lowess`` (span), ``linear`` or ``none`` (:mod:`dynlab.ews.detrend`).
        bandwidth: Gaussian bandwidth, a fraction of T in (0, 1] or a number of points.
        span: LOWESS span, a fraction of T in (0, 1] or a number of points.
        window: rolling window, a fraction of T in (0, 1] (``int(window·T)`` points) or a count.
        indicators: any of ``variance, std, cv, ac1, skewness, kurtosis``
            (:mod:`dynlab.ews.rolling` states each definition).
        device: where to compute (default: where ``x`` is; float64 throughout).

    Returns:
        ``xarray.Dataset`` on ``(*batch dims, time)`` with ``state``, ``trend``, ``residuals`` and
        one variable per indicator (NaN before the first full window, at index w − 1);
        attributes record the method, bandwidth/span and the window in points.
    """
    if detrend not in DETRENDERS:
        raise ValueError(f"detrend must be one of {', '.join(DETRENDERS)}, got {detrend!r}")
    names = list(indicators)
    unknown = [n for n in names if n not in ROLLING]
    if unknown or not names:
        raise ValueError(f"indicators must be a non-empty subset of {', '.join(ROLLING)}, got {names!r}")
    data, dims, coords, times, batch_shape = as_batch(x, device)
    T = data.shape[-1]
    w = window_points(window, T)
    need = max(ROLLING[n][1] for n in names)
    if not need <= w <= T:
        raise ValueError(f"window={window!r} gives {w} points; it needs {need} <= window <= T={T} for {names}")
    t = torch.as_tensor(np.array(times, dtype=np.float64) if np.issubdtype(np.asarray(times).dtype, np.number)
                        else np.arange(T, dtype=np.float64), device=data.device)
    keys = ["state", "trend", "residuals", *names]
    out = {k: torch.empty_like(data) for k in keys}
    out["state"] = data
    # rows per chunk: the rolling sums stay in cache (LOWESS finds its neighbourhoods once per call)
    rows = data.shape[0] if detrend == "lowess" else max(1, (1 << 17) // T)
    for lo in range(0, data.shape[0], rows):
        chunk = data[lo:lo + rows]
        trend = DETRENDERS[detrend](chunk, t, bandwidth=bandwidth, span=span)
        resid = chunk - trend
        out["trend"][lo:lo + rows], out["residuals"][lo:lo + rows] = trend, resid
        windows = Windows(resid, chunk, w)
        for n in names:
            out[n][lo:lo + rows] = ROLLING[n][0](windows)
    full_dims = dims + ("time",)
    ds = xr.Dataset({k: (full_dims, v.reshape(*batch_shape, T).cpu().numpy()) for k, v in out.items()},
                    coords={**coords, "time": times})
    ds.attrs.update(detrend=detrend, bandwidth=float(bandwidth), span=float(span), window=float(window),
                    window_points=int(w), indicators=list(names))
    return ds
