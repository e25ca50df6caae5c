"""The Lorenz family: Lorenz63, Lorenz96 with one and with two scales.

Equations and presets: ``shared/PHYSICS.md`` (Lorenz 1963; Lorenz 1996; Wilks
2005). States carry any leading batch dimensions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .core import AbstractSystem, Params, Variable, register_system
from .random import STREAM_INITIAL, CounterRNG

__all__ = ["Lorenz63", "Lorenz96", "Lorenz96TwoScale"]


def _shift(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``out[..., k] = x[..., (k + offset) mod n]`` along the last dim (periodic)."""
    return torch.roll(x, shifts=-offset, dims=-1)


def _advection(x: torch.Tensor) -> torch.Tensor:
    r""":math:`(x_{k+1} − x_{k−2})\,x_{k−1}` on a periodic last dim.

    One periodic padding and three slices (views) instead of three rolls: the
    same floating-point operations, but ``torch.compile`` fuses slices of a
    padded tensor into one vectorised kernel, which it cannot do for rolls.
    """
    xp = torch.cat((x[..., -2:], x, x[..., :1]), dim=-1)  # xp[..., k + 2] = x[..., k]
    return (xp[..., 3:] - xp[..., :-3]) * xp[..., 1:-2]


@register_system
class Lorenz63(AbstractSystem):
    r"""Lorenz (1963): :math:`\dot x = σ(y − x),\ \dot y = x(ρ − z) − y,\ \dot z = xy − βz`.

    State shape ``(..., 3)`` ordered (x, y, z). The divergence is the constant
    −(σ + 1 + β), so the Lyapunov exponents sum to it; with the classic
    parameters they are ≈ (0.906, 0, −14.572).
    """

    name = "lorenz63"

    @dataclass(frozen=True)
    class Params(Params):
        sigma: float = 10.0
        rho: float = 28.0
        beta: float = 8.0 / 3.0

    @property
    def state_shape(self):
        return (3,)

    def vector_field(self, t, x):
        p = self.params
        X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
        return torch.stack((p.sigma * (Y - X), X * (p.rho - Z) - Y, X * Y - p.beta * Z), dim=-1)

    def jacobian_trace(self) -> float:
        """The divergence of the vector field, −(σ + 1 + β) everywhere."""
        p = self.params
        return -(p.sigma + 1.0 + p.beta)

    def jvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Analytic :math:`J_f(x) v` for ``x`` ``(B, 3)`` and tangents ``v`` ``(B, 3, m)``."""
        p = self.params
        X, Y, Z = (x[..., i, None] for i in range(3))
        vx, vy, vz = v[..., 0, :], v[..., 1, :], v[..., 2, :]
        return torch.stack((p.sigma * (vy - vx), (p.rho - Z) * vx - vy - X * vz,
                            Y * vx + X * vy - p.beta * vz), dim=-2)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        # Around the attractor's centre (0, 0, ρ − 1) with spread of its size.
        z = rng.normal((3,), stream=STREAM_INITIAL, dtype=torch.float64)
        centre = torch.tensor([0.0, 0.0, self.params.rho - 1.0], dtype=torch.float64)
        return (centre + 8.0 * z).to(dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "Lorenz63 x (convection intensity)"),
                Variable("y", ("time",), "1", "Lorenz63 y (horizontal temperature difference)"),
                Variable("z", ("time",), "1", "Lorenz63 z (vertical temperature profile distortion)"))

    def observables(self, x):
        return {"x": x[..., 0], "y": x[..., 1], "z": x[..., 2]}


@register_system
class Lorenz96(AbstractSystem):
    r"""Lorenz (1996), one scale: :math:`\dot X_k = (X_{k+1} − X_{k−2}) X_{k−1} − X_k + F`, k periodic.

    State shape ``(..., K)``. Invariants: the advection term conserves
    :math:`E = \tfrac12 \sum_k X_k^2`, so :math:`\dot E = −\sum X_k^2 + F \sum X_k`;
    the Jacobian's trace is −K, so the Lyapunov exponents sum to −K.
    """

    name = "lorenz96"

    @dataclass(frozen=True)
    class Params(Params):
        K: int = 40
        F: float = 8.0

        def validate(self):
            if isinstance(self.K, bool) or not isinstance(self.K, int):
                raise ValueError(f"parameter K must be an integer, got {self.K!r}")
            if self.K < 4:
                raise ValueError(f"parameter K must be >= 4 (the stencil reaches k-2 and k+1), got {self.K!r}")

    @property
    def state_shape(self):
        return (self.params.K,)

    @property
    def dim_sizes(self):
        return {"k": self.params.K}

    def advection(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`(X_{k+1} − X_{k−2}) X_{k−1}`, energy-conserving."""
        return _advection(x)

    def vector_field(self, t, x):
        return self.advection(x) - x + self.params.F

    def jacobian_trace(self) -> float:
        return -float(self.params.K)

    def jvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Analytic :math:`J_f(x) v` for ``x`` ``(B, K)`` and tangents ``v`` ``(B, K, m)``."""
        x = x[..., :, None]
        d = -1 - 1  # the state's dimension is -2 of the tangent frame
        return ((torch.roll(v, -1, d) - torch.roll(v, 2, d)) * torch.roll(x, 1, d)
                + (torch.roll(x, -1, d) - torch.roll(x, 2, d)) * torch.roll(v, 1, d) - v)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        z = rng.normal((self.params.K,), stream=STREAM_INITIAL, dtype=torch.float64)
        return (self.params.F + z).to(dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("X", ("time", "k"), "1", "Lorenz96 large-scale variable X_k"),)

    def observables(self, x):
        return {"X": x}

    def invariants(self, x):
        return {"energy": 0.5 * (x * x).sum(-1),
                "energy_tendency": -(x * x).sum(-1) + self.params.F * x.sum(-1)}


@register_system
class Lorenz96TwoScale(AbstractSystem):
    r"""Two-scale Lorenz96 (Lorenz 1996; Wilks 2005).

    .. math::
        \dot X_k = −X_{k−1}(X_{k−2} − X_{k+1}) − X_k + F − \tfrac{hc}{b}\sum_j Y_{j,k}

        \dot Y_{j,k} = −cb\,Y_{j+1,k}(Y_{j+2,k} − Y_{j−1,k}) − c\,Y_{j,k} + \tfrac{hc}{b} X_k

    Y is one periodic ring of length J·K (``Y[k, j]`` is ring element ``k·J + j``).
    The flat state is ``(..., K + K·J)``: X first, then Y in ring order.
    Energy budget: :math:`\tfrac{d}{dt}(\tfrac12\sum X^2 + \tfrac12\sum Y^2) = −\sum X^2 − c\sum Y^2 + F\sum X`.
    """

    name = "lorenz96_two_scale"

    @dataclass(frozen=True)
    class Params(Params):
        K: int = 8
        J: int = 32
        F: float = 20.0
        h: float = 1.0
        b: float = 10.0
        c: float = 10.0

        def validate(self):
            for name in ("K", "J"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"parameter {name} must be an integer, got {value!r}")
            if self.K < 4:
                raise ValueError(f"parameter K must be >= 4 (the stencil reaches k-2 and k+1), got {self.K!r}")
            if self.J < 1:
                raise ValueError(f"parameter J must be >= 1, got {self.J!r}")
            if self.b == 0:
                raise ValueError("parameter b must be non-zero, got 0")

    @property
    def state_shape(self):
        p = self.params
        return (p.K * (p.J + 1),)

    @property
    def dim_sizes(self):
        return {"k": self.params.K, "j": self.params.J}

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat state → (X ``(..., K)``, Y ring ``(..., K·J)``)."""
        K = self.params.K
        return x[..., :K], x[..., K:]

    def vector_field(self, t, x):
        p = self.params
        X, Y = self.split(x)
        coupling = p.h * p.c / p.b
        Ysum = Y.reshape(*Y.shape[:-1], p.K, p.J).sum(-1)
        dX = _advection(X) - X + p.F - coupling * Ysum
        dY = (-p.c * p.b) * _shift(Y, 1) * (_shift(Y, 2) - _shift(Y, -1)) - p.c * Y \
            + coupling * X.repeat_interleave(p.J, dim=-1)
        return torch.cat((dX, dY), dim=-1)

    def jacobian_trace(self) -> float:
        p = self.params
        return -float(p.K) - p.c * p.K * p.J

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        p = self.params
        z = rng.normal(self.state_shape, stream=STREAM_INITIAL, dtype=torch.float64)
        x = torch.cat((p.F / 2 + z[..., :p.K], 0.1 * z[..., p.K:]), dim=-1)
        return x.to(dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("X", ("time", "k"), "1", "Lorenz96 slow variable X_k"),
                Variable("Y", ("time", "k", "j"), "1", "Lorenz96 fast variable Y_{j,k}"))

    def observables(self, x):
        p = self.params
        X, Y = self.split(x)
        return {"X": X, "Y": Y.reshape(*Y.shape[:-1], p.K, p.J)}

    def invariants(self, x):
        p = self.params
        X, Y = self.split(x)
        sx2, sy2 = (X * X).sum(-1), (Y * Y).sum(-1)
        return {"energy": 0.5 * (sx2 + sy2),
                "energy_tendency": -sx2 - p.c * sy2 + p.F * X.sum(-1)}
