r"""The emulator's climate against truth-vs-truth noise floors.

Inputs are long free rollouts with the transient already dropped (:func:`drop_transient`):
the emulator's sample ``E`` and two *disjoint* sets of independent reference members
``A`` and ``B`` (truth), all of shape ``(R, T, D)`` (R runs from different starts, T
saves, D codec features; ``groups`` maps each variable to its feature slice). The three
samples must have the same shape, so that the floor is the distance between two truth
samples *of the emulator's sample size*.

For every distance :math:`d` the score, floor and ratio are

.. math::
   s = \tfrac12\,[d(E, A) + d(E, B)], \qquad f = d(B, A), \qquad r = s / f .

If E were a third independent truth sample, :math:`\mathbb E\,s = \mathbb E\,f` and
:math:`r \approx 1`; a wrong climate gives :math:`r \gg 1`. A single ratio is a ratio
of two noisy estimates: with few runs it scatters around 1 by a factor of about 2.

Distances (``d``):

* ``wasserstein``, per variable: Wasserstein-1 of the pooled values (runs, times,
  features), :math:`W_1 = \int |F_P(x) - F_Q(x)|\,dx` (``scipy.stats.wasserstein_distance``).
* ``sliced_wasserstein``, the joint state: :math:`SW_1 = \frac1n \sum_{i=1}^n
  W_1(\theta_i^\top \tilde P, \theta_i^\top \tilde Q)` over ``n_projections`` directions
  :math:`\theta_i` drawn uniformly on the unit sphere :math:`S^{D-1}` with a fixed seed
  (Rabin et al. 2011; Bonneel et al. 2015), features standardised by the pooled truth
  (A ∪ B) standard deviation so that no variable dominates by its units.
* ``acf``, per variable: the RMS difference over lags :math:`\ell = 0 … L` of the lag
  autocorrelation function :math:`\rho(\ell) = \overline{(x_t - \bar x)(x_{t+\ell} - \bar x)}
  / \overline{(x_t - \bar x)^2}`, each series (run, feature) centred on its own mean and
  the estimates averaged over runs and the variable's features.
* ``spec_time``, per variable: the temporal power spectrum
  (:func:`~dynlab.eval.spectra.mean_power_spectrum`, Welch); ``spec_space``, per
  periodic lattice variable (e.g. Lorenz96's X over its site index k): the spatial power
  spectrum :math:`S(m) = \langle |\hat x_m|^2 \rangle`, :math:`\hat x_m = \sum_k x_k e^{-2\pi i mk/K}`,
  :math:`m = 0 … K/2`, averaged over runs and times. Both are compared by the
  energy-weighted, band-limited log-spectral distance

  .. math::
     d(S_P, S_Q) = \Big[\sum_{m \in \mathcal B} w_m (\log_{10} S_P(m) - \log_{10} S_Q(m))^2\Big]^{1/2},
     \quad w_m = \frac{\bar S(m)}{\sum_{\mathcal B} \bar S}, \quad
     \mathcal B = \{m : \bar S(m) \ge \beta \max \bar S\},

  with :math:`\bar S = (S_A + S_B)/2` the mean truth spectrum (the same weights for
  every comparison) and :math:`\beta` = ``band_fraction``: bins with negligible truth power
  cannot dominate (the old spectral residual was set by power 10⁻⁸ below the peak).
  The zero frequency is left out of the temporal spectrum (the means are W1's business);
  spectra are floored at ``SPECTRUM_FLOOR`` (1e-12) times the truth peak, as in
  :mod:`~dynlab.eval.spectra`, so a frozen rollout scores about 12 decades, not infinity.

**Intervals.** With ``n_boot`` > 0 every ratio gets a member-bootstrap percentile interval
(``*_ratio_low``, ``*_ratio_high``): the R runs are the resampling units, run i of E, A and B
drawn together with replacement (:mod:`dynlab.eval.stats`), and score *and floor* recomputed
on each replicate, so the interval carries the noise of both. For E a third truth sample the
interval should contain 1 (about ``ci`` of the time); with R = 1 it collapses to the point.

An emulator sample with non-finite values (a blow-up) gets infinite distances; a zero
score over a zero floor has ratio 1, a positive score over a zero floor ratio inf.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .metrics import _check_groups, as_array
from .spectra import SPECTRUM_FLOOR, mean_power_spectrum

__all__ = ["drop_transient", "wasserstein_1", "sliced_wasserstein", "autocorrelation", "spatial_power_spectrum",
           "log_spectral_distance", "climate_scores", "climate_samples", "reference_climate_scores",
           "check_ratio_bounds", "ratio_items", "CLIMATE_SCORES", "N_PROJECTIONS",
           "BAND_FRACTION"]

#: random directions of the sliced Wasserstein distance
N_PROJECTIONS = 64
#: spectral bins with mean truth power below this fraction of the peak are left out
BAND_FRACTION = 1e-3
#: the distances of :func:`climate_scores` (each has ``*_floor`` and ``*_ratio``)
CLIMATE_SCORES = ("wasserstein", "sliced_wasserstein", "acf", "spec_time", "spec_space")


def _samples(x: Any, name: str) -> np.ndarray:
    a = as_array(x, name)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"{name} must have shape (R, T, D) with R, T, D >= 1, got {a.shape}")
    return a


def drop_transient(x: Any, transient: int) -> np.ndarray:
    """Drop the first ``transient`` saves of rollouts ``(R, T, D)`` → ``(R, T − transient, D)``."""
    a = _samples(x, "x")
    if isinstance(transient, bool) or not isinstance(transient, (int, np.integer)) or not 0 <= transient < a.shape[1]:
        raise ValueError(f"transient must be an integer in [0, T={a.shape[1]}), got {transient!r}")
    return a[:, int(transient):]


def wasserstein_1(p: Any, q: Any) -> float:
    """W1 between the pooled values of two samples (any shapes); inf if ``p`` is not all finite."""
    from scipy.stats import wasserstein_distance

    a, b = as_array(p, "p").reshape(-1), as_array(q, "q").reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"samples must be non-empty, got sizes {a.size} and {b.size}")
    if not np.isfinite(b).all():
        raise ValueError("the truth sample q has non-finite values")
    if not np.isfinite(a).all():
        return float("inf")
    if a.size == b.size:  # equal sizes: W1 = mean |a_(i) − b_(i)| of the order statistics (no weights)
        return float(np.mean(np.abs(np.sort(a) - np.sort(b))))
    return float(wasserstein_distance(a, b))


def _sorted_w1(pa: np.ndarray, pb: np.ndarray) -> float:
    """Mean over columns of W1 between equal-size columns ``(N, n)``: mean |order statistics|."""
    return float(np.mean(np.abs(np.sort(pa, axis=0) - np.sort(pb, axis=0))))


def _directions(D: int, n_projections: int, seed: int) -> np.ndarray:
    if isinstance(n_projections, bool) or not isinstance(n_projections, (int, np.integer)) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive integer, got {n_projections!r}")
    theta = np.random.default_rng(seed).standard_normal((int(n_projections), D))
    return theta / np.linalg.norm(theta, axis=1, keepdims=True)  # (n, D), uniform on the sphere


def sliced_wasserstein(p: Any, q: Any, *, scale: Any = None, n_projections: int = N_PROJECTIONS,
                       seed: int = 0) -> float:
    """Sliced W1 of joint states ``p`` ``(..., D)`` and ``q`` ``(..., D)`` over seeded random directions.

    ``scale`` ``(D,)`` divides each feature first (default 1). Inf if ``p`` is not all finite.
    """
    a, b = as_array(p, "p"), as_array(q, "q")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"p and q must have the same feature count, got {a.shape[-1]} and {b.shape[-1]}")
    D = a.shape[-1]
    s = np.ones(D) if scale is None else as_array(scale, "scale")
    if s.shape != (D,) or not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError(f"scale must be {D} finite numbers > 0, got shape {s.shape}")
    a, b = a.reshape(-1, D) / s, b.reshape(-1, D) / s
    if not np.isfinite(a).all():
        return float("inf")
    theta = _directions(D, n_projections, seed)
    pa, pb = a @ theta.T, b @ theta.T  # (N, n)
    if pa.shape == pb.shape:
        return _sorted_w1(pa, pb)
    return float(np.mean([wasserstein_1(pa[:, i], pb[:, i]) for i in range(theta.shape[0])]))


def autocorrelation(x: Any, max_lag: int) -> np.ndarray:
    """Lag autocorrelation ``ρ(0 … max_lag)`` of series ``(R, T, F)``, averaged over runs and features.

    A series with zero variance (a frozen rollout) counts as perfectly persistent, ρ ≡ 1;
    inf if ``x`` is not finite.
    """
    a = _samples(x, "x")
    T = a.shape[1]
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or not 0 <= max_lag < T:
        raise ValueError(f"max_lag must be an integer in [0, T={T}), got {max_lag!r}")
    if not np.isfinite(a).all():
        return np.full(int(max_lag) + 1, np.inf)
    c = a - a.mean(axis=1, keepdims=True)
    var = (c ** 2).mean(axis=1)  # (R, F)
    ok = var > 1e-300
    safe = np.where(ok, var, 1.0)
    rho = [np.where(ok, (c[:, :T - lag] * c[:, lag:]).mean(axis=1) / safe, 1.0).mean()
           for lag in range(int(max_lag) + 1)]
    return np.asarray(rho)


def spatial_power_spectrum(x: Any) -> np.ndarray:
    """Mean spatial power spectrum of fields ``(R, T, K)`` on a periodic lattice of K sites → ``(K//2 + 1,)``:
    :math:`\\langle |\\mathrm{rfft}_k(x)|^2 \\rangle / K` over runs and times (inf if ``x`` is not finite)."""
    a = _samples(x, "x")
    if a.shape[-1] < 2:
        raise ValueError(f"a lattice needs at least 2 sites, got {a.shape[-1]}")
    if not np.isfinite(a).all():
        return np.full(a.shape[-1] // 2 + 1, np.inf)
    return (np.abs(np.fft.rfft(a, axis=-1)) ** 2).mean(axis=(0, 1)) / a.shape[-1]


def log_spectral_distance(s_p: Any, s_q: Any, s_ref: Any, band_fraction: float = BAND_FRACTION) -> float:
    """Energy-weighted log10 distance of spectra ``(F,)``, weights ``s_ref`` on the band
    ``s_ref`` ≥ ``band_fraction`` · peak."""
    p, q, r = as_array(s_p, "s_p"), as_array(s_q, "s_q"), as_array(s_ref, "s_ref")
    if not (p.shape == q.shape == r.shape and p.ndim == 1):
        raise ValueError(f"spectra must be 1-D of one length, got {p.shape}, {q.shape}, {r.shape}")
    if isinstance(band_fraction, bool) or not isinstance(band_fraction, (int, float)) or not 0 <= band_fraction < 1:
        raise ValueError(f"band_fraction must be a number in [0, 1), got {band_fraction!r}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()) or not r.max() > 0:
        raise ValueError("the reference spectra must be finite with positive power")
    if not np.isfinite(p).all():
        return float("inf")
    band = r >= band_fraction * r.max()
    w = r[band] / r[band].sum()
    lo = SPECTRUM_FLOOR * r.max()  # as in spectra.py: a flat (frozen) rollout stays finite
    diff = np.log10(np.maximum(p[band], lo)) - np.log10(np.maximum(q[band], lo))
    return float(np.sqrt(np.sum(w * diff ** 2)))


def _triple(d, e, a, b) -> tuple[float, float, float]:
    """score = mean(d(e, a), d(e, b)), floor = d(b, a), ratio."""
    score = 0.5 * (d(e, a) + d(e, b))
    floor = d(b, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = score / floor if floor > 0 else (np.inf if score > 0 else 1.0)
    return float(score), float(floor), float(ratio)


def climate_scores(emulator_samples: Any, truth_a: Any, truth_b: Any, groups: Mapping[str, slice] | None = None, *,
                   dt: float = 1.0, max_lag: int = 20, nperseg: int = 64, lattice: Sequence[str] = (),
                   n_projections: int = N_PROJECTIONS, band_fraction: float = BAND_FRACTION, seed: int = 0,
                   n_boot: int = 0, ci: float = 0.95):
    """Climate distances of an emulator's long rollouts with their truth-vs-truth floors.

    Args:
        emulator_samples: free rollouts ``(R, T, D)``, transient dropped.
        truth_a, truth_b: two disjoint sets of independent reference members, each ``(R, T, D)``.
        groups: variable → feature slice (default: one variable ``"x"`` over all features).
        dt: sampling interval (model time) for the temporal spectrum's frequencies.
        max_lag: lags 0 … ``max_lag`` (saves) of the autocorrelation distance.
        nperseg: Welch segment length of the temporal spectra (``<= T``).
        lattice: variables whose features are the sites of a periodic lattice, in order
            (spatial spectrum); the others get NaN ``spec_space``.
        n_projections, seed: the random directions of the sliced Wasserstein distance.
        band_fraction: spectral band, relative to the mean truth spectrum's peak.
        n_boot, ci: with ``n_boot`` > 0, ``name_ratio_low`` and ``name_ratio_high``, the
            ``ci`` member-bootstrap interval of each ratio (:func:`_ratio_intervals`: runs
            resampled with replacement, the floor recomputed with them).

    Returns:
        ``xarray.Dataset`` with, for ``name`` in ``wasserstein``, ``acf``, ``spec_time``,
        ``spec_space`` (dim ``variable``) and ``sliced_wasserstein`` (scalar):
        ``name`` (the score), ``name_floor`` and ``name_ratio``; attributes give the
        sample size and settings.
    """
    import xarray as xr

    e, a, b = _samples(emulator_samples, "emulator_samples"), _samples(truth_a, "truth_a"), _samples(truth_b, "truth_b")
    if not e.shape == a.shape == b.shape:
        raise ValueError(f"emulator_samples, truth_a and truth_b must have one shape (R, T, D) so that the floor "
                         f"has the emulator's sample size, got {e.shape}, {a.shape}, {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("truth_a and truth_b must be finite")
    R, T, D = e.shape
    groups = dict(groups) if groups is not None else {"x": slice(0, D)}
    _check_groups(groups, D)
    unknown = [v for v in lattice if v not in groups]
    if isinstance(lattice, str) or unknown:
        raise ValueError(f"lattice must be a list of variables among {list(groups)}, got {lattice!r}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")

    scale = np.concatenate([a, b]).reshape(-1, D).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    settings = dict(dt=dt, max_lag=max_lag, nperseg=nperseg, lattice=lattice, n_projections=n_projections,
                    band_fraction=band_fraction, seed=seed, scale=scale)
    names = list(groups)
    out, sw = _score_rows(e, a, b, groups, **settings)
    bounds = _ratio_intervals(e, a, b, groups, settings, n_boot, ci, seed) if n_boot else None

    long_names = {"wasserstein": "Wasserstein-1 distance of the marginals",
                  "acf": f"RMS difference of the autocorrelation over lags 0..{max_lag}",
                  "spec_time": "energy-weighted log10 distance of the temporal power spectra",
                  "spec_space": "energy-weighted log10 distance of the spatial (wavenumber) power spectra"}
    data = {}
    for key, rows in out.items():
        s, f, r = (np.asarray(col, dtype=np.float64) for col in zip(*rows))
        data[key] = (("variable",), s, {"long_name": long_names[key] + " (mean over both truth sets)"})
        data[f"{key}_floor"] = (("variable",), f, {"long_name": "truth-vs-truth floor of " + key})
        data[f"{key}_ratio"] = (("variable",), r, {"long_name": f"{key} / {key}_floor (about 1: within noise)"})
    data["sliced_wasserstein"] = ((), sw[0], {"long_name": f"sliced Wasserstein-1 distance of the joint "
                                                           f"standardised state, {n_projections} directions"})
    data["sliced_wasserstein_floor"] = ((), sw[1], {"long_name": "truth-vs-truth floor of sliced_wasserstein"})
    data["sliced_wasserstein_ratio"] = ((), sw[2], {"long_name": "sliced_wasserstein / its floor"})
    if bounds is not None:
        for key, (low, high) in bounds.items():
            dims = () if key == "sliced_wasserstein" else ("variable",)
            data[f"{key}_ratio_low"] = (dims, low, {"long_name": f"{key}_ratio: lower end of its {100 * ci:g} % "
                                                                f"member-bootstrap interval"})
            data[f"{key}_ratio_high"] = (dims, high, {"long_name": f"{key}_ratio: upper end of its {100 * ci:g} % "
                                                                  f"member-bootstrap interval"})
    ds = xr.Dataset(data, coords={"variable": ("variable", np.array(names, dtype=object))})
    ds.attrs.update({"climate_runs": R, "climate_saves": T, "climate_max_lag": int(max_lag),
                     "climate_nperseg": int(nperseg), "climate_n_projections": int(n_projections),
                     "climate_band_fraction": float(band_fraction), "climate_seed": int(seed),
                     "climate_n_boot": int(n_boot), "climate_ci": float(ci)})
    return ds


def _score_rows(e, a, b, groups, *, dt, max_lag, nperseg, lattice, n_projections, band_fraction, seed, scale):
    """``({distance: [(score, floor, ratio) per variable]}, sliced (score, floor, ratio))``."""
    out: dict[str, list] = {k: [] for k in ("wasserstein", "acf", "spec_time", "spec_space")}
    for name, sl in groups.items():
        ev, av, bv = e[..., sl], a[..., sl], b[..., sl]
        out["wasserstein"].append(_triple(wasserstein_1, ev, av, bv))
        out["acf"].append(_triple(lambda p, q: float(np.sqrt(np.mean((autocorrelation(p, max_lag)
                                                                      - autocorrelation(q, max_lag)) ** 2))),
                                  ev, av, bv))
        g = {name: slice(0, ev.shape[-1])}
        with np.errstate(over="ignore", invalid="ignore"):
            spec = {k: mean_power_spectrum(v, dt, g, nperseg)[1][0, 1:] for k, v in (("e", ev), ("a", av), ("b", bv))}
        ref = 0.5 * (spec["a"] + spec["b"])
        out["spec_time"].append(_triple(lambda p, q: log_spectral_distance(p, q, ref, band_fraction),
                                        spec["e"], spec["a"], spec["b"]))
        if name in lattice:
            sp = {k: spatial_power_spectrum(v) for k, v in (("e", ev), ("a", av), ("b", bv))}
            ref_s = 0.5 * (sp["a"] + sp["b"])
            out["spec_space"].append(_triple(lambda p, q: log_spectral_distance(p, q, ref_s, band_fraction),
                                             sp["e"], sp["a"], sp["b"]))
        else:
            out["spec_space"].append((np.nan, np.nan, np.nan))
    sw = _triple(lambda p, q: sliced_wasserstein(p, q, scale=scale, n_projections=n_projections, seed=seed), e, a, b)
    return out, sw


class _RunSummaries:
    """Per-run pieces of one sample ``(R, T, D)`` from which every distance of a resample of its
    runs follows exactly: the values per variable (W1 pools them), the projections of the sliced
    W1, and per run the mean ACF, the summed temporal spectra of the finite series with their
    count (:func:`~dynlab.eval.spectra.mean_power_spectrum` averages those) and the mean spatial
    spectrum; runs with non-finite values are flagged (a resample holding one scores inf)."""

    def __init__(self, x: np.ndarray, groups, *, dt, max_lag, nperseg, lattice, theta, scale):
        from scipy.signal import welch

        R, _, D = x.shape
        self.x = x
        self.finite = np.isfinite(x).reshape(R, -1).all(axis=1)
        self.proj = (x.reshape(-1, D) / scale @ theta.T).reshape(R, -1, theta.shape[0])
        series = np.moveaxis(x, 1, -1)  # (R, D, T), as in mean_power_spectrum
        ok = np.isfinite(series).all(axis=-1)
        _, power = welch(np.where(np.isfinite(series), series, 0.0), fs=1.0 / dt, nperseg=int(nperseg),
                         detrend="linear", axis=-1)
        self.acf, self.spec_sum, self.spec_count, self.space = {}, {}, {}, {}
        for name, sl in groups.items():
            v = x[..., sl]
            self.acf[name] = np.stack([autocorrelation(v[i:i + 1], max_lag) for i in range(R)])
            self.spec_sum[name] = np.where(ok[:, sl, None], power[:, sl], 0.0).sum(axis=1)[:, 1:]  # (R, F − 1)
            self.spec_count[name] = ok[:, sl].sum(axis=1)
            if name in lattice:
                self.space[name] = np.stack([spatial_power_spectrum(v[i:i + 1]) for i in range(R)])

    def take(self, idx: np.ndarray, name: str, sl: slice, max_lag: int) -> dict[str, Any]:
        """The quantities of the resample ``idx`` for variable ``name``."""
        finite = bool(self.finite[idx].all())
        count = self.spec_count[name][idx].sum()
        spec = self.spec_sum[name][idx].sum(axis=0) / count if count else np.full(self.spec_sum[name].shape[1],
                                                                                  np.nan)
        out = {"values": self.x[idx][..., sl], "spec": spec,
               "acf": self.acf[name][idx].mean(axis=0) if finite else np.full(max_lag + 1, np.inf)}
        if name in self.space:
            out["space"] = self.space[name][idx].mean(axis=0) if finite else np.full(self.space[name].shape[1], np.inf)
        return out


def _resampled_ratios(parts: tuple["_RunSummaries", ...], idx: np.ndarray, groups, keys, *, max_lag, lattice,
                      band_fraction) -> np.ndarray:
    """Every ratio of the resample ``idx`` (the same run draw for E, A and B), in ``keys`` order
    per variable, then the sliced W1."""
    rows: dict[str, list] = {k: [] for k in keys}
    for name, sl in groups.items():
        e, a, b = (p.take(idx, name, sl, max_lag) for p in parts)
        rows["wasserstein"].append(_triple(wasserstein_1, e["values"], a["values"], b["values"])[2])
        rows["acf"].append(_triple(lambda p, q: float(np.sqrt(np.mean((p - q) ** 2))), e["acf"], a["acf"],
                                   b["acf"])[2])
        ref = 0.5 * (a["spec"] + b["spec"])
        rows["spec_time"].append(_triple(lambda p, q: log_spectral_distance(p, q, ref, band_fraction),
                                         e["spec"], a["spec"], b["spec"])[2])
        if name in lattice:
            ref_s = 0.5 * (a["space"] + b["space"])
            rows["spec_space"].append(_triple(lambda p, q: log_spectral_distance(p, q, ref_s, band_fraction),
                                              e["space"], a["space"], b["space"])[2])
        else:
            rows["spec_space"].append(np.nan)
    pe, pa, pb = (p.proj[idx].reshape(-1, p.proj.shape[-1]) for p in parts)
    sw = np.inf if not parts[0].finite[idx].all() else _triple(_sorted_w1, pe, pa, pb)[2]
    return np.asarray([r for k in keys for r in rows[k]] + [sw], dtype=np.float64)


def _ratio_intervals(e, a, b, groups, settings, n_boot: int, ci: float, seed: int
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r"""Member-bootstrap intervals of every ratio: the runs ``i`` are the units, the triple
    :math:`(E_i, A_i, B_i)` of independent runs drawn together with replacement
    (:func:`dynlab.eval.stats.bootstrap`), every score, floor and ratio recomputed on each
    replicate (exactly, from per-run pieces: :class:`_RunSummaries`); the percentile interval
    of the replicates (NaN where a ratio is undefined, e.g. ``spec_space`` off the lattice;
    ``[inf, inf]`` where every replicate is inf). With one run per sample it is the point."""
    from .stats import bootstrap

    keys = ("wasserstein", "acf", "spec_time", "spec_space")
    theta = _directions(e.shape[-1], settings["n_projections"], settings["seed"])
    common = dict(dt=settings["dt"], max_lag=settings["max_lag"], nperseg=settings["nperseg"],
                  lattice=settings["lattice"], theta=theta, scale=settings["scale"])
    with np.errstate(all="ignore"):
        parts = tuple(_RunSummaries(x, groups, **common) for x in (e, a, b))
    cache: dict[tuple, np.ndarray] = {}

    def ratios(drawn: np.ndarray) -> np.ndarray:
        idx = np.sort(drawn[:, 0])
        key = tuple(idx.tolist())  # every distance depends only on the multiset of runs drawn
        if key not in cache:
            cache[key] = _resampled_ratios(parts, idx, groups, keys, max_lag=settings["max_lag"],
                                           lattice=settings["lattice"], band_fraction=settings["band_fraction"])
        return cache[key]

    runs = np.arange(e.shape[0])[:, None]  # run i of E, A and B is one unit
    with np.errstate(all="ignore"):
        iv = bootstrap(runs, ratios, n_boot=n_boot if e.shape[0] > 1 else 1, ci=ci, seed=seed)["value"]
    est = np.asarray(iv.estimate, dtype=np.float64)
    # all-inf replicates (a blown-up emulator) give NaN quantiles: the interval is then [inf, inf]
    low = np.where(np.isnan(np.broadcast_to(iv.low, est.shape)) & np.isinf(est), est,
                   np.broadcast_to(np.asarray(iv.low, dtype=np.float64), est.shape))
    high = np.where(np.isnan(np.broadcast_to(iv.high, est.shape)) & np.isinf(est), est,
                    np.broadcast_to(np.asarray(iv.high, dtype=np.float64), est.shape))
    n_var = len(groups)
    out = {k: (low[i * n_var:(i + 1) * n_var], high[i * n_var:(i + 1) * n_var]) for i, k in enumerate(keys)}
    out["sliced_wasserstein"] = (low[-1], high[-1])
    return out


def climate_samples(emulator, reference, contexts: Any, truth_contexts: Any, steps: int, transient: int, *,
                    batch_size: int = 256, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three samples of :func:`climate_scores` by free rollouts, transient dropped.

    Args:
        emulator: the emulator under test; rolled out ``steps`` saves from ``contexts`` ``(R, C, D)``.
        reference: the truth as an emulator (:class:`~dynlab.emulators.ReferenceEmulator`), rolled
            out from ``truth_contexts`` ``(2R, C', D)``, contexts from members *other* than the
            emulator's, split into halves A and B (disjoint, independent members).
        steps, transient: rollout length and the saves dropped from its start.

    Returns ``(E, A, B)``, each ``(R, steps − transient, D)``.
    """
    from .forecast import _rollouts

    c, tc = as_array(contexts, "contexts"), as_array(truth_contexts, "truth_contexts")
    if c.ndim != 3 or tc.ndim != 3 or tc.shape[0] != 2 * c.shape[0] or tc.shape[-1] != c.shape[-1]:
        raise ValueError(f"contexts must be (R, C, D) and truth_contexts (2R, C', D), got {c.shape} and {tc.shape}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        e = _rollouts(emulator, c, int(steps), batch_size, device)
    truth = _rollouts(reference, tc, int(steps), batch_size, device)
    R = c.shape[0]
    return drop_transient(e, transient), drop_transient(truth[:R], transient), drop_transient(truth[R:], transient)


def check_ratio_bounds(max_ratio: Any) -> dict[str, float]:
    """``{score: bound}`` from a number (every score of ``CLIMATE_SCORES``) or a partial dict."""
    def ok(v):
        return not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 1

    if isinstance(max_ratio, Mapping):
        bad = [k for k, v in max_ratio.items() if k not in CLIMATE_SCORES or not ok(v)]
        if bad:
            raise ValueError(f"max_ratio_to_floor must map scores among {CLIMATE_SCORES} to numbers >= 1, "
                             f"got {dict(max_ratio)!r}")
        return {k: float(v) for k, v in max_ratio.items()}
    if not ok(max_ratio):
        raise ValueError(f"max_ratio_to_floor must be a number >= 1 or a dict score -> bound, got {max_ratio!r}")
    return {k: float(max_ratio) for k in CLIMATE_SCORES}


def ratio_items(scores, key: str, lattice: Sequence[str] = ()) -> list[tuple[str, float]]:
    """``[(variable or "joint", ratio)]`` of score ``key`` in a :func:`climate_scores` dataset
    (``spec_space`` only for the ``lattice`` variables)."""
    if key not in CLIMATE_SCORES:
        raise ValueError(f"key must be one of {CLIMATE_SCORES}, got {key!r}")
    ratio = scores[f"{key}_ratio"]
    if "variable" not in ratio.dims:
        return [("joint", float(ratio))]
    return [(str(n), float(v)) for n, v in zip(ratio["variable"].values, ratio.values)
            if key != "spec_space" or str(n) in lattice]


def reference_climate_scores(emulator, ds, setup, transient: int, **kwargs):
    """:func:`climate_scores` of ``emulator`` on an :class:`~dynlab.eval.forecast.EvalSetup`'s test members.

    The emulator is rolled out ``setup.long_rollout`` saves from the first context of each
    of the R test members; the dataset's reference system (its
    :class:`~dynlab.emulators.ReferenceEmulator`) from the first 2R training members
    (``setup.train_series``, disjoint from the test members), halves A and B; on a store with
    a CO₂ level per member each reference run keeps its member's level.
    ``kwargs`` go to :func:`climate_scores` (``lattice``, ``max_lag``, ``nperseg``, ...).
    """
    from ..emulators.reference import ReferenceEmulator

    R = len(setup.members)
    train = setup.train_series
    if not setup.long_rollout:
        raise ValueError("setup.long_rollout is 0; the climate scores need long rollouts")
    if train is None or train.shape[0] < 2 * R or set(setup.train_members) & set(setup.members.tolist()):
        raise ValueError(f"the floor needs {2 * R} training members disjoint from the {R} test members, "
                         f"got {0 if train is None else train.shape[0]}")
    truth_members = list(setup.train_members[:2 * R])
    reference = ReferenceEmulator.from_dataset(ds, codec=setup.codec, members=truth_members)
    if getattr(reference.system, "_member_values", None) and 2 * R > setup.batch_size:
        raise ValueError(f"per-member parameters: the {2 * R} reference runs must fit one batch "
                         f"(batch_size={setup.batch_size})")
    contexts = setup.contexts.reshape(R, -1, setup.context, setup.codec.n_features)[:, 0]
    e, a, b = climate_samples(emulator, reference, contexts, train[:2 * R, :setup.context], setup.long_rollout,
                              transient, batch_size=setup.batch_size, device=setup.device)
    return climate_scores(e, a, b, setup.groups, dt=setup.dt, **kwargs)
