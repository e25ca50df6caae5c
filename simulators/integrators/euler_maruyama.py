"""Euler–Maruyama for Itô SDEs with diagonal noise."""
from __future__ import annotations

import math

from .base import AbstractFixedStepIntegrator, register_integrator


@register_integrator
class EulerMaruyama(AbstractFixedStepIntegrator):
    r"""Euler–Maruyama: :math:`x_{n+1} = x_n + f(t_n, x_n)\,h + g(t_n, x_n)\sqrt{h}\,\xi_n`.

    :math:`\xi_n \sim N(0, I)` is drawn from the member's own counter-based
    stream at its global step ``n``, so the path of a member does not depend on
    the block that computes it; :math:`g\,\xi` is the system's ``noise_term``
    (the diagonal product ``diffusion · ξ`` by default). Strong order ½ (1 for additive noise), weak
    order 1. For a system without noise it is the explicit Euler method.
    """

    name = "euler_maruyama"
    stochastic = True

    def step(self, system, t, x, dt, noise=None):
        drift = system.vector_field(t, x)
        out = x + dt * drift
        if system.is_stochastic:
            if noise is None:
                raise ValueError("euler_maruyama needs noise for a stochastic system")
            out = out + math.sqrt(dt) * system.noise_term(t, x, noise)
        return out
