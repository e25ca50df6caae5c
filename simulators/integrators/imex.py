r"""Implicit-explicit Runge–Kutta for split systems :math:`\dot x = L x + N(t, x)`.

``imex`` is the ARS(2,2,2) scheme of Ascher, Ruuth & Spiteri (1997, *Appl.
Numer. Math.* 25: 151, §2.6): the stiff linear part ``L`` (diffusion, linear
damping; a :class:`~simulators.split.AbstractLinearOperator`) is treated by an
L-stable, stiffly accurate SDIRK tableau and the nonlinear part ``N`` by an
explicit one, with :math:`γ = 1 - 1/\sqrt2` and :math:`δ = 1 - 1/(2γ)`:

.. math::
    Y_1 &= x_n, \\
    (I - γhL)\,Y_2 &= x_n + γh\,N(t_n, Y_1), \\
    (I - γhL)\,Y_3 &= x_n + h\big[δ N(t_n, Y_1) + (1-δ) N(t_n + γh, Y_2)\big] + (1-γ)h\,L Y_2, \\
    x_{n+1} &= Y_3.

Second order in both parts; for :math:`N = 0` the amplification factor of an
eigenvalue :math:`λ` of ``L`` tends to 0 as :math:`hλ \to -\infty`, so any step
is stable for the linear part (the explicit part keeps its own CFL-type limit).
Each step costs two evaluations of ``N``, one of ``L`` and two shifted solves
:meth:`~simulators.split.AbstractLinearOperator.solve_shifted` (a batched
Thomas sweep or a diagonal division in Fourier space).

``imex_euler`` is the first-order semi-implicit (linearly implicit) Euler–Maruyama step

.. math::  (I - hL)\,x_{n+1} = x_n + h\,N(t_n, x_n) + \sqrt h\,g(t_n, x_n)\,ξ_n,

which integrates stochastic split systems at steps far above the explicit limit
(strong order ½, 1 for additive noise; the noise comes from the member's own
counter-based stream as in ``euler_maruyama``).

Both schemes are linear combinations of stage values evaluated once per stage
(an additive Runge–Kutta method), so they conserve every linear invariant of
``L x + N`` exactly up to rounding: a system that carries an accumulated budget
term in its state closes its budget under them.
"""
from __future__ import annotations

import math

import torch

from .base import AbstractFixedStepIntegrator, register_integrator

__all__ = ["IMEXARS222", "IMEXEuler", "ARS222_GAMMA", "ARS222_DELTA"]

ARS222_GAMMA = 1.0 - 1.0 / math.sqrt(2.0)
ARS222_DELTA = 1.0 - 1.0 / (2.0 * ARS222_GAMMA)


def _check_split(integrator: AbstractFixedStepIntegrator, system) -> None:
    if not (callable(getattr(system, "linear_operator", None)) and callable(getattr(system, "nonlinear", None))):
        raise ValueError(f"{integrator.name} integrates split systems x' = L x + N(t, x) only and "
                         f"{getattr(system, 'name', type(system).__name__)} is not one (no linear_operator/"
                         "nonlinear); use integrator=rk4, dopri5 or euler_maruyama")


@register_integrator
class IMEXARS222(AbstractFixedStepIntegrator):
    """ARS(2,2,2) implicit-explicit Runge–Kutta (see the module docstring). Deterministic
    split systems only; states ``(*batch, *state_shape)``."""

    name = "imex"

    def check_system(self, system):
        _check_split(self, system)
        if system.is_stochastic:
            raise ValueError(f"imex (ARS(2,2,2)) cannot integrate the stochastic system {system.name}; "
                             "use integrator=imex_euler or euler_maruyama")

    def step(self, system, t, x, dt, noise=None):
        L = system.linear_operator(x.dtype, x.device)
        g, d = ARS222_GAMMA, ARS222_DELTA
        a = g * dt
        n1 = system.nonlinear(t, x)
        y2 = L.solve_shifted(a, torch.add(x, n1, alpha=a))
        n2 = system.nonlinear(t + a, y2)
        rhs = torch.add(x, n1, alpha=d * dt).add_(n2, alpha=(1.0 - d) * dt).add_(L.matvec(y2), alpha=(1.0 - g) * dt)
        return L.solve_shifted(a, rhs)


@register_integrator
class IMEXEuler(AbstractFixedStepIntegrator):
    """Semi-implicit Euler–Maruyama: ``L`` implicit, ``N`` and the noise explicit (see the
    module docstring). Split systems with or without noise."""

    name = "imex_euler"
    stochastic = True

    def check_system(self, system):
        _check_split(self, system)

    def step(self, system, t, x, dt, noise=None):
        rhs = x + dt * system.nonlinear(t, x)
        if system.is_stochastic:
            if noise is None:
                raise ValueError("imex_euler needs noise for a stochastic system")
            rhs = rhs + math.sqrt(dt) * system.noise_term(t, x, noise)
        return system.linear_operator(x.dtype, x.device).solve_shifted(dt, rhs)
