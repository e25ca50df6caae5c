r"""Energy-based prediction: score candidates with an energy, predict by descending it.

An energy :math:`E(u) \in \mathbb{R}` of a candidate :math:`u \in \mathbb{R}^D` (for the
emulator: the normalised increment of a candidate next state, given an encoded
context) is minimised by :math:`K` steps of gradient descent

.. math::  u_{k+1} = u_k - \alpha\,\nabla_u E(u_k) + \sigma\,\xi_k,\qquad \xi_k \sim \mathcal N(0, I),

with step size α and optional Langevin-like noise σ (training only). This is the
"System 2" prediction of Energy-Based Transformers (Gladstone et al. 2025,
arXiv:2507.02092) and Energy-Based World Models (Gladstone et al. 2024,
arXiv:2406.08862): the model is trained *through* the unrolled descent, so the
prediction :math:`u_K` is differentiable in the energy's parameters (second-order
gradients through :math:`\nabla_u E`).

On a quadratic :math:`E(u) = \tfrac12 (u - u^*)^\top A (u - u^*)` each eigen-component of
the error contracts by :math:`|1 - \alpha\lambda_i|` per step, so the descent
converges iff :math:`0 < \alpha < 2/\lambda_{\max}` (tests check this rate).

**Best of N.** ``best_of_n`` descends ``N`` candidates per problem and keeps the one
of lowest final energy: more inference compute, chosen by the model's own score.

**Replay buffer.** :class:`ReplayBuffer` keeps recent final candidates; during
training a fraction of the initial guesses is drawn from it, so the energy is
also shaped far from the usual starting point (the persistent-chain buffer of
Du & Mordatch 2019, "Implicit generation and modeling with EBMs", used by EBT).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["descend", "best_of_n", "EnergyHead", "PeriodicEnergyHead", "ReplayBuffer"]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def _check_count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def descend(energy: EnergyFn, u0: torch.Tensor, steps: int, step_size: float | torch.Tensor, *,
            noise: float = 0.0, create_graph: bool | None = None,
            generator: torch.Generator | None = None, return_path: bool = False):
    r"""``steps`` gradient steps :math:`u \leftarrow u - \alpha \nabla_u E(u) + \sigma\xi` from ``u0``.

    Args:
        energy: maps candidates ``(N, D)`` to energies ``(N,)``; each row's energy may
            depend only on its own row (the gradient of the sum is then per row).
        u0: initial candidates ``(N, D)``.
        steps: ``K >= 0``.
        step_size: α, a number or a tensor broadcasting against ``(N, 1)`` (e.g. per-row ``(N, 1)``).
        noise: σ of the added Gaussian noise per step (0: plain descent).
        create_graph: keep the graph through the steps (train through the unrolled descent);
            default: whether gradients are enabled at the call.
        generator: for the noise.
        return_path: also return the energies ``(K + 1, N)`` along the path (detached).

    Returns ``u_K`` ``(N, D)`` (and the energy path when asked). Works under
    ``torch.no_grad()``: gradients with respect to ``u`` are taken locally.
    """
    _check_count("steps", steps, 0)
    if not isinstance(u0, torch.Tensor) or u0.ndim != 2:
        raise ValueError(f"u0 must have shape (N, D), got {tuple(u0.shape) if isinstance(u0, torch.Tensor) else u0!r}")
    if isinstance(step_size, (int, float)) and not (math.isfinite(step_size) and step_size >= 0):
        raise ValueError(f"step_size must be a finite number >= 0, got {step_size!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    path = []
    u = u0
    with torch.enable_grad():
        if not create_graph:
            u = u.detach()
        for k in range(steps + (1 if return_path else 0)):
            if not u.requires_grad:
                u = u.requires_grad_(True)
            e = energy(u)
            if e.shape != u.shape[:1]:
                raise ValueError(f"energy must map (N, D) candidates to (N,), got shape {tuple(e.shape)}")
            if return_path:
                path.append(e.detach())
            if k == steps:
                break
            (grad,) = torch.autograd.grad(e.sum(), u, create_graph=create_graph)
            u = u - step_size * grad
            if noise > 0:
                xi = torch.randn(u.shape, generator=generator, dtype=u.dtype,
                                 device=generator.device if generator is not None else u.device)
                u = u + noise * xi.to(u.device)
            if not create_graph:
                u = u.detach()
    if not create_graph:
        u = u.detach()
    return (u, torch.stack(path)) if return_path else u


def best_of_n(energy: EnergyFn, candidates: torch.Tensor, steps: int, step_size: float | torch.Tensor, *,
              create_graph: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Descend ``N`` candidates per problem and keep the lowest-energy one.

    Args:
        energy: maps ``(N·B, D)`` to ``(N·B,)`` (candidate-major: row ``n·B + b`` is
            candidate ``n`` of problem ``b``).
        candidates: ``(N, B, D)`` initial guesses.
        steps, step_size: as in :func:`descend` (a tensor step size broadcasts against ``(N·B, 1)``).

    Returns the chosen ``(B, D)`` and its final energy ``(B,)``.
    """
    if not isinstance(candidates, torch.Tensor) or candidates.ndim != 3:
        raise ValueError(f"candidates must have shape (N, B, D), got "
                         f"{tuple(candidates.shape) if isinstance(candidates, torch.Tensor) else candidates!r}")
    N, B, D = candidates.shape
    u = descend(energy, candidates.reshape(N * B, D), steps, step_size, create_graph=create_graph)
    e = energy(u).reshape(N, B)
    pick = e.argmin(0)  # (B,)
    chosen = u.reshape(N, B, D)[pick, torch.arange(B, device=u.device)]
    return chosen, e[pick, torch.arange(B, device=u.device)]


class EnergyHead(nn.Module):
    r"""A scalar energy of a candidate given a context vector:

    .. math::  E(h, u) = \mathrm{MLP}([h, u]) + \tfrac{c}{2}\lVert u\rVert^2

    with smooth (SiLU) activations, so :math:`\nabla_u E` is smooth and the unrolled
    descent can be trained through; the small confinement ``c`` keeps the energy bounded
    below far from the data. Shapes: ``h`` ``(N, d_context)``, ``u`` ``(N, D)`` → ``(N,)``.
    """

    def __init__(self, d_context: int, n_features: int, width: int = 64, depth: int = 2, confine: float = 0.01):
        super().__init__()
        for name, value in (("d_context", d_context), ("n_features", n_features), ("width", width),
                            ("depth", depth)):
            _check_count(name, value, 1)
        if not (isinstance(confine, (int, float)) and math.isfinite(confine) and confine >= 0):
            raise ValueError(f"confine must be a finite number >= 0, got {confine!r}")
        layers: list[nn.Module] = []
        d_in = d_context + n_features
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.SiLU()]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)
        self.confine = float(confine)
        self.n_features = n_features

    def forward(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if h.ndim != 2 or u.ndim != 2 or h.shape[0] != u.shape[0] or u.shape[1] != self.n_features:
            raise ValueError(f"h must be (N, d_context) and u (N, {self.n_features}), "
                             f"got {tuple(h.shape)} and {tuple(u.shape)}")
        return self.net(torch.cat((h.to(u.dtype), u), dim=-1)).squeeze(-1) + 0.5 * self.confine * u.square().sum(-1)


class PeriodicEnergyHead(nn.Module):
    r"""An energy that is a sum of per-site terms on a periodic lattice of ``K`` sites:

    .. math::  E(h, u) = \sum_k g_θ\big(h_k, u_{k-r}, …, u_{k+r}\big) + \tfrac{c}{2}\lVert u\rVert^2

    with :math:`r = (s-1)/2` for kernel size ``s``: a circular convolution of the candidate's
    ``C`` channels over the window plus a 1×1 map of the site's context :math:`h_k` (together
    the first layer of an MLP on :math:`[h_k, u_{k-r..k+r}]`), then 1×1 convolutions with SiLU
    (an MLP per site) down to one value per site, summed over sites. So
    :math:`\partial E/\partial u_k` depends only on sites within :math:`2r` of ``k`` and rolling
    ``h`` and ``u`` over the sites leaves ``E`` unchanged and rolls :math:`\nabla_u E`.
    Shapes: ``h`` ``(N, d_context, K)``, ``u`` ``(N, C, K)`` → ``(N,)``.
    """

    def __init__(self, d_context: int, n_channels: int, width: int = 64, depth: int = 2, confine: float = 0.01,
                 kernel_size: int = 5):
        super().__init__()
        from ..emulators.ssm import PeriodicConv, check_spatial_options

        for name, value in (("d_context", d_context), ("n_channels", n_channels), ("width", width),
                            ("depth", depth)):
            _check_count(name, value, 1)
        if not (isinstance(confine, (int, float)) and math.isfinite(confine) and confine >= 0):
            raise ValueError(f"confine must be a finite number >= 0, got {confine!r}")
        check_spatial_options(None, kernel_size)  # the kernel size
        self.window = PeriodicConv(n_channels, width, kernel_size)  # u_{k-r..k+r} -> width
        self.context = nn.Conv1d(d_context, width, 1, bias=False)  # h_k -> width
        layers: list[nn.Module] = [nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv1d(width, width, 1), nn.SiLU()]
        layers.append(nn.Conv1d(width, 1, 1))
        self.net = nn.Sequential(*layers)
        self.confine = float(confine)
        self.d_context, self.n_channels = d_context, n_channels

    def forward(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if h.ndim != 3 or u.ndim != 3 or h.shape[0] != u.shape[0] or h.shape[2] != u.shape[2] \
                or h.shape[1] != self.d_context or u.shape[1] != self.n_channels:
            raise ValueError(f"h must be (N, {self.d_context}, K) and u (N, {self.n_channels}, K), "
                             f"got {tuple(h.shape)} and {tuple(u.shape)}")
        per_site = self.net(self.window(u) + self.context(h.to(u.dtype)))  # (N, 1, K)
        return per_site.sum(dim=(1, 2)) + 0.5 * self.confine * u.square().sum(dim=(1, 2))


class ReplayBuffer(nn.Module):
    """A ring buffer of ``capacity`` past final candidates ``(D,)`` (not saved in checkpoints).

    ``push(u)`` stores detached rows; ``mix(u0, fraction, generator)`` replaces a random
    ``fraction`` of the rows of ``u0`` by stored candidates (none while the buffer is empty).
    """

    def __init__(self, capacity: int, n_features: int):
        super().__init__()
        _check_count("capacity", capacity, 1)
        self.capacity = capacity
        self.register_buffer("items", torch.zeros(capacity, n_features), persistent=False)
        self.count = 0  # filled rows
        self.head = 0   # next row to overwrite

    @torch.no_grad()
    def push(self, u: torch.Tensor) -> None:
        u = u.detach().reshape(-1, self.items.shape[1]).to(self.items.dtype)[-self.capacity:]
        n = u.shape[0]
        idx = (self.head + torch.arange(n, device=self.items.device)) % self.capacity
        self.items[idx] = u
        self.head = (self.head + n) % self.capacity
        self.count = min(self.capacity, self.count + n)

    def mix(self, u0: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
        if self.count == 0 or fraction == 0.0:
            return u0
        N = u0.shape[0]
        take = torch.rand(N, generator=generator, device="cpu") < fraction
        if not bool(take.any()):
            return u0
        src = torch.randint(0, self.count, (int(take.sum()),), generator=generator, device="cpu")
        out = u0.clone()
        out[take.to(u0.device)] = self.items[src.to(self.items.device)].to(u0.dtype)
        return out
