r"""Linearised saddle-node (after Boettiger & Hastings 2012, *Proc. R. Soc. B* 279: 4734).

The normal form :math:`\dot x = R − (x − θ)^2` has the stable point
:math:`x^* = θ + \sqrt R`, which meets the unstable one as :math:`R \to 0`.
Linearised about :math:`x^*`, with demographic-style noise and the bifurcation
parameter ramped, :math:`R(t) = R_0 + m\,\max(t, 0)`:

.. math::  dX = 2\sqrt{R}\,(θ + \sqrt{R} − X)\,dt + σ\sqrt{θ + \sqrt{R}}\;dB_t

The relaxation rate :math:`2\sqrt R` falls to zero as R → 0 (critical slowing
down). The first two moments obey the linear ODEs (:func:`lsn_moments`)

.. math::
    \frac{dE}{dt} = 2\sqrt R\,(\sqrt R + θ − E), \qquad
    \frac{dV}{dt} = −4\sqrt R\,V + σ^2(\sqrt R + θ),

(the variance equation is the consistent one: −4√R, twice the mean's rate,
as for any OU process), so that m = 0 is the OU model with
:math:`r = 2\sqrt{R_0}`, mean level :math:`θ + \sqrt{R_0}` and amplitude
:math:`σ\sqrt{θ + \sqrt{R_0}}`.

Where a ramp with m < 0 carries R below 0 the linearisation no longer has a
stable point; R is then held at 0 (no restoring force: a random walk), which
is documented rather than silently producing NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..core import Params, Variable, check_finite_parameter, register_system
from ..random import CounterRNG
from .base import AbstractScalarSDE
from .ramp import LinearRamp

__all__ = ["LinearisedSaddleNode", "lsn_moments"]


def _sqrt_nonneg(value):
    if isinstance(value, torch.Tensor):
        return torch.sqrt(torch.clamp(value, min=0.0))
    return math.sqrt(max(value, 0.0))


def lsn_moments(times, *, R0: float, m: float, theta: float, sigma: float, mean0: float, var0: float,
                rtol: float = 1e-10, atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean E(t) and variance V(t) of the LSN process at ``times`` (≥ 0, increasing).

    Integrates :math:`\dot E = 2\sqrt R(\sqrt R + θ − E)`,
    :math:`\dot V = −4\sqrt R V + σ^2(\sqrt R + θ)` from ``(mean0, var0)`` at t = 0
    with ``scipy.integrate.solve_ivp`` (DOP853). Returns two arrays shaped like ``times``.
    """
    from scipy.integrate import solve_ivp

    times = np.asarray(times, dtype=np.float64)
    ramp = LinearRamp(R0, m)

    def rhs(t, z):
        s = _sqrt_nonneg(ramp(t))
        E, V = z
        return [2.0 * s * (s + theta - E), -4.0 * s * V + sigma * sigma * (s + theta)]

    sol = solve_ivp(rhs, (0.0, float(times.max(initial=0.0))), [mean0, var0], t_eval=times, method="DOP853",
                    rtol=rtol, atol=atol)
    if not sol.success:  # pragma: no cover - smooth linear ODE
        raise RuntimeError(f"LSN moment equations failed: {sol.message}")
    return sol.y[0], sol.y[1]


@register_system
class LinearisedSaddleNode(AbstractScalarSDE):
    r"""Boettiger & Hastings' linearised saddle-node (see the module docstring).

    .. math:: dX = 2\sqrt{R(t)}\,(θ + \sqrt{R(t)} − X)\,dt + σ\sqrt{θ + \sqrt{R(t)}}\,dB,
              \qquad R(t) = R_0 + m \max(t, 0)

    Parameters: ``R0`` > 0 bifurcation parameter at t ≤ 0 (held during the
    spin-up), ``m`` its ramp rate (m < 0 approaches the saddle-node), ``theta`` ≥ 0
    position of the fold (so the noise amplitude is real), ``sigma`` ≥ 0 noise
    scale, ``x0`` initial state (``None``: a draw from the stationary law at
    R0, :math:`N(θ + \sqrt{R_0},\ σ^2(θ + \sqrt{R_0})/(4\sqrt{R_0}))`).

    State shape ``(..., 1)``. Output: ``x`` and the driver ``R`` on ``(member, time)``.
    """

    name = "lsn"

    @dataclass(frozen=True)
    class Params(Params):
        R0: float = 1.0
        m: float = 0.0
        theta: float = 1.0
        sigma: float = 0.1
        x0: float | None = None

        def validate(self):
            check_finite_parameter("R0", self.R0, positive=True)
            check_finite_parameter("theta", self.theta, non_negative=True)
            check_finite_parameter("sigma", self.sigma, non_negative=True)
            if self.x0 is not None:
                check_finite_parameter("x0", self.x0)

    @cached_property
    def bifurcation_parameter(self) -> LinearRamp:
        """R(t) as a forcing time series (held at R0 during the spin-up)."""
        return LinearRamp(self.params.R0, self.params.m)

    def vector_field(self, t, x):
        s = _sqrt_nonneg(self.bifurcation_parameter(t))
        return 2.0 * s * (self.params.theta + s - x)

    def diffusion(self, t, x):
        s = _sqrt_nonneg(self.bifurcation_parameter(t))
        return torch.full_like(x, self.params.sigma * math.sqrt(self.params.theta + s))

    def stationary_moments(self, R: float | None = None) -> tuple[float, float]:
        """Mean and variance of the stationary law at fixed R (default R0)."""
        p = self.params
        s = math.sqrt(p.R0 if R is None else R)
        return p.theta + s, p.sigma ** 2 * (s + p.theta) / (4.0 * s)

    def moments(self, times, mean0: float, var0: float):
        """:func:`lsn_moments` with this system's parameters."""
        p = self.params
        return lsn_moments(times, R0=p.R0, m=p.m, theta=p.theta, sigma=p.sigma, mean0=mean0, var0=var0)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        mean, var = self.stationary_moments()
        return self.initial_states(rng, self.params.x0, mean, var, dtype, device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "state X of the linearised saddle-node"),
                Variable("R", ("time",), "1", "bifurcation parameter R(t)", role="forcing"))

    def time_outputs(self, times, dtype=torch.float64):
        """The driver ``R`` on the saved times, ``(T,)``."""
        return {"R": self.bifurcation_parameter(times.to(dtype))}
