r"""Kendall τ of every indicator against time, per series (ewstools' ``compute_ktau``).

τ is :math:`τ_b` (:mod:`dynlab.ews.kendall`) over the times ``start ≤ t ≤ stop``
where the indicator is finite (pandas ``corrwith(method="kendall")`` drops the
NaN before the first full window the same way). ``start``/``stop`` may differ
per series (a DataArray over the batch dimensions, e.g. the time a transition
was detected), so series that tip at different times are cut at their own
transition in one batched call.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from .kendall import kendall_tau_tensor

__all__ = ["kendall_tau", "time_mask"]


def time_mask(ds: xr.Dataset | xr.DataArray, start=None, stop=None) -> xr.DataArray:
    """Boolean DataArray (batch dims…, time): ``start ≤ time ≤ stop`` (None: unbounded;
    scalars or DataArrays over the batch dims)."""
    time = ds["time"]
    mask = xr.ones_like(time, dtype=bool)
    if start is not None:
        mask = mask & (time >= start)
    if stop is not None:
        mask = mask & (time <= stop)
    return mask


def kendall_tau(ds: xr.Dataset, *, start=None, stop=None, indicators: Sequence[str] | None = None,
                device=None) -> xr.Dataset:
    """Kendall :math:`τ_b` of each indicator of ``ds`` (from :func:`dynlab.ews.indicators`)
    against time.

    Args:
        ds: Dataset with a ``time`` dimension; every other dimension is a batch.
        start, stop: inclusive time bounds (None: the whole series), scalars or DataArrays
            over (some of) the batch dimensions.
        indicators: which variables (default: ``ds.attrs["indicators"]``, else every
            variable but state/trend/residuals).
        device: where to count the inversions (default CPU).

    Returns:
        Dataset over the batch dims with one τ per indicator (NaN where fewer than two
        finite points fall in the range) and ``n_points`` per indicator as ``n_<name>``.
    """
    if not isinstance(ds, xr.Dataset) or "time" not in ds.dims:
        raise ValueError("ds must be an xarray.Dataset with a 'time' dimension (from dynlab.ews.indicators)")
    names = list(indicators if indicators is not None else
                 ds.attrs.get("indicators") or [v for v in ds.data_vars if v not in ("state", "trend", "residuals")])
    missing = [n for n in names if n not in ds]
    if missing or not names:
        raise ValueError(f"indicators {missing or names!r} are not variables of ds ({', '.join(ds.data_vars)})")
    mask = time_mask(ds, start, stop)
    out = {}
    for name in names:
        da = ds[name].transpose(..., "time")
        m = mask.broadcast_like(da).transpose(*da.dims)
        batch_dims = da.dims[:-1]
        shape = da.shape[:-1]
        y = torch.as_tensor(np.ascontiguousarray(da.values), dtype=torch.float64, device=device).reshape(-1, da.shape[-1])
        valid = torch.as_tensor(np.ascontiguousarray(m.values), device=device).reshape(-1, da.shape[-1])
        tau = kendall_tau_tensor(y, valid)
        count = (valid & torch.isfinite(y)).sum(-1)
        coords = {k: v for k, v in da.coords.items() if "time" not in v.dims}
        out[name] = xr.DataArray(tau.reshape(shape).cpu().numpy(), dims=batch_dims, coords=coords)
        out[f"n_{name}"] = xr.DataArray(count.reshape(shape).cpu().numpy(), dims=batch_dims, coords=coords)
    result = xr.Dataset(out)
    result.attrs["indicators"] = names
    return result
