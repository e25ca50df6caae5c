r"""PINN networks: input embeddings, MLP and modified MLP, the exact-IC wrapper.

Inputs are the window's normalised time :math:`τ = (t − t_a)/(t_b − t_a) ∈ [0, 1]`
and, for PDEs, the position ``x``. The embedding is

* periodic in ``x`` exactly: :math:`(\cos m k_0 ξ, \sin m k_0 ξ)_{m=1..M}` with
  :math:`ξ = x − x_{min}`, :math:`k_0 = 2π/ℓ` (Dong & Ni 2021), so ``u`` and all its
  x-derivatives are periodic by construction;
* time: :math:`τ` and optionally :math:`(\sin 2π m τ, \cos 2π m τ)_{m=1..T}`;
* optionally random Fourier features :math:`(\cos Bz, \sin Bz)`, :math:`B_{ij} \sim N(0, σ^2)`
  of the embedded input ``z`` (Tancik et al. 2020; Wang, Wang & Perdikaris 2021).

Networks: the plain MLP and the modified MLP of Wang, Teng & Perdikaris (2021),
:math:`U = σ(W_U z), V = σ(W_V z), h_1 = σ(W_1 z), h_{l+1} = (1 − σ(W_l h_l)) ⊙ U + σ(W_l h_l) ⊙ V`.

:class:`PinnNetwork` imposes the initial state exactly:
:math:`u(τ, x) = u_0(x) + τ\,s\,\mathrm{NN}(τ, x)` (``s`` the output scale), or
:math:`u = s\,\mathrm{NN}` without it (the IC is then a loss term).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .config import NetworkConfig

__all__ = ["Embedding", "MLP", "ModifiedMLP", "PinnNetwork", "FourierInterpolant", "ACTIVATIONS"]


class _Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"tanh": nn.Tanh, "gelu": nn.GELU, "sin": _Sin}


class Embedding(nn.Module):
    """``(τ (N,1), x (N,1) | None) -> (N, F)`` features (see the module docstring)."""

    def __init__(self, cfg: NetworkConfig, *, x_min: float | None = None, length: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.periodic = length is not None
        if self.periodic and not (length > 0):
            raise ValueError(f"domain length must be > 0, got {length!r}")
        self.x_min = float(x_min or 0.0)
        self.k0 = 2 * math.pi / length if self.periodic else 0.0
        self.register_buffer("x_m", torch.arange(1, cfg.x_modes + 1, dtype=torch.float64))
        self.register_buffer("t_m", torch.arange(1, cfg.time_features + 1, dtype=torch.float64))
        dim = 1 + 2 * cfg.time_features + (2 * cfg.x_modes if self.periodic else 0)
        if cfg.fourier_features:
            B = torch.randn(dim, cfg.fourier_features, dtype=torch.float64, generator=generator) * cfg.fourier_scale
            self.register_buffer("B", B)
            dim = 2 * cfg.fourier_features
        else:
            self.B = None
        self.dim = dim

    def forward(self, tau: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        parts = [tau]
        if len(self.t_m):
            arg = 2 * math.pi * tau * self.t_m
            parts += [torch.sin(arg), torch.cos(arg)]
        if self.periodic:
            if x is None:
                raise ValueError("a periodic embedding needs x")
            arg = self.k0 * (x - self.x_min) * self.x_m
            parts += [torch.cos(arg), torch.sin(arg)]
        z = torch.cat(parts, dim=-1)
        if self.B is not None:
            zb = z @ self.B
            z = torch.cat((torch.cos(zb), torch.sin(zb)), dim=-1)
        return z


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, Glorot-normal weights, zero biases."""

    def __init__(self, d_in: int, d_out: int, cfg: NetworkConfig):
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.width), act()]
            d = cfg.width
        layers.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*layers)
        _glorot(self)

    def forward(self, z):
        return self.net(z)


class ModifiedMLP(nn.Module):
    """The modified MLP (Wang, Teng & Perdikaris 2021); see the module docstring."""

    def __init__(self, d_in: int, d_out: int, cfg: NetworkConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]()
        self.U = nn.Linear(d_in, cfg.width)
        self.V = nn.Linear(d_in, cfg.width)
        self.first = nn.Linear(d_in, cfg.width)
        self.hidden = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(cfg.depth - 1))
        self.out = nn.Linear(cfg.width, d_out)
        _glorot(self)

    def forward(self, z):
        U, V = self.act(self.U(z)), self.act(self.V(z))
        h = self.act(self.first(z))
        for layer in self.hidden:
            g = self.act(layer(h))
            h = (1 - g) * U + g * V
        return self.out(h)


def _glorot(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


NETWORKS = {"mlp": MLP, "modified_mlp": ModifiedMLP}


class FourierInterpolant:
    r"""The trigonometric interpolant of periodic samples, a differentiable function of ``x``.

    ``values``: ``(n,)`` at ``x_j = x_min + ℓ j / n`` (n even; the Nyquist mode is dropped).
    ``f(x) = c_0 + Σ_{m=1}^{n/2−1} a_m cos(m k_0 ξ) + b_m sin(m k_0 ξ)``, ``x`` of any shape.
    """

    def __init__(self, values: torch.Tensor, x_min: float, length: float):
        if values.ndim != 1 or values.shape[0] < 4 or values.shape[0] % 2:
            raise ValueError(f"values must be 1-D with an even length >= 4, got shape {tuple(values.shape)}")
        n = values.shape[0]
        c = torch.fft.rfft(values.detach().to(torch.float64)) / n
        self.c0 = c[0].real
        self.a = 2 * c[1:n // 2].real
        self.b = -2 * c[1:n // 2].imag
        self.m = torch.arange(1, n // 2, dtype=torch.float64)
        self.x_min, self.k0 = float(x_min), 2 * math.pi / float(length)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a, b, m = (v.to(dtype=x.dtype, device=x.device) for v in (self.a, self.b, self.m))
        arg = self.k0 * (x[..., None] - self.x_min) * m
        return self.c0.to(dtype=x.dtype, device=x.device) + (torch.cos(arg) * a).sum(-1) + (torch.sin(arg) * b).sum(-1)


class PinnNetwork(nn.Module):
    """``u(τ, x)``: embedding, network and (optionally exact) initial state.

    Args:
        cfg: the network section.
        d_out: output components (``D`` for an ODE, 1 for a scalar PDE).
        initial: ``u0``: a tensor ``(D,)`` (ODE) or a callable ``x -> u0(x)`` (PDE); used exactly
            when ``exact_ic`` (else only by the IC loss).
        exact_ic: ``u = u0 + τ s NN`` (True) or ``u = s NN`` (False).
        scale: the output scale ``s``.
        x_min, length: the periodic domain (PDE) or None (ODE).
    """

    def __init__(self, cfg: NetworkConfig, d_out: int, *, initial, exact_ic: bool, scale: float,
                 x_min: float | None = None, length: float | None = None, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = Embedding(cfg, x_min=x_min, length=length, generator=gen)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = NETWORKS[cfg.arch](self.embed.dim, d_out, cfg)
        self.initial = initial
        self.exact_ic = exact_ic
        self.scale = float(scale)
        self.is_pde = length is not None

    def u0(self, x: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The initial state at ``x`` (PDE, ``(N, 1)``) or broadcast to ``like`` (ODE)."""
        if self.is_pde:
            return self.initial(x)
        return self.initial.to(dtype=like.dtype, device=like.device).expand_as(like)

    def forward(self, tau: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        out = self.scale * self.body(self.embed(tau, x))
        if self.exact_ic:
            out = self.u0(x, out) + tau * out
        return out
