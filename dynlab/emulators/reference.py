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
feeding ``system.observables`` the state indices ``0 … S−1``.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from simulators import AbstractIntegrator, AbstractSystem, make_integrator

from .base import AbstractEmulator
from .codec import StateCodec

__all__ = ["ReferenceEmulator", "codec_state_permutation", "state_variables", "features_from_state",
           "system_from_dataset", "integrator_from_dataset"]


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
        codec: the dataset's state codec; it must cover the whole state.

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``, ``step`` ``(B, D) -> (B, D)``.
    The system must be autonomous (time is restarted at 0 on each step).
    """

    trainable = False

    def __init__(self, system: AbstractSystem, integrator: AbstractIntegrator | str, dt: float,
                 steps_per_save: int, codec: StateCodec):
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
        super().__init__(codec.n_features)
        self.system = system
        self.integrator = integrator
        self.dt = float(dt)
        self.steps_per_save = steps_per_save
        self.codec = codec
        perm = codec_state_permutation(system, codec)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)

    @classmethod
    def from_dataset(cls, ds, codec: StateCodec | None = None,
                     integrator: AbstractIntegrator | str | None = None) -> "ReferenceEmulator":
        """The reference emulator of a dataset written by ``dynlab simulate``
        (its system, integrator, ``dt`` and save interval from the store attributes)."""
        system = system_from_dataset(ds)
        if integrator is None:
            integrator = integrator_from_dataset(ds)
        dt, save_every = ds.dynlab.dt, ds.dynlab.save_every
        if dt is None or save_every is None:
            raise ValueError("the dataset does not record its integration step (attribute 'dt')")
        codec = codec or StateCodec.from_dataset(ds, state_variables(system))
        return cls(system, integrator, dt, round(save_every / dt), codec)

    @property
    def save_interval(self) -> float:
        """Model time advanced by one emulator step."""
        return self.dt * self.steps_per_save

    def to_state(self, flat: torch.Tensor) -> torch.Tensor:
        """Codec vector ``(..., D)`` → system state ``(..., *state_shape)``."""
        return flat[..., self.inverse_perm].reshape(*flat.shape[:-1], *self.system.state_shape)

    def to_flat(self, state: torch.Tensor) -> torch.Tensor:
        """System state ``(..., *state_shape)`` → codec vector ``(..., D)``."""
        n = len(self.system.state_shape)
        return state.reshape(*state.shape[:state.ndim - n], -1)[..., self.perm]

    def advance(self, x: torch.Tensor) -> torch.Tensor:
        """Integrate codec states ``(N, D)`` over one save interval."""
        state = self.to_state(x)
        out = self.integrator.integrate(self.system, state, t0=0.0, dt=self.dt, n_steps=self.steps_per_save,
                                        save_every=self.steps_per_save)[-1]
        return self.to_flat(out)

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        B, L, D = x.shape
        return self.advance(x.reshape(B * L, D)).reshape(B, L, D)

    def initial_state(self, batch: int, device=None, dtype=None) -> None:
        return None

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if x_t.ndim != 2 or x_t.shape[-1] != self.n_features:
            raise ValueError(f"x_t must have shape (B, {self.n_features}), got {tuple(x_t.shape)}")
        return self.advance(x_t), None

    def extra_repr(self) -> str:
        return (f"system={self.system!r}, integrator={self.integrator!r}, dt={self.dt}, "
                f"steps_per_save={self.steps_per_save}")
