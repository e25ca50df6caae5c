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
``rmse[lead]``, ``rmse_variable[variable, lead]``, ``acc[lead]``,
``acc_variable[variable, lead]``, ``error_median[lead]`` (median normalised error),
``vpt[member, start]`` (model time, capped at the agreement horizon),
``vpt_lyapunov[member, start]`` (λ₁·vpt; NaN without λ₁), ``vpt_capped``,
``vpt_censored``, ``wasserstein[variable]``, ``long_rollout_finite[variable]``,
``spectrum[variable, frequency]``, ``spec_div[variable]``, ``spec_res[variable]``,
``hist[variable, bin]`` (density), ``sample_forecast[lead, feature]``.
Truth side: ``reference_agreement_time[member, start]``, ``agreement_censored``,
``spectrum_truth``, ``hist_truth``, ``bin_edges[variable, edge]``,
``sample_truth[lead, feature]``, ``climatology[feature]``; attributes ``dt``,
``lambda1``, ``lyapunov_time``, ``climate_scale``, ``threshold``, ``context``,
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
from . import metrics as M
from .spectra import mean_power_spectrum, spectral_divergence, spectral_residual

__all__ = ["EvalSetup", "prepare_evaluation", "score_emulator", "evaluate_emulator", "forecast_windows",
           "emulator_dtype"]


@dataclass
class EvalSetup:
    """Everything on the truth side of an evaluation (built by :func:`prepare_evaluation`).

    Arrays: ``contexts`` ``(M·S, C, D)``, ``truth`` ``(M, S, H, D)``,
    ``truth_series`` ``(M, T, D)`` (the test members' whole trajectories),
    ``climatology`` ``(D,)``, ``agreement_time`` ``(M, S)``.
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
        ds = xr.Dataset(
            {
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
                "climate_scale": self.climate_scale, "lambda1": lam,
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


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def forecast_windows(n_times: int, context: int, horizon: int, starts_per_member: int) -> np.ndarray:
    """Start indices ``s`` (evenly spread) with ``s + context + horizon <= n_times``."""
    last = n_times - context - horizon
    if last < 0:
        raise ValueError(f"context + horizon = {context} + {horizon} = {context + horizon} exceeds the "
                         f"{n_times} saved times of a member")
    return np.unique(np.round(np.linspace(0, last, starts_per_member)).astype(int))


def _encode(codec: StateCodec, ds, members: Sequence) -> np.ndarray:
    return codec.encode(ds.sel(member=list(members))).astype(np.float64)


def prepare_evaluation(ds, test_members: Sequence, *, codec: StateCodec | None = None, context: int = 10,
                       horizon: int = 100, starts_per_member: int = 4, long_rollout: int = 1000,
                       train_members: Sequence | None = None, threshold: float = M.VPT_THRESHOLD,
                       lyapunov: str | bool = "auto", lyapunov_time: float = 50.0,
                       lyapunov_transient: float = 5.0, lambda1: float | None = None,
                       agreement: bool = True, agreement_rtol: float = 1e-9, agreement_atol: float = 1e-11,
                       spectrum_nperseg: int = 256, spectrum_tail: float = 0.5, bins: int = 50,
                       climatology_members: int = 64, batch_size: int = 256, device: str = "cpu") -> EvalSetup:
    """Build the truth side of an evaluation on ``test_members`` of ``ds``.

    Args:
        ds: a dataset opened with :func:`dynlab.open_dataset` (or any dataset on
            ``(member, time, ...)``; without the ``dynlab_config`` attribute the
            reference scales are skipped).
        test_members: member coordinate values to forecast.
        codec: the emulator's codec (default: every variable of ``ds``).
        context, horizon: context length C and forecast steps H.
        starts_per_member: forecasts per member S.
        long_rollout: steps of each free rollout for the climate scores (0 skips them).
        train_members: members for the climatology and σ_clim (default: every
            member not in ``test_members``; the test members if there is none);
            the first ``climatology_members`` of them are read.
        lyapunov: ``"auto"`` (λ₁ unless the system is a fast-scale one, see
            :data:`~dynlab.eval.reference.FAST_SCALE_SYSTEMS`), True or False.
        lambda1: use this λ₁ instead of computing it.
        agreement: compute the RK4/Dormand–Prince agreement horizon and cap VPT there.
    """
    context = _positive_int(context, "context")
    horizon = _positive_int(horizon, "horizon")
    starts_per_member = _positive_int(starts_per_member, "starts_per_member")
    long_rollout = _positive_int(long_rollout, "long_rollout", 0)
    batch_size = _positive_int(batch_size, "batch_size")
    climatology_members = _positive_int(climatology_members, "climatology_members")
    bins = _positive_int(bins, "bins", 2)
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
    if lyapunov not in ("auto", True, False):
        raise ValueError(f"lyapunov must be 'auto', true or false, got {lyapunov!r}")
    codec = codec or StateCodec.from_dataset(ds)
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
        train_members = [m for m in all_members if m not in set(test_members)] or test_members
        if train_members is test_members:
            notes.append("no training members: climatology from the test members")
    train_members = list(train_members)
    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    dt = ds.dynlab.save_every or 1.0

    series = _encode(codec, ds, test_members)  # (M, T, D)
    T = series.shape[1]
    starts = forecast_windows(T, context, horizon, starts_per_member)
    idx = starts[:, None] + np.arange(context + horizon)[None, :]  # (S, C + H)
    windows = series[:, idx]  # (M, S, C + H, D)
    train = _encode(codec, ds, train_members[:climatology_members])
    climatology = train.reshape(-1, train.shape[-1]).mean(0)
    scale = M.climate_scale(train)
    if not scale > 0:
        raise ValueError("the training data has zero variance; the valid prediction time is undefined")
    nperseg = min(int(spectrum_nperseg), T, long_rollout) if long_rollout else min(int(spectrum_nperseg), T)
    lo = np.array([np.nanmin(series[..., sl]) for sl in M.variable_groups(codec).values()])
    hi = np.array([np.nanmax(series[..., sl]) for sl in M.variable_groups(codec).values()])
    pad = 0.1 * np.maximum(hi - lo, 1e-12)
    edges = np.stack([np.linspace(a - p, b + p, bins + 1) for a, b, p in zip(lo, hi, pad)])
    setup = EvalSetup(codec=codec, dt=dt, context=context, horizon=horizon, members=np.asarray(test_members),
                      starts=starts, contexts=windows[:, :, :context].reshape(-1, context, codec.n_features),
                      truth=windows[:, :, context:], truth_series=series, climatology=climatology,
                      climate_scale=scale, threshold=float(threshold), long_rollout=long_rollout,
                      nperseg=max(4, nperseg), spectrum_tail=float(spectrum_tail), bin_edges=edges,
                      notes=notes, batch_size=batch_size, device=str(device))
    _reference_scales(setup, ds, lyapunov, lyapunov_time, lyapunov_transient, lambda1, agreement,
                      agreement_rtol, agreement_atol, train_members)
    return setup


def _reference_scales(setup: EvalSetup, ds, lyapunov, lyapunov_time, lyapunov_transient, lambda1, agreement,
                      rtol, atol, train_members) -> None:
    """Fill λ₁ and the agreement horizon from the dataset's system, where it has one."""
    from ..emulators.reference import (codec_state_permutation, features_from_state, state_variables,
                                       system_from_dataset)
    from .reference import FAST_SCALE_SYSTEMS, leading_lyapunov_exponent, reference_agreement_time

    if lambda1 is not None:
        setup.lambda1 = float(lambda1)
    system = None
    if (lyapunov is not False and lambda1 is None) or agreement:
        try:
            system = system_from_dataset(ds)
        except (ValueError, KeyError, TypeError) as err:
            setup.notes.append(f"no reference system ({err}); VPT uncapped, no Lyapunov times")
            return
        if system.is_stochastic:
            setup.notes.append(f"system {system.name} is stochastic: VPT uncapped, no Lyapunov times")
            return
    if system is None:
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
    if lambda1 is None and (lyapunov is True or (lyapunov == "auto" and system.name not in FAST_SCALE_SYSTEMS)):
        x0 = states(train_members[:4], [0])[:, 0]
        setup.lambda1 = leading_lyapunov_exponent(system, x0, dt=int_dt, time=lyapunov_time,
                                                  transient_time=lyapunov_transient)
    elif lambda1 is None:
        setup.notes.append(f"{system.name}: lambda1 is set by fast variables; VPT in model time only")
    if agreement:
        steps_per_save = round(setup.dt / int_dt)
        x0 = states(setup.members, list(setup.starts + setup.context - 1)).reshape(-1, *system.state_shape)

        def to_features(s: torch.Tensor) -> torch.Tensor:
            return features_from_state(system, setup.codec, s)

        times, censored, _ = reference_agreement_time(system, x0, dt=int_dt, steps_per_save=steps_per_save,
                                                      horizon=setup.horizon, scale=setup.climate_scale,
                                                      to_features=to_features, threshold=setup.threshold,
                                                      rtol=rtol, atol=atol)
        shape = (len(setup.members), len(setup.starts))
        setup.agreement_time, setup.agreement_censored = times.reshape(shape), censored.reshape(shape)


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


def score_emulator(emulator: AbstractEmulator, setup: EvalSetup):
    """The learner-side scores of ``emulator`` on ``setup`` (module docstring) as an ``xarray.Dataset``."""
    import xarray as xr

    if not isinstance(emulator, AbstractEmulator):
        raise ValueError(f"emulator must be an AbstractEmulator, got {type(emulator).__name__}")
    if emulator.n_features != setup.codec.n_features:
        raise ValueError(f"the emulator has {emulator.n_features} features but the codec has {setup.codec.n_features}")
    was_training = emulator.training
    emulator.eval()
    emulator.to(setup.device)
    try:
        Ms, S, H, D = setup.truth.shape
        forecast = _rollouts(emulator, setup.contexts, H, setup.batch_size, setup.device).reshape(Ms, S, H, D)
        f, t = forecast.reshape(-1, H, D), setup.truth.reshape(-1, H, D)
        groups = setup.groups
        err = M.normalized_error(f, t, setup.climate_scale)  # (N, H)
        vpt, censored = M.first_exceedance_time(err, setup.threshold, setup.dt)
        vpt, censored = vpt.reshape(Ms, S), censored.reshape(Ms, S)
        capped = np.zeros_like(censored)
        if setup.agreement_time is not None:
            capped = vpt > setup.agreement_time
            vpt = np.minimum(vpt, setup.agreement_time)
        lam = setup.lambda1
        data = {
            "rmse": (("lead",), M.rmse_by_lead(f, t), {"long_name": "root-mean-square error"}),
            "rmse_variable": (("variable", "lead"), M.rmse_by_lead_and_variable(f, t, groups)),
            "acc": (("lead",), M.anomaly_correlation(f, t, setup.climatology),
                    {"long_name": "anomaly correlation (w.r.t. the training climatology)"}),
            "acc_variable": (("variable", "lead"), M.anomaly_correlation_by_variable(f, t, setup.climatology, groups)),
            "error_median": (("lead",), np.median(err, axis=0),
                             {"long_name": "median of |forecast - truth| / climate scale"}),
            "vpt": (("member", "start"), vpt, {"long_name": "valid prediction time", "units": "model time"}),
            "vpt_lyapunov": (("member", "start"), vpt * lam if math.isfinite(lam) else np.full_like(vpt, np.nan),
                             {"long_name": "valid prediction time in Lyapunov times", "units": "1"}),
            "vpt_capped": (("member", "start"), capped,
                           {"long_name": "VPT capped at the reference integrators' agreement time"}),
            "vpt_censored": (("member", "start"), censored,
                             {"long_name": "the error stayed below the threshold over the whole horizon"}),
            "sample_forecast": (("lead", "feature"), forecast[0, 0]),
        }
        coords = setup.coords()
        if setup.long_rollout:
            first = setup.contexts.reshape(Ms, S, setup.context, D)[:, 0]
            long = _rollouts(emulator, first, setup.long_rollout, setup.batch_size, setup.device)  # (M, L, D)
            w1, finite = M.wasserstein_by_variable(long, setup.truth_series, groups)
            freqs, spec = mean_power_spectrum(long, setup.dt, groups, setup.nperseg)
            _, spec_true = mean_power_spectrum(setup.truth_series, setup.dt, groups, setup.nperseg)
            data.update({
                "wasserstein": (("variable",), w1, {"long_name": "Wasserstein-1 distance of the marginals"}),
                "long_rollout_finite": (("variable",), finite, {"long_name": "fraction of finite rollout values"}),
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


def evaluate_emulator(emulator: AbstractEmulator, ds, test_members: Sequence, *, context: int = 10,
                      horizon: int = 100, setup: EvalSetup | None = None, **kwargs):
    """Score ``emulator`` on ``test_members`` of ``ds``: learner and truth variables in one ``xarray.Dataset``.

    ``kwargs`` go to :func:`prepare_evaluation` (``starts_per_member``,
    ``long_rollout``, ``train_members``, ``lyapunov``, ``agreement``, ...);
    pass a prepared ``setup`` to reuse it.
    """
    if setup is None:
        setup = prepare_evaluation(ds, test_members, codec=kwargs.pop("codec", getattr(emulator, "codec", None)),
                                   context=context, horizon=horizon, **kwargs)
    scores = score_emulator(emulator, setup)
    truth = setup.truth_dataset()
    return xr_merge(scores, truth)


def xr_merge(scores, truth):
    """Learner scores and truth variables in one dataset (the scores' attributes win)."""
    import xarray as xr

    out = xr.merge([scores, truth], compat="override", join="outer", combine_attrs="override")
    out.attrs.update(scores.attrs)
    return out
