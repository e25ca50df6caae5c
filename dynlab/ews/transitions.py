r"""When does a run leave its branch? First crossings of a threshold, for May and Allee.

Early-warning statistics must stop before the transition they warn of, else the
collapse itself drives the trend. A run's transition time is the first saved
time at which the state falls below a threshold:

* ``"unstable"``: the unstable equilibrium (the saddle separating the branches) at
  the parameter of that moment; past the fold, where the upper branch is gone,
  the fold's state. May (Scheffer et al. 2009, May 1977): the middle root of
  :math:`r(1 − x/K)(x^2 + h^2) = c x`. Allee (counts): N times the threshold
  density, the smaller positive root of :math:`νx^2 + (μ + νA − β)x + μA = 0`.
* ``"fraction"``: a stated fraction of the carrying capacity (May: ``fraction·K``;
  Allee: ``fraction`` of N times the upper equilibrium density at the initial μ).
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

__all__ = ["first_crossing", "may_threshold", "allee_threshold", "may_transition", "allee_transition",
           "THRESHOLDS"]

THRESHOLDS = ("unstable", "fraction")


def first_crossing(x: xr.DataArray, threshold) -> xr.DataArray:
    """First time at which ``x`` (with a ``time`` dim) is below ``threshold`` (a number or an
    array broadcastable to ``x``); NaN where it never is. Over the batch dims of ``x``."""
    if not isinstance(x, xr.DataArray) or "time" not in x.dims:
        raise ValueError("x must be an xarray.DataArray with a 'time' dimension")
    below = (x < threshold).transpose(..., "time")
    hit = below.any("time")
    first = below.argmax("time")
    times = x["time"].values if "time" in x.coords else np.arange(x.sizes["time"])
    t = xr.DataArray(np.asarray(times, dtype=np.float64)[first.values], dims=first.dims, coords=first.coords)
    return t.where(hit)


def _check_method(method: str, fraction: float) -> None:
    if method not in THRESHOLDS:
        raise ValueError(f"method must be one of {', '.join(THRESHOLDS)}, got {method!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")


def may_threshold(c, *, r: float = 1.0, K: float = 10.0, h: float = 1.0, method: str = "unstable",
                  fraction: float = 0.5) -> np.ndarray:
    """Threshold biomass at grazing rates ``c`` (array): the unstable equilibrium (past the
    upper fold: the fold's x; below the lower fold, where only the upper branch exists: 0),
    or ``fraction·K``."""
    from simulators.tipping import may_equilibria, may_folds

    _check_method(method, fraction)
    c = np.asarray(c, dtype=np.float64)
    if method == "fraction":
        return np.full(c.shape, fraction * K)
    folds = may_folds(r, K, h)
    upper_fold = folds[-1] if folds else None
    out = np.empty(c.size)
    cache: dict[float, float] = {}
    for i, ci in enumerate(c.ravel()):
        if ci not in cache:
            eq = may_equilibria(float(ci), r, K, h)[1:]
            unstable = [x for x, stable in eq if not stable]
            if unstable:
                cache[ci] = unstable[0]
            elif upper_fold is not None and ci >= upper_fold.c:
                cache[ci] = upper_fold.x
            else:
                cache[ci] = 0.0
        out[i] = cache[ci]
    return out.reshape(c.shape)


def allee_threshold(mu, *, N: int = 10, beta: float = 4.0, A: float = 1.0, nu: float = 1.0,
                    method: str = "unstable", fraction: float = 0.5) -> np.ndarray:
    """Threshold count at death rates ``mu`` (array): N × the unstable density (past the fold
    μ_c = (√β − √(νA))²: N × the fold density √(μ_c A/ν)), or ``fraction`` × N × the upper
    density at the smallest μ given."""
    _check_method(method, fraction)
    mu = np.asarray(mu, dtype=np.float64)
    mu_c = (math.sqrt(beta) - math.sqrt(nu * A)) ** 2
    x_c = math.sqrt(mu_c * A / nu)
    b = mu + nu * A - beta
    disc = np.clip(b * b - 4 * nu * mu * A, 0, None)
    upper = (-b + np.sqrt(disc)) / (2 * nu)
    lower = np.where(upper > 0, mu * A / (nu * np.where(upper > 0, upper, 1.0)), 0.0)
    if method == "fraction":
        return np.full(mu.shape, fraction * N * float(upper.min()))
    return N * np.where(mu < mu_c, lower, x_c)


def may_transition(x: xr.DataArray, c, **kwargs) -> xr.DataArray:
    """Transition time of each May run: first time ``x`` < :func:`may_threshold` of ``c``
    (``c`` on ``time`` or on x's dims)."""
    c = c if isinstance(c, xr.DataArray) else xr.DataArray(np.asarray(c), dims=("time",))
    return first_crossing(x, xr.DataArray(may_threshold(c.values, **kwargs), dims=c.dims, coords=c.coords))


def allee_transition(n: xr.DataArray, mu, **kwargs) -> xr.DataArray:
    """Transition time of each Allee run: first time the count ``n`` < :func:`allee_threshold` of ``mu``."""
    mu = mu if isinstance(mu, xr.DataArray) else xr.DataArray(np.asarray(mu), dims=("time",))
    return first_crossing(n, xr.DataArray(allee_threshold(mu.values, **kwargs), dims=mu.dims, coords=mu.coords))
