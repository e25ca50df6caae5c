r"""The one driver of time-stepped systems: initial conditions, spin-up and saved trajectories
for a set of members, with the system's hooks.

:func:`run_members` integrates every time-stepped system (ODEs and SDEs).
A system shapes its run only through hooks of
:class:`~simulators.core.AbstractSystem`, never by overriding ``simulate``:

* ``member_parameters`` / ``bind``: parameters drawn per member from the
  member's own stream, bound to the system and returned as variables on ``member``;
* ``has_projection`` / ``project``: a map applied after every step (May's reflection at 0);
* ``observables``: the state split into output variables;
* ``diagnostics``: functions of the saved trajectory (N_toa, T_global, H, a budget residual);
* ``time_outputs``: functions of model time only (CO₂, its forcing, a ramped parameter),
  broadcast over members.

Path-sampled systems (jump processes) have their own driver.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

from .integrators.projected import ProjectedIntegrator
from .random import CounterRNG

if TYPE_CHECKING:  # type-only: core and the integrators do not import this module
    from .core import AbstractSystem, TimeGrid
    from .integrators.base import AbstractIntegrator

__all__ = ["BlowUpError", "run_members"]


class BlowUpError(RuntimeError):
    """A member's state became non-finite. ``member`` is its global index and
    ``time`` the first saved model time (after spin-up; negative inside it) at which
    the blow-up was seen."""

    def __init__(self, member: int, time: float):
        super().__init__(f"the state of member {member} became non-finite at model time {time:g}")
        self.member = member
        self.time = time


def _check_finite(x: torch.Tensor, members: torch.Tensor, time: float) -> None:
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        raise BlowUpError(int(members[bad.nonzero()[0, 0]]), time)


def _stepper(system: "AbstractSystem", integrator: "AbstractIntegrator") -> "AbstractIntegrator":
    """``integrator``, wrapped to apply the system's projection after each step if it has one."""
    if not system.has_projection:
        return integrator
    doc = (type(system).project.__doc__ or "its projection").strip().splitlines()[0].rstrip(".")
    return ProjectedIntegrator(integrator, system.project,
                               reason=f"{system.name} applies {doc[0].lower() + doc[1:]} after every step")


def run_members(system: "AbstractSystem", integrator: "AbstractIntegrator", grid: "TimeGrid", *,
                seed: int, members: Sequence[int] | torch.Tensor, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu",
                progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Simulate the given members and return their output variables.

    Each member's parameters, initial state and noise come from its own
    counter-based stream keyed by ``(seed, member index)``; the spin-up of
    ``grid.spinup`` is discarded and the states at ``grid.times`` are kept.

    Returns a dict ``name -> tensor`` on ``device`` (``M = len(members)``):
    the observables and diagnostics ``(M, n_saves, *var_dims)``, the time outputs
    ``(M, n_saves)`` and the per-member parameters ``(M,)``. ``progress(n)`` is
    called with the number of integration steps done since its previous call.
    Raises ``ValueError`` first if the integrator or the grid does not suit the
    system, and :class:`BlowUpError` naming the first member whose state is non-finite.
    """
    integrator.check_system(system)
    system.check_grid(grid, integrator)
    members = torch.as_tensor(list(members), dtype=torch.int64)
    rng = CounterRNG(seed, members).to(device)
    values = system.member_parameters(rng, dtype=dtype, device=device)
    if values:
        system = system.bind(values)
    stepper = _stepper(system, integrator)
    x = system.sample_initial(rng, dtype=dtype, device=device)
    dt, every = grid.dt, grid.steps_per_save
    if grid.spinup_steps:
        x = stepper.integrate(system, x, t0=-grid.spinup, dt=dt, n_steps=grid.spinup_steps,
                              save_every=grid.spinup_steps, step0=0, rng=rng)[-1]
        if progress:
            progress(grid.spinup_steps)
        _check_finite(x, members, 0.0)

    def on_save(_: int) -> None:
        if progress:
            progress(every)

    n_steps = (grid.n_saves - 1) * every
    traj = stepper.integrate(system, x, t0=0.0, dt=dt, n_steps=n_steps, save_every=every,
                             step0=grid.spinup_steps, rng=rng, callback=on_save)
    traj = torch.cat((x[None], traj), dim=0)  # (T, M, *state)
    finite = torch.isfinite(traj.reshape(traj.shape[0], traj.shape[1], -1)).all(-1)  # (T, M)
    if not bool(finite.all()):
        t_idx, m_idx = (~finite).nonzero()[0].tolist()
        raise BlowUpError(int(members[m_idx]), float(grid.times[t_idx]))
    traj = traj.transpose(0, 1)  # (M, T, *state)
    times = grid.times.to(device=traj.device)
    out = dict(system.observables(traj))
    out.update(system.diagnostics(times, traj))
    M = traj.shape[0]
    for name, series in system.time_outputs(times, dtype).items():  # (T,), or (M, T) for per-member levels
        out[name] = series.to(dtype=dtype, device=traj.device).expand(M, -1).clone()
    out.update(values)
    return out
