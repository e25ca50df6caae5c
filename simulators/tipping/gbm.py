r"""Geometric Brownian motion: the test SDE with multiplicative noise and a known solution.

.. math:: dX = μX\,dt + σX\,dW_t, \qquad X_t = X_0 \exp\bigl((μ − σ^2/2)t + σW_t\bigr)

(Itô). The exact solution depends on the Brownian path only through
:math:`W_t`, so a scheme's strong error at time T can be measured against the
exact value for the very increments the scheme used (:func:`gbm_exact`):
Euler–Maruyama has strong order ½ and weak order 1 here; :math:`E[X_t] = X_0 e^{μt}`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core import Params, Variable, check_finite_parameter, register_system
from ..random import CounterRNG
from .base import AbstractScalarSDE

__all__ = ["GeometricBrownianMotion", "gbm_exact"]


def gbm_exact(t: float, W: torch.Tensor, *, x0: float | torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    r""":math:`X_t = X_0 \exp((μ − σ^2/2) t + σ W_t)` for Brownian values ``W`` at time ``t`` (any shape)."""
    return x0 * torch.exp((mu - 0.5 * sigma * sigma) * t + sigma * W)


@register_system
class GeometricBrownianMotion(AbstractScalarSDE):
    r""":math:`dX = μX dt + σX dW` from ``X(0) = x0`` > 0; state shape ``(..., 1)``, output ``x``.

    Mean :math:`x_0 e^{μt}`, variance :math:`x_0^2 e^{2μt}(e^{σ^2 t} − 1)`.
    """

    name = "gbm"

    @dataclass(frozen=True)
    class Params(Params):
        mu: float = 1.0
        sigma: float = 0.5
        x0: float = 1.0

        def validate(self):
            check_finite_parameter("sigma", self.sigma, non_negative=True)
            check_finite_parameter("x0", self.x0, positive=True)

    def vector_field(self, t, x):
        return self.params.mu * x

    def diffusion(self, t, x):
        return self.params.sigma * x

    def exact(self, t: float, W: torch.Tensor) -> torch.Tensor:
        """The exact solution at time ``t`` for Brownian values ``W`` (:func:`gbm_exact`)."""
        p = self.params
        return gbm_exact(t, W, x0=p.x0, mu=p.mu, sigma=p.sigma)

    def mean(self, t: float) -> float:
        return self.params.x0 * math.exp(self.params.mu * t)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        return torch.full((len(rng.members), 1), self.params.x0, dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "geometric Brownian motion X"),)

