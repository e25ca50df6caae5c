r"""Periodic 1-D PDEs on a Fourier grid, split as :math:`u_t = L u + N(t, u)`.

A subclass gives the Fourier symbol of ``L`` (:meth:`symbol`), the nonlinear
term on the grid (:meth:`nonlinear`) and the same equation written pointwise
on ``u`` and its derivatives (:meth:`residual`), which a physics-informed
network evaluates at collocation points. The state is ``(..., n)``: the
values of ``u`` at ``x_j = x_min + ℓ j / n``.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar, Mapping

import torch

from ..core import Params, Variable
from ..random import STREAM_INITIAL, CounterRNG
from ..split import AbstractSplitSystem, DiagonalOperator
from .fourier import grid, wavenumbers

__all__ = ["AbstractPeriodicPDE", "PeriodicParams", "random_fourier_state"]

INITIAL_STATES = ("benchmark", "random")


class PeriodicParams(Params):
    """Shared validation of a periodic grid: ``n`` even ≥ 4, ``length`` > 0, ``initial`` known,
    ``modes`` ≥ 1, ``amplitude`` > 0."""

    def validate(self) -> None:
        n = self.n
        if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
            raise ValueError(f"parameter n (grid points) must be an even integer >= 4, got {n!r}")
        if self.length <= 0:
            raise ValueError(f"parameter length must be > 0, got {self.length!r}")
        if self.initial not in INITIAL_STATES:
            raise ValueError(f"parameter initial must be one of {', '.join(INITIAL_STATES)}, got {self.initial!r}")
        if isinstance(self.modes, bool) or not isinstance(self.modes, int) or not 1 <= self.modes < n // 2:
            raise ValueError(f"parameter modes must be an integer in [1, {n // 2 - 1}], got {self.modes!r}")
        if self.amplitude <= 0:
            raise ValueError(f"parameter amplitude must be > 0, got {self.amplitude!r}")


def random_fourier_state(rng: CounterRNG, x: torch.Tensor, length: float, modes: int,
                         amplitude: float) -> torch.Tensor:
    r"""Smooth random periodic states :math:`\sum_{m=1}^{M} (a_m \cos k_m x + b_m \sin k_m x)/m`,
    :math:`a_m, b_m \sim N(0,1)` from each member's initial-state stream, scaled so that
    :math:`\max_x |u| = ` ``amplitude``. Returns ``(M_members, n)`` float64."""
    z = rng.normal((2, modes), stream=STREAM_INITIAL, dtype=torch.float64)
    m = torch.arange(1, modes + 1, dtype=torch.float64)
    phase = (2 * math.pi / length) * m[:, None] * x[None, :]  # (modes, n)
    u = ((z[:, 0, :, None] * torch.cos(phase) + z[:, 1, :, None] * torch.sin(phase)) / m[:, None]).sum(1)
    return amplitude * u / u.abs().amax(-1, keepdim=True).clamp_min(1e-300)


class AbstractPeriodicPDE(AbstractSplitSystem):
    """A scalar field ``u(t, x)`` on a periodic interval, diagonal ``L`` in the rfft basis."""

    default_integrator: ClassVar[str] = "etdrk4"
    #: the orders of the x-derivatives :meth:`residual` needs
    residual_orders: ClassVar[tuple[int, ...]] = ()
    #: what :meth:`variables` calls the field
    long_name: ClassVar[str] = "u"

    @property
    def state_shape(self):
        return (self.params.n,)

    @property
    def dim_sizes(self):
        return {"x": self.params.n}

    @property
    def x(self) -> torch.Tensor:
        """Grid points ``(n,)`` float64."""
        p = self.params
        return grid(p.n, p.x_min, p.length)

    def coords(self):
        return {"x": (("x",), self.x.numpy(), {"long_name": "position", "units": "1"})}

    def wavenumbers(self, *, odd: bool = False) -> torch.Tensor:
        return wavenumbers(self.params.n, self.params.length, odd=odd)

    @abstractmethod
    def symbol(self, k: torch.Tensor) -> torch.Tensor:
        """Eigenvalue of ``L`` for the Fourier mode ``exp(ikx)`` (real here), ``k`` float64."""

    def linear_operator(self, dtype=torch.float64, device="cpu"):
        lam = self.symbol(self.wavenumbers()).to(device=device, dtype=dtype)
        return DiagonalOperator(lam, basis="rfft", n=self.params.n)

    @abstractmethod
    def initial_benchmark(self, x: torch.Tensor) -> torch.Tensor:
        """The benchmark initial state ``u₀(x)`` (works on any tensor of positions; autograd-safe)."""

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        p = self.params
        members = len(rng.members)
        if p.initial == "benchmark":
            u = self.initial_benchmark(self.x).expand(members, p.n).clone()
        else:
            u = random_fourier_state(rng, self.x, p.length, p.modes, p.amplitude)
        return u.to(dtype=dtype, device=device)

    @abstractmethod
    def residual(self, u: torch.Tensor, u_t: torch.Tensor, u_x: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """The equation written pointwise, zero on a solution: ``u_t − f(u, u_x, …)``.

        ``u``, ``u_t`` and each ``u_x[order]`` (for the orders in :attr:`residual_orders`)
        have the same shape (collocation points)."""

    @property
    def variables(self):
        return (Variable("u", ("time", "x"), "1", self.long_name),)

    def observables(self, x):
        return {"u": x}
