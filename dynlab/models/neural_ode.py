r"""Neural ODE: a learned vector field integrated with torchdiffeq.

.. math::  \dot z = f_θ(z), \qquad z(τ + 1) = z(τ) + \int_τ^{τ+1} f_θ(z(s))\,ds

(Chen, Rubanova, Bettencourt & Duvenaud 2018, "Neural Ordinary Differential
Equations"). :class:`MLPVectorField` is :math:`f_θ` (an MLP, or an affine map when
``hidden`` is empty); :class:`ODEFlow` integrates it over a time span with
``torchdiffeq.odeint`` — or ``odeint_adjoint`` (``adjoint=True``: gradients from the
adjoint ODE solved backwards, memory independent of the number of solver steps).
A plain MLP vector field is also the baseline of the Hamiltonian-network paper
(Greydanus, Dzamba & Yosinski 2019).
:class:`PeriodicConvVectorField` is the lattice version for fields on a periodic
dimension (sites :math:`k = 1..K`, :math:`C` channels per site): the same MLP at every
site, of the window :math:`z_{k-r..k+r}` (:math:`r = (s-1)/2` for kernel size :math:`s`),

.. math::  f_θ(z)_k = g_θ(z_{k-r}, …, z_{k+r}),

so rolling the state over :math:`k` rolls the field (translation equivariance); Lorenz96's
:math:`\dot x_k = −x_{k−1}(x_{k−2} − x_{k+1}) − x_k + F` has this form with :math:`s = 5`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["MLPVectorField", "PeriodicConvVectorField", "ODEFlow", "ACTIVATIONS", "FIXED_STEP_METHODS",
           "ADAPTIVE_METHODS", "no_autocast"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus}
FIXED_STEP_METHODS = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS = ("dopri5", "bosh3")


def no_autocast(x: torch.Tensor):
    """A context that turns automatic mixed precision off on ``x``'s device: ODE solvers, symplectic
    integrators and gradient descent on an energy need their parameters' precision (AMP is kept for the
    rest of a model, e.g. an SSM backbone)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def mlp(d_in: int, d_out: int, hidden: Sequence[int], activation: str, out_scale: float = 1.0) -> nn.Sequential:
    """``Linear → act → … → Linear`` with the last layer's weights scaled by ``out_scale``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    d = d_in
    for width in hidden:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"hidden widths must be positive integers, got {list(hidden)!r}")
        layers += [nn.Linear(d, width), ACTIVATIONS[activation]()]
        d = width
    layers.append(nn.Linear(d, d_out))
    with torch.no_grad():
        layers[-1].weight.mul_(out_scale)
        layers[-1].bias.mul_(out_scale)
    return nn.Sequential(*layers)


class MLPVectorField(nn.Module):
    """An autonomous vector field :math:`f_θ(z)`: ``(..., D) -> (..., D)``; ``hidden=()`` gives ``A z + b``.

    ``forward(t, z)`` has torchdiffeq's signature (``t`` is ignored).
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 out_scale: float = 0.1):
        super().__init__()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        self.net = mlp(n_features, n_features, list(hidden), activation, out_scale)
        self.n_features = n_features

    def forward(self, t, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PeriodicConvVectorField(nn.Module):
    r"""A translation-equivariant field on a periodic lattice: ``(N, C, K) -> (N, C, K)``.

    A circular convolution of kernel size ``s`` over the sites (``C → hidden[0]``, the window
    :math:`z_{k-r..k+r}`), then 1×1 convolutions with the ``hidden`` widths and ``activation``
    in between (an MLP per site), the last one ``→ C`` with weights scaled by ``out_scale``.
    ``hidden=()`` gives a local linear field (one circular convolution ``C → C``).
    ``forward(t, z)`` has torchdiffeq's signature (``t`` is ignored).
    """

    def __init__(self, n_channels: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 out_scale: float = 0.1, kernel_size: int = 5):
        super().__init__()
        from ..emulators.ssm import PeriodicConv, check_spatial_options

        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        check_spatial_options(None, kernel_size)  # the kernel size
        widths = list(hidden)
        for width in widths:
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ValueError(f"hidden widths must be positive integers, got {widths!r}")
        layers: list[nn.Module] = [PeriodicConv(n_channels, widths[0] if widths else n_channels, kernel_size)]
        for d_in, d_out in zip(widths, widths[1:] + [n_channels]):
            layers += [ACTIVATIONS[activation](), nn.Conv1d(d_in, d_out, 1)]
        self.net = nn.Sequential(*layers)
        last = layers[-1].conv if isinstance(layers[-1], PeriodicConv) else layers[-1]
        with torch.no_grad():
            last.weight.mul_(out_scale)
            last.bias.mul_(out_scale)
        self.n_channels, self.kernel_size = n_channels, kernel_size

    def forward(self, t, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 3 or z.shape[1] != self.n_channels:
            raise ValueError(f"z must have shape (N, {self.n_channels}, K), got {tuple(z.shape)}")
        return self.net(z)


class ODEFlow(nn.Module):
    """The flow map of ``field`` over a span ``T``: ``z(0)`` ``(N, ...)`` → ``z(T)`` (same shape).

    Args:
        field: a module ``field(t, z)``.
        method: ``euler``, ``midpoint``, ``rk4`` (fixed steps) or ``dopri5``, ``bosh3`` (adaptive).
        substeps: fixed steps per span (fixed-step methods).
        rtol, atol: tolerances (adaptive methods).
        adjoint: gradients by the adjoint method (``torchdiffeq.odeint_adjoint``).
    """

    def __init__(self, field: nn.Module, method: str = "rk4", substeps: int = 1, rtol: float = 1e-6,
                 atol: float = 1e-8, adjoint: bool = False):
        super().__init__()
        if method not in FIXED_STEP_METHODS + ADAPTIVE_METHODS:
            raise ValueError(f"method must be one of {list(FIXED_STEP_METHODS + ADAPTIVE_METHODS)}, got {method!r}")
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
        for name, value in (("rtol", rtol), ("atol", atol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(adjoint, bool):
            raise ValueError(f"adjoint must be true or false, got {adjoint!r}")
        self.field, self.method, self.substeps = field, method, substeps
        self.rtol, self.atol, self.adjoint = float(rtol), float(atol), adjoint

    def forward(self, z0: torch.Tensor, span: float = 1.0) -> torch.Tensor:
        import torchdiffeq

        t = torch.tensor([0.0, float(span)], dtype=z0.dtype, device=z0.device)
        kwargs = {"method": self.method}
        if self.method in FIXED_STEP_METHODS:
            kwargs["options"] = {"step_size": float(span) / self.substeps}
        else:
            kwargs.update(rtol=self.rtol, atol=self.atol)
        if self.adjoint and torch.is_grad_enabled():
            return torchdiffeq.odeint_adjoint(self.field, z0, t, adjoint_params=tuple(self.field.parameters()),
                                              **kwargs)[-1]
        return torchdiffeq.odeint(self.field, z0, t, **kwargs)[-1]
