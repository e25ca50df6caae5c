r"""Bootstrap intervals and paired differences, resampling whole groups.

Forecasts started from one member are correlated, so the resampling unit is the
group (test member), not the forecast: each bootstrap replicate draws ``G``
groups with replacement from the ``G`` groups present and keeps every row of
each drawn group (a member-block bootstrap). Every learner in ``values`` is
resampled with the *same* draws, so the difference of a statistic between two
learners is a paired difference whose interval accounts for their correlation.

The interval is the percentile interval of the replicates,
``[q_{(1-ci)/2}, q_{(1+ci)/2}]``; the estimate is the statistic on the data as
observed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

__all__ = ["Interval", "bootstrap"]


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval; ``samples`` holds the ``n_boot`` replicates
    (shape ``(n_boot, *stat_shape)``)."""

    estimate: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    samples: np.ndarray

    def __str__(self) -> str:
        if np.ndim(self.estimate) == 0:
            return f"{float(self.estimate):.4g} [{float(self.low):.4g}, {float(self.high):.4g}]"
        return f"Interval(shape={np.shape(self.estimate)})"


def _as_rows(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ValueError(f"values[{name!r}] must have a leading row axis, got a scalar")
    return arr


def bootstrap(values: Mapping[str, np.ndarray] | np.ndarray,
              statistic: Callable[[np.ndarray], np.ndarray | float] = np.nanmedian, *,
              groups: np.ndarray | None = None, reference: str | None = None, n_boot: int = 1000,
              ci: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    r"""Group-bootstrap intervals of ``statistic`` for each entry of ``values``, and paired differences.

    Args:
        values: ``name -> array (N, ...)``; row ``i`` of every array belongs to group
            ``groups[i]`` (a plain array is taken as ``{"value": array}``).
        statistic: reduces an array ``(n, ...)`` over its first axis to a scalar or an array
            (default: the NaN-aware median). It must accept any number of rows ``n ≥ 1``.
        groups: ``(N,)`` group labels (e.g. the test member of each forecast); ``None``
            makes every row its own group (the plain bootstrap).
        reference: a name in ``values``; adds ``"<name> - <reference>"`` for every other
            name: ``statistic(values[name]) − statistic(values[reference])`` on the same draws.
        n_boot: number of replicates ``B`` (≥ 1).
        ci: central coverage of the interval, in (0, 1).
        seed: seed of the draws (the same seed gives the same intervals).

    Returns:
        ``name -> Interval`` (and the differences when ``reference`` is given).

    Example: median VPT per learner with paired differences against persistence::

        bootstrap({"s4d": vpt_s4d, "persistence": vpt_p}, groups=member_of_forecast,
                  reference="persistence")
    """
    if not isinstance(values, Mapping):
        values = {"value": values}
    if not values:
        raise ValueError("values is empty: give at least one name -> array")
    arrays = {name: _as_rows(name, v) for name, v in values.items()}
    n_rows = {a.shape[0] for a in arrays.values()}
    if len(n_rows) != 1:
        raise ValueError(f"every array in values needs the same number of rows, got "
                         f"{ {k: a.shape[0] for k, a in arrays.items()} }")
    (n,) = n_rows
    if n < 1:
        raise ValueError("values have no rows")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not (isinstance(ci, (int, float)) and 0 < ci < 1):
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    if reference is not None and reference not in arrays:
        raise ValueError(f"reference {reference!r} is not in values ({', '.join(arrays)})")
    if groups is None:
        labels = np.arange(n)
    else:
        labels = np.asarray(groups)
        if labels.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {labels.shape}")
    uniq, inverse = np.unique(labels, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(uniq))]

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(int(n_boot), len(uniq)))
    names = list(arrays)
    pairs = [(f"{name} - {reference}", name) for name in names if reference is not None and name != reference]

    estimates = {name: np.asarray(statistic(arrays[name])) for name in names}
    for label, name in pairs:
        estimates[label] = estimates[name] - estimates[reference]
    samples: dict[str, list[np.ndarray]] = {k: [] for k in estimates}
    for draw in draws:
        idx = np.concatenate([rows_of[g] for g in draw])
        stat = {name: np.asarray(statistic(arrays[name][idx])) for name in names}
        for name in names:
            samples[name].append(stat[name])
        for label, name in pairs:
            samples[label].append(stat[name] - stat[reference])

    alpha = (1 - ci) / 2
    out: dict[str, Interval] = {}
    for key, est in estimates.items():
        s = np.stack(samples[key])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a vector statistic give NaN
            low, high = np.nanquantile(s, [alpha, 1 - alpha], axis=0) if np.isfinite(s).any() else (np.nan, np.nan)
        as_scalar = (lambda a: float(a)) if est.ndim == 0 else (lambda a: np.asarray(a))
        out[key] = Interval(as_scalar(est), as_scalar(low), as_scalar(high), s)
    return out
