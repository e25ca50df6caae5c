r"""Allen–Cahn: :math:`u_t = d\,u_{xx} − a u^3 + a u` on a periodic interval.

Benchmark (Raissi, Perdikaris & Karniadakis 2019; Wang, Sankaran & Perdikaris
2022): :math:`d = 10^{-4},\ a = 5`, :math:`x ∈ [−1, 1]`,
:math:`u_0 = x^2 \cos(πx)`, :math:`t ∈ [0, 1]`. Split as
:math:`L = d∂_x^2 + a` (symbol :math:`a − d k^2`) and :math:`N(u) = −a u^3`,
the cube dealiased by 2× zero-padding. The free energy
:math:`F = \int \tfrac d2 u_x^2 + \tfrac a4 (u^2 − 1)^2\,dx` decreases:
:math:`\dot F = −\int u_t^2\,dx`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import register_system
from .base import AbstractPeriodicPDE, PeriodicParams
from .fourier import padded_power, spectral_derivative

__all__ = ["AllenCahn"]


@register_system
class AllenCahn(AbstractPeriodicPDE):
    """Allen–Cahn on ``n`` Fourier points (see the module docstring); state ``(..., n)``.

    ``initial="benchmark"`` starts every member from ``x² cos(πx)``; ``"random"`` from
    smooth random states with ``modes`` Fourier modes and ``max|u₀| = amplitude``.
    """

    name = "allen_cahn"
    residual_orders = (2,)
    long_name = "Allen-Cahn order parameter u"

    @dataclass(frozen=True)
    class Params(PeriodicParams):
        d: float = 1.0e-4
        a: float = 5.0
        length: float = 2.0
        x_min: float = -1.0
        n: int = 512
        initial: str = "benchmark"
        modes: int = 4
        amplitude: float = 0.8

        def validate(self):
            super().validate()
            if self.d <= 0:
                raise ValueError(f"parameter d (diffusivity) must be > 0, got {self.d!r}")

    def symbol(self, k):
        p = self.params
        return p.a - p.d * k * k

    def nonlinear(self, t, x):
        p = self.params
        cube = padded_power(torch.fft.rfft(x, dim=-1), p.n, 3, 2.0)
        return -p.a * torch.fft.irfft(cube, n=p.n, dim=-1)

    def initial_benchmark(self, x):
        return x * x * torch.cos(torch.pi * x)

    def residual(self, u, u_t, u_x):
        p = self.params
        return u_t - p.d * u_x[2] + p.a * u ** 3 - p.a * u

    def invariants(self, x):
        p = self.params
        h = p.length / p.n
        ux = spectral_derivative(x, p.length, 1)
        return {"free_energy": h * (0.5 * p.d * ux * ux + 0.25 * p.a * (x * x - 1) ** 2).sum(-1)}
