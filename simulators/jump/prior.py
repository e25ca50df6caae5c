r"""A prior over finite-state MJPs for synthetic training corpora (in the style of
the MJP foundation-inference model, FIM: Berghaus et al. 2024).

A member (one process) draws

* its number of states :math:`n \sim \text{Uniform}\{n_\min, …, n_\max\}`;
* every off-diagonal rate :math:`Q_{ij} = s\,B_{ij}`, :math:`B_{ij} \sim \text{Beta}(α, β)`
  independently (i ≠ j < n), so the process is irreducible; :math:`Q_{ii} = −\sum_{j≠i} Q_{ij}`;
* an initial distribution (:func:`initial_distribution`): the stationary one,
  uniform, or flat-Dirichlet random.

Rate matrices are padded to :math:`n_\max` states with zeros (the padding is
never visited); ``n_states`` says how many are real. Beta variates are exact
inverse-CDF transforms (``scipy.special.betaincinv``) of counter-based uniforms,
so a member's process depends only on (seed, member).
"""
from __future__ import annotations

import torch

from ..random import STREAM_PARAMS, CounterRNG
from .rate_matrix import rate_matrix_from_rates, stationary_distribution

__all__ = ["sample_rate_matrices", "initial_distribution", "INITIAL_DISTRIBUTIONS"]

INITIAL_DISTRIBUTIONS = ("stationary", "uniform", "dirichlet")
_LANE_N_STATES, _LANE_RATES, _LANE_INITIAL = 0, 1, 2


def sample_rate_matrices(members: torch.Tensor, seed: int, *, min_states: int = 2, max_states: int = 6,
                         alpha: float = 1.0, beta: float = 1.0, rate_scale: float = 1.0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw one rate matrix per member.

    Returns ``rate_matrix`` ``(M, max_states, max_states)`` float64 (padded with
    zeros beyond ``n_states``) and ``n_states`` ``(M,)`` int64, on the CPU.
    """
    from scipy.special import betaincinv

    members = torch.as_tensor(members, dtype=torch.int64).cpu()
    rng = CounterRNG(seed, members)
    N = max_states
    pick = 1.0 - rng.uniform((1,), stream=STREAM_PARAMS, lane=_LANE_N_STATES)[:, 0]  # [0, 1)
    n_states = min_states + (pick * (max_states - min_states + 1)).floor().to(torch.int64)
    n_states = n_states.clamp_(max=max_states)
    u = rng.uniform((N, N), stream=STREAM_PARAMS, lane=_LANE_RATES)
    rates = rate_scale * torch.from_numpy(betaincinv(alpha, beta, u.numpy()))
    idx = torch.arange(N)
    real = (idx[None, :] < n_states[:, None])  # (M, N)
    rates = rates * (real[:, :, None] & real[:, None, :])
    return rate_matrix_from_rates(rates), n_states


def initial_distribution(kind: str, rate_matrix: torch.Tensor, n_states: torch.Tensor, members: torch.Tensor,
                         seed: int) -> torch.Tensor:
    r"""Initial distributions ``(M, N)`` over the first ``n_states`` states of each member.

    * ``stationary``: :math:`π` with :math:`πQ = 0`;
    * ``uniform``: :math:`1/n` on each real state;
    * ``dirichlet``: flat Dirichlet(1, …, 1), the spacings of n − 1 sorted uniforms
      (depends on (seed, member) only).
    """
    M, N, _ = rate_matrix.shape
    n_states = torch.as_tensor(n_states, dtype=torch.int64).cpu()
    real = torch.arange(N)[None, :] < n_states[:, None]  # (M, N)
    if kind == "stationary":
        return stationary_distribution(rate_matrix.cpu(), n_states).clamp_(min=0.0) * real
    if kind == "uniform":
        return real / n_states[:, None].to(torch.float64)
    if kind == "dirichlet":
        rng = CounterRNG(seed, torch.as_tensor(members, dtype=torch.int64).cpu())
        u = rng.uniform((max(N - 1, 1),), stream=STREAM_PARAMS, lane=_LANE_INITIAL)[:, :N - 1]
        # only the first n − 1 uniforms of a member count; the others sit at 1 (past the end)
        u = torch.where(torch.arange(N - 1)[None, :] < (n_states[:, None] - 1), u, 1.0)
        cuts = torch.cat((torch.zeros(M, 1, dtype=torch.float64), u.sort(dim=1).values,
                          torch.ones(M, 1, dtype=torch.float64)), dim=1)
        return cuts.diff(dim=1) * real
    raise ValueError(f"initial must be one of {', '.join(INITIAL_DISTRIBUTIONS)}, got {kind!r}")
