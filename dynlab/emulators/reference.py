r"""The reference simulator behind the Emulator interface: the perfect model.

:class:`ReferenceEmulator` integrates the true system over one save interval,

.. math::  \hat x_{t+1} = \Phi_{\Delta t}^{\,n}(x_t),

with the integrator's one-step map :math:`\Phi_{\Delta t}` applied ``n =
steps_per_save`` times. Applied to a dataset written by ``dynlab simulate`` with
the same integrator, ``dt`` and dtype, its one-step predictions reproduce the
stored next states bit for bit (a fixed-step integrator's output from a saved
state does not depend on the states before it), so every forecast metric is
checked against it: its RMSE is zero at every lead and its valid prediction time
is the whole horizon.

The codec's flat vector and the system's state are related by a permutation
(both list the same numbers, perhaps in another order); it is found once by
feeding ``system.observables`` the state indices ``0 … S−1``. A system whose
state holds more than its outputs (the 1-D EBM's accumulated heating) declares
the inverse of ``observables`` as ``state_from_observables(observed) -> state``
(:func:`state_from_features`), and is stepped through it.

A *time-dependent* system (``system.time_dependent``: seasonal insolation, a CO₂
ramp) is not restarted at t = 0 on each step: the emulator's recurrent state is
then a clock ``(B,)``, the model time of its input, starting at ``t0`` (the time
of the first context state). Forecasts from other start times need their own
``t0``; the numerical-model baselines, scored from many start times, refuse such
systems.

Numerical-model baselines (docs/baselines.md) are the same emulator with one
integration step per save interval: :func:`numerical_model` (Euler, Heun, RK4) and
:func:`imperfect_model` (RK4 with one parameter off by a relative error, or the
one-scale truncation of two-scale Lorenz96).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from simulators import AbstractFixedStepIntegrator, AbstractIntegrator, AbstractSystem, make_integrator, make_system

from .base import AbstractEmulator
from .codec import StateCodec

__all__ = ["ReferenceEmulator", "codec_state_permutation", "state_variables", "features_from_state",
           "state_from_features", "has_state_hook", "time_dependent",
           "system_from_dataset", "integrator_from_dataset", "numerical_model", "imperfect_system",
           "imperfect_model", "ForwardEuler", "Heun", "NUMERICAL_METHODS", "IMPERFECT_PARAMETER"]


def codec_state_permutation(system: AbstractSystem, codec: StateCodec) -> torch.Tensor:
    """Index ``perm`` ``(D,)`` with ``flat = state[..., perm]`` for the codec's flat vector.

    The system's observables must be a re-ordering of its state (true for every
    ODE system whose output variables are pieces of the state) and the codec must
    cover all of them. Raises ``ValueError`` otherwise, naming what is missing.
    """
    n_state = math.prod(system.state_shape)
    probe = torch.arange(n_state, dtype=torch.float64).reshape(system.state_shape)
    observed = system.observables(probe)
    parts = []
    for f in codec.fields:
        if f.name not in observed:
            raise ValueError(f"codec variable {f.name!r} is not an output of system {system.name!r}; "
                             f"it has {sorted(observed)}")
        values = observed[f.name]
        if tuple(values.shape) != tuple(f.shape):
            raise ValueError(f"codec variable {f.name!r} has shape {tuple(f.shape)} but system {system.name!r} "
                             f"gives {tuple(values.shape)}")
        parts.append(values.reshape(-1))
    flat = torch.cat(parts)
    perm = flat.round().to(torch.int64)
    if flat.numel() != n_state or not torch.equal(torch.sort(perm).values, torch.arange(n_state)) \
            or not torch.equal(perm.to(torch.float64), flat):
        raise ValueError(
            f"the codec's variables {codec.names} are not a re-ordering of the state of system {system.name!r} "
            f"(state size {n_state}, codec size {codec.n_features}); the reference emulator needs the whole state")
    return perm


def state_variables(system: AbstractSystem) -> list[str]:
    """The output variables of ``system`` that are pieces of its state (not derived ones such as
    an energy ``H``): those for which ``observables`` commutes with an elementwise affine map."""
    n_state = math.prod(system.state_shape)
    probe = torch.arange(n_state, dtype=torch.float64).reshape(system.state_shape)
    plain, mapped = system.observables(probe), system.observables(3.0 * probe + 0.25)
    return [v.name for v in system.variables
            if v.name in plain and torch.equal(mapped[v.name], 3.0 * plain[v.name] + 0.25)]


def features_from_state(system: AbstractSystem, codec: StateCodec, state: torch.Tensor) -> torch.Tensor:
    """The codec's flat vector ``(..., D)`` of states ``(..., *state_shape)``, derived variables included."""
    observed = system.observables(state)
    lead = state.shape[:state.ndim - len(system.state_shape)]
    missing = [f.name for f in codec.fields if f.name not in observed]
    if missing:
        raise ValueError(f"codec variables {missing} are not outputs of system {system.name!r}")
    return torch.cat([observed[f.name].reshape(*lead, f.size) for f in codec.fields], dim=-1)


def has_state_hook(system: AbstractSystem) -> bool:
    """Whether ``system`` declares ``state_from_observables`` (its state holds more than its outputs)."""
    return callable(getattr(system, "state_from_observables", None))


def time_dependent(system: AbstractSystem) -> bool:
    """Whether the tendency of ``system`` depends on model time over t ≥ 0 (``system.time_dependent``,
    False where the system does not say)."""
    return bool(getattr(system, "time_dependent", False))


def _codec_fields(codec: StateCodec, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Codec vectors ``(..., D)`` → ``{variable: (..., *shape)}``."""
    out, offset = {}, 0
    lead = flat.shape[:-1]
    for f in codec.fields:
        out[f.name] = flat[..., offset:offset + f.size].reshape(*lead, *f.shape)
        offset += f.size
    return out


def state_from_features(system: AbstractSystem, codec: StateCodec, flat: torch.Tensor) -> torch.Tensor:
    """Codec vectors ``(..., D)`` → system states ``(..., *state_shape)``: through
    ``system.state_from_observables`` where the system declares it (fields of the codec that
    are not among its state variables, e.g. a derived ``H``, are passed along and may be
    ignored), else by the inverse of :func:`codec_state_permutation`."""
    if not torch.is_tensor(flat) or flat.ndim < 1 or flat.shape[-1] != codec.n_features:
        raise ValueError(f"flat must be a tensor (..., {codec.n_features}), got "
                         f"{tuple(flat.shape) if torch.is_tensor(flat) else type(flat).__name__}")
    if has_state_hook(system):
        return system.state_from_observables(_codec_fields(codec, flat))
    inverse = torch.argsort(codec_state_permutation(system, codec)).to(flat.device)
    return flat[..., inverse].reshape(*flat.shape[:-1], *system.state_shape)


def system_from_dataset(ds) -> AbstractSystem:
    """Rebuild the system that wrote ``ds`` (``ds.dynlab.system``, from its stored config)."""
    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    return ds.dynlab.system


def integrator_from_dataset(ds) -> AbstractIntegrator:
    """Rebuild the integrator that wrote ``ds`` (``ds.dynlab.integrator``: ``auto`` resolved)."""
    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    return ds.dynlab.integrator


class ReferenceEmulator(AbstractEmulator):
    """The true system as an Emulator (no parameters, no state, not trainable).

    Args:
        system: the reference system (deterministic).
        integrator: the integrator; with the dataset's own one the predictions
            are the stored states.
        dt: the integration step (model time).
        steps_per_save: integration steps per saved interval, so one emulator
            step advances ``dt · steps_per_save`` in model time.
        codec: the dataset's state codec; it must cover the whole state, or the
            system must rebuild its state from it (``state_from_observables``).
        t0: model time of the first input (of the context), for a time-dependent
            system (module docstring); ignored otherwise.

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)`` (a time-dependent system: position
    ``l`` at time ``t0 + l·save_interval``), ``step`` ``(B, D) -> (B, D)``; the recurrent
    state is ``None``, or the clock ``(B,)`` (float64, one time for the whole batch) of a
    time-dependent system. An autonomous system restarts time at 0 on each step.
    """

    trainable = False

    def __init__(self, system: AbstractSystem, integrator: AbstractIntegrator | str, dt: float,
                 steps_per_save: int, codec: StateCodec, *, t0: float = 0.0):
        if not isinstance(system, AbstractSystem):
            raise ValueError(f"system must be a simulators system, got {type(system).__name__}")
        if system.is_stochastic:
            raise ValueError(f"system {system.name!r} is stochastic; "
                             "the reference emulator needs a deterministic system")
        if isinstance(integrator, str):
            integrator = make_integrator(integrator)
        integrator.check_system(system)
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        if isinstance(steps_per_save, bool) or not isinstance(steps_per_save, int) or steps_per_save < 1:
            raise ValueError(f"steps_per_save must be a positive integer, got {steps_per_save!r}")
        if isinstance(t0, bool) or not isinstance(t0, (int, float)) or not math.isfinite(t0):
            raise ValueError(f"t0 must be a finite number (model time), got {t0!r}")
        super().__init__(codec.n_features)
        self.system = system
        self.integrator = integrator
        self.dt = float(dt)
        self.steps_per_save = steps_per_save
        self.codec = codec
        self.t0 = float(t0)
        self.clocked = time_dependent(system)
        self.hooked = has_state_hook(system)
        if self.hooked:  # the system rebuilds its state from the codec's variables: check they round-trip
            probe = torch.zeros((1, codec.n_features), dtype=torch.float64)
            back = features_from_state(system, codec, state_from_features(system, codec, probe))
            if back.shape != probe.shape:
                raise ValueError(f"system {system.name!r} does not rebuild its state from the codec's "
                                 f"variables {codec.names}")
            perm = torch.arange(codec.n_features)
        else:
            perm = codec_state_permutation(system, codec)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)

    @classmethod
    def from_dataset(cls, ds, codec: StateCodec | None = None,
                     integrator: AbstractIntegrator | str | None = None, *,
                     t0: float | None = None, members: Any = None) -> "ReferenceEmulator":
        """The reference emulator of a dataset written by ``dynlab simulate``
        (its system, integrator, ``dt`` and save interval from the store attributes; the clock
        of a time-dependent system starts at ``t0``, default the store's first time).

        A store with parameters drawn per member (``system.randomize``, e.g. ``co2_multiple``)
        needs ``members``: the member ids, in batch order, that the emulator will step (their
        stored values are bound to the system, :meth:`bind`); without them the system runs at
        its configured value."""
        system = system_from_dataset(ds)
        drawn = dict(getattr(system.params, "randomize", None) or {})
        if drawn and members is not None:
            missing = [name for name in drawn if name not in ds.variables]
            if missing:
                raise ValueError(f"the store holds no per-member values of {missing}")
            system = system.bind({name: torch.as_tensor(ds[name].sel(member=list(members)).values,
                                                        dtype=torch.float64) for name in drawn})
        if integrator is None:
            integrator = integrator_from_dataset(ds)
        dt, save_every = ds.dynlab.dt, ds.dynlab.save_every
        if dt is None or save_every is None:
            raise ValueError("the dataset does not record its integration step (attribute 'dt')")
        codec = codec or StateCodec.from_dataset(ds, state_variables(system))
        if t0 is None:
            t0 = float(ds["time"].values[0]) if "time" in ds.coords and ds.sizes.get("time") else 0.0
        return cls(system, integrator, dt, round(save_every / dt), codec, t0=t0)

    @property
    def save_interval(self) -> float:
        """Model time advanced by one emulator step."""
        return self.dt * self.steps_per_save

    def to_state(self, flat: torch.Tensor) -> torch.Tensor:
        """Codec vector ``(..., D)`` → system state ``(..., *state_shape)``."""
        if self.hooked:
            return state_from_features(self.system, self.codec, flat)
        return flat[..., self.inverse_perm].reshape(*flat.shape[:-1], *self.system.state_shape)

    def to_flat(self, state: torch.Tensor) -> torch.Tensor:
        """System state ``(..., *state_shape)`` → codec vector ``(..., D)``."""
        if self.hooked:
            return features_from_state(self.system, self.codec, state)
        n = len(self.system.state_shape)
        return state.reshape(*state.shape[:state.ndim - n], -1)[..., self.perm]

    def advance(self, x: torch.Tensor, t: float = 0.0) -> torch.Tensor:
        """Integrate codec states ``(N, D)`` over one save interval from model time ``t``."""
        state = self.to_state(x)
        out = self.integrator.integrate(self.system, state, t0=float(t), dt=self.dt, n_steps=self.steps_per_save,
                                        save_every=self.steps_per_save)[-1]
        return self.to_flat(out)

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        B, L, D = x.shape
        if not self.clocked:
            return self.advance(x.reshape(B * L, D)).reshape(B, L, D)
        return torch.stack([self.advance(x[:, l], self.t0 + l * self.save_interval) for l in range(L)], dim=1)

    def initial_state(self, batch: int, device=None, dtype=None) -> torch.Tensor | None:
        if not self.clocked:
            return None
        return torch.full((batch,), self.t0, dtype=torch.float64, device=device)

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x_t.ndim != 2 or x_t.shape[-1] != self.n_features:
            raise ValueError(f"x_t must have shape (B, {self.n_features}), got {tuple(x_t.shape)}")
        if not self.clocked:
            return self.advance(x_t), None
        if not torch.is_tensor(state) or state.shape != (x_t.shape[0],):
            raise ValueError(f"the clock of a time-dependent system must be a tensor ({x_t.shape[0]},), "
                             f"got {state!r}")
        t = float(state[0])
        if not bool(torch.all(state == state[0])):
            raise ValueError("the batch's clocks differ; roll out members that start at one time together")
        return self.advance(x_t, t), state + self.save_interval

    def extra_repr(self) -> str:
        return (f"system={self.system!r}, integrator={self.integrator!r}, dt={self.dt}, "
                f"steps_per_save={self.steps_per_save}" + (f", t0={self.t0}" if self.clocked else ""))


# --- numerical-model baselines -------------------------------------------------------------

class ForwardEuler(AbstractFixedStepIntegrator):
    r"""Explicit Euler, :math:`x_{n+1} = x_n + h f(t_n, x_n)` (global error O(h)); a baseline, not registered."""

    name = "euler"

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"euler cannot integrate the stochastic system {system.name}")

    def step(self, system, t, x, dt, noise=None):
        return x + dt * system.vector_field(t, x)


class Heun(AbstractFixedStepIntegrator):
    r"""Heun's method (explicit trapezoid, RK2), :math:`k_1 = f(t, x)`, :math:`k_2 = f(t + h, x + h k_1)`,
    :math:`x_{n+1} = x_n + \tfrac h2 (k_1 + k_2)` (global error O(h²)); a baseline, not registered."""

    name = "heun"

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"heun cannot integrate the stochastic system {system.name}")

    def step(self, system, t, x, dt, noise=None):
        k1 = system.vector_field(t, x)
        k2 = system.vector_field(t + dt, x + dt * k1)
        return x + (0.5 * dt) * (k1 + k2)


#: explicit one-step methods of the numerical-model baselines
NUMERICAL_METHODS: dict[str, Callable[[], AbstractIntegrator]] = {
    "euler": ForwardEuler,
    "heun": Heun,
    "rk4": lambda: make_integrator("rk4"),
}

#: the parameter the imperfect model gets wrong, per system (docs/baselines.md)
IMPERFECT_PARAMETER: dict[str, str] = {
    "lorenz96": "F",
    "lorenz96_two_scale": "F",
    "lorenz63": "rho",
    "mass_spring": "k",
    "pendulum": "g",
    "double_pendulum": "g",
    "kepler": "G",
    "n_body": "G",
    "three_body": "G",
    "ebm_1d": "B",
    "slab_ocean_0d": "feedback",
}


def numerical_model(system: AbstractSystem, method: str, save_interval: float, codec: StateCodec) -> ReferenceEmulator:
    """The equations of ``system`` stepped once per save interval with ``method``
    (``euler``, ``heun``, ``rk4``): a :class:`ReferenceEmulator` with ``steps_per_save = 1``."""
    if method not in NUMERICAL_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(sorted(NUMERICAL_METHODS))}")
    if time_dependent(system):
        raise ValueError(f"system {system.name!r} depends on model time (seasons or a CO2 path): a numerical "
                         "model scored from many forecast start times would need each start's time")
    return ReferenceEmulator(system, NUMERICAL_METHODS[method](), save_interval, 1, codec)


def imperfect_system(system: AbstractSystem, error: float, codec: StateCodec | None = None,
                     parameter: str | None = None) -> tuple[AbstractSystem, str]:
    r"""The imperfect model of ``system``: its parameter ``p`` (default from
    :data:`IMPERFECT_PARAMETER`) replaced by :math:`p\,(1 + \text{error})`.

    Two-scale Lorenz96 evaluated on X only (``codec`` without ``Y``) becomes the one-scale
    Lorenz96 with the same K and F (the truncated model; ``error`` is not applied). Returns
    ``(system, description)``.
    """
    if isinstance(error, bool) or not isinstance(error, (int, float)) or not math.isfinite(error) or error <= -1:
        raise ValueError(f"error must be a finite number > -1 (a relative error), got {error!r}")
    params = system.params.as_dict()
    if system.name == "lorenz96_two_scale" and codec is not None and "Y" not in codec.names:
        truncated = make_system("lorenz96", K=params["K"], F=params["F"])
        return truncated, f"one-scale lorenz96 (K={params['K']}, F={params['F']:g}): the Y coupling dropped"
    name = parameter or IMPERFECT_PARAMETER.get(system.name)
    if name is None:
        raise ValueError(f"no imperfect-model parameter is set for system {system.name!r}; "
                         f"known systems: {', '.join(sorted(IMPERFECT_PARAMETER))}")
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"system {system.name!r} has no numeric parameter {name!r}")
    params[name] = float(value) * (1.0 + float(error))
    return make_system(system.name, **params), f"{name} = {params[name]:.6g} ({100 * error:+g} %)"


def imperfect_model(system: AbstractSystem, save_interval: float, codec: StateCodec, error: float = 0.01,
                    parameter: str | None = None) -> ReferenceEmulator:
    """RK4 at the save interval on :func:`imperfect_system` (``error = 0`` gives exactly the
    reference RK4 at the save interval)."""
    wrong, description = imperfect_system(system, error, codec, parameter)
    em = numerical_model(wrong, "rk4", save_interval, codec)
    em.description = description
    return em
