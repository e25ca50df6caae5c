"""The shared shape of the scalar tipping-point SDEs: one state variable ``x``,
``dx = f(t, x) dt + g(t, x) dW``, integrated by Euler–Maruyama by default."""
from __future__ import annotations

import math

import torch

from ..core import AbstractSystem
from ..random import STREAM_INITIAL, CounterRNG

__all__ = ["AbstractScalarSDE"]


class AbstractScalarSDE(AbstractSystem):
    """A one-dimensional SDE: state shape ``(..., 1)``, output ``x`` on ``(member, time)``."""

    default_integrator = "euler_maruyama"

    @property
    def is_stochastic(self) -> bool:
        return True

    @property
    def state_shape(self):
        return (1,)

    def observables(self, x):
        return {"x": x[..., 0]}

    @staticmethod
    def initial_states(rng: CounterRNG, x0: float | None, mean: float, variance: float,
                       dtype=torch.float64, device="cpu") -> torch.Tensor:
        """``x0`` for every member, or (``x0`` None) one draw per member from
        :math:`N(\\text{mean}, \\text{variance})` on the member's own stream. ``(M, 1)``."""
        if x0 is not None:
            return torch.full((len(rng.members), 1), float(x0), dtype=dtype, device=device)
        z = rng.normal((1,), stream=STREAM_INITIAL, dtype=torch.float64)
        return (mean + math.sqrt(variance) * z).to(dtype=dtype, device=device)
