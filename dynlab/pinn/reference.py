"""The reference solution a PINN is compared with, and its solver's wall time.

* PDEs: the system's own simulator (ETDRK4 on the Fourier grid, float64) on the
  config's time grid, member 0 of ``seed``.
* ODEs: scipy's DOP853 (Hairer, Nørsett & Wanner) at rtol = atol = 1e-12 on the
  system's vector field, from ``pinn.initial_state`` or from the system's
  member-0 initial state after ``time.spinup``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simulators import CounterRNG, TimeGrid, make_integrator, run_members
from simulators.core import AbstractSystem
from ..errors import ConfigError

__all__ = ["Reference", "reference_solution"]


@dataclass
class Reference:
    """``u``: ``(T, X)`` (PDE) or ``(T, D)`` (ODE) float64 on ``times`` (and ``x``)."""

    times: torch.Tensor
    u: torch.Tensor
    x: torch.Tensor | None
    initial: Any          # what the PINN starts from: (D,) tensor or a callable of x
    seconds: float
    solver: str


def _ode_rhs(system: AbstractSystem):
    def f(t, y):
        with torch.no_grad():
            return system.vector_field(t, torch.from_numpy(y)[None])[0].numpy()
    return f


def reference_solution(system: AbstractSystem, time_cfg: dict[str, Any], *, t_end: float, seed: int = 0,
                       initial_state: list[float] | None = None) -> Reference:
    """Solve the problem the PINN solves on ``[0, t_end]`` with the grid of ``time_cfg``."""
    grid = TimeGrid(dt=time_cfg["dt"], save_every=time_cfg["save_every"], t_end=t_end,
                    spinup=time_cfg.get("spinup", 0.0) or 0.0)
    if hasattr(system, "residual_orders"):  # a periodic PDE
        if grid.spinup:
            raise ConfigError(f"time.spinup must be 0 for a PINN on {system.name} (the PINN starts from u0), "
                              f"got {grid.spinup}")
        integrator = make_integrator(system.default_integrator)
        started = time.perf_counter()
        u = run_members(system, integrator, grid, seed=seed, members=[0])["u"][0]
        seconds = time.perf_counter() - started
        if system.params.initial == "benchmark":
            initial = system.initial_benchmark
        else:
            from .networks import FourierInterpolant
            initial = FourierInterpolant(u[0], system.params.x_min, system.params.length)
        return Reference(grid.times, u, system.x, initial, seconds, f"{integrator.name} dt={grid.dt:g}")
    from scipy.integrate import solve_ivp

    started = time.perf_counter()
    if initial_state is not None:
        y0 = np.asarray(initial_state, dtype=np.float64)
        if y0.shape != tuple(system.state_shape):
            raise ConfigError(f"pinn.initial_state must have {system.state_shape[0]} numbers, got {initial_state!r}")
    else:
        y0 = system.sample_initial(CounterRNG(seed, [0]))[0].numpy()
        if grid.spinup:
            spin = solve_ivp(_ode_rhs(system), (0.0, grid.spinup), y0, method="DOP853", rtol=1e-12, atol=1e-12)
            y0 = spin.y[:, -1]
    times = grid.times.numpy()
    sol = solve_ivp(_ode_rhs(system), (0.0, t_end), y0, method="DOP853", t_eval=times, rtol=1e-12, atol=1e-12)
    if not sol.success:
        raise ConfigError(f"the DOP853 reference failed: {sol.message}")
    seconds = time.perf_counter() - started
    return Reference(grid.times, torch.from_numpy(sol.y.T.copy()), None, torch.from_numpy(y0.copy()), seconds,
                     "scipy DOP853 rtol=atol=1e-12")
