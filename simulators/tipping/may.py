r"""May's grazing model (May 1977): logistic growth harvested by a saturating grazer.

.. math::
    dx = f_c(x)\,dt + σ\,dW_t, \qquad
    f_c(x) = r\,x\Bigl(1 - \frac{x}{K}\Bigr) - c\,\frac{x^2}{x^2 + h^2}

with the grazing rate :math:`c(t) = c_0 + \dot c\,\max(t, 0)` either constant
(``c_rate = 0``) or ramped (:class:`~simulators.tipping.ramp.LinearRamp`).
For r=1, K=10, h=1 the deterministic model is bistable for
1.787 < c < 2.604: the upper (vegetated) branch folds at c ≈ 2.604, x ≈ 4.78
and the lower (overgrazed) branch at c ≈ 1.787 (:func:`may_folds`). Ramping
c slowly past 2.604 gives a tipping series.

The drift is a gradient, :math:`f_c = -V_c'`, with the potential

.. math:: V_c(x) = -r\Bigl(\frac{x^2}{2} - \frac{x^3}{3K}\Bigr) + c\,\bigl(x - h\arctan(x/h)\bigr)

(:func:`may_potential`, :math:`V_c(0) = 0`).

**Boundary.** For x < 0 the drift runs away (f ≈ r x − c x²/h²), so additive
noise alone would let a path escape to −∞. The state is *reflected at 0*:
after every Euler–Maruyama step :math:`x \leftarrow |x|`
(the ``project`` hook, applied by the driver), the
discretisation of the SDE with a reflecting barrier at x = 0. The noise stays
additive, so the lower branch keeps the same noise level as the upper one.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch

from ..core import Params, Variable, check_finite_parameter, register_system
from ..random import CounterRNG
from .base import AbstractScalarSDE
from .ramp import LinearRamp

__all__ = ["MayGrazing", "Fold", "may_drift", "may_drift_derivative", "may_potential", "may_equilibria",
           "may_folds"]


def may_drift(x, c, r: float = 1.0, K: float = 10.0, h: float = 1.0):
    """:math:`f_c(x) = r x (1 − x/K) − c x²/(x² + h²)` (numpy, torch or float; broadcasts)."""
    x2 = x * x
    return r * x * (1.0 - x / K) - c * x2 / (x2 + h * h)


def may_drift_derivative(x, c, r: float = 1.0, K: float = 10.0, h: float = 1.0):
    """:math:`f_c'(x) = r(1 − 2x/K) − 2 c h² x / (x² + h²)²`."""
    h2 = h * h
    return r * (1.0 - 2.0 * x / K) - 2.0 * c * h2 * x / (x * x + h2) ** 2


def may_potential(x, c, r: float = 1.0, K: float = 10.0, h: float = 1.0):
    r""":math:`V_c(x) = −∫_0^x f_c = −r(x²/2 − x³/(3K)) + c(x − h \arctan(x/h))`."""
    atan = torch.atan if isinstance(x, torch.Tensor) else np.arctan
    return -r * (x * x / 2.0 - x ** 3 / (3.0 * K)) + c * (x - h * atan(x / h))


class Fold(NamedTuple):
    """A saddle-node of the deterministic model: f_c(x) = 0 and f_c'(x) = 0 at (c, x)."""

    c: float
    x: float


def may_equilibria(c: float, r: float = 1.0, K: float = 10.0, h: float = 1.0) -> list[tuple[float, bool]]:
    r"""Equilibria x ≥ 0 of :math:`f_c` as ``(x, stable)``, in increasing x.

    Besides x = 0 (unstable: :math:`f_c'(0) = r > 0`) they are the positive
    roots of the cubic :math:`r(1 − x/K)(x² + h²) − c x = 0`.
    """
    coeffs = [-r / K, r, -(r * h * h / K + c), r * h * h]
    roots = np.roots(coeffs)
    out = [(0.0, False)]
    for root in sorted(float(z.real) for z in roots if abs(z.imag) < 1e-9 * max(1.0, abs(z)) and z.real > 0):
        out.append((root, bool(may_drift_derivative(root, c, r, K, h) < 0)))
    return out


def may_folds(r: float = 1.0, K: float = 10.0, h: float = 1.0) -> tuple[Fold, ...]:
    r"""The saddle-nodes of the deterministic May model, in increasing c.

    Solves :math:`f_c(x) = 0,\ f_c'(x) = 0` jointly for ``(x, c)`` with
    ``scipy.optimize.fsolve``, started from the extrema of
    :math:`c(x) = r(1 − x/K)(x² + h²)/x` (the equilibrium curve) on a grid.
    Returns an empty tuple when the model is monostable. For r=1, K=10, h=1:
    ``(Fold(c≈1.787, x≈1.138), Fold(c≈2.604, x≈4.781))``: the lower branch's and
    the upper branch's folds.
    """
    from scipy.optimize import fsolve

    def equations(z):
        x, c = z
        return [may_drift(x, c, r, K, h), may_drift_derivative(x, c, r, K, h)]

    xs = np.linspace(1e-3 * K, K, 4001)[:-1]
    c_curve = r * (1.0 - xs / K) * (xs ** 2 + h ** 2) / xs
    slope = np.diff(c_curve)
    turns = np.nonzero(np.sign(slope[1:]) != np.sign(slope[:-1]))[0] + 1
    folds = []
    for i in turns:
        (x, c), info, ok, _ = fsolve(equations, [xs[i], c_curve[i]], full_output=True, xtol=1e-13)
        if ok == 1 and x > 0 and max(abs(v) for v in info["fvec"]) < 1e-10:
            folds.append(Fold(float(c), float(x)))
    return tuple(sorted(folds))


@register_system
class MayGrazing(AbstractScalarSDE):
    r"""May's grazing model with additive noise, reflected at x = 0 (see the module docstring).

    .. math:: dx = \Bigl[r x(1 − x/K) − c(t)\frac{x^2}{x^2 + h^2}\Bigr]dt + σ\,dW,
              \qquad c(t) = c + \dot c \max(t, 0)

    Parameters: ``r`` growth rate, ``K`` carrying capacity, ``h`` half-saturation
    biomass of grazing, ``c`` grazing rate at t ≤ 0 (held during the spin-up),
    ``c_rate`` its ramp rate per unit time, ``sigma`` noise amplitude, ``x0`` the
    initial biomass (``None``: the stable equilibrium with the largest x at c,
    i.e. the upper branch where it exists).

    State shape ``(..., 1)``. Output: ``x`` and the driver ``c`` on
    ``(member, time)``. Integrate with ``euler_maruyama`` (the default) or another
    fixed-step SDE integrator; the reflection is applied after every step.
    """

    name = "may_grazing"

    @dataclass(frozen=True)
    class Params(Params):
        r: float = 1.0
        K: float = 10.0
        h: float = 1.0
        c: float = 2.0
        c_rate: float = 0.0
        sigma: float = 0.1
        x0: float | None = None

        def validate(self):
            for name in ("r", "K", "h"):
                check_finite_parameter(name, getattr(self, name), positive=True)
            check_finite_parameter("c", self.c, non_negative=True)
            check_finite_parameter("sigma", self.sigma, non_negative=True)
            if self.x0 is not None:
                check_finite_parameter("x0", self.x0, non_negative=True)

    @cached_property
    def grazing(self) -> LinearRamp:
        """The grazing rate c(t) as a forcing time series."""
        return LinearRamp(self.params.c, self.params.c_rate)

    def vector_field(self, t, x):
        p = self.params
        return may_drift(x, self.grazing(t), p.r, p.K, p.h)

    def diffusion(self, t, x):
        return torch.full_like(x, self.params.sigma)

    has_projection = True

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Reflection of the state at x = 0: ``|x|``."""
        return torch.abs(x)

    def potential(self, x, t: float = 0.0):
        """:math:`V_{c(t)}(x)` (:func:`may_potential`)."""
        p = self.params
        return may_potential(x, self.grazing(t), p.r, p.K, p.h)

    def folds(self) -> tuple[Fold, ...]:
        p = self.params
        return may_folds(p.r, p.K, p.h)

    def initial_biomass(self) -> float:
        p = self.params
        if p.x0 is not None:
            return p.x0
        stable = [x for x, is_stable in may_equilibria(p.c, p.r, p.K, p.h) if is_stable]
        return max(stable) if stable else p.K

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        return torch.full((len(rng.members), 1), self.initial_biomass(), dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "biomass x (May grazing model)"),
                Variable("c", ("time",), "1", "grazing rate c(t)", role="forcing"))

    def time_outputs(self, times, dtype=torch.float64):
        """The driver ``c`` on the saved times, ``(T,)``."""
        return {"c": self.grazing(times.to(dtype))}
