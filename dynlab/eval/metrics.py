r"""Forecast and climate metrics, for any Emulator's output (numpy, torch or xarray in; numpy out).

Shapes: forecasts and truths are ``(N, H, D)``: N forecasts (members × start
times), H leads, D flat features (a :class:`~dynlab.emulators.StateCodec`'s
vector). ``groups`` maps each variable name to its feature slice
(:func:`variable_groups`) for per-variable scores.

* RMSE by lead: :math:`\mathrm{RMSE}_h = \sqrt{\frac{1}{ND}\sum_{n,d} (\hat x_{nhd} − x_{nhd})^2}`.
* Anomaly correlation (uncentred, anomalies w.r.t. the training climatology
  :math:`c_d`): :math:`\mathrm{ACC}_h = \frac{\sum_{n,d} \hat a_{nhd} a_{nhd}}
  {\sqrt{\sum \hat a_{nhd}^2 \sum a_{nhd}^2}}`, :math:`\hat a = \hat x − c`, :math:`a = x − c`.
* Climate scale: :math:`σ_{\rm clim} = \sqrt{\langle \|x − \langle x\rangle\|^2\rangle}`
  (means over members and times, norm over features).
* Centred anomaly correlation: the same with the anomalies centred on their mean over
  forecasts at each lead and feature (:math:`\hat a − \overline{\hat a}`, :math:`a − \bar a`),
  i.e. the Pearson correlation pooled over features; :func:`lead_below` gives the first
  lead at which a score falls below a level (ACC < 0.6, the usual limit of useful skill).
* Valid prediction time (Vlachas et al. 2020; PHYSICS.md, Emulator scores): the *last
  valid time*, the largest :math:`t_h = h\,Δt` such that
  :math:`e_{h'} = \|\hat x_{h'} − x_{h'}\| / σ_{\rm clim} \le ε` for every
  :math:`h' \le h` (the first save is :math:`t = Δt`; a forecast wrong at lead 1 has
  VPT 0); with ``interpolate`` the crossing is placed by linear interpolation of
  :math:`e` between the last valid lead and the first invalid one (with :math:`e_0 = 0`
  at :math:`t = 0`). If the error never exceeds ε within the horizon the VPT is
  the horizon :math:`H\,Δt`, flagged as censored.
* Ensemble scores (for systems with noise): the CRPS of an ensemble
  :math:`\{\hat x^{(i)}\}_{i=1}^m` against the truth y, in its kernel form
  :math:`\mathrm{CRPS} = \frac1m\sum_i |\hat x^{(i)} − y| − \frac1{2m^2}\sum_{i,j}|\hat x^{(i)} − \hat x^{(j)}|`
  (Gneiting & Raftery 2007), and the spread–error ratio
  :math:`\sqrt{\frac{m+1}{m}\,\overline{\mathrm{Var}}} / \mathrm{RMSE}(\bar{\hat x})`
  (Fortin et al. 2014), ≈ 1 for a reliable ensemble.
* Blow-up: a rollout blows up when a state is non-finite or leaves the bound
  :math:`\|x − c\| > β\,σ_{\rm clim}`.
* Wasserstein-1 distance between pooled marginal distributions, per variable.
* Conservation drift of an invariant along trajectories.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["as_array", "variable_groups", "rmse", "rmse_by_lead", "rmse_by_lead_and_variable",
           "anomaly_correlation", "anomaly_correlation_by_variable", "climate_scale", "normalized_error",
           "first_exceedance_time", "last_valid_time", "valid_prediction_time", "wasserstein_by_variable",
           "conservation_drift", "centred_anomaly_correlation", "lead_below", "crps_ensemble",
           "spread_error_ratio", "blowup_fraction", "VPT_THRESHOLD", "VPT_THRESHOLDS"]

VPT_THRESHOLD = 0.4
#: the thresholds ε at which the valid prediction time is reported
VPT_THRESHOLDS = (0.4, 0.5)


def as_array(x: Any, name: str = "array") -> np.ndarray:
    """numpy float64 view of a numpy array, torch tensor or xarray DataArray."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "values") and hasattr(x, "dims"):
        x = x.values
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}") from None


def _pair(forecast: Any, truth: Any, ndim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    f, t = as_array(forecast, "forecast"), as_array(truth, "truth")
    if f.shape != t.shape:
        raise ValueError(f"forecast and truth must have the same shape, got {f.shape} and {t.shape}")
    if f.ndim != ndim:
        raise ValueError(f"forecast must have {ndim} dims (N, H, D), got shape {f.shape}")
    return f, t


def variable_groups(codec) -> dict[str, slice]:
    """``{variable: slice of its features}`` in a codec's flat vector."""
    groups, start = {}, 0
    for f in codec.fields:
        groups[f.name] = slice(start, start + f.size)
        start += f.size
    return groups


def _check_groups(groups: Mapping[str, slice], D: int) -> None:
    for name, sl in groups.items():
        if not isinstance(sl, slice) or sl.start is None or sl.stop is None or not 0 <= sl.start < sl.stop <= D:
            raise ValueError(f"group {name!r} must be a slice inside [0, {D}), got {sl!r}")


def rmse(forecast: Any, truth: Any, axis: int | Sequence[int] | None = None) -> np.ndarray:
    """:math:`\\sqrt{\\mathrm{mean}((\\hat x − x)^2)}` over ``axis`` (all axes by default)."""
    f, t = as_array(forecast, "forecast"), as_array(truth, "truth")
    if f.shape != t.shape:
        raise ValueError(f"forecast and truth must have the same shape, got {f.shape} and {t.shape}")
    return np.sqrt(np.mean((f - t) ** 2, axis=tuple(axis) if isinstance(axis, (list, tuple)) else axis))


def rmse_by_lead(forecast: Any, truth: Any) -> np.ndarray:
    """RMSE over forecasts and features: ``(N, H, D) -> (H,)``."""
    f, t = _pair(forecast, truth)
    return rmse(f, t, axis=(0, 2))


def rmse_by_lead_and_variable(forecast: Any, truth: Any, groups: Mapping[str, slice]) -> np.ndarray:
    """RMSE per variable: ``(N, H, D) -> (V, H)`` in the order of ``groups``."""
    f, t = _pair(forecast, truth)
    _check_groups(groups, f.shape[-1])
    return np.stack([rmse(f[..., sl], t[..., sl], axis=(0, 2)) for sl in groups.values()])


def _acc(f: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    fa, ta = f - c, t - c
    num = np.sum(fa * ta, axis=(0, 2))
    den = np.sqrt(np.sum(fa * fa, axis=(0, 2)) * np.sum(ta * ta, axis=(0, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _climatology(climatology: Any, D: int) -> np.ndarray:
    c = as_array(climatology, "climatology")
    if c.shape != (D,):
        raise ValueError(f"climatology must have shape ({D},), got {c.shape}")
    return c


def anomaly_correlation(forecast: Any, truth: Any, climatology: Any) -> np.ndarray:
    """Uncentred anomaly correlation by lead: ``(N, H, D)``, climatology ``(D,)`` → ``(H,)``.
    NaN where the anomalies vanish."""
    f, t = _pair(forecast, truth)
    return _acc(f, t, _climatology(climatology, f.shape[-1]))


def anomaly_correlation_by_variable(forecast: Any, truth: Any, climatology: Any,
                                    groups: Mapping[str, slice]) -> np.ndarray:
    """Anomaly correlation per variable: ``(V, H)``."""
    f, t = _pair(forecast, truth)
    c = _climatology(climatology, f.shape[-1])
    _check_groups(groups, f.shape[-1])
    return np.stack([_acc(f[..., sl], t[..., sl], c[sl]) for sl in groups.values()])


def climate_scale(x: Any) -> float:
    """:math:`\\sqrt{\\langle\\|x − \\langle x\\rangle\\|^2\\rangle}` of states ``(..., D)``."""
    a = as_array(x, "x")
    if a.ndim < 1 or a.size == 0:
        raise ValueError(f"x must be a non-empty array (..., D), got shape {a.shape}")
    flat = a.reshape(-1, a.shape[-1])
    return float(np.sqrt(np.mean(np.sum((flat - flat.mean(0)) ** 2, axis=-1))))


def normalized_error(forecast: Any, truth: Any, scale: float) -> np.ndarray:
    """:math:`\\|\\hat x_{nh} − x_{nh}\\| / σ`: ``(N, H, D) -> (N, H)``; non-finite → +inf."""
    f, t = _pair(forecast, truth)
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    err = np.linalg.norm(f - t, axis=-1) / scale
    return np.where(np.isfinite(err), err, np.inf)


def first_exceedance_time(error: Any, threshold: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """First lead time ``h·dt`` (h = 1 … H) with ``error[..., h−1] > threshold``.

    ``error`` is ``(..., H)``. Returns ``(times, censored)``: where the error never
    exceeds the threshold the time is the horizon ``H·dt`` and ``censored`` is True.
    """
    e = as_array(error, "error")
    if e.ndim < 1 or e.shape[-1] < 1:
        raise ValueError(f"error must have a lead axis last, got shape {e.shape}")
    _check_threshold_dt(threshold, dt)
    e = np.where(np.isnan(e), np.inf, e)
    over = e > threshold
    censored = ~over.any(axis=-1)
    first = np.where(censored, e.shape[-1], np.argmax(over, axis=-1) + 1)
    return first * float(dt), censored


def _check_threshold_dt(threshold: Any, dt: Any) -> None:
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float, np.floating)) and threshold > 0):
        raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
    if isinstance(dt, bool) or not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")


def last_valid_time(error: Any, threshold: float, dt: float,
                    interpolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""The last valid time of error curves ``(..., H)`` (lead h at index h − 1, time h·dt).

    ``max{h·dt : error[..., h'−1] ≤ threshold for all h' ≤ h}`` (0 when lead 1 already
    exceeds it). With ``interpolate`` the time where the error crosses the threshold,
    linearly interpolated between the last valid lead (error ``e_a`` at ``t_a``; ``e_0 = 0``
    at ``t = 0``) and the first invalid one (``e_b``): :math:`t_a + Δt\,(ε − e_a)/(e_b − e_a)`
    (``t_a`` when ``e_b`` is not finite). NaN errors count as exceeding.
    Returns ``(times, censored)``; censored forecasts (never exceeding) get ``H·dt``.
    """
    e = as_array(error, "error")
    if e.ndim < 1 or e.shape[-1] < 1:
        raise ValueError(f"error must have a lead axis last, got shape {e.shape}")
    _check_threshold_dt(threshold, dt)
    e = np.where(np.isnan(e), np.inf, e)
    over = e > threshold
    censored = ~over.any(axis=-1)
    first = np.where(censored, e.shape[-1], np.argmax(over, axis=-1))  # index of the first invalid lead
    times = first.astype(np.float64) * float(dt)  # = (h_first - 1)·dt: the last valid lead's time
    if interpolate:
        idx = np.minimum(first, e.shape[-1] - 1)[..., None]
        e_b = np.take_along_axis(e, idx, axis=-1)[..., 0]
        padded = np.concatenate([np.zeros(e.shape[:-1] + (1,)), e], axis=-1)
        e_a = np.take_along_axis(padded, idx, axis=-1)[..., 0]  # error at the last valid lead (0 at t = 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(np.isfinite(e_b) & (e_b > e_a), (threshold - e_a) / (e_b - e_a), 0.0)
        times = np.where(censored, times, times + np.clip(frac, 0.0, 1.0) * float(dt))
    return times, censored


def valid_prediction_time(forecast: Any, truth: Any, scale: float, dt: float, threshold: float = VPT_THRESHOLD,
                          interpolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Valid prediction time (the last valid time, see the module docstring) per forecast:
    ``(N, H, D) -> (N,)`` times and censored flags."""
    return last_valid_time(normalized_error(forecast, truth, scale), threshold, dt, interpolate)


def centred_anomaly_correlation(forecast: Any, truth: Any) -> np.ndarray:
    """Centred anomaly correlation by lead: ``(N, H, D) -> (H,)`` (anomalies about the mean over the
    N forecasts at each lead and feature; NaN where they vanish)."""
    f, t = _pair(forecast, truth)
    return _acc(f - f.mean(0, keepdims=True), t - t.mean(0, keepdims=True), np.zeros(f.shape[-1]))


def lead_below(score: Any, level: float, dt: float) -> float:
    """The first lead time ``h·dt`` with ``score[h−1] < level`` for a score by lead ``(H,)``
    (NaN counts as below); ``inf`` when it never falls below within the horizon."""
    s = as_array(score, "score")
    if s.ndim != 1 or s.size < 1:
        raise ValueError(f"score must have shape (H >= 1,), got {s.shape}")
    if isinstance(dt, bool) or not (isinstance(dt, (int, float, np.floating)) and dt > 0):
        raise ValueError(f"dt must be a number > 0, got {dt!r}")
    below = ~(s >= level)
    return float((np.argmax(below) + 1) * dt) if below.any() else math.inf


def _ensemble_pair(ensemble: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    e, t = as_array(ensemble, "ensemble"), as_array(truth, "truth")
    if e.ndim != t.ndim + 1 or e.shape[1:] != t.shape:
        raise ValueError(f"ensemble must have shape (m, *truth.shape) = (m, {', '.join(map(str, t.shape))}), "
                         f"got {e.shape}")
    return e, t


def crps_ensemble(ensemble: Any, truth: Any) -> np.ndarray:
    """CRPS (kernel form, module docstring) of an ensemble ``(m, ...)`` against ``truth`` ``(...)``,
    elementwise: ``(...)``. For ``m = 1`` it is the absolute error."""
    e, t = _ensemble_pair(ensemble, truth)
    m = e.shape[0]
    skill = np.mean(np.abs(e - t[None]), axis=0)
    spread = np.zeros_like(skill)
    for i in range(m):  # Σ_{i,j} |x_i − x_j| without an (m, m, ...) array
        spread += np.sum(np.abs(e - e[i:i + 1]), axis=0)
    return skill - spread / (2.0 * m * m)


def spread_error_ratio(ensemble: Any, truth: Any, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Spread–error ratio (module docstring) of an ensemble ``(m, ...)``; means over ``axis`` of
    ``truth``'s axes (all by default). ``m ≥ 2``."""
    e, t = _ensemble_pair(ensemble, truth)
    m = e.shape[0]
    if m < 2:
        raise ValueError(f"the spread-error ratio needs an ensemble of m >= 2, got m = {m}")
    var = np.var(e, axis=0, ddof=1)
    err2 = (e.mean(0) - t) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((m + 1) / m * np.mean(var, axis=axis)) / np.sqrt(np.mean(err2, axis=axis))


def blowup_fraction(rollouts: Any, center: Any, scale: float, bound: float) -> float:
    """Fraction of rollouts ``(N, T, D)`` that blow up: some state is non-finite or has
    ``‖x − center‖ > bound · scale``."""
    r = as_array(rollouts, "rollouts")
    if r.ndim != 3:
        raise ValueError(f"rollouts must have shape (N, T, D), got {r.shape}")
    c = _climatology(center, r.shape[-1])
    if not (isinstance(bound, (int, float)) and bound > 0) or not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"bound and scale must be numbers > 0, got {bound!r} and {scale!r}")
    with np.errstate(invalid="ignore", over="ignore"):
        dist = np.linalg.norm(r - c, axis=-1)
    bad = ~np.isfinite(dist) | (dist > bound * scale)
    return float(bad.any(axis=1).mean())


def wasserstein_by_variable(predicted: Any, truth: Any, groups: Mapping[str, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Wasserstein-1 distance of each variable's pooled values: ``(..., D)`` each → ``(V,)``.

    Values are pooled over all leading axes and the variable's features.
    Non-finite predicted values are dropped; returns ``(distances, finite_fraction)``
    per variable (NaN distance when nothing finite is left).
    """
    from scipy.stats import wasserstein_distance

    p, t = as_array(predicted, "predicted"), as_array(truth, "truth")
    if p.shape[-1] != t.shape[-1]:
        raise ValueError(f"predicted and truth must have the same feature count, got {p.shape[-1]} and {t.shape[-1]}")
    _check_groups(groups, t.shape[-1])
    dist, frac = [], []
    for sl in groups.values():
        pv, tv = p[..., sl].reshape(-1), t[..., sl].reshape(-1)
        tv = tv[np.isfinite(tv)]
        ok = np.isfinite(pv)
        frac.append(float(ok.mean()) if pv.size else np.nan)
        dist.append(wasserstein_distance(pv[ok], tv) if ok.any() and tv.size else np.nan)
    return np.asarray(dist), np.asarray(frac)


def conservation_drift(values: Any, relative: bool = True) -> np.ndarray:
    """Largest drift of an invariant along each trajectory: ``(N, T) -> (N,)``,
    :math:`\\max_t |I_t − I_0|` (divided by :math:`|I_0|` when ``relative``)."""
    v = as_array(values, "values")
    if v.ndim != 2 or v.shape[1] < 1:
        raise ValueError(f"values must have shape (N, T >= 1), got {v.shape}")
    drift = np.max(np.abs(v - v[:, :1]), axis=1)
    if relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            drift = np.where(drift == 0, 0.0, drift / np.abs(v[:, 0]))
    return np.where(np.isfinite(drift), drift, np.inf)
