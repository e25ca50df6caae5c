r"""Hamiltonian neural networks: a learned scalar :math:`H_θ(q, p)` whose symplectic gradient is the dynamics.

.. math::  \dot q = \partial H_θ/\partial p, \qquad \dot p = -\partial H_θ/\partial q

(Greydanus, Dzamba & Yosinski 2019, "Hamiltonian Neural Networks"). The field
:math:`J\nabla H_θ` is divergence-free for every θ (Liouville: its divergence
is :math:`\sum_i \partial^2 H/\partial q_i\partial p_i - \partial^2 H/\partial p_i\partial q_i = 0`),
and :math:`H_θ` is exactly conserved by the learned flow.

* :class:`SeparableHamiltonian`: :math:`H = T_θ(p) + V_θ(q)`, two MLPs. Rolled out with the
  symplectic splitting integrators of :mod:`simulators.integrators.symplectic`
  (``leapfrog``, ``yoshida4``), whose energy error stays bounded.
* :class:`GeneralHamiltonian`: :math:`H = \mathrm{MLP}([q, p])`. Rolled out with
  ``implicit_midpoint`` (symplectic for any H).

:class:`LearnedHamiltonianSystem` presents a learned H with the interface those
integrators use (``split``/``join``, ``dH_dq``, ``dH_dp``, ``separable``,
``vector_field``), so the registry's integrators run it unchanged.
:func:`fit_derivatives` trains any module with a ``vector_field`` on
state-derivative pairs (the HNN paper's protocol).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Callable

import torch
from torch import nn

from .neural_ode import mlp

__all__ = ["AbstractLearnedHamiltonian", "SeparableHamiltonian", "GeneralHamiltonian", "HAMILTONIANS",
           "LearnedHamiltonianSystem", "fit_derivatives"]


class AbstractLearnedHamiltonian(nn.Module):
    """A learned :math:`H(q, p)` on ``dof`` degrees of freedom; ``q``, ``p`` ``(..., dof)`` → ``(...)``.

    Gradients are taken by autograd; they keep their graph when gradients are enabled
    (so a loss on the dynamics trains H), and work under ``torch.no_grad()`` too.
    """

    separable: bool = False

    def __init__(self, dof: int):
        super().__init__()
        if isinstance(dof, bool) or not isinstance(dof, int) or dof < 1:
            raise ValueError(f"dof must be a positive integer, got {dof!r}")
        self.dof = dof

    @abstractmethod
    def hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """:math:`H(q, p)`, shape ``(...)``."""

    def forward(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.hamiltonian(q, p)

    def _grad(self, fn: Callable[[torch.Tensor], torch.Tensor], wrt: torch.Tensor) -> torch.Tensor:
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            v = wrt if (create and wrt.requires_grad) else wrt.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(v).sum(), v, create_graph=create)
        return g

    def dH_dq(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self._grad(lambda v: self.hamiltonian(v, p), q)

    def dH_dp(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self._grad(lambda v: self.hamiltonian(q, v), p)

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`(\partial_p H, -\partial_q H)` of flat states ``x`` ``(..., 2·dof)`` (q first)."""
        q, p = x[..., :self.dof], x[..., self.dof:]
        return torch.cat((self.dH_dp(q, p), -self.dH_dq(q, p)), dim=-1)


class SeparableHamiltonian(AbstractLearnedHamiltonian):
    """:math:`H(q, p) = T_θ(p) + V_θ(q)` with two MLPs ``dof → hidden → 1``."""

    separable = True

    def __init__(self, dof: int, hidden=(64, 64), activation: str = "tanh"):
        super().__init__(dof)
        self.kinetic = mlp(dof, 1, list(hidden), activation)
        self.potential = mlp(dof, 1, list(hidden), activation)

    def hamiltonian(self, q, p):
        return self.kinetic(p).squeeze(-1) + self.potential(q).squeeze(-1)


class GeneralHamiltonian(AbstractLearnedHamiltonian):
    """:math:`H(q, p) = \\mathrm{MLP}([q, p])` (``2·dof → hidden → 1``)."""

    separable = False

    def __init__(self, dof: int, hidden=(64, 64), activation: str = "tanh"):
        super().__init__(dof)
        self.net = mlp(2 * dof, 1, list(hidden), activation)

    def hamiltonian(self, q, p):
        return self.net(torch.cat((q, p), dim=-1)).squeeze(-1)


HAMILTONIANS: dict[str, type[AbstractLearnedHamiltonian]] = {"separable": SeparableHamiltonian,
                                                             "general": GeneralHamiltonian}


class LearnedHamiltonianSystem:
    """A learned Hamiltonian with the interface of :class:`simulators.hamiltonian.AbstractHamiltonianSystem`
    that the integrators use: flat states ``(..., 2·dof)`` = (q, p), no friction, no noise."""

    is_stochastic = False
    has_friction = False
    name = "learned_hamiltonian"

    def __init__(self, hamiltonian: AbstractLearnedHamiltonian):
        if not isinstance(hamiltonian, AbstractLearnedHamiltonian):
            raise ValueError(f"hamiltonian must be a learned Hamiltonian, got {type(hamiltonian).__name__}")
        self.H = hamiltonian
        self.dof = hamiltonian.dof
        self.separable = hamiltonian.separable

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] != 2 * self.dof:
            raise ValueError(f"states must have a last dimension of {2 * self.dof}, got shape {tuple(x.shape)}")
        return x[..., :self.dof], x[..., self.dof:]

    def join(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return torch.cat((q, p), dim=-1)

    def dH_dq(self, q, p):
        return self.H.dH_dq(q, p)

    def dH_dp(self, q, p):
        return self.H.dH_dp(q, p)

    def vector_field(self, t, x):
        return self.H.vector_field(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.H.hamiltonian(*self.split(x))


def fit_derivatives(model: nn.Module, x: torch.Tensor, dxdt: torch.Tensor, *, steps: int = 2000, lr: float = 1e-3,
                    batch_size: int | None = None, weight_decay: float = 0.0, seed: int = 0) -> list[float]:
    """Fit ``model.vector_field(x) ≈ dxdt`` by Adam on the mean squared error (the HNN paper's protocol).

    ``x``, ``dxdt``: ``(N, D)``; ``batch_size`` None uses the full batch. Returns the losses per step.
    """
    if x.ndim != 2 or x.shape != dxdt.shape:
        raise ValueError(f"x and dxdt must both have shape (N, D), got {tuple(x.shape)} and {tuple(dxdt.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        if batch_size is None or batch_size >= x.shape[0]:
            xb, yb = x, dxdt
        else:
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
            xb, yb = x[idx], dxdt[idx]
        loss = (model.vector_field(xb) - yb).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
