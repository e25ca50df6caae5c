r"""Physics checks per family: what an emulator must respect besides forecast skill.

Every check rolls the emulator out, decodes its flat feature vectors into the
system's state (:func:`states_from_features`, the inverse of the codec
permutation of :mod:`dynlab.emulators.reference`) and evaluates quantities the
*system itself* defines on those states.

**Hamiltonian systems** (:func:`hamiltonian_metrics`). With :math:`I(t)` an
invariant the system declares (``system.invariants``: ``energy`` H; total
``momentum`` and ``angular_momentum`` for Kepler and n-body):

* drift slope :math:`b`, the least-squares slope of :math:`I(t) − I(0)` on
  :math:`t` (model time), and the bounded-oscillation amplitude
  :math:`\max_t |r_t|` of the residual :math:`r_t = I(t) − a − b t` of that fit
  (the amplitude about the detrended mean); both also relative to :math:`|I(0)|`.
  A symplectic integrator has :math:`b ≈ 0` and a small bounded amplitude
  (Hairer, Lubich & Wanner 2006, *Geometric Numerical Integration*, ch. IX); a
  dissipative map has :math:`b < 0`.
* the HNN energy-MSE (Greydanus, Dzamba & Yosinski 2019, "Hamiltonian Neural
  Networks"): :math:`\frac1T\sum_t (H(x_t) − H(\hat x_t))^2` along the true
  trajectory :math:`x_t` and the prediction :math:`\hat x_t` from the same start.

The reference row (:func:`symplectic_reference`) is the true system stepped
with a symplectic integrator (``leapfrog`` or ``yoshida4`` from the simulators'
registry) once per save interval.

**Climate models** (slab ocean; :data:`GLOBAL_TEMPERATURE` names the systems).
With global-mean temperature :math:`T` and heat content :math:`H = C\,T`
(J m⁻², :math:`C` the system's ``heat_capacity``):

* energy budget (:func:`energy_budget`): the residual
  :math:`R = H(t_n) − H(t_0) − s_{yr}\int_{t_0}^{t_n} N_{toa}\,dt` (J m⁻²), with
  :math:`N_{toa}` computed by ``system.diagnostics`` on the emulator's states and
  integrated by the trapezoid rule over the saved times (years; :math:`s_{yr}`
  seconds per year); reported also as the mean residual flux
  :math:`R / (s_{yr}(t_n − t_0))` (W m⁻²). A conserving emulator has :math:`R ≈ 0`
  up to the trapezoid error; ACE2-SOM's failure after abrupt 4×CO₂ is a nonzero R
  (Clark et al. 2024; Watt-Meyer et al. 2024).
* effective climate sensitivity by Gregory regression (Gregory et al. 2004,
  GRL 31, L03205) after an abrupt CO₂ step (:func:`gregory_regression`): the
  emulator's own net heating :math:`\hat N_{n+½} = (H_{n+1} − H_n)/(s_{yr} Δt)`
  regressed on :math:`ΔT_{n+½} = (T_n + T_{n+1})/2 − T_0`, :math:`\hat N = a + bΔT`;
  the warming where :math:`\hat N = 0` is :math:`−a/b` and, with a logarithmic
  forcing, the per-doubling value is :math:`−a/b \cdot \ln 2/\ln k` for a step to
  :math:`k` times the reference CO₂.
* adjustment e-folding time (:func:`adjustment_time`): :math:`τ = −1/β` from the
  least-squares fit :math:`\ln|T_{eq} − T(t)| = α + βt`, with :math:`T_{eq}` the
  mean over the last ``tail`` of the rollout (exact for a discrete exponential).
* equilibrium warming at fixed CO₂ multiples (:func:`equilibrium_warming`): the
  tail mean of a rollout from the base state, against a reference run of the true
  system at the same level.
* transient climate response (:func:`transient_response`) under a compound ramp of
  rate r from t = 0: the mean warming over the ``TCR_WINDOW`` (20 yr) centred on the
  doubling time :math:`t_{2×} = \ln 2/\ln(1 + r)` (69.7 yr at 1 %/yr).

**Reference row.** :func:`climate_report` rolls the store's
:class:`~dynlab.emulators.reference.ReferenceEmulator` out beside the emulators (the 1-D
EBM through its ``state_from_observables`` hook, with a clock for the seasons and CO₂
ramps), so every number has the true system's value next to it: the budget residual of
the reference is the floor set by the trapezoid rule at the save interval (seasons and
ice edges make :math:`N_{toa}` rough), the emulator's must be near it.

**Seasonal cycle.** With seasonal insolation (``ebm_1d``, ``insolation=seasonal``)
global-mean T and N swing by several K and tens of W m⁻² within a year, a loop that
biases a regression on sub-annual saves (ECS 5.44 K and τ 1.94 yr instead of 5.16 K and
0.85 yr on the default abrupt-4× EBM). The response is therefore computed from annual
means (:func:`cycle_saves`, :func:`annual_means`); the base temperature is the control
climate's annual mean, a one-year run of the reference held at 1× from the first state
(:func:`control_temperature`). A rollout that blows up has infinite budget residuals and
reports ``finite_years``, the time it stayed finite (the physics table used to be NaN).

**Levels outside the training range.** On a store with a CO₂ level per member,
:func:`physics_checks` gives :func:`equilibrium_table`: equilibrium warming at fixed
multiples (default 2.5× and 8×) against the reference held at them, with the store's
range of levels and the levels outside it in the attributes, e.g.::

    dynlab run system=slab_ocean_0d system.scenario=constant \
        '+system.randomize={co2_multiple:[1,4]}' time.t_end=100 learner=linear ...
    dynlab run system=ebm_1d system.scenario=abrupt '+system.randomize={co2_multiple:[1,4]}' ...

An emulator without forcing inputs cannot be told the level; its one equilibrium then
misses the others (an emulator with forcing inputs is not run here: its forcing is not
built from the store).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from simulators import AbstractSystem, make_integrator, make_system

from ..emulators.base import AbstractEmulator
from ..emulators.codec import FieldSpec, StateCodec
from ..emulators.reference import ReferenceEmulator, has_state_hook, state_from_features, state_variables

__all__ = ["system_codec", "states_from_features", "rollout_states", "invariant_of",
           "linear_drift", "conserved_invariants",
           "invariant_series", "hamiltonian_metrics", "symplectic_reference", "SYMPLECTIC_INTEGRATORS",
           "GLOBAL_TEMPERATURE", "global_temperature", "heat_content", "energy_budget", "gregory_regression",
           "adjustment_time", "climate_response", "with_co2_multiple", "equilibrium_warming",
           "reference_run", "hamiltonian_report", "climate_report", "physics_checks", "cycle_saves", "annual_means",
           "budget_from_states", "response_from_states", "transient_response", "TCR_WINDOW", "held_reference",
           "control_temperature", "equilibrium_table"]

#: the symplectic integrators of the reference row (names in the simulators' registry)
SYMPLECTIC_INTEGRATORS = ("leapfrog", "yoshida4")

def _seconds_per_year() -> float:
    from simulators.climate.common import SECONDS_PER_YEAR as s

    return float(s)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_steps(steps: Any, least: int = 1) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < least:
        raise ValueError(f"steps must be an integer >= {least}, got {steps!r}")
    return steps


# --- codec <-> state ---------------------------------------------------------------------------

def system_codec(system: AbstractSystem) -> StateCodec:
    """The codec of the state variables of ``system`` (no dataset needed): one field per
    :func:`~dynlab.emulators.reference.state_variables` entry, dims from its declared dims."""
    if not isinstance(system, AbstractSystem):
        raise ValueError(f"system must be a simulators system, got {type(system).__name__}")
    names = state_variables(system)
    sizes = system.dim_sizes if hasattr(system, "dim_sizes") else {}
    probe = system.observables(torch.zeros(system.state_shape, dtype=torch.float64))
    fields = []
    for v in system.variables:
        if v.name not in names:
            continue
        dims = tuple(d for d in v.dims if d not in ("member", "time"))
        shape = tuple(probe[v.name].shape)
        if len(dims) != len(shape) or any(sizes.get(d, s) != s for d, s in zip(dims, shape)):
            dims = tuple(f"{v.name}_dim{i}" for i in range(len(shape)))
        fields.append(FieldSpec(v.name, dims, shape))
    return StateCodec(tuple(fields))


def states_from_features(system: AbstractSystem, codec: StateCodec, flat: torch.Tensor) -> torch.Tensor:
    """Codec vectors ``(..., D)`` → system states ``(..., *state_shape)``; the codec must cover
    the whole state, or the system must rebuild it (``state_from_observables``, e.g. the 1-D
    EBM's accumulated heating restarted at 0; :func:`~dynlab.emulators.reference.state_from_features`).
    Raises ``ValueError`` naming what is missing; derived outputs in the codec (a Hamiltonian
    store's ``H``) are ignored."""
    if not torch.is_tensor(flat) or flat.ndim < 1 or flat.shape[-1] != codec.n_features:
        raise ValueError(f"flat must be a tensor (..., {codec.n_features}), got "
                         f"{tuple(flat.shape) if torch.is_tensor(flat) else type(flat).__name__}")
    if has_state_hook(system):
        return state_from_features(system, codec, flat)
    plain = state_variables(system)
    if any(f.name not in plain for f in codec.fields):  # derived outputs (e.g. H) beside the state: drop them
        keep, offset = [], 0
        for f in codec.fields:
            if f.name in plain:
                keep.extend(range(offset, offset + f.size))
            offset += f.size
        codec = StateCodec(tuple(f for f in codec.fields if f.name in plain), codec.coords)
        flat = flat[..., torch.tensor(keep, dtype=torch.int64, device=flat.device)]
    return state_from_features(system, codec, flat)


def rollout_states(emulator: AbstractEmulator, system: AbstractSystem, codec: StateCodec, context: torch.Tensor,
                   steps: int, forcing: torch.Tensor | None = None) -> torch.Tensor:
    """Roll ``emulator`` out ``steps`` steps from ``context`` ``(B, C, D)`` and decode the path
    (last context state first): states ``(B, 1 + steps, *state_shape)``."""
    if not isinstance(emulator, AbstractEmulator):
        raise ValueError(f"emulator must be an AbstractEmulator, got {type(emulator).__name__}")
    if not torch.is_tensor(context) or context.ndim != 3 or context.shape[-1] != codec.n_features:
        raise ValueError(f"context must have shape (B, C, {codec.n_features}), got "
                         f"{tuple(context.shape) if torch.is_tensor(context) else type(context).__name__}")
    steps = _check_steps(steps)
    with torch.no_grad():
        forecast = emulator.rollout(context, steps, forcing)
    path = torch.cat((context[:, -1:], forecast.to(context.dtype)), dim=1)
    return states_from_features(system, codec, path)


# --- Hamiltonian -------------------------------------------------------------------------------

def invariant_of(system: AbstractSystem, codec: StateCodec, name: str = "energy", component: int | None = None
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The system's invariant ``name`` as a function of codec vectors ``(..., D) -> (...)``, for
    :func:`dynlab.testing.assert_conserves`; a vector invariant needs its ``component``."""
    probe = system.invariants(torch.zeros((1, *system.state_shape), dtype=torch.float64))
    if name not in probe:
        raise ValueError(f"system {system.name!r} declares no invariant {name!r}; it has {sorted(probe)}")
    vector = probe[name].ndim > 1
    if vector and component is None:
        raise ValueError(f"invariant {name!r} of {system.name!r} is a vector; pass component "
                         f"(0 … {probe[name].shape[-1] - 1})")

    def invariant(flat: torch.Tensor) -> torch.Tensor:
        value = system.invariants(states_from_features(system, codec, flat))[name]
        return value[..., component] if vector else value

    return invariant


def linear_drift(values: Any, times: Any) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares drift of ``values`` ``(N, T)`` over ``times`` ``(T,)``: the slope ``b`` of
    :math:`I_t − I_0 = a + b t` and the amplitude :math:`\\max_t |I_t − a − b t − I_0|` of the
    detrended residual, each ``(N,)``. Non-finite values give ``inf``."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if v.ndim != 2 or t.ndim != 1 or v.shape[1] != t.shape[0] or t.shape[0] < 2:
        raise ValueError(f"values must be (N, T) and times (T,) with T >= 2, got {v.shape} and {t.shape}")
    if not np.all(np.isfinite(t)) or np.ptp(t) == 0:
        raise ValueError("times must be finite and not all equal")
    y = v - v[:, :1]
    tc = t - t.mean()
    with np.errstate(invalid="ignore", over="ignore"):
        slope = (y - y.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
        resid = y - y.mean(axis=1, keepdims=True) - slope[:, None] * tc[None]
        amplitude = np.max(np.abs(resid), axis=1)
    bad = ~np.all(np.isfinite(v), axis=1)
    slope = np.where(bad, np.inf, slope)
    amplitude = np.where(bad, np.inf, amplitude)
    return slope, amplitude


def conserved_invariants(system: AbstractSystem) -> list[str]:
    """Names of the conserved quantities ``system.invariants`` declares (its ``*_tendency``
    entries are rates, not invariants; ``energy`` is left out for a system with friction)."""
    probe = torch.zeros((1, *system.state_shape), dtype=torch.float64)
    names = [n for n in system.invariants(probe) if not n.endswith("_tendency")]
    if getattr(system, "has_friction", False):
        names = [n for n in names if n != "energy"]
    return names


def invariant_series(system: AbstractSystem, states: torch.Tensor, names: Sequence[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """Each invariant along states ``(B, T, *state_shape)``: ``name -> (B, T, k)`` (k = 1 for a
    scalar, the components for a vector such as 3-D angular momentum)."""
    n_state = len(system.state_shape)
    if not torch.is_tensor(states) or states.ndim != 2 + n_state:
        raise ValueError(f"states must have shape (B, T, {', '.join(map(str, system.state_shape))})")
    values = system.invariants(states)
    names = conserved_invariants(system) if names is None else list(names)
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"system {system.name!r} declares no invariant {missing}; it has {sorted(values)}")
    B, T = states.shape[:2]
    return {n: values[n].detach().cpu().double().reshape(B, T, -1).numpy() for n in names}


def _drift_rows(series: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
    """Slope/amplitude of the component with the largest |slope|, absolute and relative to ‖I₀‖."""
    B, T, k = series.shape
    slopes, amps = zip(*(linear_drift(series[..., j], times) for j in range(k)))
    slopes, amps = np.stack(slopes, axis=1), np.stack(amps, axis=1)
    worst = np.argmax(np.abs(np.nan_to_num(slopes, nan=np.inf)), axis=1)
    slope = slopes[np.arange(B), worst]
    amplitude = np.max(amps, axis=1)
    scale = np.linalg.norm(series[:, 0], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_slope = np.where(scale > 0, slope / scale, np.nan)
        rel_amp = np.where(scale > 0, amplitude / scale, np.nan)
    return {"drift_slope": slope, "oscillation": amplitude, "drift_slope_relative": rel_slope,
            "oscillation_relative": rel_amp}


def hamiltonian_metrics(emulator: AbstractEmulator, system: AbstractSystem, codec: StateCodec, truth: torch.Tensor,
                        *, save_interval: float, context: int = 1, forcing: torch.Tensor | None = None
                        ) -> dict[str, np.ndarray]:
    """Conservation metrics of ``emulator`` along the true trajectories ``truth`` ``(B, T, D)``
    (codec vectors at spacing ``save_interval``): it is warmed up on ``truth[:, :context]`` and
    rolled out ``T − context`` steps.

    Returns ``(B,)`` arrays: for every conserved invariant ``I`` of the system
    (:func:`conserved_invariants`) ``I_drift_slope`` (per unit model time), ``I_oscillation``,
    ``I_drift_slope_relative``, ``I_oscillation_relative`` (to ``|I(0)|``, NaN where it is 0;
    for a vector invariant the component with the largest slope), and ``energy_mse`` (HNN: mean
    over the rolled-out steps of :math:`(H − \\hat H)^2`) when
    the system declares ``energy``.
    """
    save_interval = _check_positive("save_interval", save_interval)
    if not torch.is_tensor(truth) or truth.ndim != 3 or truth.shape[-1] != codec.n_features:
        raise ValueError(f"truth must have shape (B, T, {codec.n_features}), got "
                         f"{tuple(truth.shape) if torch.is_tensor(truth) else type(truth).__name__}")
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context < truth.shape[1] - 1:
        raise ValueError(f"context must be an integer in [1, {truth.shape[1] - 2}], got {context!r}")
    steps = truth.shape[1] - context
    predicted = rollout_states(emulator, system, codec, truth[:, :context], steps, forcing)
    true_states = states_from_features(system, codec, truth[:, context - 1:])
    times = save_interval * np.arange(steps + 1)
    out: dict[str, np.ndarray] = {}
    pred_series = invariant_series(system, predicted)
    for name, series in pred_series.items():
        for key, value in _drift_rows(series, times).items():
            out[f"{name}_{key}"] = value
    if "energy" in system.invariants(predicted[:, :1]):  # also with friction: H along both paths
        h_true = invariant_series(system, true_states, ["energy"])["energy"][:, 1:, 0]
        h_pred = invariant_series(system, predicted, ["energy"])["energy"][:, 1:, 0]
        with np.errstate(over="ignore", invalid="ignore"):
            mse = np.mean((h_true - h_pred) ** 2, axis=1)
        out["energy_mse"] = np.where(np.isfinite(mse), mse, np.inf)
    return out


def symplectic_reference(system: AbstractSystem, codec: StateCodec, save_interval: float,
                         integrator: str = "yoshida4", substeps: int = 1) -> ReferenceEmulator:
    """The reference row: the true system stepped by the symplectic ``integrator``
    (:data:`SYMPLECTIC_INTEGRATORS`) ``substeps`` times per save interval."""
    if integrator not in SYMPLECTIC_INTEGRATORS:
        raise ValueError(f"integrator must be one of {', '.join(SYMPLECTIC_INTEGRATORS)}, got {integrator!r}")
    save_interval = _check_positive("save_interval", save_interval)
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    return ReferenceEmulator(system, make_integrator(integrator), save_interval / substeps, substeps, codec)


# --- climate -----------------------------------------------------------------------------------

#: global-mean temperature of states ``(..., *state_shape)``, per climate system
GLOBAL_TEMPERATURE: dict[str, Callable[[AbstractSystem, torch.Tensor], torch.Tensor]] = {
    "slab_ocean_0d": lambda system, x: x[..., 0],
    "ebm_1d": lambda system, x: system.global_mean(x[..., :-1]),
}


def global_temperature(system: AbstractSystem, states: torch.Tensor) -> torch.Tensor:
    """Global-mean temperature ``(...)`` of states ``(..., *state_shape)`` (K or °C)."""
    if system.name not in GLOBAL_TEMPERATURE:
        raise ValueError(f"no climate checks for system {system.name!r}; "
                         f"known: {', '.join(sorted(GLOBAL_TEMPERATURE))}")
    return GLOBAL_TEMPERATURE[system.name](system, states)


def heat_content(system: AbstractSystem, states: torch.Tensor) -> torch.Tensor:
    """Global heat content :math:`C\\,T_{global}` (J m⁻²) of states ``(..., *state_shape)``."""
    return system.heat_capacity * global_temperature(system, states)


def _trapezoid(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.sum(0.5 * (y[:, 1:] + y[:, :-1]) * np.diff(t)[None], axis=1)


def cycle_saves(system: AbstractSystem, save_interval: float) -> int:
    """Saves per year over which a seasonal cycle is averaged: :math:`n = 1/Δt` for a system
    with seasonal insolation (``ebm_1d`` with ``insolation=seasonal``), 1 otherwise (and for
    :math:`Δt ≥ 1` yr, where every save falls on one phase). Raises where Δt does not divide a year."""
    save_interval = _check_positive("save_interval", save_interval)
    if getattr(system.params, "insolation", None) != "seasonal" or save_interval >= 1.0:
        return 1
    n = round(1.0 / save_interval)
    if abs(n * save_interval - 1.0) > 1e-6:
        raise ValueError(f"save_interval={save_interval!r} yr does not divide a year: the seasonal cycle of "
                         f"{system.name!r} cannot be averaged over whole years")
    return n


def annual_means(x: Any, n: int) -> np.ndarray:
    """Means of ``x`` ``(B, T)`` over consecutive blocks of ``n`` saves (whole years from the
    first save): ``(B, T // n)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or isinstance(n, bool) or not isinstance(n, int) or n < 1 or a.shape[1] < n:
        raise ValueError(f"x must be (B, T) with T >= n and n a positive integer, got {a.shape} and n={n!r}")
    k = a.shape[1] // n
    return a[:, :k * n].reshape(a.shape[0], k, n).mean(axis=2)


def _finite_years(states: torch.Tensor, times: np.ndarray) -> np.ndarray:
    """Model time from the first state to the last one before the first non-finite state ``(B,)``."""
    ok = torch.isfinite(states.reshape(*states.shape[:2], -1)).all(-1).cpu().numpy()  # (B, T)
    first_bad = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))
    return times[np.maximum(first_bad - 1, 0)] - times[0]


def _check_states(system: AbstractSystem, states: Any) -> None:
    n = len(system.state_shape)
    if not torch.is_tensor(states) or states.ndim != 2 + n or tuple(states.shape[2:]) != tuple(system.state_shape) \
            or states.shape[1] < 2:
        raise ValueError(f"states must have shape (B, T >= 2, {', '.join(map(str, system.state_shape))}), got "
                         f"{tuple(states.shape) if torch.is_tensor(states) else type(states).__name__}")


def budget_from_states(system: AbstractSystem, states: torch.Tensor, times: Any) -> dict[str, np.ndarray]:
    """The energy budget of states ``(B, T, *state_shape)`` at ``times`` ``(T,)`` (years): the dict
    of :func:`energy_budget`; a row with non-finite states (a blow-up) has infinite residuals."""
    t = np.asarray(times, dtype=np.float64)
    _check_states(system, states)
    if t.shape != (states.shape[1],) or not np.all(np.diff(t) > 0):
        raise ValueError(f"times must be ({states.shape[1]},) increasing, got shape {t.shape}")
    N = system.diagnostics(torch.as_tensor(t), states)["N_toa"].detach().cpu().double().numpy()
    H = heat_content(system, states).detach().cpu().double().numpy()
    s = _seconds_per_year()
    with np.errstate(all="ignore"):
        toa = s * _trapezoid(N, t)
        heat = H[:, -1] - H[:, 0]
        residual = heat - toa
        relative = residual / (s * _trapezoid(np.abs(N), t))
        flux = residual / (s * (t[-1] - t[0]))
    bad = ~np.isfinite(residual)
    inf = np.where(bad, np.inf, 0.0)
    return {"heat_change": heat, "toa_integral": toa, "residual": np.where(bad, np.inf, residual),
            "residual_flux": np.where(bad, inf, flux), "residual_relative": np.where(bad, inf, relative)}


def energy_budget(emulator: AbstractEmulator, system: AbstractSystem, codec: StateCodec, context: torch.Tensor,
                  steps: int, save_interval: float, *, t0: float = 0.0,
                  forcing: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The global energy budget of a rollout (see the module docstring), ``(B,)`` arrays:
    ``heat_change`` and ``toa_integral`` (J m⁻²), ``residual`` = their difference (J m⁻²),
    ``residual_flux`` (W m⁻², the residual over the duration) and ``residual_relative``
    (to :math:`s_{yr}\\int |N| dt`); ``inf`` for a rollout that blows up. ``system`` must be
    configured with the CO₂ the emulator sees (its ``diagnostics`` give :math:`N_{toa}` at times
    ``t0 + n·save_interval``: the seasonal insolation of the 1-D EBM at the right phase)."""
    save_interval = _check_positive("save_interval", save_interval)
    states = rollout_states(emulator, system, codec, context, steps, forcing)
    return budget_from_states(system, states, t0 + save_interval * np.arange(steps + 1))


def gregory_regression(temperature: Any, heat: Any, times: Any, *, co2_multiple: float = 4.0,
                       base: Any = None) -> dict[str, np.ndarray]:
    """Gregory regression of the implied net heating on warming (module docstring):
    ``temperature`` ``(B, T)`` (global mean), ``heat`` ``(B, T)`` (J m⁻²), ``times`` ``(T,)``
    (years), ``base`` ``(B,)`` the temperature before the step (default ``temperature[:, 0]``,
    the base state; annual means of a seasonal model need the control climate's annual mean).
    Returns ``(B,)`` arrays ``intercept`` (W m⁻², the effective forcing), ``slope``
    (W m⁻² K⁻¹, the feedback), ``ecs`` (K, warming where the heating vanishes, for this step)
    and ``ecs_2x`` (:math:`\\text{ecs}\\cdot\\ln 2/\\ln k`)."""
    T = np.asarray(temperature, dtype=np.float64)
    H = np.asarray(heat, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if T.ndim != 2 or T.shape != H.shape or t.shape != (T.shape[1],) or T.shape[1] < 3:
        raise ValueError(f"temperature and heat must be (B, T >= 3) and times (T,), "
                         f"got {T.shape}, {H.shape}, {t.shape}")
    k = _check_positive("co2_multiple", co2_multiple)
    if k == 1:
        raise ValueError("co2_multiple must differ from 1 (a CO2 step)")
    T0 = T[:, 0] if base is None else np.asarray(base, dtype=np.float64).reshape(-1)
    if T0.shape != (T.shape[0],):
        raise ValueError(f"base must have shape ({T.shape[0]},), got {np.shape(base)}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        N = np.diff(H, axis=1) / (_seconds_per_year() * np.diff(t)[None])
        dT = 0.5 * (T[:, 1:] + T[:, :-1]) - T0[:, None]
        xc = dT - dT.mean(axis=1, keepdims=True)
        slope = np.sum(xc * (N - N.mean(axis=1, keepdims=True)), axis=1) / np.sum(xc * xc, axis=1)
        intercept = N.mean(axis=1) - slope * dT.mean(axis=1)
        ecs = -intercept / slope
    return {"intercept": intercept, "slope": slope, "ecs": ecs, "ecs_2x": ecs * math.log(2.0) / math.log(k)}


def adjustment_time(temperature: Any, times: Any, *, tail: float = 0.2, floor: float = 1e-2) -> np.ndarray:
    """E-folding time ``(B,)`` of the approach to equilibrium of ``temperature`` ``(B, T)`` at
    ``times`` ``(T,)``: :math:`τ = −1/β` of :math:`\\ln|T_{eq} − T| = α + βt`, over the points
    with :math:`|T_{eq} − T| > ` ``floor`` :math:`\\cdot|T_{eq} − T_0|` before the first one
    below it; :math:`T_{eq}` is the mean over the last ``tail`` fraction. NaN where fewer than
    3 points are left (equilibrium within 3 saves) or the row is not finite."""
    T = np.asarray(temperature, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if T.ndim != 2 or t.shape != (T.shape[1],) or T.shape[1] < 5:
        raise ValueError(f"temperature must be (B, T >= 5) and times (T,), got {T.shape} and {t.shape}")
    if not 0 < tail < 1 or not 0 < floor < 1:
        raise ValueError(f"tail and floor must be in (0, 1), got tail={tail!r}, floor={floor!r}")
    n_tail = max(1, int(round(tail * T.shape[1])))
    taus = []
    for row in T:
        eq = row[-n_tail:].mean()
        gap = np.abs(eq - row)
        if not np.all(np.isfinite(row)) or gap[0] == 0:
            taus.append(np.nan)
            continue
        below = np.nonzero(gap <= floor * gap[0])[0]
        end = below[0] if below.size else len(row) - n_tail
        if end < 3:
            taus.append(np.nan)
            continue
        beta = np.polyfit(t[:end], np.log(gap[:end]), 1)[0]
        taus.append(-1.0 / beta if beta < 0 else np.inf)
    return np.asarray(taus)


#: years of the window centred on the doubling time over which the transient response is averaged
TCR_WINDOW = 20.0


def transient_response(temperature: Any, times: Any, base: Any, *, rate: float = 0.01,
                       window: float = TCR_WINDOW) -> np.ndarray:
    """Transient climate response ``(B,)`` (K) under a compound CO₂ ramp of ``rate`` per year
    from t = 0: the mean of ``temperature`` ``(B, T)`` at ``times`` ``(T,)`` (years) over the
    ``window`` centred on the doubling time :math:`t_{2×} = \\ln 2/\\ln(1 + r)` (69.7 yr at
    1 %/yr), minus ``base`` ``(B,)`` (the temperature before the ramp)."""
    T = np.asarray(temperature, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    rate = _check_positive("rate", rate)
    window = _check_positive("window", window)
    if T.ndim != 2 or t.shape != (T.shape[1],):
        raise ValueError(f"temperature must be (B, T) and times (T,), got {T.shape} and {t.shape}")
    t2x = math.log(2.0) / math.log1p(rate)
    inside = (t >= t2x - window / 2) & (t <= t2x + window / 2)
    if t[-1] < t2x + window / 2 or inside.sum() < 2:
        raise ValueError(f"the run must reach the doubling time {t2x:.1f} yr plus half the window ({window:g} yr), "
                         f"got times up to {t[-1]:.4g} yr")
    b = np.asarray(base, dtype=np.float64).reshape(-1)
    if b.shape != (T.shape[0],):
        raise ValueError(f"base must have shape ({T.shape[0]},), got {np.shape(base)}")
    return T[:, inside].mean(axis=1) - b


def _series(system: AbstractSystem, states: torch.Tensor, save_interval: float, t0: float = 0.0):
    """Global-mean temperature and heat content ``(B, T')`` and times ``(T',)`` of states, as
    annual means for a seasonal model (:func:`cycle_saves`), with the saves per year."""
    T = global_temperature(system, states).detach().cpu().double().numpy()
    H = heat_content(system, states).detach().cpu().double().numpy()
    t = t0 + save_interval * np.arange(T.shape[1])
    n = cycle_saves(system, save_interval)
    if n > 1:
        T, H, t = annual_means(T, n), annual_means(H, n), annual_means(t[None], n)[0]
    return T, H, t, n


def response_from_states(system: AbstractSystem, states: torch.Tensor, save_interval: float, *,
                         co2_multiple: float = 4.0, base: Any = None) -> dict[str, np.ndarray]:
    """Response to an abrupt CO₂ step of states ``(B, 1 + steps, *state_shape)`` (the first the
    base state): the dict of :func:`climate_response`. A seasonal model is averaged over whole
    years first and needs ``base`` ``(B,)``, the control climate's annual mean
    (:func:`control_temperature`)."""
    _check_states(system, states)
    T, H, t, n = _series(system, states, _check_positive("save_interval", save_interval))
    if n > 1 and base is None:
        raise ValueError(f"{system.name!r} has a seasonal cycle: pass base, the control climate's annual-mean "
                         "temperature (control_temperature)")
    if T.shape[1] < 5:
        raise ValueError(f"the response needs at least 5 {'years' if n > 1 else 'saves'}, got {T.shape[1]}")
    b = T[:, 0] if base is None else np.asarray(base, dtype=np.float64).reshape(-1)
    out = gregory_regression(T, H, t, co2_multiple=co2_multiple, base=b)
    out["tau"] = adjustment_time(T, t)
    n_tail = max(1, int(round(0.2 * T.shape[1])))
    out["warming"] = T[:, -n_tail:].mean(axis=1) - b
    out["finite_years"] = _finite_years(states, save_interval * np.arange(states.shape[1]))
    return out


def climate_response(emulator: AbstractEmulator, system: AbstractSystem, codec: StateCodec, context: torch.Tensor,
                     steps: int, save_interval: float, *, co2_multiple: float = 4.0,
                     forcing: torch.Tensor | None = None, base: Any = None) -> dict[str, np.ndarray]:
    """Response of ``emulator`` to a CO₂ step (an abrupt ``co2_multiple``×; the emulator and
    ``system`` carry the raised CO₂, ``context`` ends at the base state): Gregory regression
    (:func:`gregory_regression`), the adjustment time ``tau`` (years), the final warming
    ``warming`` (K, tail mean minus base) and ``finite_years`` (the time before a blow-up; the
    whole run if none). ``base``: see :func:`response_from_states`."""
    save_interval = _check_positive("save_interval", save_interval)
    states = rollout_states(emulator, system, codec, context, steps, forcing)
    return response_from_states(system, states, save_interval, co2_multiple=co2_multiple, base=base)


def with_co2_multiple(system: AbstractSystem, multiple: float, scenario: str = "constant") -> AbstractSystem:
    """A copy of the climate ``system`` held at ``multiple`` × its reference CO₂
    (``scenario`` ``constant`` or ``abrupt``; no per-member draw)."""
    multiple = _check_positive("multiple", multiple)
    if scenario not in ("constant", "abrupt"):
        raise ValueError(f"scenario must be 'constant' or 'abrupt', got {scenario!r}")
    params = system.params.as_dict()
    if "co2_multiple" not in params:
        raise ValueError(f"system {system.name!r} has no CO2 level (parameter co2_multiple)")
    params.update(scenario=scenario, co2_multiple=multiple, randomize=None)
    return make_system(system.name, **params)


def held_reference(reference: ReferenceEmulator, multiple: float) -> ReferenceEmulator:
    """``reference`` (its integrator, step and clock) with its system held at ``multiple`` × the
    reference CO₂ (:func:`with_co2_multiple`, ``constant``)."""
    if not isinstance(reference, ReferenceEmulator):
        raise ValueError(f"reference must be a ReferenceEmulator, got {type(reference).__name__}")
    return ReferenceEmulator(with_co2_multiple(reference.system, multiple), reference.integrator, reference.dt,
                             reference.steps_per_save, reference.codec, t0=reference.t0)


def control_temperature(reference: ReferenceEmulator, start: torch.Tensor, years: int = 1) -> np.ndarray:
    """Annual-mean global temperature ``(B,)`` of the control climate: ``reference`` held at the
    reference CO₂ (:func:`held_reference`) run ``years`` whole years from codec states ``start``
    ``(B, D)`` at its ``t0``, averaged over them (for a model without a seasonal cycle the mean
    of the states at the saves of those years)."""
    if isinstance(years, bool) or not isinstance(years, int) or years < 1:
        raise ValueError(f"years must be a positive integer, got {years!r}")
    if not torch.is_tensor(start) or start.ndim != 2 or start.shape[-1] != reference.n_features:
        raise ValueError(f"start must have shape (B, {reference.n_features}), got "
                         f"{tuple(start.shape) if torch.is_tensor(start) else type(start).__name__}")
    control = held_reference(reference, 1.0)
    n = max(1, round(years / control.save_interval))
    with torch.no_grad():
        path = torch.cat((start[:, None], control.rollout(start[:, None], n - 1)), dim=1) if n > 1 else start[:, None]
    states = states_from_features(control.system, control.codec, path)
    return global_temperature(control.system, states).detach().cpu().double().numpy().mean(axis=1)


def reference_run(system: AbstractSystem, x0: torch.Tensor, steps: int, save_interval: float,
                  substeps: int = 10, integrator: str | None = None) -> torch.Tensor:
    """The true system from states ``x0`` ``(B, *state_shape)`` with its default integrator
    (or ``integrator``) at ``save_interval / substeps``: states ``(B, 1 + steps, *state_shape)``."""
    save_interval = _check_positive("save_interval", save_interval)
    steps = _check_steps(steps)
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    solver = make_integrator(integrator or system.default_integrator)
    solver.check_system(system)
    saved = solver.integrate(system, x0, t0=0.0, dt=save_interval / substeps, n_steps=steps * substeps,
                             save_every=substeps)
    return torch.cat((x0[:, None], saved.movedim(0, 1)), dim=1)


def _tail_mean(T: np.ndarray, tail: float) -> np.ndarray:
    n_tail = max(1, int(round(tail * T.shape[1])))
    return T[:, -n_tail:].mean(axis=1)


def equilibrium_warming(emulator_at: Callable[[float], AbstractEmulator], system: AbstractSystem,
                        codec: StateCodec, multiples: Sequence[float], base: torch.Tensor, steps: int,
                        save_interval: float, *, tail: float = 0.2,
                        forcing_at: Callable[[float, int], torch.Tensor] | None = None,
                        substeps: int = 10, reference: ReferenceEmulator | None = None) -> dict[str, np.ndarray]:
    """Equilibrium warming at fixed CO₂ ``multiples`` ``(K,)``: the emulator for each level
    (``emulator_at(k)``, fed ``forcing_at(k, 1 + steps)`` ``(B, 1 + steps, F)`` if given) rolled
    out ``steps`` steps from the base codec state ``base`` ``(B, D)``, against the true system
    held at that level: ``reference`` (a :class:`ReferenceEmulator`, e.g. the store's, whose
    integrator, step and clock are kept; :func:`held_reference`) or else :func:`reference_run`
    at ``save_interval / substeps``. Warming = tail mean (annual means for a seasonal model)
    minus the base: the control climate's annual mean (:func:`control_temperature`) for a
    seasonal model, the base state otherwise. Returns ``multiple`` ``(K,)``, ``emulator`` and
    ``reference`` ``(K, B)`` (K) and ``error`` ``(K, B)``."""
    if not multiples:
        raise ValueError("multiples must name at least one CO2 multiple")
    if not 0 < tail < 1:
        raise ValueError(f"tail must be in (0, 1), got {tail!r}")
    if not torch.is_tensor(base) or base.ndim != 2 or base.shape[-1] != codec.n_features:
        raise ValueError(f"base must have shape (B, {codec.n_features})")
    steps = _check_steps(steps, 2)
    n = cycle_saves(system, save_interval)
    if n > 1 and reference is None:
        raise ValueError(f"{system.name!r} has a seasonal cycle: pass reference (a ReferenceEmulator) for the "
                         "control climate")
    T0 = control_temperature(reference, base) if n > 1 else None
    em_rows, ref_rows = [], []
    for k in multiples:
        held = with_co2_multiple(system, k)
        forcing = forcing_at(k, 1 + steps) if forcing_at is not None else None
        states = rollout_states(emulator_at(k), held, codec, base[:, None], steps, forcing)
        if reference is not None:
            ref_em = held_reference(reference, k)
            ref = rollout_states(ref_em, ref_em.system, codec, base[:, None], steps)
        else:
            ref = reference_run(held, states_from_features(held, codec, base), steps, save_interval, substeps)
        T = _series(held, states, save_interval)[0]
        R = _series(held, ref, save_interval)[0]
        em_rows.append(_tail_mean(T, tail) - (T[:, 0] if T0 is None else T0))
        ref_rows.append(_tail_mean(R, tail) - (R[:, 0] if T0 is None else T0))
    em, ref = np.stack(em_rows), np.stack(ref_rows)
    return {"multiple": np.asarray(multiples, dtype=np.float64), "emulator": em, "reference": ref,
            "error": em - ref}


# --- tables for metrics.zarr ---------------------------------------------------------------------

def hamiltonian_report(emulators: Mapping[str, AbstractEmulator], system: AbstractSystem, codec: StateCodec,
                       truth: torch.Tensor, *, save_interval: float, context: int = 1,
                       symplectic: str | None = "yoshida4"):
    """:func:`hamiltonian_metrics` of every emulator as an ``xarray.Dataset`` on
    ``(learner, trajectory)``; with ``symplectic`` the true system stepped by that integrator
    once per save interval is the first row, ``reference:<integrator>``."""
    import xarray as xr

    rows: dict[str, AbstractEmulator] = {}
    if symplectic is not None:
        rows[f"reference:{symplectic}"] = symplectic_reference(system, codec, save_interval, symplectic)
    rows.update(emulators)
    if not rows:
        raise ValueError("emulators must name at least one emulator (or pass symplectic)")
    metrics = {name: hamiltonian_metrics(em, system, codec, truth, save_interval=save_interval, context=context)
               for name, em in rows.items()}
    keys = list(next(iter(metrics.values())))
    return xr.Dataset({k: (("learner", "trajectory"), np.stack([metrics[n][k] for n in rows])) for k in keys},
                      coords={"learner": list(rows)},
                      attrs={"system": system.name, "save_interval": float(save_interval)})


def _ramp_rate(system: AbstractSystem) -> float | None:
    """The yearly rate of a compound CO₂ ramp starting at t = 0, else None."""
    from simulators.climate.scenarios import CompoundRampCO2

    s = getattr(system, "scenario", None)
    return float(s.rate) if isinstance(s, CompoundRampCO2) and s.onset == 0.0 else None


def _is_step(system: AbstractSystem) -> bool:
    """An abrupt CO₂ step at or before t = 0 (the Gregory regression's experiment)."""
    from simulators.climate.scenarios import AbruptCO2

    s = getattr(system, "scenario", None)
    return isinstance(s, AbruptCO2) and s.onset <= 0.0


def climate_report(emulators: Mapping[str, AbstractEmulator], system: AbstractSystem, codec: StateCodec,
                   context: torch.Tensor, steps: int, save_interval: float, *, co2_multiple: float = 4.0,
                   reference: ReferenceEmulator | None = None, base: Any = None):
    """Energy budget (:func:`budget_from_states`) of every emulator's rollout from ``context``
    (each carrying ``system``'s CO₂ path) and its response as an ``xarray.Dataset`` on
    ``(learner, trajectory)``: after an abrupt step (``co2_multiple``×) the Gregory sensitivity,
    adjustment time and warming (:func:`response_from_states`); under a compound ramp from t = 0
    the transient response ``tcr`` (:func:`transient_response`, if the run reaches it). With
    ``reference`` (the true system as a :class:`ReferenceEmulator`) its rollout is the first
    row, ``reference:<integrator>``, and gives the control climate (``base``) of a seasonal model."""
    import xarray as xr

    rows: dict[str, AbstractEmulator] = {}
    if reference is not None:
        rows[f"reference:{reference.integrator.name}"] = reference
    rows.update(emulators)
    if not rows:
        raise ValueError("emulators must name at least one emulator (or pass reference)")
    steps = _check_steps(steps, 4)
    save_interval = _check_positive("save_interval", save_interval)
    n = cycle_saves(system, save_interval)
    rate = _ramp_rate(system)
    if base is None and reference is not None and (n > 1 or rate is not None):
        base = control_temperature(reference, context[:, -1])
    times = save_interval * np.arange(steps + 1)
    metrics = {}
    for name, em in rows.items():
        states = rollout_states(em, system, codec, context, steps)
        out = {f"budget_{k}": v for k, v in budget_from_states(system, states, times).items()}
        if rate is not None:
            T, _, t, _ = _series(system, states, save_interval)
            b = T[:, 0] if base is None else base
            if t[-1] >= math.log(2.0) / math.log1p(rate) + TCR_WINDOW / 2:
                out["tcr"] = transient_response(T, t, b, rate=rate)
            out["finite_years"] = _finite_years(states, times)
        elif _is_step(system) and co2_multiple != 1:
            out.update(response_from_states(system, states, save_interval, co2_multiple=co2_multiple, base=base))
        else:
            out["finite_years"] = _finite_years(states, times)
        metrics[name] = out
    keys = list(next(iter(metrics.values())))
    return xr.Dataset({k: (("learner", "trajectory"), np.stack([metrics[r][k] for r in rows])) for k in keys},
                      coords={"learner": list(rows)},
                      attrs={"system": system.name, "save_interval": float(save_interval),
                             "co2_multiple": float(co2_multiple), "annual_means": int(n > 1)})


def physics_checks(emulators: Mapping[str, AbstractEmulator], ds, test_members: Sequence, codec: StateCodec,
                   *, symplectic: str | None = "yoshida4", multiples: Sequence[float] = (2.5, 8.0)):
    """The family's physics checks of ``emulators`` on the test members of a ``dynlab simulate``
    store ``ds``: ``(dataset, reason)``, the dataset ``None`` with the reason where none apply.

    * Hamiltonian systems: :func:`hamiltonian_report` along the stored trajectories (truth =
      the store, warm-up on its first state), with the symplectic reference row;
    * climate systems (:data:`GLOBAL_TEMPERATURE`): :func:`climate_report` of a rollout as long
      as the store from each member's first state under the store's scenario (Gregory and
      adjustment time for a CO₂ step at t = 0, the transient response for a ramp from t = 0),
      with the store's :class:`ReferenceEmulator` as the first row; a store with a CO₂ level
      per member (``system.randomize``): :func:`equilibrium_table` at ``multiples``.
    Emulators with forcing inputs are not run here (their forcing is not built from the store).
    """
    from simulators.hamiltonian import AbstractHamiltonianSystem

    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    if not emulators:
        raise ValueError("emulators must name at least one emulator")
    system, save_interval = ds.dynlab.system, ds.dynlab.save_every
    if save_interval is None:
        raise ValueError("the dataset does not record its save interval (attribute save_every or a time axis)")
    if any(getattr(em, "n_forcing", 0) for em in emulators.values()):
        return None, "an emulator takes forcing inputs; physics checks need its forcing (not built here)"
    truth = torch.as_tensor(codec.encode(ds.sel(member=list(test_members))))
    if isinstance(system, AbstractHamiltonianSystem):
        report = hamiltonian_report(emulators, system, codec, truth, save_interval=save_interval,
                                    symplectic=symplectic if not system.has_friction else None)
        return report, ""
    if system.name in GLOBAL_TEMPERATURE:
        try:
            reference = ReferenceEmulator.from_dataset(ds, codec=codec)
            note = ""
        except ValueError as err:
            reference, note = None, f"no reference row: {err}"
        if system.params.randomize:
            if reference is None:
                return None, f"per-member CO2 levels need the store's reference emulator ({note})"
            return equilibrium_table(emulators, ds, test_members, codec, reference, multiples), ""
        t_end = float(ds["time"].values[-1])
        multiple = system.scenario.co2(t_end) / system.params.co2_reference  # the level the run reaches
        if multiple == 1.0:
            return None, "CO2 at its reference level: no step or ramp to respond to"
        report = climate_report(emulators, system, codec, truth[:, :1], truth.shape[1] - 1, save_interval,
                                co2_multiple=multiple, reference=reference)
        report.attrs["scenario"] = str(system.params.scenario)
        if note:
            report.attrs["note"] = note
        return report, ""
    return None, f"no physics checks for system {system.name!r}"


def _key(k: float) -> str:
    return f"{k:g}x"


def equilibrium_table(emulators: Mapping[str, AbstractEmulator], ds, test_members: Sequence, codec: StateCodec,
                      reference: ReferenceEmulator, multiples: Sequence[float] = (2.5, 8.0), *, tail: float = 0.2):
    """Equilibrium warming at fixed CO₂ ``multiples`` on a store with a CO₂ level per member
    (``system.randomize={co2_multiple: [a, b]}``): every emulator and ``reference`` (the store's
    :class:`ReferenceEmulator`, held at each level by :func:`held_reference`) rolled out as
    long as the store from the test members' first states. Per level ``k`` the dataset on
    ``(learner, trajectory)`` holds ``equilibrium_warming_<k>x``, the tail mean (annual means
    for a seasonal model) minus the reference's tail mean held at 1× from the same state (its
    control equilibrium), and ``equilibrium_error_<k>x``, the emulator's tail mean minus the
    reference's at ``k``. Attributes: ``training_range`` (the members' levels, from the store's
    ``co2_multiple`` or its ``randomize`` bounds) and ``outside`` (levels outside it).

    An emulator without forcing inputs cannot be told the level: its one rollout stands for
    every ``k``, so it can match at most one of them (the check then says so)."""
    import xarray as xr

    if not multiples or any(_check_positive("multiple", k) <= 0 for k in multiples):
        raise ValueError(f"multiples must be CO2 multiples > 0, got {multiples!r}")
    system, save_interval = reference.system, reference.save_interval
    truth = torch.as_tensor(codec.encode(ds.sel(member=list(test_members))))
    steps = _check_steps(truth.shape[1] - 1, 4)
    start = truth[:, :1]

    def tail_mean(em: AbstractEmulator, held: AbstractSystem) -> np.ndarray:
        return _tail_mean(_series(held, rollout_states(em, held, codec, start, steps), save_interval)[0], tail)

    control = tail_mean(held_reference(reference, 1.0), with_co2_multiple(system, 1.0))
    ref_name = f"reference:{reference.integrator.name}"
    ref_eq = {}
    for k in multiples:
        held = held_reference(reference, k)
        ref_eq[k] = tail_mean(held, held.system)
    data: dict[str, list] = {}
    for name in [ref_name, *emulators]:
        shared = None if name == ref_name else tail_mean(emulators[name], with_co2_multiple(system, 1.0))
        for k in multiples:
            eq = ref_eq[k] if shared is None else shared
            data.setdefault(f"equilibrium_warming_{_key(k)}", []).append(eq - control)
            data.setdefault(f"equilibrium_error_{_key(k)}", []).append(eq - ref_eq[k])
    if "co2_multiple" in ds.variables:
        levels = np.asarray(ds["co2_multiple"].values, dtype=np.float64)
        low, high = float(levels.min()), float(levels.max())
    else:
        low, high = (float(v) for v in system.params.randomize["co2_multiple"])
    outside = [float(k) for k in multiples if not low <= k <= high]
    return xr.Dataset({k: (("learner", "trajectory"), np.stack(v)) for k, v in data.items()},
                      coords={"learner": [ref_name, *emulators]},
                      attrs={"system": system.name, "save_interval": float(save_interval),
                             "multiples": [float(k) for k in multiples], "training_range": [low, high],
                             "outside": outside, "annual_means": int(cycle_saves(system, save_interval) > 1)})
