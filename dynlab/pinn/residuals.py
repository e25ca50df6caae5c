r"""Pointwise residual operators, keyed by system name.

A PINN evaluates the equation at collocation points on the network's output and
its autograd derivatives; the residual is zero on a solution.

* ODEs (``lorenz63``, ``lorenz96``, ``mass_spring``, ``pendulum``):
  :math:`r(t) = \dot u(t) − f(t, u(t))`, with ``f`` the system's own batched
  vector field (which is already pointwise in time), shapes ``(N, D)``.
* PDEs (``allen_cahn``, ``kuramoto_sivashinsky``): the system's ``residual``
  (:meth:`simulators.pde.AbstractPeriodicPDE.residual`), e.g. Allen–Cahn
  :math:`r = u_t − d u_{xx} + a u^3 − a u`, on ``u``, ``u_t`` and the
  x-derivatives of the orders :attr:`AbstractResidual.x_orders`, shapes ``(N, 1)``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Mapping

import torch

from simulators.core import AbstractSystem
from ..errors import ConfigError

__all__ = ["AbstractResidual", "ODEResidual", "PDEResidual", "RESIDUALS", "residual_for"]


class AbstractResidual(ABC):
    """``residual(t, u, u_t, u_x) -> r``: the equation on the network's values at collocation points."""

    #: ``"ode"`` (input t, output ``(N, D)``) or ``"pde"`` (inputs t, x, output ``(N, 1)``)
    kind: str = "ode"
    #: orders of the x-derivatives the residual needs (PDEs)
    x_orders: tuple[int, ...] = ()

    def __init__(self, system: AbstractSystem):
        self.system = system

    @abstractmethod
    def __call__(self, t: torch.Tensor, u: torch.Tensor, u_t: torch.Tensor,
                 u_x: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
        """The residual at the collocation points."""


class ODEResidual(AbstractResidual):
    r""":math:`\dot u − f(t, u)` with the system's vector field; ``t`` ``(N, 1)``, ``u`` and ``u_t`` ``(N, D)``."""

    kind = "ode"

    def __call__(self, t, u, u_t, u_x=None):
        if u.shape != u_t.shape or u.shape[-1:] != tuple(self.system.state_shape):
            raise ValueError(f"u and u_t must both have shape (N, {self.system.state_shape[0]}), "
                             f"got {tuple(u.shape)} and {tuple(u_t.shape)}")
        return u_t - self.system.vector_field(t, u)


class PDEResidual(AbstractResidual):
    """The periodic PDE's own pointwise residual (``system.residual``); all inputs ``(N, 1)``."""

    kind = "pde"

    def __init__(self, system):
        super().__init__(system)
        self.x_orders = tuple(system.residual_orders)

    def __call__(self, t, u, u_t, u_x=None):
        missing = [k for k in self.x_orders if u_x is None or k not in u_x]
        if missing:
            raise ValueError(f"the {self.system.name} residual needs the x-derivatives of orders {missing}")
        return self.system.residual(u, u_t, u_x)


RESIDUALS: dict[str, Callable[[AbstractSystem], AbstractResidual]] = {
    "lorenz63": ODEResidual,
    "lorenz96": ODEResidual,
    "mass_spring": ODEResidual,
    "pendulum": ODEResidual,
    "allen_cahn": PDEResidual,
    "kuramoto_sivashinsky": PDEResidual,
}


def residual_for(system: AbstractSystem) -> AbstractResidual:
    """The residual operator of ``system`` (``ConfigError`` when a PINN cannot solve it)."""
    if system.name not in RESIDUALS:
        raise ConfigError(f"no PINN residual for system {system.name!r}; PINN systems: {', '.join(sorted(RESIDUALS))}")
    if getattr(system, "is_stochastic", False):
        raise ConfigError(f"system {system.name!r} is stochastic; a PINN solves deterministic equations")
    return RESIDUALS[system.name](system)
