r"""Mechanical Hamiltonian systems: mass–spring, pendulum, double pendulum, Hénon–Heiles.

Presets after DeepMind's Hamiltonian dynamics suite (shared/PHYSICS.md):
mass–spring k=2, m=0.5; pendulum and double pendulum m=0.5, g=3, l=1.
Hénon–Heiles (Hénon & Heiles 1964) with initial conditions inside the
potential well, below the escape energy 1/6. All quantities are
non-dimensional. Friction γ enters as :math:`\dot p = -\partial_q H - \gamma\,\partial_p H`
(:mod:`simulators.hamiltonian.base`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core import Variable, check_finite_parameter, register_system
from ..random import STREAM_INITIAL, CounterRNG
from .base import AbstractHamiltonianSystem, HamiltonianParams, check_range

__all__ = ["MassSpring", "Pendulum", "DoublePendulum", "HenonHeiles", "HENON_HEILES_ESCAPE_ENERGY"]

#: the saddle energy of the Hénon–Heiles potential; below it orbits stay in the well
HENON_HEILES_ESCAPE_ENERGY = 1.0 / 6.0


def _ring(rng: CounterRNG, dim: int, radius: tuple[float, float]) -> torch.Tensor:
    """Points ``(M, dim)`` in phase space with a uniformly random direction and a
    distance from the origin uniform on ``radius`` (float64)."""
    u = rng.uniform((1,), step=0, stream=STREAM_INITIAL)  # (M, 1)
    z = rng.normal((dim,), step=1, stream=STREAM_INITIAL)  # (M, dim), an isotropic direction
    r = radius[0] + (radius[1] - radius[0]) * u
    return r * z / z.norm(dim=-1, keepdim=True)


def _dof_variables(system: AbstractHamiltonianSystem, what: str) -> tuple[Variable, ...]:
    return (Variable("q", ("time", "dof"), "1", f"generalised coordinate q ({what})"),
            Variable("p", ("time", "dof"), "1", "conjugate momentum p"),
            Variable("H", ("time",), "1", "total energy (Hamiltonian) H", role="diagnostic")) + system._parameter_variables()


class _DofOutputs:
    """Mixin for the systems on a `dof` dimension: observables q, p, H and dim sizes."""

    def observables(self, x):
        q, p = self.split(x)
        return {"q": q, "p": p, "H": self.energy(x)}

    @property
    def dim_sizes(self):
        return {"dof": self.dof}


@register_system
class MassSpring(_DofOutputs, AbstractHamiltonianSystem):
    r"""Mass on a spring: :math:`H = \tfrac12 k q^2 + \dfrac{p^2}{2m}`.

    .. math:: \dot q = p/m, \qquad \dot p = -k q - \gamma\,p/m.

    Angular frequency :math:`\omega = \sqrt{k/m}` (2 for the preset k=2,
    m=0.5); the solution is linear in the initial state,
    :meth:`exact_solution`. Initial states: ``(q, p)`` with a uniformly random
    phase at a distance from the origin uniform on ``radius`` (our choice).
    State ``(..., 2)`` = (q, p).
    """

    name = "mass_spring"
    separable = True

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        k: float = 2.0
        m: float = 0.5
        radius: Any = (0.1, 1.0)

        randomizable = ("k", "m", "friction")

        def validate_physics(self):
            check_finite_parameter("k", self.k, positive=True)
            check_finite_parameter("m", self.m, positive=True)
            object.__setattr__(self, "radius", check_range("radius", self.radius, low=0.0, strict_low=False))

    @property
    def q_shape(self):
        return (1,)

    def hamiltonian(self, q, p):
        k, m = self.coef("k", 0), self.coef("m", 0)
        return 0.5 * k * q[..., 0] ** 2 + p[..., 0] ** 2 / (2.0 * m)

    def dH_dq(self, q, p):
        return self.coef("k") * q

    def dH_dp(self, q, p):
        return p / self.coef("m")

    def exact_solution(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""Exact states :math:`x(t) = e^{tA} x_0`, :math:`A = \begin{pmatrix}0 & 1/m\\ -k & -\gamma/m\end{pmatrix}`.

        ``x0`` is ``(..., 2)``, ``t`` a 1-D tensor ``(T,)``; returns ``(T, ..., 2)``.
        Uses the fixed parameters (not per-member values)."""
        if x0.shape[-1] != 2:
            raise ValueError(f"mass_spring states have a last dimension of 2, got shape {tuple(x0.shape)}")
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        if t.ndim != 1:
            raise ValueError(f"t must be one-dimensional, got shape {tuple(t.shape)}")
        k, m, gamma = self.params.k, self.params.m, self.params.friction
        A = torch.tensor([[0.0, 1.0 / m], [-k, -gamma / m]], dtype=x0.dtype, device=x0.device)
        prop = torch.linalg.matrix_exp(t[:, None, None] * A)  # (T, 2, 2)
        flat = x0.reshape(-1, 2)
        return torch.einsum("tij,bj->tbi", prop, flat).reshape(t.shape[0], *x0.shape)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return _ring(rng, 2, self.params.radius).to(dtype=dtype, device=device)

    @property
    def variables(self):
        return _dof_variables(self, "spring extension")


@register_system
class Pendulum(_DofOutputs, AbstractHamiltonianSystem):
    r"""Ideal pendulum: :math:`H = m g l\,(1 - \cos q) + \dfrac{p^2}{2 m l^2}`.

    .. math:: \dot q = \frac{p}{m l^2}, \qquad \dot p = -m g l \sin q - \gamma \frac{p}{m l^2}.

    ``q`` is the angle from the downward vertical (radians, not wrapped). The
    separatrix between libration and rotation is at :math:`H = 2 m g l` (3 for
    the preset m=0.5, g=3, l=1); small oscillations have period
    :math:`2\pi\sqrt{l/g}`. Initial states: uniformly random phase at a distance
    from the origin of the (q, p) plane uniform on ``radius`` (our choice; the
    default (1, 2) mixes librations and rotations). State ``(..., 2)`` = (q, p).
    """

    name = "pendulum"
    separable = True

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        m: float = 0.5
        g: float = 3.0
        l: float = 1.0  # noqa: E741 - the pendulum length
        radius: Any = (1.0, 2.0)

        randomizable = ("m", "g", "l", "friction")

        def validate_physics(self):
            check_finite_parameter("m", self.m, positive=True)
            check_finite_parameter("g", self.g, non_negative=True)
            check_finite_parameter("l", self.l, positive=True)
            object.__setattr__(self, "radius", check_range("radius", self.radius, low=0.0, strict_low=False))

    @property
    def q_shape(self):
        return (1,)

    def hamiltonian(self, q, p):
        m, g, l = self.coef("m", 0), self.coef("g", 0), self.coef("l", 0)
        return m * g * l * (1.0 - torch.cos(q[..., 0])) + p[..., 0] ** 2 / (2.0 * m * l * l)

    def dH_dq(self, q, p):
        m, g, l = self.coef("m"), self.coef("g"), self.coef("l")
        return (m * g * l) * torch.sin(q)

    def dH_dp(self, q, p):
        m, l = self.coef("m"), self.coef("l")
        return p / (m * l * l)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return _ring(rng, 2, self.params.radius).to(dtype=dtype, device=device)

    @property
    def variables(self):
        return _dof_variables(self, "angle from the downward vertical, radians")


@register_system
class DoublePendulum(_DofOutputs, AbstractHamiltonianSystem):
    r"""Planar double pendulum (point masses on massless rods), canonical coordinates.

    ``q = (θ₁, θ₂)`` are the rod angles from the downward vertical and
    ``p = (p₁, p₂)`` their conjugate momenta. With :math:`Δ = θ_1 - θ_2` and
    :math:`μ = m_1 + m_2 \sin^2 Δ`,

    .. math::
        H = \frac{m_2 l_2^2 p_1^2 + (m_1 + m_2) l_1^2 p_2^2 - 2 m_2 l_1 l_2 p_1 p_2 \cos Δ}
                 {2 m_2 l_1^2 l_2^2\, μ}
            + (m_1 + m_2) g l_1 (1 - \cos θ_1) + m_2 g l_2 (1 - \cos θ_2)

    (the potential is shifted to vanish at rest). Not separable: the kinetic
    energy depends on Δ, so splitting integrators refuse it; use ``rk4``,
    ``dopri5`` or ``implicit_midpoint``. The gradients are analytic:

    .. math::
        \partial_{p_1} H = \frac{l_2 p_1 - l_1 p_2 \cos Δ}{l_1^2 l_2\, μ},\qquad
        \partial_{p_2} H = \frac{(m_1 + m_2) l_1 p_2 - m_2 l_2 p_1 \cos Δ}{m_2 l_1 l_2^2\, μ},

        \partial_Δ T = \frac{p_1 p_2 \sin Δ}{l_1 l_2\, μ} - \frac{N \sin Δ \cos Δ}{l_1^2 l_2^2\, μ^2},\quad
        \partial_{θ_1} H = \partial_Δ T + (m_1 + m_2) g l_1 \sin θ_1,\quad
        \partial_{θ_2} H = -\partial_Δ T + m_2 g l_2 \sin θ_2,

    with N the numerator of the kinetic term. Preset m₁ = m₂ = 0.5, g = 3,
    l₁ = l₂ = 1. Initial states: a uniformly random direction in the 4-D phase
    space at a distance from the origin uniform on ``radius`` (our choice).
    State ``(..., 4)`` = (θ₁, θ₂, p₁, p₂).
    """

    name = "double_pendulum"
    separable = False

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        m1: float = 0.5
        m2: float = 0.5
        l1: float = 1.0
        l2: float = 1.0
        g: float = 3.0
        radius: Any = (0.5, 1.5)

        randomizable = ("m1", "m2", "l1", "l2", "g", "friction")

        def validate_physics(self):
            for name in ("m1", "m2", "l1", "l2"):
                check_finite_parameter(name, getattr(self, name), positive=True)
            check_finite_parameter("g", self.g, non_negative=True)
            object.__setattr__(self, "radius", check_range("radius", self.radius, low=0.0, strict_low=False))

    @property
    def q_shape(self):
        return (2,)

    def _coefs(self, trailing: int):
        return tuple(self.coef(n, trailing) for n in ("m1", "m2", "l1", "l2", "g"))

    def _kinetic_parts(self, q, p):
        m1, m2, l1, l2, _ = self._coefs(0)
        delta = q[..., 0] - q[..., 1]
        c, s = torch.cos(delta), torch.sin(delta)
        mu = m1 + m2 * s * s
        p1, p2 = p[..., 0], p[..., 1]
        numerator = m2 * l2 * l2 * p1 * p1 + (m1 + m2) * l1 * l1 * p2 * p2 - 2.0 * m2 * l1 * l2 * p1 * p2 * c
        return c, s, mu, p1, p2, numerator

    def hamiltonian(self, q, p):
        m1, m2, l1, l2, g = self._coefs(0)
        c, s, mu, p1, p2, numerator = self._kinetic_parts(q, p)
        kinetic = numerator / (2.0 * m2 * l1 * l1 * l2 * l2 * mu)
        potential = (m1 + m2) * g * l1 * (1.0 - torch.cos(q[..., 0])) + m2 * g * l2 * (1.0 - torch.cos(q[..., 1]))
        return kinetic + potential

    def dH_dq(self, q, p):
        m1, m2, l1, l2, g = self._coefs(0)
        c, s, mu, p1, p2, numerator = self._kinetic_parts(q, p)
        dT_ddelta = p1 * p2 * s / (l1 * l2 * mu) - numerator * s * c / (l1 * l1 * l2 * l2 * mu * mu)
        return torch.stack((dT_ddelta + (m1 + m2) * g * l1 * torch.sin(q[..., 0]),
                            -dT_ddelta + m2 * g * l2 * torch.sin(q[..., 1])), dim=-1)

    def dH_dp(self, q, p):
        m1, m2, l1, l2, _ = self._coefs(0)
        c, s, mu, p1, p2, _ = self._kinetic_parts(q, p)
        return torch.stack(((l2 * p1 - l1 * p2 * c) / (l1 * l1 * l2 * mu),
                            ((m1 + m2) * l1 * p2 - m2 * l2 * p1 * c) / (m2 * l1 * l2 * l2 * mu)), dim=-1)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return _ring(rng, 4, self.params.radius).to(dtype=dtype, device=device)

    @property
    def variables(self):
        return _dof_variables(self, "rod angle from the downward vertical, radians")


@register_system
class HenonHeiles(_DofOutputs, AbstractHamiltonianSystem):
    r"""Hénon–Heiles: :math:`H = \tfrac12(p_x^2 + p_y^2 + x^2 + y^2) + x^2 y - \tfrac13 y^3`.

    .. math::
        \dot x = p_x,\ \dot y = p_y,\qquad
        \dot p_x = -x - 2xy - \gamma p_x,\ \dot p_y = -y - x^2 + y^2 - \gamma p_y.

    In polar coordinates the potential is :math:`V = \tfrac12 r^2 + \tfrac13 r^3 \sin 3φ`;
    its saddles sit at energy 1/6, and an orbit with :math:`H < 1/6` started in
    the well around the origin stays there. The motion is mostly regular below
    E ≈ 1/12 and mostly chaotic above E ≈ 1/8.

    Initial states, per member: an energy E uniform on ``energy`` (inside
    (0, 1/6)), a direction φ, a point at a fraction √u of the distance
    :math:`r_E(φ)` to the well's edge :math:`V = E` along φ (so V < E and the
    point lies in the well), and a momentum of magnitude :math:`\sqrt{2(E - V)}`
    in a uniformly random direction, so that H = E exactly.
    State ``(..., 4)`` = (x, y, p_x, p_y).
    """

    name = "henon_heiles"
    separable = True

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        energy: Any = (0.04, 0.16)

        def validate_physics(self):
            object.__setattr__(self, "energy", check_range("energy", self.energy, low=0.0,
                                                           high=HENON_HEILES_ESCAPE_ENERGY))

    @property
    def q_shape(self):
        return (2,)

    def hamiltonian(self, q, p):
        x, y = q[..., 0], q[..., 1]
        return 0.5 * (p * p).sum(-1) + 0.5 * (x * x + y * y) + x * x * y - y ** 3 / 3.0

    def dH_dq(self, q, p):
        x, y = q[..., 0], q[..., 1]
        return torch.stack((x + 2.0 * x * y, y + x * x - y * y), dim=-1)

    def dH_dp(self, q, p):
        return p

    @staticmethod
    def well_radius(energy: torch.Tensor, phi: torch.Tensor, iterations: int = 60) -> torch.Tensor:
        r"""Distance :math:`r_E(φ)` from the origin to :math:`V(r, φ) = E` along direction φ.

        For 0 < E < 1/6, :math:`V(r) = r^2/2 + (r^3/3)\sin 3φ` increases on
        [0, 1] from 0 to at least 1/6, so the root is found by bisection on [0, 1].
        ``energy`` and ``phi`` broadcast; returns their broadcast shape."""
        if bool((energy <= 0).any()) or bool((energy >= HENON_HEILES_ESCAPE_ENERGY).any()):
            raise ValueError(f"energies must lie in (0, 1/6), got range [{float(energy.min())}, {float(energy.max())}]")
        s = torch.sin(3.0 * phi)
        lo = torch.zeros_like(energy * s)
        hi = torch.ones_like(lo)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            inside = 0.5 * mid * mid + mid ** 3 * s / 3.0 < energy
            lo = torch.where(inside, mid, lo)
            hi = torch.where(inside, hi, mid)
        return lo

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        e_low, e_high = self.params.energy
        u = rng.uniform((4,), stream=STREAM_INITIAL)  # (M, 4), float64
        energy = e_low + (e_high - e_low) * u[:, 0]
        phi = 2.0 * math.pi * u[:, 1]
        r = torch.sqrt(u[:, 2]) * self.well_radius(energy, phi)
        x, y = r * torch.cos(phi), r * torch.sin(phi)
        potential = 0.5 * r * r + r ** 3 * torch.sin(3.0 * phi) / 3.0
        speed = torch.sqrt(torch.clamp(2.0 * (energy - potential), min=0.0))
        psi = 2.0 * math.pi * u[:, 3]
        state = torch.stack((x, y, speed * torch.cos(psi), speed * torch.sin(psi)), dim=-1)
        return state.to(dtype=dtype, device=device)

    @property
    def variables(self):
        return _dof_variables(self, "position (x, y)")
