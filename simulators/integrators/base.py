"""Integrator interface and registry.

An integrator advances a batched state ``x`` of shape ``(*batch, *state_shape)``
under a system's vector field and returns the states at every
``save_every``-th step. Integrators are chosen by name from :data:`INTEGRATORS`.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

if TYPE_CHECKING:  # type-only: systems and the driver import the integrators, not the reverse
    from ..core import AbstractSystem
    from ..random import CounterRNG

__all__ = ["AbstractIntegrator", "AbstractFixedStepIntegrator", "INTEGRATORS",
           "register_integrator", "make_integrator"]

ProgressCallback = Callable[[int], None]


class AbstractIntegrator(ABC):
    """Advances states under ``system`` and saves every ``save_every`` steps."""

    name: ClassVar[str]
    #: True when each member's result is independent of the other members in
    #: the batch (bit for bit), so blocks of any size may be computed at once.
    batch_independent: ClassVar[bool] = True
    #: True when the integrator draws noise (needs an ``rng``).
    stochastic: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """The settings that change the result (they enter a dataset's identity)."""
        return {}

    def check_system(self, system: AbstractSystem) -> None:
        """Refuse a system this integrator cannot integrate (``ValueError``)."""

    @abstractmethod
    def integrate(self, system: AbstractSystem, x0: torch.Tensor, *, t0: float, dt: float,
                  n_steps: int, save_every: int, step0: int = 0, rng: CounterRNG | None = None,
                  callback: ProgressCallback | None = None) -> torch.Tensor:
        """Integrate ``n_steps`` steps of size ``dt`` from ``(t0, x0)``.

        ``step0`` is the global index of the first step (it keys the noise of
        stochastic integrators, so a member's noise depends only on its own
        step count). Returns the states after steps ``save_every, 2·save_every,
        …, n_steps``: shape ``(n_steps // save_every, *x0.shape)``.
        ``callback(k)`` is called after each saved state with the number saved.
        """

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


class AbstractFixedStepIntegrator(AbstractIntegrator):
    """A one-step method ``x_{n+1} = Φ(t_n, x_n, dt[, ξ_n])`` with fixed ``dt``.

    ``compile=True`` wraps the step in ``torch.compile`` (a fused kernel); if
    compilation is unavailable it falls back to eager mode with a warning.
    Compiled and eager steps may differ in the last bits, so ``compile`` is
    part of the integrator's identity.
    """

    def __init__(self, compile: bool = False):
        if not isinstance(compile, bool):
            raise ValueError(f"integrator.compile must be true or false, got {compile!r}")
        self.compile = compile
        self._compiled: dict[int, Callable] = {}

    def options(self) -> dict[str, Any]:
        return {"compile": self.compile} if self.compile else {}

    @abstractmethod
    def step(self, system: AbstractSystem, t: float, x: torch.Tensor, dt: float,
             noise: torch.Tensor | None = None) -> torch.Tensor:
        """One step from ``(t, x)``; ``noise`` holds standard normals shaped like ``x``."""

    def _step_fn(self, system: AbstractSystem) -> Callable:
        if not self.compile:
            return self.step
        key = id(system)
        if key not in self._compiled:
            try:
                self._compiled[key] = torch.compile(self.step, dynamic=False, fullgraph=False)
            except Exception as err:  # pragma: no cover - depends on the toolchain
                warnings.warn(f"torch.compile unavailable ({err}); integrating in eager mode")
                self._compiled[key] = self.step
        return self._compiled[key]

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        if n_steps % save_every:
            raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
        if self.stochastic and system.is_stochastic and rng is None:
            raise ValueError(f"{self.name} needs a CounterRNG for the stochastic system {system.name}")
        step = self._step_fn(system)
        x = x0
        saved = []
        state_shape = x0.shape[1:]
        for i in range(n_steps):
            noise = None
            if self.stochastic and system.is_stochastic:
                noise = rng.normal(state_shape, step=step0 + i, dtype=x.dtype).to(x.device)
            t = t0 + i * dt
            if step is not self.step:
                # a tensor time keeps torch.compile from specialising on every float value
                t = torch.tensor(t, dtype=x.dtype, device=x.device)
            try:
                x = step(system, t, x, dt, noise)
            except Exception as err:
                if step is self.step:
                    raise
                warnings.warn(f"compiled step failed ({err}); falling back to eager mode")
                self._compiled[id(system)] = step = self.step
                x = step(system, t0 + i * dt, x, dt, noise)
            if (i + 1) % save_every == 0:
                saved.append(x)
                if callback is not None:
                    callback(len(saved))
        if not saved:
            return x0.new_empty((0, *x0.shape))
        return torch.stack(saved)


INTEGRATORS: dict[str, type[AbstractIntegrator]] = {}


def register_integrator(cls: type[AbstractIntegrator]) -> type[AbstractIntegrator]:
    """Class decorator: make ``cls`` available as ``make_integrator(cls.name, ...)``."""
    if cls.name in INTEGRATORS and INTEGRATORS[cls.name] is not cls:
        raise ValueError(f"an integrator named {cls.name!r} is already registered")
    INTEGRATORS[cls.name] = cls
    return cls


def make_integrator(name: str, **options: Any) -> AbstractIntegrator:
    """Build a registered integrator by name, e.g. ``make_integrator("dopri5", rtol=1e-8)``."""
    if name not in INTEGRATORS:
        raise ValueError(f"unknown integrator {name!r}; known integrators: {', '.join(sorted(INTEGRATORS))}")
    try:
        return INTEGRATORS[name](**options)
    except TypeError as err:
        raise ValueError(f"bad options {options} for integrator {name!r}: {err}") from None
