r"""Rate matrices of finite-state Markov jump processes and their exact laws.

A Markov jump process (MJP) on the states ``0 … N−1`` is fixed by its rate
matrix (generator) :math:`Q`: :math:`Q_{ij} \ge 0` is the rate of the jump
:math:`i \to j` (``i ≠ j``) and :math:`Q_{ii} = −\sum_{j \ne i} Q_{ij}`, so
every row sums to zero. Its exact laws, used as references by the tests:

* transition probabilities :math:`P(t) = \exp(tQ)`, :math:`P_{ij}(t) = \Pr[X_t = j \mid X_0 = i]`;
* the stationary distribution :math:`π Q = 0`, :math:`\sum_i π_i = 1` (the left
  null space of Q; unique when Q is irreducible);
* the entropy production rate
  :math:`σ = \tfrac12 \sum_{i \ne j} (π_i Q_{ij} − π_j Q_{ji}) \ln\frac{π_i Q_{ij}}{π_j Q_{ji}}`.

Shapes: rate matrices are ``(..., N, N)`` with any leading batch dimensions
(ensemble members). Everything is pure torch and works on any device.
"""
from __future__ import annotations

import math

import torch

__all__ = ["check_rate_matrix", "rate_matrix_from_rates", "stationary_distribution",
           "transition_probabilities", "entropy_production", "flashing_ratchet_rate_matrix"]


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in idx) + "]"


def check_rate_matrix(rate_matrix: torch.Tensor, *, name: str = "rate_matrix", atol: float = 1e-9) -> None:
    r"""Raise ``ValueError`` naming the first bad entry unless ``rate_matrix`` is a
    batch ``(..., N, N)`` of generators: finite, off-diagonal entries ≥ 0 and
    every row summing to zero (within ``atol`` times the row's largest rate)."""
    if not isinstance(rate_matrix, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(rate_matrix).__name__}")
    if rate_matrix.ndim < 2 or rate_matrix.shape[-1] != rate_matrix.shape[-2]:
        raise ValueError(f"{name} must have shape (..., N, N), got {tuple(rate_matrix.shape)}")
    if rate_matrix.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one state, got shape {tuple(rate_matrix.shape)}")
    q = rate_matrix.detach().to("cpu", torch.float64)
    bad = ~torch.isfinite(q)
    if bool(bad.any()):
        idx = tuple(bad.nonzero()[0].tolist())
        raise ValueError(f"{name}{_fmt_index(idx)} = {q[idx].item()!r} is not finite")
    n = q.shape[-1]
    off = ~torch.eye(n, dtype=torch.bool).expand_as(q)
    negative = off & (q < 0)
    if bool(negative.any()):
        idx = tuple(negative.nonzero()[0].tolist())
        raise ValueError(f"{name}{_fmt_index(idx)} = {q[idx].item()!r} is a negative rate; "
                         "off-diagonal rates must be >= 0")
    row_sum = q.sum(-1)
    scale = q.abs().amax(-1).clamp_min(1.0)
    wrong = row_sum.abs() > atol * scale
    if bool(wrong.any()):
        idx = tuple(wrong.nonzero()[0].tolist())
        raise ValueError(f"row {_fmt_index(idx)} of {name} sums to {row_sum[idx].item()!r}, not 0 "
                         "(the diagonal must be minus the sum of the row's off-diagonal rates)")


def rate_matrix_from_rates(rates: torch.Tensor) -> torch.Tensor:
    r"""Generator from off-diagonal rates: :math:`Q_{ij} = \text{rates}_{ij}` for
    ``i ≠ j`` and :math:`Q_{ii} = −\sum_{j≠i} \text{rates}_{ij}` (the given
    diagonal is ignored). Shape ``(..., N, N)`` in and out."""
    n = rates.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=rates.device)
    off = rates.masked_fill(eye, 0.0)
    return off - torch.diag_embed(off.sum(-1))


def stationary_distribution(rate_matrix: torch.Tensor, n_states: torch.Tensor | None = None) -> torch.Tensor:
    r"""Stationary distribution :math:`π` with :math:`π Q = 0`, :math:`\sum π = 1`.

    Solves :math:`Q^\top π = 0` with one equation replaced by the
    normalisation (unique for an irreducible Q). ``rate_matrix`` is
    ``(..., N, N)``; the result ``(..., N)``. ``n_states`` (``(...,)``, optional)
    marks padded generators whose first ``n_states`` states are the process:
    the padding gets probability zero.
    """
    q = rate_matrix.to(torch.float64)
    n = q.shape[-1]
    if n_states is not None:
        idx = torch.arange(n, device=q.device)
        pad = idx >= torch.as_tensor(n_states, device=q.device)[..., None]  # (..., N)
        # a padded state i gets Q_ii = -1 and no other rates: π_i = 0 follows from column i
        q = q.masked_fill(pad[..., :, None] | pad[..., None, :], 0.0)
        q = q - torch.diag_embed(pad.to(q.dtype))
    # the balance equation of state 0 (always a real state) is redundant: normalise there
    a = q.transpose(-1, -2).clone()
    a[..., 0, :] = 1.0
    rhs = torch.zeros(q.shape[:-1], dtype=q.dtype, device=q.device)
    rhs[..., 0] = 1.0
    pi = torch.linalg.solve(a, rhs)
    return pi.to(rate_matrix.dtype)


def transition_probabilities(rate_matrix: torch.Tensor, t: float) -> torch.Tensor:
    r""":math:`P(t) = \exp(tQ)` (``torch.linalg.matrix_exp``), shape ``(..., N, N)``;
    row i is the law of :math:`X_t` given :math:`X_0 = i`."""
    return torch.linalg.matrix_exp(t * rate_matrix)


def entropy_production(rate_matrix: torch.Tensor) -> torch.Tensor:
    r"""Stationary entropy production rate (Schnakenberg):
    :math:`σ = \tfrac12 \sum_{i≠j} J_{ij} \ln\frac{π_i Q_{ij}}{π_j Q_{ji}}`,
    :math:`J_{ij} = π_i Q_{ij} − π_j Q_{ji}`. Infinite if some jump has no
    reverse. Shape ``(..., N, N)`` → ``(...)``."""
    q = rate_matrix.to(torch.float64)
    pi = stationary_distribution(q)
    flux = pi[..., :, None] * q  # π_i Q_ij
    n = q.shape[-1]
    off = ~torch.eye(n, dtype=torch.bool, device=q.device)
    fwd, bwd = flux, flux.transpose(-1, -2)
    current = fwd - bwd
    with torch.no_grad():
        both = off & (fwd > 0) & (bwd > 0)
        one_way = off & ((fwd > 0) ^ (bwd > 0))
    terms = torch.where(both, current * torch.log(torch.where(both, fwd / bwd, 1.0)), 0.0)
    sigma = 0.5 * terms.sum((-1, -2))
    return torch.where(one_way.any(-1).any(-1), torch.full_like(sigma, math.inf), sigma)


def flashing_ratchet_rate_matrix(V: float = 1.0, r: float = 1.0, b: float = 1.0, *,
                                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The discrete flashing ratchet (FIM, NeuralMJP App. J.1), 6 states.

    States 0–2 have the potential on, with :math:`V_i = iV` and rates
    :math:`Q_{ij} = \exp(−(V_j − V_i)/2)` among them; states 3–5 have it off
    and jump among themselves at rate ``b``; the potential switches
    :math:`i \leftrightarrow i+3` at rate ``r``. With V = r = b = 1:
    π ≈ (0.301, 0.137, 0.062, 0.200, 0.159, 0.141), relaxation time 0.5,
    entropy production ≈ 0.179. Shape ``(6, 6)``.
    """
    rates = torch.zeros(6, 6, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            if i != j:
                rates[i, j] = math.exp(-(j * V - i * V) / 2.0)
    for i in range(3, 6):
        for j in range(3, 6):
            if i != j:
                rates[i, j] = b
    for i in range(3):
        rates[i, i + 3] = r
        rates[i + 3, i] = r
    return rate_matrix_from_rates(rates).to(dtype)
