r"""Score any Emulator against held-out members of a dataset.

Two steps, so that the truth-side work (data, climatology, λ₁, the integrator
agreement horizon) is done once and shared by the emulator and its baselines:

1. :func:`prepare_evaluation` → :class:`EvalSetup`: test windows, training
   climatology, reference scales.
2. :func:`score_emulator` → ``xarray.Dataset`` of the emulator's scores.

:func:`evaluate_emulator` does both and merges the truth-side variables.

Forecasts: from each test member, ``starts_per_member`` start indices ``s`` spread
evenly over the trajectory; the emulator warms up on the context
:math:`x_s … x_{s+C−1}` and forecasts :math:`x_{s+C} … x_{s+C+H−1}` (leads
1 … H, lead time :math:`hΔt`). Long free rollouts of ``long_rollout`` steps
from each member's first context give the climate scores (Wasserstein-1 of the
marginals, power spectra, histograms), compared with the test members' whole
trajectories.

Output variables (dims in brackets), learner side:
``rmse[lead]``, ``rmse_variable[variable, lead]``, ``acc[lead]`` (uncentred),
``acc_centred[lead]``, ``acc_variable[variable, lead]``, ``acc_below`` and
``acc_centred_below`` (first lead time with ACC < ``acc_level``; inf if never),
``error_median[lead]`` (median normalised error), ``error[member, start, lead]``
(normalised error of each forecast), ``acc_parts[member, start, lead, part]`` (the
three sums of the ACC per forecast, so that it can be bootstrapped),
``vpt[member, start]`` (last valid time at ``threshold``, model time, capped at the
agreement horizon), ``vpt_lyapunov[member, start]`` (λ₁·vpt; NaN without a
significant λ₁), ``vpt_capped``, ``vpt_censored``, ``vpt_eps[threshold, member, start]``
and ``vpt_eps_lyapunov`` (every ε of ``thresholds``), ``crps[lead]`` and
``spread_error[lead]`` (systems with noise), ``blowup`` (fraction of long rollouts
that blow up), ``wasserstein[variable]``, ``long_rollout_finite[variable]``,
``spectrum[variable, frequency]``, ``spec_div[variable]``, ``spec_res[variable]``,
``hist[variable, bin]`` (density), ``sample_forecast[lead, feature]``.
Truth side: ``reference_agreement_time[member, start]``, ``agreement_censored``,
``agreement_time_eps[threshold, member, start]``, ``spectrum_truth``, ``hist_truth``,
``bin_edges[variable, edge]``, ``sample_truth[lead, feature]``, ``climatology[feature]``;
attributes ``dt``, ``lambda1`` (NaN unless significant), ``lambda1_estimate``,
``lambda1_stderr``, ``lyapunov_time``, ``climate_scale``, ``threshold``, ``context``,
``horizon``, ``notes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..emulators.base import AbstractEmulator
from ..emulators.codec import StateCodec
from ..errors import ConfigError
from . import metrics as M
from .options import EvalOptions
from .spectra import mean_power_spectrum, spectral_divergence, spectral_residual

__all__ = ["EvalSetup", "prepare_evaluation", "score_emulator", "evaluate_emulator", "forecast_windows",
           "emulator_dtype"]


@dataclass
class EvalSetup:
    """Everything on the truth side of an evaluation (built by :func:`prepare_evaluation`).

    Arrays: ``contexts`` ``(M·S, C, D)``, ``truth`` ``(M, S, H, D)``,
    ``truth_series`` ``(M, T, D)`` (the test members' whole trajectories),
    ``train_series`` ``(M_train, T, D)`` (the training members read for the climatology,
    σ_clim and the baseline fits), ``climatology`` ``(D,)``, ``agreement_time`` ``(M, S)``,
    ``agreement_error`` ``(M, S, H)``.
    """

    codec: StateCodec
    dt: float
    context: int
    horizon: int
    members: np.ndarray
    starts: np.ndarray
    contexts: np.ndarray
    truth: np.ndarray
    truth_series: np.ndarray
    climatology: np.ndarray
    climate_scale: float
    threshold: float
    long_rollout: int
    nperseg: int
    spectrum_tail: float
    bin_edges: np.ndarray
    lambda1: float = float("nan")
    agreement_time: np.ndarray | None = None
    agreement_censored: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    batch_size: int = 256
    device: str = "cpu"
    options: EvalOptions = field(default_factory=EvalOptions)
    train_series: np.ndarray | None = None
    train_members: list = field(default_factory=list)
    lambda1_estimate: float = float("nan")
    lambda1_stderr: float = float("nan")
    agreement_error: np.ndarray | None = None
    system: Any = None
    stochastic: bool = False

    def agreement_at(self, threshold: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The reference integrators' agreement time and censored flags ``(M, S)`` at ε = ``threshold``."""
        if self.agreement_error is None:
            return None, None
        return M.last_valid_time(self.agreement_error, threshold, self.dt, self.options.vpt_interpolate)

    @property
    def groups(self) -> dict[str, slice]:
        return M.variable_groups(self.codec)

    @property
    def leads(self) -> np.ndarray:
        return np.arange(1, self.horizon + 1) * self.dt

    def coords(self) -> dict[str, Any]:
        names = np.array(self.codec.names, dtype=object)
        return {
            "lead": ("lead", self.leads, {"long_name": "forecast lead time", "units": "model time"}),
            "lead_step": ("lead", np.arange(1, self.horizon + 1), {"long_name": "forecast lead in saved steps"}),
            "member": ("member", self.members, {"long_name": "test ensemble member"}),
            "start": ("start", np.arange(len(self.starts)), {"long_name": "forecast start number"}),
            "start_index": ("start", self.starts + self.context - 1,
                            {"long_name": "time index of the forecast origin (last context state)"}),
            "variable": ("variable", names),
            "threshold": ("threshold", np.asarray(self.options.thresholds, dtype=np.float64),
                          {"long_name": "epsilon of the valid prediction time"}),
            "feature": ("feature", np.array(self.codec.feature_names(), dtype=object)),
        }

    def truth_dataset(self):
        """The learner-independent variables of the evaluation."""
        import xarray as xr

        freqs, spec = mean_power_spectrum(self.truth_series, self.dt, self.groups, self.nperseg)
        hist = _histograms(self.truth_series, self.groups, self.bin_edges)
        M_, S_ = len(self.members), len(self.starts)
        agree = self.agreement_time if self.agreement_time is not None else np.full((M_, S_), np.nan)
        censored = self.agreement_censored if self.agreement_censored is not None else np.zeros((M_, S_), bool)
        eps = self.options.thresholds
        agree_eps = np.stack([self.agreement_at(e)[0] if self.agreement_error is not None
                              else np.full((M_, S_), np.nan) for e in eps])
        ds = xr.Dataset(
            {
                "agreement_time_eps": (("threshold", "member", "start"), agree_eps,
                                       {"long_name": "agreement time of the reference integrators at each epsilon",
                                        "units": "model time"}),
                "reference_agreement_time": (("member", "start"), agree,
                                             {"long_name": "time over which RK4 and Dormand-Prince agree",
                                              "units": "model time"}),
                "agreement_censored": (("member", "start"), censored,
                                       {"long_name": "the integrators agree over the whole horizon"}),
                "spectrum_truth": (("variable", "frequency"), spec, {"long_name": "mean power spectrum of the truth"}),
                "hist_truth": (("variable", "bin"), hist, {"long_name": "marginal density of the truth"}),
                "bin_edges": (("variable", "edge"), self.bin_edges),
                "sample_truth": (("lead", "feature"), self.truth[0, 0], {"long_name": "truth of the first forecast"}),
                "climatology": (("feature",), self.climatology, {"long_name": "training mean state"}),
            },
            coords={**self.coords(), "frequency": ("frequency", freqs, {"units": "1/model time"})},
        )
        ds.attrs.update(self.attrs())
        return ds

    def attrs(self) -> dict[str, Any]:
        lam = self.lambda1
        return {"dt": self.dt, "context": self.context, "horizon": self.horizon, "threshold": self.threshold,
                "climate_scale": self.climate_scale, "lambda1": lam, "lambda1_estimate": self.lambda1_estimate,
                "lambda1_stderr": self.lambda1_stderr, "vpt_interpolate": int(self.options.vpt_interpolate),
                "stochastic": int(self.stochastic), "n_features": self.codec.n_features,
                "lyapunov_time": 1.0 / lam if math.isfinite(lam) and lam > 0 else float("nan"),
                "long_rollout": self.long_rollout, "spectrum_nperseg": self.nperseg,
                "spectrum_tail": self.spectrum_tail, "notes": "; ".join(self.notes)}


def _histograms(x: np.ndarray, groups: dict[str, slice], edges: np.ndarray) -> np.ndarray:
    out = []
    for (name, sl), e in zip(groups.items(), edges):
        v = x[..., sl].reshape(-1)
        v = v[np.isfinite(v)]
        if v.size == 0:
            out.append(np.full(len(e) - 1, np.nan))
            continue
        counts, _ = np.histogram(v, bins=e)
        out.append(counts / (v.size * np.diff(e)))  # density w.r.t. all finite values (mass outside is lost)
    return np.stack(out)


def forecast_windows(n_times: int, context: int, horizon: int, starts_per_member: int) -> np.ndarray:
    """Start indices ``s`` (evenly spread) with ``s + context + horizon <= n_times``."""
    last = n_times - context - horizon
    if last < 0:
        raise ValueError(f"context + horizon = {context} + {horizon} = {context + horizon} exceeds the "
                         f"{n_times} saved times of a member")
    return np.unique(np.round(np.linspace(0, last, starts_per_member)).astype(int))


def _encode(codec: StateCodec, ds, members: Sequence) -> np.ndarray:
    return codec.encode(ds.sel(member=list(members))).astype(np.float64)


def _check_members(ds, test_members: Sequence, train_members: Sequence | None) -> tuple[list, list, list[str]]:
    all_members = [m.item() if hasattr(m, "item") else m for m in np.asarray(ds["member"].values)]
    test_members = list(test_members)
    if not test_members:
        raise ValueError("test_members is empty")
    missing = [m for m in test_members if m not in all_members]
    if missing:
        raise ValueError(f"test members {missing} are not in the dataset "
                         f"(members {all_members[0]}..{all_members[-1]})")
    notes: list[str] = []
    if train_members is None:
        train_members = [m for m in all_members if m not in set(test_members)]
        if not train_members:
            train_members = list(test_members)
            notes.append("no training members: climatology and baselines from the test members")
    return test_members, list(train_members), notes


def prepare_evaluation(ds, test_members: Sequence, options: EvalOptions | None = None, *,
                       codec: StateCodec | None = None, train_members: Sequence | None = None,
                       device: str = "cpu", **overrides: Any) -> EvalSetup:
    """Build the truth side of an evaluation on ``test_members`` of ``ds``.

    Each member is read and encoded once: the test members (forecast windows, the
    climate scores' truth) and the first ``options.baseline_members`` training members
    (climatology, σ_clim, and the data the baselines are fitted on, kept as
    ``setup.train_series``).

    Args:
        ds: a dataset opened with :func:`dynlab.open_dataset` (or any dataset on
            ``(member, time, ...)``; without the ``dynlab_config`` attribute the
            reference scales and numerical baselines are skipped).
        test_members: member coordinate values to forecast.
        options: the :class:`~dynlab.eval.options.EvalOptions` (default: the defaults);
            ``overrides`` replace single fields (``horizon=20``, ...), checked the same way.
            ``options.context`` None means 10 here.
        codec: the emulator's codec (default: every variable of ``ds``).
        train_members: members for the climatology, σ_clim and the baselines (default:
            every member not in ``test_members``; the test members if there is none).
        device: where forecasts run.
    """
    opts = options or EvalOptions()
    if not isinstance(opts, EvalOptions):
        raise ValueError(f"options must be an EvalOptions, got {type(opts).__name__}")
    if overrides:
        try:
            opts = opts.replace(**overrides)
        except ConfigError as err:
            raise ValueError(str(err)) from None
    context = opts.context if opts.context is not None else 10
    horizon = opts.horizon
    codec = codec or StateCodec.from_dataset(ds)
    test_members, train_members, notes = _check_members(ds, test_members, train_members)
    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    dt = ds.dynlab.save_every or 1.0

    series = _encode(codec, ds, test_members)  # (M, T, D): read once
    T = series.shape[1]
    starts = forecast_windows(T, context, horizon, opts.starts_per_member)
    idx = starts[:, None] + np.arange(context + horizon)[None, :]  # (S, C + H)
    windows = series[:, idx]  # (M, S, C + H, D)
    fit_members = train_members[:opts.baseline_members]
    train = series if fit_members == test_members else _encode(codec, ds, fit_members)  # read once
    climatology = train.reshape(-1, train.shape[-1]).mean(0)
    scale = M.climate_scale(train)
    if not scale > 0:
        raise ValueError("the training data has zero variance; the valid prediction time is undefined")
    long_rollout = opts.long_rollout
    nperseg = min(opts.spectrum_nperseg, T, long_rollout) if long_rollout else min(opts.spectrum_nperseg, T)
    lo = np.array([np.nanmin(series[..., sl]) for sl in M.variable_groups(codec).values()])
    hi = np.array([np.nanmax(series[..., sl]) for sl in M.variable_groups(codec).values()])
    pad = 0.1 * np.maximum(hi - lo, 1e-12)
    edges = np.stack([np.linspace(a - p, b + p, opts.bins + 1) for a, b, p in zip(lo, hi, pad)])
    setup = EvalSetup(codec=codec, dt=dt, context=context, horizon=horizon, members=np.asarray(test_members),
                      starts=starts, contexts=windows[:, :, :context].reshape(-1, context, codec.n_features),
                      truth=windows[:, :, context:], truth_series=series, climatology=climatology,
                      climate_scale=scale, threshold=float(opts.threshold), long_rollout=long_rollout,
                      nperseg=max(4, nperseg), spectrum_tail=float(opts.spectrum_tail), bin_edges=edges,
                      notes=notes, batch_size=opts.batch_size, device=str(device), options=opts,
                      train_series=train, train_members=list(fit_members))
    _reference_scales(setup, ds, opts, train_members)
    return setup


def _reference_scales(setup: EvalSetup, ds, opts: EvalOptions, train_members: list) -> None:
    """Fill the system, λ₁ (with its standard error) and the agreement horizon, where the dataset has them."""
    from ..emulators.reference import (codec_state_permutation, features_from_state, state_variables,
                                       system_from_dataset)
    from .reference import FAST_SCALE_SYSTEMS, lyapunov_estimate, reference_agreement_time

    if opts.lambda1 is not None:
        setup.lambda1 = setup.lambda1_estimate = float(opts.lambda1)
        setup.lambda1_stderr = 0.0
    try:
        system = system_from_dataset(ds)
    except (ValueError, KeyError, TypeError) as err:
        setup.notes.append(f"no reference system ({str(err).splitlines()[0]}); VPT uncapped, no Lyapunov times")
        return
    setup.system = system
    if system.is_stochastic:
        setup.stochastic = True
        setup.notes.append(f"system {system.name} is stochastic: VPT uncapped, no Lyapunov times; CRPS and "
                           "spread-error ratio scored")
        return
    try:
        state_codec = StateCodec.from_dataset(ds, state_variables(system))
        full = codec_state_permutation(system, state_codec)  # state -> state-variables flat
        probe = torch.zeros(1, *system.state_shape, dtype=torch.float64)
        features_from_state(system, setup.codec, probe)  # the emulator's variables are outputs of the system
    except ValueError as err:
        setup.notes.append(f"no reference integration of {system.name} ({err}); VPT uncapped, no Lyapunov times")
        return
    inverse = torch.argsort(full)

    def states(members, time_index) -> torch.Tensor:
        flat = torch.as_tensor(state_codec.encode(ds.sel(member=list(members)).isel(time=time_index)),
                               dtype=torch.float64)  # (M, T', S)
        return flat[..., inverse].reshape(*flat.shape[:2], *system.state_shape)

    int_dt = ds.dynlab.dt or setup.dt
    lyapunov = opts.lyapunov
    if opts.lambda1 is None and (lyapunov is True or (lyapunov == "auto" and system.name not in FAST_SCALE_SYSTEMS)):
        x0 = states(train_members[:opts.lyapunov_members], [0])[:, 0]
        est = lyapunov_estimate(system, x0, dt=int_dt, time=opts.lyapunov_time,
                                transient_time=opts.lyapunov_transient)
        setup.lambda1_estimate, setup.lambda1_stderr = est.value, est.stderr
        if est.significant(opts.lyapunov_sigmas):
            setup.lambda1 = est.value
        else:
            setup.notes.append(f"{system.name}: lambda1 = {est.value:.3g} +- {est.stderr:.2g} is not "
                               f"{opts.lyapunov_sigmas:g} standard errors above 0; VPT in model time only")
    elif opts.lambda1 is None and lyapunov == "auto":
        setup.notes.append(f"{system.name}: lambda1 is set by fast variables; VPT in model time only")
    if opts.agreement:
        steps_per_save = round(setup.dt / int_dt)
        x0 = states(setup.members, list(setup.starts + setup.context - 1)).reshape(-1, *system.state_shape)

        def to_features(s: torch.Tensor) -> torch.Tensor:
            return features_from_state(system, setup.codec, s)

        _, _, err = reference_agreement_time(system, x0, dt=int_dt, steps_per_save=steps_per_save,
                                             horizon=setup.horizon, scale=setup.climate_scale,
                                             to_features=to_features, threshold=setup.threshold,
                                             rtol=opts.agreement_rtol, atol=opts.agreement_atol)
        shape = (len(setup.members), len(setup.starts))
        setup.agreement_error = err.reshape(*shape, setup.horizon)
        setup.agreement_time, setup.agreement_censored = setup.agreement_at(setup.threshold)


def emulator_dtype(emulator: AbstractEmulator) -> torch.dtype:
    """The dtype forecasts run in: the emulator's parameter dtype, or float64 for an
    emulator without parameters (baselines, closed-form predictors, the reference)."""
    for p in emulator.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float64


@torch.no_grad()
def _rollouts(emulator: AbstractEmulator, contexts: np.ndarray, steps: int, batch_size: int,
              device: str) -> np.ndarray:
    dtype = emulator_dtype(emulator)
    out = []
    for i in range(0, contexts.shape[0], batch_size):
        ctx = torch.as_tensor(contexts[i:i + batch_size], dtype=dtype, device=device)
        out.append(emulator.rollout(ctx, steps).to("cpu", torch.float64).numpy())
    return np.concatenate(out)


def _acc_parts(f: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per forecast and lead, the sums Σ_d â a, Σ_d â², Σ_d a² of the ACC: ``(N, H, 3)``."""
    fa, ta = f - c, t - c
    with np.errstate(over="ignore", invalid="ignore"):  # a blown-up forecast gives inf/NaN sums, not warnings
        return np.stack([np.sum(fa * ta, -1), np.sum(fa * fa, -1), np.sum(ta * ta, -1)], axis=-1)


def score_emulator(emulator: AbstractEmulator, setup: EvalSetup):
    """The learner-side scores of ``emulator`` on ``setup`` (module docstring) as an ``xarray.Dataset``."""
    import xarray as xr

    if not isinstance(emulator, AbstractEmulator):
        raise ValueError(f"emulator must be an AbstractEmulator, got {type(emulator).__name__}")
    if emulator.n_features != setup.codec.n_features:
        raise ValueError(f"the emulator has {emulator.n_features} features but the codec has {setup.codec.n_features}")
    opts = setup.options
    was_training = emulator.training
    emulator.eval()
    emulator.to(setup.device)
    try:
        Ms, S, H, D = setup.truth.shape
        members = opts.ensemble_size if setup.stochastic and getattr(emulator, "stochastic", False) else 1
        contexts = np.repeat(setup.contexts, members, axis=0) if members > 1 else setup.contexts
        runs = _rollouts(emulator, contexts, H, setup.batch_size, setup.device).reshape(-1, members, H, D)
        forecast = runs.mean(1).reshape(Ms, S, H, D)  # the ensemble mean (the forecast itself when m = 1)
        f, t = forecast.reshape(-1, H, D), setup.truth.reshape(-1, H, D)
        groups = setup.groups
        err = M.normalized_error(f, t, setup.climate_scale)  # (N, H)
        lam = setup.lambda1
        lam_ok = math.isfinite(lam) and lam > 0
        vpts, caps, cens = [], [], []
        for eps in [setup.threshold, *opts.thresholds]:
            vpt, censored = M.last_valid_time(err, eps, setup.dt, opts.vpt_interpolate)
            vpt, censored = vpt.reshape(Ms, S), censored.reshape(Ms, S)
            agree = setup.agreement_time if eps == setup.threshold else setup.agreement_at(eps)[0]
            capped = np.zeros_like(censored)
            if agree is not None:
                capped = vpt > agree
                vpt = np.minimum(vpt, agree)
            vpts.append(vpt)
            caps.append(capped)
            cens.append(censored)
        vpt, capped, censored = vpts[0], caps[0], cens[0]
        vpt_eps = np.stack(vpts[1:])
        acc = M.anomaly_correlation(f, t, setup.climatology)
        acc_c = M.centred_anomaly_correlation(f, t)
        nan_like = np.full_like(vpt, np.nan)
        data = {
            "rmse": (("lead",), M.rmse_by_lead(f, t), {"long_name": "root-mean-square error"}),
            "rmse_variable": (("variable", "lead"), M.rmse_by_lead_and_variable(f, t, groups)),
            "acc": (("lead",), acc, {"long_name": "anomaly correlation (w.r.t. the training climatology)"}),
            "acc_centred": (("lead",), acc_c, {"long_name": "centred anomaly correlation"}),
            "acc_below": ((), M.lead_below(acc, opts.acc_level, setup.dt),
                          {"long_name": f"first lead with ACC < {opts.acc_level}", "units": "model time"}),
            "acc_centred_below": ((), M.lead_below(acc_c, opts.acc_level, setup.dt),
                                  {"long_name": f"first lead with centred ACC < {opts.acc_level}",
                                   "units": "model time"}),
            "acc_variable": (("variable", "lead"), M.anomaly_correlation_by_variable(f, t, setup.climatology, groups)),
            "acc_parts": (("member", "start", "lead", "part"),
                          _acc_parts(f, t, setup.climatology).reshape(Ms, S, H, 3),
                          {"long_name": "per-forecast sums of the ACC: sum(fa*a), sum(fa^2), sum(a^2)"}),
            "error_median": (("lead",), np.median(err, axis=0),
                             {"long_name": "median of |forecast - truth| / climate scale"}),
            "error": (("member", "start", "lead"), err.reshape(Ms, S, H),
                      {"long_name": "|forecast - truth| / climate scale"}),
            "vpt": (("member", "start"), vpt, {"long_name": "valid prediction time (last valid time)",
                                               "units": "model time"}),
            "vpt_lyapunov": (("member", "start"), vpt * lam if lam_ok else nan_like,
                             {"long_name": "valid prediction time in Lyapunov times", "units": "1"}),
            "vpt_capped": (("member", "start"), capped,
                           {"long_name": "VPT capped at the reference integrators' agreement time"}),
            "vpt_censored": (("member", "start"), censored,
                             {"long_name": "the error stayed below the threshold over the whole horizon"}),
            "vpt_eps": (("threshold", "member", "start"), vpt_eps,
                        {"long_name": "valid prediction time at each epsilon", "units": "model time"}),
            "vpt_eps_lyapunov": (("threshold", "member", "start"), vpt_eps * lam if lam_ok
                                 else np.full_like(vpt_eps, np.nan),
                                 {"long_name": "valid prediction time at each epsilon in Lyapunov times"}),
            "vpt_eps_capped": (("threshold", "member", "start"), np.stack(caps[1:])),
            "sample_forecast": (("lead", "feature"), forecast[0, 0]),
        }
        if setup.stochastic:
            ens = runs.transpose(1, 0, 2, 3)  # (m, N, H, D)
            crps = M.crps_ensemble(ens, t).mean(axis=(0, 2))
            ratio = M.spread_error_ratio(ens, t, axis=(0, 2)) if members > 1 else np.full(H, np.nan)
            data["crps"] = (("lead",), crps, {"long_name": f"CRPS of {members} rollouts per forecast"})
            data["spread_error"] = (("lead",), ratio, {"long_name": "spread-error ratio (1: reliable)"})
        coords = setup.coords()
        if setup.long_rollout:
            first = setup.contexts.reshape(Ms, S, setup.context, D)[:, 0]
            with np.errstate(over="ignore", invalid="ignore"):
                long = _rollouts(emulator, first, setup.long_rollout, setup.batch_size, setup.device)  # (M, L, D)
            blowup = M.blowup_fraction(long, setup.climatology, setup.climate_scale, opts.blowup_bound)
            w1, finite = M.wasserstein_by_variable(long, setup.truth_series, groups)
            with np.errstate(over="ignore", invalid="ignore"):
                freqs, spec = mean_power_spectrum(long, setup.dt, groups, setup.nperseg)
            _, spec_true = mean_power_spectrum(setup.truth_series, setup.dt, groups, setup.nperseg)
            data.update({
                "wasserstein": (("variable",), w1, {"long_name": "Wasserstein-1 distance of the marginals"}),
                "long_rollout_finite": (("variable",), finite, {"long_name": "fraction of finite rollout values"}),
                "blowup": ((), blowup,
                           {"long_name": f"fraction of long rollouts that blow up (non-finite or "
                                         f"|x - climatology| > {opts.blowup_bound:g} sigma_clim)"}),
                "spectrum": (("variable", "frequency"), spec, {"long_name": "mean power spectrum of free rollouts"}),
                "spec_div": (("variable",), spectral_divergence(freqs, spec_true, spec, setup.spectrum_tail),
                             {"long_name": "spectral divergence on the high-frequency tail"}),
                "spec_res": (("variable",), spectral_residual(freqs, spec_true, spec),
                             {"long_name": "RMS difference of log10 power spectra", "units": "decades"}),
                "hist": (("variable", "bin"), _histograms(long, groups, setup.bin_edges),
                         {"long_name": "marginal density of free rollouts"}),
            })
            coords["frequency"] = ("frequency", freqs, {"units": "1/model time"})
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(setup.attrs())
        ds.attrs["learner"] = str(getattr(emulator, "learner_name", type(emulator).__name__))
        return ds
    finally:
        emulator.train(was_training)


def evaluate_emulator(emulator: AbstractEmulator, ds, test_members: Sequence, *, setup: EvalSetup | None = None,
                      **kwargs):
    """Score ``emulator`` on ``test_members`` of ``ds``: learner and truth variables in one ``xarray.Dataset``.

    ``kwargs`` go to :func:`prepare_evaluation` (``options``, ``train_members``,
    ``codec`` and any :class:`EvalOptions` field); pass a prepared ``setup`` to reuse it.
    """
    if setup is None:
        setup = prepare_evaluation(ds, test_members, codec=kwargs.pop("codec", getattr(emulator, "codec", None)),
                                   **kwargs)
    scores = score_emulator(emulator, setup)
    truth = setup.truth_dataset()
    return xr_merge(scores, truth)


def xr_merge(scores, truth):
    """Learner scores and truth variables in one dataset (the scores' attributes win)."""
    import xarray as xr

    out = xr.merge([scores, truth], compat="override", join="outer", combine_attrs="override")
    out.attrs.update(scores.attrs)
    return out
