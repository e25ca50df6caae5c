r"""Does an emulator show critical slowing down, and at the right c? (issue 11, item 4)

For an emulator trained on the ramped May model with the grazing rate c as a
forcing input, two checks against the truth:

(a) **Recovery rate.** The eigenvalue of the emulator's one-step Jacobian
    :math:`∂\hat x_{t+1}/∂x_t` at the truth's upper-branch equilibrium
    :math:`x^*(c)` as c advances, against the truth's. One emulator step is one
    save interval of ``n = steps_per_save`` Euler–Maruyama steps of size Δt, and at
    a fixed point each Euler step has derivative :math:`1 + Δt f_c'(x^*)`, so the
    truth's one-step eigenvalue is exactly :math:`λ(c) = (1 + Δt f_c'(x^*))^n`
    (≈ :math:`e^{nΔt f_c'(x^*)}`, also reported). It rises to 1 at the fold; the c
    at which the emulator's eigenvalue reaches 1 is compared with the fold's.

(b) **Stochastic rollouts.** From the upper branch, each member is advanced by
    :math:`x_{t+1} = |\,\mathrm{map}(x_t, c_t) + σ\sqrt{nΔt}\,ξ_t\,|`, with the map the
    emulator's step or the truth's deterministic save-interval map (c held at
    :math:`c_t` over the interval) and the *same* normal draws ξ for both, reflected
    at 0 like the simulator. The indicators and their Kendall τ (cut before each
    run's transition) are computed for both side by side.

The truth's noise increment over a save interval, :math:`σ\sqrt{nΔt}ξ`, is added
after the deterministic map (an operator split of Euler–Maruyama over the interval).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import xarray as xr

from .indicators import indicators as compute_indicators
from .scoring import analysed_lengths, score_series
from .transitions import may_threshold

__all__ = ["MayTruth", "recovery_rates", "stochastic_rollouts", "emulator_ews", "emulator_ews_summary", "plot_emulator_ews"]


@dataclass(frozen=True)
class MayTruth:
    """The May model's save-interval map: parameters ``r, K, h, sigma``, Euler step ``dt`` and
    ``steps_per_save`` steps per emulator step."""

    r: float = 1.0
    K: float = 10.0
    h: float = 1.0
    sigma: float = 0.15
    dt: float = 0.02
    steps_per_save: int = 50

    def __post_init__(self):
        for name in ("r", "K", "h", "dt"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(self.sigma, (int, float)) and self.sigma >= 0):
            raise ValueError(f"sigma must be a number >= 0, got {self.sigma!r}")
        if isinstance(self.steps_per_save, bool) or not isinstance(self.steps_per_save, int) or self.steps_per_save < 1:
            raise ValueError(f"steps_per_save must be an integer >= 1, got {self.steps_per_save!r}")

    @classmethod
    def from_dataset(cls, ds) -> "MayTruth":
        """From a ``dynlab simulate`` store of ``may_grazing`` (its config, ``dt`` and ``save_every``)."""
        from ..emulators.reference import system_from_dataset

        system = system_from_dataset(ds)
        if system.name != "may_grazing":
            raise ValueError(f"the dataset was written by {system.name!r}, not may_grazing")
        p = system.params
        dt, save = float(ds.attrs["dt"]), float(ds.attrs["save_every"])
        return cls(p.r, p.K, p.h, p.sigma, dt, round(save / dt))

    @property
    def save_interval(self) -> float:
        return self.dt * self.steps_per_save

    def upper_branch(self, c: float) -> float:
        """The stable equilibrium with the largest x at ``c`` if there are two stable ones
        (bistable range) or the upper one above the lower fold; NaN past the upper fold."""
        from simulators.tipping import may_equilibria, may_folds

        folds = may_folds(self.r, self.K, self.h)
        if folds and c >= folds[-1].c:
            return float("nan")
        stable = [x for x, ok in may_equilibria(float(c), self.r, self.K, self.h) if ok]
        return max(stable) if stable else float("nan")

    def fold_c(self) -> float:
        from simulators.tipping import may_folds

        folds = may_folds(self.r, self.K, self.h)
        return folds[-1].c if folds else float("nan")

    def eigenvalue(self, c: float) -> tuple[float, float]:
        """``((1 + Δt f'(x*))^n, exp(nΔt f'(x*)))`` at the upper branch (NaN past the fold)."""
        from simulators.tipping import may_drift_derivative

        x = self.upper_branch(c)
        d = may_drift_derivative(x, c, self.r, self.K, self.h)
        return (1 + self.dt * d) ** self.steps_per_save, math.exp(self.save_interval * d)

    def step(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Deterministic save-interval map: ``steps_per_save`` Euler steps of the drift at fixed c."""
        from simulators.tipping import may_drift

        for _ in range(self.steps_per_save):
            x = x + self.dt * may_drift(x, c, self.r, self.K, self.h)
        return x


def _emulator_dtype(emulator) -> torch.dtype:
    p = next(iter(emulator.parameters()), None)
    if p is None:
        p = next(iter(emulator.buffers()), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float64


def _features(x: torch.Tensor, emulator) -> torch.Tensor:
    if emulator.n_features != 1:
        raise ValueError(f"the emulator must have one state feature (x), got n_features={emulator.n_features}")
    return x[:, None]


def recovery_rates(emulator, truth: MayTruth, c_values, *, warmup: int = 0, level: float = 0.9) -> xr.Dataset:
    """One-step Jacobian eigenvalue of ``emulator`` at the truth's upper branch for each c.

    Args:
        emulator: an :class:`~dynlab.emulators.base.AbstractEmulator` with one state feature (x)
            and c as its first forcing feature (``n_forcing ≥ 1``; further forcing columns 0).
        truth: the May model's save-interval map (:class:`MayTruth`).
        c_values: grazing rates (1-D).
        warmup: steps fed with (x*, c) before the differentiated one (recurrent emulators).
        level: the eigenvalue whose first crossing (in c) is reported for both, in (0, 1]:
            the truth reaches 1 only at the fold itself, so a level below 1 compares *where*
            the slowing down sets in.

    Returns:
        Dataset on ``c``: ``x_star``, ``truth`` ((1 + Δt f')^n), ``truth_continuous``
        (exp(nΔt f')), ``emulator`` (the eigenvalue of largest modulus, real part) and
        ``emulator_abs``; attrs ``fold_c``, ``level`` and ``truth_c_at_level`` /
        ``emulator_c_at_level``: the c at which each eigenvalue first reaches ``level`` (linear
        interpolation, NaN if it does not within the grid).
    """
    c = np.asarray(c_values, dtype=np.float64).ravel()
    if not (isinstance(level, (int, float)) and 0 < level <= 1):
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    if c.size == 0 or not np.isfinite(c).all():
        raise ValueError("c_values must be a non-empty array of finite grazing rates")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    x_star = np.array([truth.upper_branch(ci) for ci in c])
    lam = np.array([truth.eigenvalue(ci) if np.isfinite(xs) else (np.nan, np.nan) for ci, xs in zip(c, x_star)])
    ok = np.isfinite(x_star)
    emu = np.full(c.size, np.nan, dtype=np.complex128)
    if ok.any():
        dtype = _emulator_dtype(emulator)
        device = next(iter(emulator.buffers()), torch.empty(0)).device
        xs = torch.as_tensor(x_star[ok], dtype=dtype, device=device)
        forcing = torch.zeros(xs.shape[0], max(emulator.n_forcing, 1), dtype=dtype, device=device)
        forcing[:, 0] = torch.as_tensor(c[ok], dtype=dtype)
        forcing = forcing if emulator.n_forcing else None
        was_training = emulator.training
        emulator.eval()
        try:
            state = emulator.initial_state(xs.shape[0], device=device, dtype=dtype)
            with torch.no_grad():
                for _ in range(warmup):
                    _, state = emulator.step(_features(xs, emulator), state, forcing)
            x_in = _features(xs, emulator).clone().requires_grad_(True)
            with torch.enable_grad():
                y, _ = emulator.step(x_in, state, forcing)
                rows = [torch.autograd.grad(y[:, k].sum(), x_in, retain_graph=k < y.shape[1] - 1)[0]
                        for k in range(y.shape[1])]
            J = torch.stack(rows, 1).to(torch.float64).cpu()                # (B, D, D)
            ev = torch.linalg.eigvals(J)
            emu[ok] = ev.gather(-1, ev.abs().argmax(-1, keepdim=True))[:, 0].numpy()
        finally:
            emulator.train(was_training)
    ds = xr.Dataset({"x_star": ("c", x_star), "truth": ("c", lam[:, 0]), "truth_continuous": ("c", lam[:, 1]),
                     "emulator": ("c", emu.real), "emulator_abs": ("c", np.abs(emu))}, coords={"c": c})
    ds.attrs.update(fold_c=truth.fold_c(), level=float(level), truth_c_at_level=_first_reach(c, lam[:, 0], level),
                    emulator_c_at_level=_first_reach(c, emu.real, level))
    return ds


def _first_reach(c: np.ndarray, lam: np.ndarray, level: float = 1.0) -> float:
    ok = np.isfinite(lam)
    c, lam = c[ok], lam[ok]
    above = np.flatnonzero(lam >= level)
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(c[0])
    return float(c[i - 1] + (level - lam[i - 1]) * (c[i] - c[i - 1]) / (lam[i] - lam[i - 1]))


def stochastic_rollouts(emulator, truth: MayTruth, c_series, *, members: int = 32, seed: int = 0,
                        x0: float | None = None) -> xr.DataArray:
    """Rollouts ``(source, member, time)`` with source ∈ {truth, emulator}, both driven by the same
    noise (module docstring); ``c_series`` ``(T,)`` the grazing rate at each saved step."""
    c = torch.as_tensor(np.asarray(c_series, dtype=np.float64))
    if c.ndim != 1 or c.numel() < 2:
        raise ValueError("c_series must be a 1-D series of at least 2 grazing rates")
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"members must be an integer >= 1, got {members!r}")
    start = truth.upper_branch(float(c[0])) if x0 is None else float(x0)
    if not math.isfinite(start):
        raise ValueError(f"c_series starts at c={float(c[0])!r}, past the fold: give x0")
    gen = torch.Generator().manual_seed(int(seed))
    xi = torch.randn(members, c.numel() - 1, generator=gen, dtype=torch.float64)
    amp = truth.sigma * math.sqrt(truth.save_interval)
    dtype = _emulator_dtype(emulator)
    device = next(iter(emulator.buffers()), torch.empty(0)).device
    paths = {}
    steppers: dict[str, Callable] = {"truth": lambda x, state, ct: (truth.step(x, ct), None)}

    def emulator_step(x, state, ct):
        f = torch.zeros(members, max(emulator.n_forcing, 1), dtype=dtype, device=device)
        f[:, 0] = ct.to(dtype)
        y, state = emulator.step(x.to(dtype=dtype, device=device)[:, None], state,
                                 f if emulator.n_forcing else None)
        return y[:, 0].to(torch.float64).cpu(), state

    steppers["emulator"] = emulator_step
    was_training = emulator.training
    emulator.eval()
    try:
        with torch.no_grad():
            for name, step in steppers.items():
                x = torch.full((members,), start, dtype=torch.float64)
                state = emulator.initial_state(members, device=device, dtype=dtype) if name == "emulator" else None
                out = [x]
                for t in range(c.numel() - 1):
                    y, state = step(x, state, c[t].expand(members))
                    x = (y + amp * xi[:, t]).abs()
                    out.append(x)
                paths[name] = torch.stack(out, -1).numpy()
    finally:
        emulator.train(was_training)
    return xr.DataArray(np.stack([paths["truth"], paths["emulator"]]), dims=("source", "member", "time"),
                        coords={"source": np.array(["truth", "emulator"], dtype=object),
                                "time": np.arange(c.numel()) * truth.save_interval},
                        name="x")


def emulator_ews(emulator, truth: MayTruth, *, c0: float = 2.0, c_rate: float = 0.003, t_end: float = 300.0,
                 members: int = 32, seed: int = 0, lead: float = 10.0, c_grid=None, min_points: int = 20,
                 indicators=("variance", "ac1"), **indicator_kwargs) -> xr.Dataset:
    """Both checks in one Dataset: ``recovery_*`` on ``c`` (:func:`recovery_rates`), the rollouts
    ``x`` on ``(source, member, time)``, the transition time and τ of each indicator on
    ``(source, member)`` (each run cut ``lead`` before its own transition and detrended on its
    own length, as in ``dynlab ews``), and the indicator series up to the earliest cut (for plots).
    ``indicator_kwargs``: detrend, bandwidth, span, window."""
    n = int(round(t_end / truth.save_interval)) + 1
    times = np.arange(n) * truth.save_interval
    c_series = c0 + c_rate * times
    c_grid = np.linspace(c0, min(c_series[-1], truth.fold_c() + 0.05), 41) if c_grid is None else c_grid
    rec = recovery_rates(emulator, truth, c_grid)
    x = stochastic_rollouts(emulator, truth, c_series, members=members, seed=seed)
    thr = may_threshold(c_series, r=truth.r, K=truth.K, h=truth.h)
    below = x.values < thr
    t_tr = np.where(below.any(-1), times[below.argmax(-1)], np.nan)
    stop = np.where(np.isnan(t_tr), times[-1], t_tr - lead)
    kw = dict(detrend="gaussian", bandwidth=0.2, span=0.2, window=0.25)
    kw.update(indicator_kwargs)
    flat = x.values.reshape(-1, n)
    lengths = analysed_lengths(stop.ravel(), truth.save_interval, n, 1)
    scores = score_series(flat, lengths, times, names=list(indicators), min_points=min_points, likelihood=False, **kw)
    common = int(max(min_points, lengths.min()))   # indicator series for plots: common cut
    ind = compute_indicators(x.isel(time=slice(0, common)), indicators=list(indicators), **kw)
    out = xr.Dataset({f"recovery_{k}": v for k, v in rec.data_vars.items()})
    out["x"] = x
    for k in indicators:
        out[k] = ind[k].reindex(time=x["time"])
        out[f"tau_{k}"] = (("source", "member"), scores[f"tau_{k}"].reshape(2, members))
    out["transition_time"] = (("source", "member"), t_tr)
    out["c_of_time"] = ("time", c_series)
    out.attrs.update(rec.attrs)
    return out


def emulator_ews_summary(ds: xr.Dataset) -> dict[str, float]:
    """Scalars for a run's ``summary.json`` from :func:`emulator_ews`: the largest gap between the
    emulator's and the truth's one-step eigenvalue on the upper branch, the c at which each
    reaches the reporting level, and the median τ of each indicator for both."""
    ok = np.isfinite(ds["recovery_truth"].values)
    gap = np.abs(ds["recovery_emulator"].values[ok] - ds["recovery_truth"].values[ok])
    out = {"ews_eigenvalue_max_abs_error": float(np.nanmax(gap)) if gap.size else float("nan"),
           "ews_level": float(ds.attrs["level"]), "ews_fold_c": float(ds.attrs["fold_c"]),
           "ews_truth_c_at_level": float(ds.attrs["truth_c_at_level"]),
           "ews_emulator_c_at_level": float(ds.attrs["emulator_c_at_level"])}
    for name in [v for v in ds.data_vars if v.startswith("tau_")]:
        for source in ("truth", "emulator"):
            out[f"ews_{name}_median_{source}"] = float(ds[name].sel(source=source).median())
    return out


def plot_emulator_ews(ds: xr.Dataset, path=None):
    """Two panels: the one-step eigenvalue against c (truth, emulator), and the rollouts' variance
    τ for both. Returns the figure (saved to ``path`` if given)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ds["c"], ds["recovery_truth"], "k", label="truth (1 + Δt f')ⁿ")
    a.plot(ds["c"], ds["recovery_emulator"], "C3--", label="emulator")
    a.axvline(ds.attrs["fold_c"], color="grey", ls=":", label="fold")
    a.axhline(1.0, color="grey", lw=0.8)
    a.set(xlabel="grazing rate c", ylabel="one-step eigenvalue at x*(c)", title="recovery rate")
    a.legend(fontsize=8)
    taus = [v for v in ds.data_vars if v.startswith("tau_")]
    data = [ds[t].sel(source=s).values for t in taus for s in ("truth", "emulator")]
    b.boxplot([d[np.isfinite(d)] for d in data])
    b.set_xticks(np.arange(1, len(data) + 1), [f"{t[4:]}\n{s}" for t in taus for s in ("truth", "emulator")])
    b.set(ylabel="Kendall τ", title="indicators of stochastic rollouts")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
