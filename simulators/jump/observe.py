r"""The observation layer: where paths are observed, and noisy labels.

* Grids: ``regular`` — ``s_i = iΔ``, ``Δ = t_end/(T−1)``, shared by all paths;
  ``irregular`` — for each path its own T times, the order statistics of T
  independent uniforms on ``[0, t_end]`` (a Poisson-like sampling pattern).
* Mislabelling (the FIM noise model): each observed state is, independently
  with probability ε, replaced by a uniformly random *other* state of the
  process: :math:`\Pr[\tilde y = j \mid y = i] = (1−ε)\,[i=j] + ε/(N−1)\,[i≠j]`.

All randomness comes from :class:`~simulators.random.CounterRNG` keyed by the
path keys (:func:`~simulators.jump.engine.path_keys`), with the observation
index as the element counter: a path's grid and noise depend only on (seed,
member, path) and the layer's settings.
"""
from __future__ import annotations

import math

import torch

from ..random import CounterRNG
from .engine import regular_grid

__all__ = ["GRIDS", "observation_times", "irregular_grid", "regular_grid", "mislabel", "check_mislabel_rate",
           "STREAM_OBS_GRID", "STREAM_MISLABEL"]

#: CounterRNG streams of the observation layer
STREAM_OBS_GRID = 0x42
STREAM_MISLABEL = 0x43
GRIDS = ("regular", "irregular")


def irregular_grid(keys: torch.Tensor, seed: int, n_obs: int, t_end: float) -> torch.Tensor:
    """Per-path sorted uniform times on ``[0, t_end]``: keys ``(...,)`` → times ``(..., n_obs)`` float64."""
    flat = keys.reshape(-1)
    u = CounterRNG(seed, flat.cpu()).uniform((n_obs,), stream=STREAM_OBS_GRID)  # (0, 1]
    times = (u * float(t_end)).sort(dim=-1).values
    return times.reshape(*keys.shape, n_obs).to(keys.device)


def observation_times(grid: str, keys: torch.Tensor, seed: int, n_obs: int, t_end: float) -> torch.Tensor:
    """``regular`` → ``(n_obs,)`` shared; ``irregular`` → ``(*keys.shape, n_obs)`` per path."""
    if grid == "regular":
        return regular_grid(t_end, n_obs, device=keys.device)
    if grid == "irregular":
        return irregular_grid(keys, seed, n_obs, t_end)
    raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")


def check_mislabel_rate(rate: float) -> None:
    """``ValueError`` naming the value unless ``0 ≤ rate ≤ 1``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
            or not 0.0 <= rate <= 1.0:
        raise ValueError(f"mislabel_rate must be a probability in [0, 1], got {rate!r}")


def mislabel(states: torch.Tensor, n_states: torch.Tensor | int, rate: float, keys: torch.Tensor,
             seed: int) -> torch.Tensor:
    r"""Noisy labels: each entry of ``states`` ``(..., T)`` is replaced with probability
    ``rate`` by one of the other ``n_states − 1`` states, uniformly.

    ``n_states`` is an int or a tensor broadcastable to ``keys`` (per member);
    ``keys`` ``(...)`` holds the path keys of the leading dims. Needs
    ``n_states ≥ 2`` where ``rate > 0``.
    """
    check_mislabel_rate(rate)
    if rate == 0.0:
        return states.clone()
    n = torch.as_tensor(n_states, dtype=torch.int64, device=states.device).expand(keys.shape)
    if bool((n < 2).any()):
        raise ValueError(f"mislabelling needs at least 2 states, got n_states={int(n.min())}")
    T = states.shape[-1]
    rng = CounterRNG(seed, keys.reshape(-1).cpu())
    flip = rng.uniform((T,), stream=STREAM_MISLABEL, lane=0) <= rate  # P[U <= ε] = ε for U on the 2**-53 grid
    pick = 1.0 - rng.uniform((T,), stream=STREAM_MISLABEL, lane=1)    # [0, 1)
    n = n.reshape(-1, 1).cpu()
    shift = 1 + (pick * (n - 1)).floor().to(torch.int64).clamp_(max=n - 2)  # 1 … n−1, uniform
    flat = states.reshape(-1, T).cpu().to(torch.int64)
    noisy = torch.where(flip, (flat + shift) % n, flat)
    return noisy.reshape(states.shape).to(device=states.device, dtype=states.dtype)
