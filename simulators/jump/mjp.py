r"""Batched exact paths of finite-state Markov jump processes.

In state i a path waits an :math:`\text{Exp}(λ_i)` time, :math:`λ_i = −Q_{ii}`,
then jumps to j ≠ i with probability :math:`Q_{ij}/λ_i` (Gillespie's direct
method, :func:`~simulators.jump.engine.ssa`). The jump is chosen by
inverse CDF: with the cumulative jump probabilities
:math:`C_{im} = \sum_{j \le m} Q_{ij}/λ_i` (the diagonal counts as 0) and
:math:`W \sim U[0, 1)`, the target is :math:`j = \#\{m \le N−2 : C_{im} \le W\}`.
"""
from __future__ import annotations

from typing import Any

import torch

from .engine import SSAOptions, next_time, path_keys, ssa
from .paths import JumpPaths, flat_obs_times, member_index
from .rate_matrix import check_rate_matrix

__all__ = ["simulate_mjp", "jump_tables"]


def jump_tables(rate_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per (member, state) row: exit rates :math:`λ` ``(M·N,)`` and cumulative jump
    probabilities :math:`C` ``(M·N, N−1)`` (row i: :math:`C_{i\cdot}`).

    :math:`C_{im}` is set to exactly 1 from the last target with a positive rate
    on, so rounding can never pick a target without rate (nor the state itself);
    an absorbing state (λ = 0) has all thresholds 1.
    """
    M, N, _ = rate_matrix.shape
    eye = torch.eye(N, dtype=torch.bool, device=rate_matrix.device)
    rates = rate_matrix.to(torch.float64).masked_fill(eye, 0.0).reshape(M * N, N) + 0.0  # + 0.0: no −0.0
    cum = rates.cumsum(1)
    exit_rate = cum[:, -1].contiguous()
    done = cum >= exit_rate[:, None]  # from the last positive rate on (all, if absorbing)
    thresholds = torch.where(done, 1.0, cum / torch.where(exit_rate > 0, exit_rate, 1.0)[:, None])
    return exit_rate, thresholds[:, :-1].contiguous()


def simulate_mjp(rate_matrix: torch.Tensor, initial_state: torch.Tensor, obs_times: Any, *, t_end: float,
                 seed: int = 0, members: Any = None, t_start: float = 0.0, record_events: int = 0,
                 max_iterations: int = 100_000_000) -> JumpPaths:
    r"""Exact paths of MJPs: P paths for each of M rate matrices, on ``rate_matrix.device``.

    Args:
        rate_matrix: ``(M, N, N)`` generators (checked: rates ≥ 0, rows sum to 0).
        initial_state: ``(M, P)`` integer states at ``t_start``.
        obs_times: ``(T,)`` shared or ``(M, P, T)`` per path; sorted, in ``[0, t_end]``.
        t_end: last observation time.
        seed, members: the random numbers of path p of member m depend only on
            (seed, ``members[m]``, p, event number); ``members`` defaults to ``0 … M−1``.
        t_start: start time ≤ 0 (a negative start is a discarded spin-up).
        record_events: keep the first E entries of every jump record.

    Returns :class:`~simulators.jump.paths.JumpPaths`: ``observed`` ``(M, P, T)``
    int64 states, ``jump_time``/``jump_state`` ``(M, P, E)`` (padding NaN / −1),
    ``n_events`` ``(M, P)``.
    """
    check_rate_matrix(rate_matrix)
    if rate_matrix.ndim != 3:
        raise ValueError(f"rate_matrix must be (M, N, N), got shape {tuple(rate_matrix.shape)}")
    device = rate_matrix.device
    M, N, _ = rate_matrix.shape
    x0 = torch.as_tensor(initial_state, device=device)
    if x0.ndim != 2 or x0.shape[0] != M or x0.dtype.is_floating_point or x0.dtype == torch.bool:
        raise ValueError(f"initial_state must be an integer (M, P) tensor with M={M}, "
                         f"got {x0.dtype} of shape {tuple(x0.shape)}")
    x0 = x0.to(torch.int64)
    if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= N):
        raise ValueError(f"initial states must lie in 0..{N - 1}, got values in {int(x0.min())}..{int(x0.max())}")
    P = x0.shape[1]
    keys = path_keys(member_index(members, M), P).to(device).reshape(-1)
    exit_rate, thresholds = jump_tables(rate_matrix)
    offset = (torch.arange(M, device=device) * N).repeat_interleave(P)  # each path's first table row

    def event(x, t, e, w, ctx):
        row = ctx["offset"] + x[0]
        target = (thresholds.index_select(0, row) <= w[:, None]).sum(1)
        return next_time(t, e, exit_rate.index_select(0, row)), (target,)

    options = SSAOptions(t_end=t_end, obs_times=flat_obs_times(obs_times, M, P, device), t_start=t_start,
                         record_events=record_events, pad=-1, max_iterations=max_iterations)
    result = ssa((x0.reshape(-1),), event, keys=keys, seed=seed, options=options, context={"offset": offset})
    return JumpPaths.from_result(result, M, P, stack=False)
