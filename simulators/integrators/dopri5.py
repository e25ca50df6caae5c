"""Adaptive Dormand–Prince 5(4) through torchdiffeq."""
from __future__ import annotations

import math

import torch

from .base import AbstractIntegrator, register_integrator


@register_integrator
class Dopri5(AbstractIntegrator):
    r"""Dormand–Prince 5(4) with adaptive steps (``torchdiffeq.odeint``).

    The step size is controlled by the mixed error test
    :math:`\|e\| \le \text{atol} + \text{rtol}\,|x|` and the solver lands exactly
    on every output time (dense output is not interpolated). ``dt`` only fixes
    the output times (``save_every · dt`` apart).

    Step-size control uses one norm over the whole batch, so a member's result
    depends on the members integrated with it: ``batch_independent`` is False and
    datasets integrate one storage chunk at a time (always the same members).
    """

    name = "dopri5"
    batch_independent = False

    def __init__(self, rtol: float = 1e-7, atol: float = 1e-9):
        for label, value in (("rtol", rtol), ("atol", atol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"integrator.{label} must be a finite number > 0, got {value!r}")
        self.rtol = float(rtol)
        self.atol = float(atol)

    def options(self):
        return {"rtol": self.rtol, "atol": self.atol}

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"dopri5 cannot integrate the stochastic system {system.name}; "
                             "use integrator=euler_maruyama")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        from torchdiffeq import odeint

        if n_steps % save_every:
            raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
        n_saves = n_steps // save_every
        if n_saves == 0:
            return x0.new_empty((0, *x0.shape))
        t = t0 + dt * save_every * torch.arange(n_saves + 1, dtype=torch.float64)
        t = t.to(device=x0.device, dtype=x0.dtype)
        out = odeint(system.vector_field, x0, t, method="dopri5", rtol=self.rtol, atol=self.atol)
        if callback is not None:
            callback(n_saves)
        return out[1:]
