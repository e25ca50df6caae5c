r"""Sensitivity of Kendall τ to the bandwidth and the window (Dakos et al. 2012, Fig. 5 style).

τ of one indicator is recomputed on a grid of Gaussian bandwidth × rolling window;
a trend that is real keeps its sign over most of the grid, one that appears in a
corner of it is an artefact of the choice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .indicators import as_batch, indicators as compute_indicators
from .tau import kendall_tau

__all__ = ["tau_sensitivity", "plot_tau_sensitivity"]


def tau_sensitivity(x, *, bandwidths: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
                    windows: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5), indicator: str = "variance",
                    detrend: str = "gaussian", start=None, stop=None, device=None) -> xr.DataArray:
    """τ of ``indicator`` for every (bandwidth, window): DataArray ``(bandwidth, window, *batch)``.

    ``x`` as in :func:`dynlab.ews.indicators`; with ``detrend`` other than ``gaussian`` the
    bandwidth is passed as the LOWESS span (``lowess``) or ignored (``linear``, ``none``).
    """
    bandwidths, windows = list(bandwidths), list(windows)
    if not bandwidths or not windows:
        raise ValueError("bandwidths and windows must each hold at least one value")
    data, dims, coords, times, batch_shape = as_batch(x, device)
    da = xr.DataArray(data.reshape(*batch_shape, -1).cpu().numpy(), dims=dims + ("time",),
                      coords={**coords, "time": times})
    grid = np.full((len(bandwidths), len(windows), *batch_shape), np.nan)
    for i, bw in enumerate(bandwidths):
        for j, w in enumerate(windows):
            ds = compute_indicators(da, detrend=detrend, bandwidth=bw, span=bw, window=w,
                                    indicators=[indicator], device=device)
            grid[i, j] = kendall_tau(ds, start=start, stop=stop)[indicator].values
    return xr.DataArray(grid, dims=("bandwidth", "window") + dims,
                        coords={"bandwidth": bandwidths, "window": windows, **coords},
                        name=f"tau_{indicator}", attrs={"indicator": indicator, "detrend": detrend})


def plot_tau_sensitivity(tau: xr.DataArray, path: str | Path | None = None, *, title: str | None = None):
    """Heat map of τ over (bandwidth, window), averaged over any batch dims; returns the figure
    (saved to ``path`` if given)."""
    import matplotlib.pyplot as plt

    if not isinstance(tau, xr.DataArray) or not {"bandwidth", "window"} <= set(tau.dims):
        raise ValueError("tau must be a DataArray with 'bandwidth' and 'window' dims (from tau_sensitivity)")
    extra = [d for d in tau.dims if d not in ("bandwidth", "window")]
    mean = tau.mean(extra) if extra else tau
    fig, ax = plt.subplots(figsize=(5, 4))
    mesh = ax.pcolormesh(np.arange(mean.sizes["window"] + 1), np.arange(mean.sizes["bandwidth"] + 1),
                         mean.transpose("bandwidth", "window").values, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(np.arange(mean.sizes["window"]) + 0.5, [f"{w:g}" for w in tau["window"].values])
    ax.set_yticks(np.arange(mean.sizes["bandwidth"]) + 0.5, [f"{b:g}" for b in tau["bandwidth"].values])
    ax.set(xlabel="rolling window (fraction of series)", ylabel="bandwidth (fraction of series)",
           title=title or f"Kendall τ of {tau.attrs.get('indicator', 'indicator')}" + (" (mean)" if extra else ""))
    fig.colorbar(mesh, ax=ax, label="τ")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
