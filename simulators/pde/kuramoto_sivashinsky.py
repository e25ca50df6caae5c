r"""Kuramoto–Sivashinsky: :math:`u_t + α u u_x + β u_{xx} + γ u_{xxxx} = 0`, periodic.

Benchmark (Wang, Sankaran & Perdikaris 2022): :math:`(α, β, γ) = (100/16,
100/16^2, 100/16^4)`, :math:`x ∈ [0, 2π]`, :math:`u_0 = \cos x\,(1 + \sin x)`,
:math:`t ∈ [0, 1]`. The classical chaotic setting has unit coefficients on a
domain of length ``L = 22`` or ``64`` (Hyman & Nicolaenko 1986; Cvitanović,
Davidchack & Siminos 2010). Split as :math:`L = −β∂_x^2 − γ∂_x^4` (symbol
:math:`βk^2 − γk^4`) and :math:`N(u) = −\tfrac α2 ∂_x(u^2)`, the square
dealiased by the 3/2-rule. The nonlinear term conserves
:math:`E = \tfrac12\int u^2`, so :math:`\dot E = β\int u_x^2 − γ\int u_{xx}^2`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import register_system
from .base import AbstractPeriodicPDE, PeriodicParams
from .fourier import padded_power, spectral_derivative

__all__ = ["KuramotoSivashinsky"]


@register_system
class KuramotoSivashinsky(AbstractPeriodicPDE):
    """Kuramoto–Sivashinsky on ``n`` Fourier points (see the module docstring); state ``(..., n)``.

    ``initial="benchmark"``: ``cos x (1 + sin x)``; ``"random"``: smooth random states
    (``modes`` Fourier modes, ``max|u₀| = amplitude``), for the chaotic setting with a spin-up.
    """

    name = "kuramoto_sivashinsky"
    residual_orders = (1, 2, 4)
    long_name = "Kuramoto-Sivashinsky field u"

    @dataclass(frozen=True)
    class Params(PeriodicParams):
        alpha: float = 100.0 / 16.0
        beta: float = 100.0 / 16.0 ** 2
        gamma: float = 100.0 / 16.0 ** 4
        length: float = 6.283185307179586
        x_min: float = 0.0
        n: int = 256
        initial: str = "benchmark"
        modes: int = 8
        amplitude: float = 1.0

        def validate(self):
            super().validate()
            if self.gamma <= 0:
                raise ValueError(f"parameter gamma must be > 0 (hyperdiffusion keeps the problem well posed), "
                                 f"got {self.gamma!r}")

    def symbol(self, k):
        p = self.params
        k2 = k * k
        return p.beta * k2 - p.gamma * k2 * k2

    def nonlinear(self, t, x):
        p = self.params
        k = self.wavenumbers(odd=True).to(x.device)
        sq = padded_power(torch.fft.rfft(x, dim=-1), p.n, 2, 1.5)
        return torch.fft.irfft((-0.5 * p.alpha) * (1j * k).to(sq.dtype) * sq, n=p.n, dim=-1)

    def initial_benchmark(self, x):
        return torch.cos(x) * (1 + torch.sin(x))

    def residual(self, u, u_t, u_x):
        p = self.params
        return u_t + p.alpha * u * u_x[1] + p.beta * u_x[2] + p.gamma * u_x[4]

    def invariants(self, x):
        p = self.params
        h = p.length / p.n
        ux = spectral_derivative(x, p.length, 1)
        uxx = spectral_derivative(x, p.length, 2)
        return {"energy": 0.5 * h * (x * x).sum(-1),
                "energy_tendency": h * (p.beta * (ux * ux).sum(-1) - p.gamma * (uxx * uxx).sum(-1))}
