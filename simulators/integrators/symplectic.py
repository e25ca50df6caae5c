r"""Symplectic integrators for Hamiltonian systems: leapfrog, Yoshida 4, implicit midpoint.

The splitting methods (``leapfrog``, ``yoshida4``) need a *separable*
Hamiltonian :math:`H = T(p) + V(q)` and no friction: the system must expose
``split``/``join`` of the flat state into ``(q, p)``, ``dH_dq`` and ``dH_dp``
and a ``separable`` flag (:class:`simulators.hamiltonian.AbstractHamiltonianSystem`).
Each sub-step is then the exact flow of T or of V, so the map is symplectic and
the energy error stays bounded (no secular drift) for exponentially long times
(Hairer, Lubich & Wanner, *Geometric Numerical Integration*, 2006, ch. IX).

With friction γ > 0 the flow is not Hamiltonian; rather than splitting off
the friction term silently, these methods refuse such a system: use ``rk4``,
``dopri5`` or ``implicit_midpoint``.

``implicit_midpoint`` is symplectic for any Hamiltonian (separable or not),
conserves quadratic invariants such as angular momentum exactly, and
integrates any ODE (friction included).
"""
from __future__ import annotations

import math

from typing import TYPE_CHECKING

import torch

from .base import AbstractFixedStepIntegrator, register_integrator

if TYPE_CHECKING:
    from ..core import AbstractSystem

__all__ = ["AbstractSplittingIntegrator", "Leapfrog", "Yoshida4", "ImplicitMidpoint", "YOSHIDA4_WEIGHTS"]

_CBRT2 = 2.0 ** (1.0 / 3.0)
#: Yoshida (1990) triple-jump weights (w₁, w₀, w₁), w₁ = 1/(2 − 2^{1/3}), w₀ = −2^{1/3}/(2 − 2^{1/3})
YOSHIDA4_WEIGHTS = (1.0 / (2.0 - _CBRT2), -_CBRT2 / (2.0 - _CBRT2), 1.0 / (2.0 - _CBRT2))


class AbstractSplittingIntegrator(AbstractFixedStepIntegrator):
    r"""A composition of kicks :math:`p \mathrel{-}= c\,h\,\partial_q H(q)` and drifts
    :math:`q \mathrel{+}= d\,h\,\partial_p H(p)` for separable Hamiltonians.

    ``check_system`` refuses systems without ``dH_dq``/``dH_dp``, non-separable
    Hamiltonians, friction and noise, each with a ``ValueError`` naming why.
    """

    def check_system(self, system: AbstractSystem) -> None:
        name = getattr(system, "name", type(system).__name__)
        if not all(hasattr(system, attr) for attr in ("dH_dq", "dH_dp", "split", "join", "separable")):
            raise ValueError(f"{self.name} integrates Hamiltonian systems in (q, p) only and {name} is not one "
                             "(no dH_dq/dH_dp); use integrator=rk4 or dopri5")
        if system.is_stochastic:
            raise ValueError(f"{self.name} cannot integrate the stochastic system {name}; use euler_maruyama")
        if not system.separable:
            raise ValueError(f"{self.name} needs a separable Hamiltonian H = T(p) + V(q) and {name} is not "
                             "separable; use integrator=rk4, dopri5 or implicit_midpoint")
        if getattr(system, "has_friction", False):
            friction = system.params.friction
            drawn = (system.params.randomize or {}).get("friction")
            what = f"randomize.friction={list(drawn)}" if drawn else f"friction={friction!r}"
            raise ValueError(f"{self.name} is symplectic and does not integrate friction ({what} on {name}); "
                             "set friction=0 or use integrator=rk4, dopri5 or implicit_midpoint")

    @staticmethod
    def _check_dt(dt: float) -> None:
        if not math.isfinite(dt) or dt == 0:
            raise ValueError(f"time step dt must be finite and non-zero, got {dt!r}")


@register_integrator
class Leapfrog(AbstractSplittingIntegrator):
    r"""Störmer–Verlet in kick–drift–kick form (velocity Verlet), order 2, symplectic, time-reversible.

    .. math::
        p_{n+1/2} = p_n - \tfrac{h}{2}\,\partial_q H(q_n),\quad
        q_{n+1} = q_n + h\,\partial_p H(p_{n+1/2}),\quad
        p_{n+1} = p_{n+1/2} - \tfrac{h}{2}\,\partial_q H(q_{n+1}).

    States ``(*batch, 2·dof)``; two evaluations of ∂H/∂q and one of ∂H/∂p per step.
    """

    name = "leapfrog"

    def step(self, system, t, x, dt, noise=None):
        self._check_dt(dt)
        half = 0.5 * dt
        q, p = system.split(x)
        p = p - half * system.dH_dq(q, p)
        q = q + dt * system.dH_dp(q, p)
        p = p - half * system.dH_dq(q, p)
        return system.join(q, p)


@register_integrator
class Yoshida4(AbstractSplittingIntegrator):
    r"""Yoshida's fourth-order triple jump: :math:`Φ_h = L_{w_1 h} ∘ L_{w_0 h} ∘ L_{w_1 h}`.

    ``L`` is the leapfrog step and :math:`w_1 = 1/(2 - 2^{1/3})`,
    :math:`w_0 = 1 - 2 w_1 = -2^{1/3}/(2 - 2^{1/3})` (Yoshida 1990). The middle
    step runs backwards in time. Adjacent half-kicks are merged, giving

    .. math::
        K_{w_1/2}\,D_{w_1}\,K_{(w_0+w_1)/2}\,D_{w_0}\,K_{(w_0+w_1)/2}\,D_{w_1}\,K_{w_1/2}

    (kicks :math:`K_c: p \mathrel{-}= c h\,\partial_q H`, drifts :math:`D_d: q \mathrel{+}= d h\,\partial_p H`):
    four evaluations of ∂H/∂q and three of ∂H/∂p per step. Order 4, symplectic,
    time-reversible. States ``(*batch, 2·dof)``.
    """

    name = "yoshida4"
    KICKS = (0.5 * YOSHIDA4_WEIGHTS[0], 0.5 * (YOSHIDA4_WEIGHTS[0] + YOSHIDA4_WEIGHTS[1]),
             0.5 * (YOSHIDA4_WEIGHTS[1] + YOSHIDA4_WEIGHTS[2]), 0.5 * YOSHIDA4_WEIGHTS[2])
    DRIFTS = YOSHIDA4_WEIGHTS

    def step(self, system, t, x, dt, noise=None):
        self._check_dt(dt)
        q, p = system.split(x)
        for kick, drift in zip(self.KICKS, self.DRIFTS):
            p = p - (kick * dt) * system.dH_dq(q, p)
            q = q + (drift * dt) * system.dH_dp(q, p)
        p = p - (self.KICKS[-1] * dt) * system.dH_dq(q, p)
        return system.join(q, p)


@register_integrator
class ImplicitMidpoint(AbstractFixedStepIntegrator):
    r"""Implicit midpoint rule :math:`x_{n+1} = x_n + h\,f\big(t_n + \tfrac h2, \tfrac{x_n + x_{n+1}}{2}\big)`.

    Order 2, symplectic for every Hamiltonian system (separable or not), and it
    conserves quadratic invariants exactly. The implicit equation is solved by
    fixed-point iteration from the explicit Euler guess, member by member: a
    member stops iterating once its update is below
    ``tol · (1 + max|x|)`` (``tol`` defaults to 8 ulp of the state's dtype), so
    its result never depends on the other members of the batch. Convergence
    needs :math:`h\,\mathrm{Lip}(f) < 1`; otherwise the step raises
    ``RuntimeError`` asking for a smaller ``time.dt``.
    """

    name = "implicit_midpoint"

    def __init__(self, tol: float | None = None, max_iter: int = 100, compile: bool = False):
        super().__init__(compile=compile)
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))
                                or not math.isfinite(tol) or tol <= 0):
            raise ValueError(f"integrator.tol must be a finite number > 0 or null, got {tol!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"integrator.max_iter must be an integer >= 1, got {max_iter!r}")
        self.tol = None if tol is None else float(tol)
        self.max_iter = max_iter

    def options(self):
        out = dict(super().options())
        if self.tol is not None:
            out["tol"] = self.tol
        out["max_iter"] = self.max_iter
        return out

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"implicit_midpoint cannot integrate the stochastic system {system.name}; "
                             "use integrator=euler_maruyama")

    def step(self, system, t, x, dt, noise=None):
        f = system.vector_field
        tol = self.tol if self.tol is not None else 8.0 * torch.finfo(x.dtype).eps
        t_mid = t + 0.5 * dt
        members = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
        scale = tol * (1.0 + members.abs().amax(dim=-1))                       # (B,)
        guess = x + dt * f(t, x)
        active = torch.ones(members.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.max_iter):
            new = x + dt * f(t_mid, 0.5 * (x + guess))
            change = (new - guess).reshape(members.shape).abs().amax(dim=-1)   # (B,)
            keep = active.reshape(-1, *([1] * (x.ndim - 1))) if x.ndim > 1 else active
            guess = torch.where(keep, new, guess)
            active = active & (change > scale)
            if not bool(active.any()):
                return guess
        raise RuntimeError(f"implicit_midpoint did not converge in {self.max_iter} iterations at t={t:g} "
                           f"with dt={dt!r}; use a smaller time.dt")
