r"""Path-sampled systems: stochastic processes simulated path by path, exactly, not by
stepping a vector field (jump processes, reaction networks, individual-based populations).

A path-sampled system gives the rule of its events (propensities and stoichiometry, or a
rate matrix) to the one exact sampler, :func:`simulators.jump.engine.ssa` (Gillespie's
direct method; ramped rates through the integrated hazard). Each member's paths draw
their random numbers from counter-based streams keyed by (seed, member, path), so a member
is bit-identical whatever block or worker computes it. Its outputs are declared as
:class:`~simulators.core.Variable` like any system's.

The driver is :func:`run_paths` (what :meth:`AbstractPathSystem.simulate` does): it hands
the grid's ``t_end`` and spin-up to :meth:`AbstractPathSystem.simulate_paths`. The
integrator names ``gillespie`` and ``gillespie_ramp`` (stored configs use both) select it;
they carry the one engine setting, ``max_iterations``, and have no vector field to step.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, ClassVar

import torch

from .core import AbstractSystem, TimeGrid
from .integrators.base import AbstractIntegrator, register_integrator

__all__ = ["AbstractPathSystem", "Gillespie", "GillespieRamp", "run_paths"]


@register_integrator
class Gillespie(AbstractIntegrator):
    r"""Exact stochastic simulation of path-sampled systems (:func:`simulators.jump.engine.ssa`).

    ``max_iterations`` bounds the events of one path (a guard against runaway rates; it
    does not change the result, so it is not part of the dataset's identity). Paths are
    independent: ``batch_independent`` is True.
    """

    name = "gillespie"
    stochastic = True

    def __init__(self, max_iterations: int = 100_000_000):
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"integrator.max_iterations must be an integer >= 1, got {max_iterations!r}")
        self.max_iterations = max_iterations

    def check_system(self, system: Any) -> None:
        if not isinstance(system, AbstractPathSystem):
            raise ValueError(f"{self.name} simulates jump processes; {system.name} is not one "
                             "(use rk4, dopri5 or euler_maruyama)")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        raise ValueError(f"{self.name} does not step a vector field: path-sampled systems simulate through "
                         "system.simulate(integrator, grid, ...) (simulators.path.run_paths)")


@register_integrator
class GillespieRamp(Gillespie):
    """The same engine under the name stored configs of ramped-rate populations use (``allee``)."""

    name = "gillespie_ramp"


def run_paths(system: "AbstractPathSystem", integrator: Any, grid: TimeGrid, *, seed: int, members: Any,
              dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
              progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """The driver of path-sampled systems: the variables of ``members``, ``name -> (M, *dims)``.

    ``grid.t_end`` is the last observation time and ``grid.spinup`` a discarded lead-in
    (paths start at ``-spinup``); ``grid.dt`` and ``save_every`` matter only to systems
    that observe on the save grid. Floating outputs come in ``dtype``, integer ones stay.
    ``progress(1)`` once the members are done.
    """
    if not isinstance(integrator, Gillespie):
        raise ValueError(f"{system.name} is a jump process simulated exactly; use "
                         f"integrator={system.default_integrator}, not {getattr(integrator, 'name', integrator)!r}")
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    out = system.simulate_paths(grid, seed=seed, members=members, device=device,
                                max_iterations=integrator.max_iterations)
    if progress is not None:
        progress(1)
    return {name: v.to(dtype) if v.dtype.is_floating_point else v for name, v in out.items()}


class AbstractPathSystem(AbstractSystem):
    """A path-sampled system: simulated exactly by the SSA engine, not integrated.

    Subclasses implement :meth:`simulate_paths` (and the metadata every system has:
    ``variables``, ``state_shape``, ``sample_initial``, ``observables``).
    """

    default_integrator: ClassVar[str] = "gillespie"
    #: 1: the counter layout of the engine's draws (simulators.jump.streams) changed in the
    #: one-engine rewrite; stores written before it are not reused
    generator_version: ClassVar[int] = 1

    @property
    def is_stochastic(self) -> bool:
        return True

    def vector_field(self, t, x):
        raise NotImplementedError(f"{self.name} is a jump process and has no vector field; "
                                  f"simulate it with integrator={self.default_integrator}")

    @abstractmethod
    def simulate_paths(self, grid: TimeGrid, *, seed: int, members: torch.Tensor,
                       device: torch.device | str = "cpu",
                       max_iterations: int = 100_000_000) -> dict[str, torch.Tensor]:
        """All variables of the given members, ``name -> (M, *dims)``, in their natural
        dtypes (int64 states and counts, float64 times and rates). Paths start at
        ``-grid.spinup`` and are observed on ``[0, grid.t_end]``."""

    def check_grid(self, grid: TimeGrid, integrator: Any) -> None:
        if not isinstance(integrator, Gillespie):
            raise ValueError(f"{self.name} is a jump process simulated exactly; use "
                             f"integrator={self.default_integrator}, not {getattr(integrator, 'name', integrator)!r}")

    def simulate(self, integrator: Any, grid: TimeGrid, *, seed: int, members: Any,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
        """:func:`run_paths` (the path-sampled driver)."""
        return run_paths(self, integrator, grid, seed=seed, members=members, dtype=dtype, device=device,
                         progress=progress)

    def progress_total(self, grid: TimeGrid) -> int:
        return 1  # one unit per member
