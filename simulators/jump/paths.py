"""Paths of M processes × P paths each: the batch layout of :func:`~simulators.jump.mjp.simulate_mjp`
and :func:`~simulators.jump.reactions.simulate_reactions` around the flat engine (:mod:`.engine`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .engine import SSAResult

__all__ = ["JumpPaths", "member_index", "flat_obs_times"]


@dataclass
class JumpPaths:
    """Paths of M processes × P paths each.

    * ``observed``: ``(M, P, T, *state)`` states at the observation times;
    * ``jump_time`` ``(M, P, E)`` and ``jump_state`` ``(M, P, E, *state)``: the
      jump record (entry 0 = time 0; padding NaN / −1), or None;
    * ``n_events``: ``(M, P)`` entries the full record needs, or None;
    * ``iterations``: event steps of the longest path (a multiple of the draw size);
    * ``absorbed_at``: ``(M, P)`` time of the jump into an absorbing state (NaN if none).
    """

    observed: torch.Tensor
    jump_time: torch.Tensor | None
    jump_state: torch.Tensor | None
    n_events: torch.Tensor | None
    iterations: int
    absorbed_at: torch.Tensor | None = None

    @classmethod
    def from_result(cls, result: SSAResult, n_members: int, n_paths: int, *, stack: bool) -> "JumpPaths":
        """Reshape a flat :class:`~simulators.jump.engine.SSAResult` (paths member-major);
        ``stack`` puts the state components on a last axis (species), otherwise the single
        component is taken."""
        def shape(parts):
            if parts is None:
                return None
            value = torch.stack(parts, dim=-1) if stack else parts[0]
            return value.reshape(n_members, n_paths, *value.shape[1:])

        reshape = lambda v: None if v is None else v.reshape(n_members, n_paths, *v.shape[1:])  # noqa: E731
        return cls(observed=shape(result.observed), jump_time=reshape(result.jump_time),
                   jump_state=shape(result.jump_state), n_events=reshape(result.n_events),
                   iterations=result.iterations, absorbed_at=reshape(result.absorbed_at))


def member_index(members: Any, n_members: int) -> torch.Tensor:
    """``members`` as an int64 tensor of length ``n_members`` (default ``0 … M−1``)."""
    if members is None:
        return torch.arange(n_members, dtype=torch.int64)
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    if members.shape != (n_members,):
        raise ValueError(f"members must list {n_members} member indices, got shape {tuple(members.shape)}")
    return members


def flat_obs_times(obs_times: Any, n_members: int, n_paths: int, device: torch.device) -> torch.Tensor:
    """``(T,)`` stays; ``(M, P, T)`` becomes ``(M·P, T)`` (the layout of :func:`~simulators.jump.engine.ssa`)."""
    obs = torch.as_tensor(obs_times, dtype=torch.float64, device=device)
    if obs.ndim == 1:
        return obs
    if obs.ndim != 3 or tuple(obs.shape[:2]) != (n_members, n_paths):
        raise ValueError(f"obs_times must be (T,) or (M, P, T) with (M, P) = ({n_members}, {n_paths}), "
                         f"got {tuple(obs.shape)}")
    return obs.reshape(n_members * n_paths, obs.shape[-1])
