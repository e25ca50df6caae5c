r"""A slowly ramped parameter: the forcing that drives a system through a tipping point.

.. math::  p(t) = p_0 + \rho\,\max(t, 0)

Model time 0 is the end of the spin-up (:class:`simulators.TimeGrid`), so the
parameter is held at :math:`p_0` while the spin-up equilibrates the state and
then ramps linearly at rate :math:`\rho` (per unit model time). A constant
parameter is the ramp with :math:`\rho = 0`; systems treat both the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import check_finite_parameter

__all__ = ["LinearRamp"]


@dataclass(frozen=True)
class LinearRamp:
    """``p(t) = start + rate · max(t, 0)`` (held at ``start`` during the spin-up, t < 0)."""

    start: float
    rate: float = 0.0

    def __post_init__(self) -> None:
        check_finite_parameter("start", self.start)
        check_finite_parameter("rate", self.rate)

    @property
    def is_constant(self) -> bool:
        return self.rate == 0.0

    def __call__(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """The parameter at model time ``t`` (a float, or a tensor of any shape)."""
        if isinstance(t, torch.Tensor):
            return self.start + self.rate * torch.clamp(t, min=0.0)
        return self.start + self.rate * max(float(t), 0.0)

    def series(self, times: torch.Tensor, members: int) -> torch.Tensor:
        """The parameter at the saved ``times`` ``(T,)`` for ``members`` members: ``(M, T)``,
        the layout of a dataset variable on ``(member, time)``."""
        return self(times).expand(members, -1).clone()

    def time_of(self, value: float) -> float:
        """The model time at which the ramp reaches ``value`` (``inf`` if it never does)."""
        if self.rate == 0.0:
            return 0.0 if value == self.start else float("inf")
        t = (value - self.start) / self.rate
        return t if t >= 0.0 else float("inf")
