r"""The Ornstein–Uhlenbeck process: the null model of early-warning tests.

.. math:: dX = r(θ − X)\,dt + σ\,dB_t, \qquad r > 0

Its transition law is Gaussian and known exactly (Boettiger & Hastings 2012):

.. math::
    X_{t+Δt} \mid X_t \sim N\Bigl(θ + (X_t − θ)e^{−rΔt},\ \frac{σ^2}{2r}\bigl(1 − e^{−2rΔt}\bigr)\Bigr),

with the stationary law :math:`N(θ, σ^2/(2r))`. :func:`ou_transition` gives
those moments and :func:`ou_exact_paths` samples paths from them without any
discretisation error; ``euler_maruyama`` (the default integrator) has strong
order 1 on this additive-noise SDE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core import Params, Variable, check_finite_parameter, register_system
from ..random import STREAM_NOISE, CounterRNG
from .base import AbstractScalarSDE

__all__ = ["OrnsteinUhlenbeck", "ou_transition", "ou_exact_paths"]


def ou_transition(x, dt: float, r: float, theta: float, sigma: float):
    r"""Mean and variance of :math:`X_{t+Δt}` given :math:`X_t = x` (``x`` any shape).

    ``mean = θ + (x − θ) e^{−rΔt}``, ``var = σ²(1 − e^{−2rΔt})/(2r)`` (a float).
    """
    decay = math.exp(-r * dt)
    var = sigma * sigma * (-math.expm1(-2.0 * r * dt)) / (2.0 * r)
    return theta + (x - theta) * decay, var


def ou_exact_paths(x0: torch.Tensor, rng: CounterRNG, *, dt: float, n_steps: int, r: float, theta: float,
                   sigma: float, step0: int = 0) -> torch.Tensor:
    r"""Exact OU paths on a regular grid: ``(M, n_steps + 1)`` from ``x0`` ``(M,)``.

    Each step draws :math:`X_{n+1} = m(X_n) + \sqrt{v}\,ξ_n` from
    :func:`ou_transition`, with :math:`ξ_n` the member's normal at global step
    ``step0 + n`` (the same numbers ``euler_maruyama`` would use), so there is no
    discretisation error at any ``dt``.
    """
    out = [x0]
    x = x0
    decay = math.exp(-r * dt)
    sd = math.sqrt(sigma * sigma * (-math.expm1(-2.0 * r * dt)) / (2.0 * r))
    for n in range(n_steps):
        xi = rng.normal((), step=step0 + n, stream=STREAM_NOISE, dtype=x0.dtype).to(x0.device)
        x = theta + (x - theta) * decay + sd * xi
        out.append(x)
    return torch.stack(out, dim=1)


@register_system
class OrnsteinUhlenbeck(AbstractScalarSDE):
    r""":math:`dX = r(θ − X)dt + σ dB` with constant parameters.

    Parameters: ``r`` > 0 relaxation rate, ``theta`` mean level, ``sigma`` ≥ 0
    noise amplitude, ``x0`` initial state (``None``: drawn from the stationary
    law :math:`N(θ, σ²/(2r))`, one draw per member). State shape ``(..., 1)``;
    output ``x`` on ``(member, time)``.
    """

    name = "ou"

    @dataclass(frozen=True)
    class Params(Params):
        r: float = 1.0
        theta: float = 0.0
        sigma: float = 1.0
        x0: float | None = None

        def validate(self):
            check_finite_parameter("r", self.r, positive=True)
            check_finite_parameter("sigma", self.sigma, non_negative=True)
            if self.x0 is not None:
                check_finite_parameter("x0", self.x0)

    @property
    def stationary_variance(self) -> float:
        p = self.params
        return p.sigma ** 2 / (2.0 * p.r)

    def vector_field(self, t, x):
        p = self.params
        return p.r * (p.theta - x)

    def diffusion(self, t, x):
        return torch.full_like(x, self.params.sigma)

    def transition(self, x, dt: float):
        """Exact transition mean and variance over ``dt`` (:func:`ou_transition`)."""
        p = self.params
        return ou_transition(x, dt, p.r, p.theta, p.sigma)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        return self.initial_states(rng, self.params.x0, self.params.theta, self.stationary_variance, dtype, device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "Ornstein-Uhlenbeck state X"),)

