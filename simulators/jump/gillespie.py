r"""Exact stochastic simulation (Gillespie 1976, 1977), batched over paths.

In a state ``x`` with channel rates (propensities) :math:`a_1(x), …, a_R(x)` and
total rate :math:`a_0 = \sum_r a_r`, the direct method draws

* the holding time :math:`τ = E / a_0`, :math:`E \sim \text{Exp}(1)`
  (for an MJP :math:`a_0 = −Q_{ii}`);
* the channel :math:`r` with probability :math:`a_r / a_0`, by inverting the
  cumulative rates with a uniform :math:`V`: the smallest r with
  :math:`\sum_{s \le r} a_s \ge V a_0` (for an MJP the channel is the target
  state j, chosen with probability :math:`Q_{ij} / (−Q_{ii})`),

then sets :math:`t \leftarrow t + τ` and applies the jump of channel r.

Many paths advance together as tensors (CPU or CUDA): the Python loop runs
over events, every path takes its n-th event in the n-th iteration, and a path
whose next event lies beyond ``t_end`` stops (its state is frozen and it is
dropped from the batch once enough paths have stopped). The random numbers of
the n-th event of a path come from :class:`~simulators.random.CounterRNG`
keyed by the path's key (member and path index, :func:`path_keys`) and n, so a
path is bit-identical whatever else is simulated with it.

Observations: the state at observation time s is :math:`X(s)`, the state after
the last jump at or before s (paths are right-continuous).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from ..integrators.base import AbstractIntegrator, register_integrator
from ..random import CounterRNG
from .rate_matrix import check_rate_matrix
from .reactions import ReactionNetwork

__all__ = ["Gillespie", "SSAResult", "ssa", "simulate_mjp", "simulate_reactions", "path_keys",
           "MAX_PATHS", "STREAM_JUMP", "EVENTS_PER_DRAW"]

#: CounterRNG stream of the jumps: lane 0 holding times, lane 1 channel choice.
STREAM_JUMP = 0x41
#: events whose random numbers are drawn in one go (fixed: it fixes the counter layout)
EVENTS_PER_DRAW = 64
#: paths per member (a path key is ``member · MAX_PATHS + path``)
MAX_PATHS = 1 << 20
#: drop stopped paths from the batch once at most this fraction is still running
_COMPACT_BELOW = 0.5


def path_keys(members: torch.Tensor | range | list[int], n_paths: int) -> torch.Tensor:
    """Counter keys of the paths of ``members``: ``member · 2**20 + path``, shape ``(M, n_paths)``.

    Every random number of a path is keyed by this integer (plus stream and
    event number), so a path's randomness depends only on (seed, member, path).
    """
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    if not 1 <= n_paths <= MAX_PATHS:
        raise ValueError(f"n_paths must be between 1 and {MAX_PATHS}, got {n_paths!r}")
    if members.numel() and int(members.max()) >= (1 << 42):
        raise ValueError(f"member index {int(members.max())} is too large for path keys (max 2**42 - 1)")
    return members[:, None] * MAX_PATHS + torch.arange(n_paths, dtype=torch.int64)


@dataclass
class SSAResult:
    """Output of :func:`ssa` for ``B`` paths.

    * ``observed``: states at the observation times, ``(B, T, *state)``;
    * ``jump_time``, ``jump_state``: the path as a jump record, ``(B, E)`` and
      ``(B, E, *state)``: entry 0 is ``(0, X(0))``, entry e > 0 the e-th jump in
      ``(0, t_end]``; unused entries are NaN / ``pad``. ``None`` unless asked for;
    * ``n_events``: entries the full record needs (1 + jumps in ``(0, t_end]``),
      ``(B,)``; more than E means the record was truncated;
    * ``iterations``: events simulated by the longest path.
    """

    observed: torch.Tensor
    jump_time: torch.Tensor | None = None
    jump_state: torch.Tensor | None = None
    n_events: torch.Tensor | None = None
    iterations: int = 0


def ssa(x0: torch.Tensor,
        propensity: Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor],
        jump: Callable[[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor],
        *, keys: torch.Tensor, seed: int, t_end: float, obs_times: torch.Tensor, t_start: float = 0.0,
        context: Mapping[str, torch.Tensor] | None = None, record_events: int = 0, pad: float = -1,
        max_iterations: int = 100_000_000) -> SSAResult:
    r"""Gillespie's direct method for ``B`` independent paths at once.

    Args:
        x0: states at ``t_start``, ``(B, *state)`` (int64 indices or float counts).
        propensity: ``(x (b, *state), context) -> (b, R)`` channel rates, ≥ 0.
        jump: ``(x, channel (b,), context) -> x'`` the state after the jump.
        keys: ``(B,)`` int64 counter keys (:func:`path_keys`).
        seed: the dataset's seed.
        t_end: last observed time; a path stops at its first event after it.
        obs_times: sorted observation times in ``[0, t_end]``: ``(T,)`` shared by
            all paths or ``(B, T)`` per path.
        t_start: start time (≤ 0; a negative start is a discarded spin-up).
        context: per-path tensors ``(B, ...)`` passed to ``propensity`` and
            ``jump`` (for example each path's rate-matrix offset); they follow
            the paths when stopped ones are dropped.
        record_events: E > 0 keeps the jump record (see :class:`SSAResult`).
        pad: fill value of unused ``jump_state`` entries.
        max_iterations: guard against runaway rates (raises ``RuntimeError``).
    """
    if x0.ndim < 1:
        raise ValueError(f"x0 must have shape (B, *state), got {tuple(x0.shape)}")
    device = x0.device
    n_paths = x0.shape[0]
    state_shape = tuple(x0.shape[1:])
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device).reshape(-1)
    if keys.shape[0] != n_paths:
        raise ValueError(f"keys has {keys.shape[0]} entries for {n_paths} paths")
    if not (math.isfinite(t_end) and math.isfinite(t_start)) or t_start > 0 or t_end < 0:
        raise ValueError(f"need t_start <= 0 <= t_end (finite), got t_start={t_start!r}, t_end={t_end!r}")
    obs = torch.as_tensor(obs_times, dtype=torch.float64, device=device)
    shared_grid = obs.ndim == 1
    if not shared_grid and (obs.ndim != 2 or obs.shape[0] != n_paths):
        raise ValueError(f"obs_times must be (T,) or (B, T) with B={n_paths}, got {tuple(obs.shape)}")
    if obs.numel() and (bool((obs < 0).any()) or bool((obs > t_end).any())):
        raise ValueError(f"observation times must lie in [0, t_end={t_end}]")
    if record_events:
        # X(0) is observed as an extra leading observation: entry 0 of the record
        zero = obs.new_zeros(obs.shape[:-1] + (1,))
        obs = torch.cat((zero, obs), dim=-1)
    n_obs = obs.shape[-1]
    state_view = (-1,) + (1,) * len(state_shape)

    # column n_obs is a sink for "nothing to write"; unwritten slots keep a sentinel
    sentinel = math.nan if x0.dtype.is_floating_point else torch.iinfo(x0.dtype).min
    observed = torch.full((n_paths, n_obs + 1, *state_shape), sentinel, dtype=x0.dtype, device=device)
    if record_events:
        rec_time = torch.full((n_paths, record_events + 1), math.nan, dtype=torch.float64, device=device)
        rec_state = torch.full((n_paths, record_events + 1, *state_shape), pad, dtype=x0.dtype, device=device)
        n_events = torch.ones(n_paths, dtype=torch.int64, device=device)
        count = n_events.clone()
    ctx = {name: torch.as_tensor(v, device=device) for name, v in (context or {}).items()}

    rows = torch.arange(n_paths, device=device)
    x = x0.clone()
    t = torch.full((n_paths,), float(t_start), dtype=torch.float64, device=device)
    k = torch.zeros(n_paths, dtype=torch.int64, device=device)  # next observation not yet written
    obs_cur = obs
    tiny = torch.finfo(torch.float64).tiny
    n = 0
    while True:
        j = n % EVENTS_PER_DRAW
        if j == 0:
            running = t <= t_end
            n_running = int(running.sum())
            if n_running == 0:
                break
            if n >= max_iterations:
                raise RuntimeError(f"a path needed more than max_iterations={max_iterations} events before "
                                   f"t_end={t_end}; are the rates finite and sensible?")
            if n_running <= _COMPACT_BELOW * rows.shape[0]:
                keep = running.nonzero().squeeze(1)
                if record_events:
                    n_events[rows] = count  # the stopped paths' totals are final
                    count = count[keep]
                rows, x, t, k, keys = rows[keep], x[keep], t[keep], k[keep], keys[keep]
                ctx = {name: v[keep] for name, v in ctx.items()}
                if not shared_grid:
                    obs_cur = obs_cur[keep]
            rng = CounterRNG(seed, keys)
            draw = n // EVENTS_PER_DRAW
            exp_draws = (-torch.log(rng.uniform((EVENTS_PER_DRAW,), step=draw, stream=STREAM_JUMP, lane=0)))
            exp_draws.clamp_(min=tiny)  # u = 1 gives E = 0; keep 0/0 out of the holding times
            choice_draws = rng.uniform((EVENTS_PER_DRAW,), step=draw, stream=STREAM_JUMP, lane=1)

        rates = propensity(x, ctx)  # (b, R)
        cum = rates.cumsum(-1)
        total = cum[:, -1]
        t_next = t + exp_draws[:, j] / total  # inf where no channel is open (absorbing)
        # observations in [t, t_next) see the current state; write the first, fill the rest later
        if shared_grid:
            passed = torch.searchsorted(obs_cur, t_next)
        else:
            passed = torch.searchsorted(obs_cur, t_next[:, None]).squeeze(1)
        observed[rows, torch.where(passed > k, k, n_obs)] = x
        k = passed
        jumps = t_next <= t_end
        channel = (cum < (choice_draws[:, j] * total)[:, None]).sum(-1)
        x = torch.where(jumps.view(state_view), jump(x, channel, ctx), x)
        if record_events:
            kept = jumps & (t_next >= 0)
            slot = torch.where(kept & (count < record_events), count, record_events)
            rec_time[rows, slot] = t_next
            rec_state[rows, slot] = x
            count = count + kept
        t = t_next
        n += 1

    # forward fill: the slots of one holding interval after its first hold the same state
    observed = observed[:, :n_obs]
    if x0.dtype.is_floating_point:
        written = ~torch.isnan(observed)
    else:
        written = observed != sentinel
    written = written.reshape(n_paths, n_obs, -1)[..., 0]
    src = torch.where(written, torch.arange(n_obs, device=device), 0).cummax(dim=1).values
    src = src.view(n_paths, n_obs, *((1,) * len(state_shape))).expand(n_paths, n_obs, *state_shape)
    observed = torch.gather(observed, 1, src)
    result = SSAResult(observed=observed, iterations=n)
    if record_events:
        n_events[rows] = count
        rec_time[:, 0] = 0.0
        rec_state[:, 0] = observed[:, 0]
        result.observed = observed[:, 1:]
        result.jump_time = rec_time[:, :record_events]
        result.jump_state = rec_state[:, :record_events]
        result.n_events = n_events
    return result


def _mjp_propensity(x: torch.Tensor, ctx: Mapping[str, torch.Tensor]) -> torch.Tensor:
    # rows of the stacked off-diagonal rates: member offset + current state
    return ctx["off_rates"].index_select(0, ctx["offset"] + x)


def _mjp_jump(x: torch.Tensor, target: torch.Tensor, ctx: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return target


def _reshape_obs(obs_times: torch.Tensor, batch: tuple[int, int], device: torch.device) -> torch.Tensor:
    obs = torch.as_tensor(obs_times, dtype=torch.float64, device=device)
    if obs.ndim == 1:
        return obs
    if tuple(obs.shape[:2]) != batch or obs.ndim != 3:
        raise ValueError(f"obs_times must be (T,) or (M, P, T) with (M, P) = {batch}, got {tuple(obs.shape)}")
    return obs.reshape(batch[0] * batch[1], obs.shape[-1])


def _unflatten(result: SSAResult, batch: tuple[int, int]) -> SSAResult:
    split = lambda v: None if v is None else v.reshape(*batch, *v.shape[1:])  # noqa: E731 - (M*P, ...) -> (M, P, ...)
    return SSAResult(observed=split(result.observed), jump_time=split(result.jump_time),
                     jump_state=split(result.jump_state), n_events=split(result.n_events),
                     iterations=result.iterations)


def _member_index(members: Any, n_members: int) -> torch.Tensor:
    if members is None:
        return torch.arange(n_members, dtype=torch.int64)
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    if members.shape != (n_members,):
        raise ValueError(f"members must list {n_members} member indices, got shape {tuple(members.shape)}")
    return members


def simulate_mjp(rate_matrix: torch.Tensor, initial_state: torch.Tensor, obs_times: torch.Tensor, *,
                 t_end: float, seed: int = 0, members: Any = None, t_start: float = 0.0,
                 record_events: int = 0, max_iterations: int = 100_000_000) -> SSAResult:
    r"""Exact paths of finite-state MJPs, P paths for each of M rate matrices.

    Args:
        rate_matrix: ``(M, N, N)`` generators (validated: rates ≥ 0, rows sum to 0).
        initial_state: ``(M, P)`` int64 states at ``t_start``.
        obs_times: ``(T,)`` shared or ``(M, P, T)`` per path, sorted, in ``[0, t_end]``.
        t_end: last observation time.
        seed, members: the random numbers of path p of member m depend only on
            (seed, ``members[m]``, p, event number); ``members`` defaults to ``0 … M−1``.
        t_start: start time ≤ 0 (a negative start is a discarded spin-up).
        record_events: keep the first E entries of each jump record.

    Returns an :class:`SSAResult` with ``observed`` ``(M, P, T)`` (int64 states),
    ``jump_time``/``jump_state`` ``(M, P, E)`` (padding NaN / −1) and
    ``n_events`` ``(M, P)``.
    """
    check_rate_matrix(rate_matrix)
    if rate_matrix.ndim != 3:
        raise ValueError(f"rate_matrix must be (M, N, N), got shape {tuple(rate_matrix.shape)}")
    device = rate_matrix.device
    M, N, _ = rate_matrix.shape
    x0 = torch.as_tensor(initial_state, dtype=torch.int64, device=device)
    if x0.ndim != 2 or x0.shape[0] != M:
        raise ValueError(f"initial_state must be (M, P) with M={M}, got shape {tuple(x0.shape)}")
    if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= N):
        raise ValueError(f"initial states must lie in 0..{N - 1}, got values in "
                         f"{int(x0.min())}..{int(x0.max())}")
    P = x0.shape[1]
    keys = path_keys(_member_index(members, M), P).to(device)
    eye = torch.eye(N, dtype=torch.bool, device=device)
    off_rates = rate_matrix.to(torch.float64).masked_fill(eye, 0.0).reshape(M * N, N)
    offset = (torch.arange(M, device=device) * N).repeat_interleave(P)
    result = ssa(x0.reshape(M * P), _mjp_propensity, _mjp_jump, keys=keys.reshape(-1), seed=seed, t_end=t_end,
                 obs_times=_reshape_obs(obs_times, (M, P), device), t_start=t_start,
                 context={"off_rates": off_rates, "offset": offset}, record_events=record_events, pad=-1,
                 max_iterations=max_iterations)
    return _unflatten(result, (M, P))


def simulate_reactions(network: ReactionNetwork, initial_counts: torch.Tensor, obs_times: torch.Tensor, *,
                       t_end: float, seed: int = 0, members: Any = None, t_start: float = 0.0,
                       record_events: int = 0, max_iterations: int = 100_000_000,
                       device: torch.device | str | None = None) -> SSAResult:
    r"""Exact paths of a mass-action network (stochastic simulation algorithm).

    Args:
        network: the :class:`~simulators.jump.reactions.ReactionNetwork`.
        initial_counts: ``(M, P, S)`` non-negative integer counts at ``t_start``.
        obs_times, t_end, seed, members, t_start, record_events: as :func:`simulate_mjp`.

    Returns an :class:`SSAResult` with float64 counts ``observed`` ``(M, P, T, S)``,
    ``jump_time`` ``(M, P, E)``, ``jump_state`` ``(M, P, E, S)`` (padding NaN / −1)
    and ``n_events`` ``(M, P)``.
    """
    x0 = torch.as_tensor(initial_counts, dtype=torch.float64,
                         device=device if device is not None else getattr(initial_counts, "device", "cpu"))
    if x0.ndim != 3 or x0.shape[-1] != network.n_species:
        raise ValueError(f"initial_counts must be (M, P, S) with S={network.n_species}, got {tuple(x0.shape)}")
    if x0.numel() and (bool((x0 < 0).any()) or bool((x0 != x0.round()).any())):
        raise ValueError("initial_counts must be non-negative integers")
    M, P, S = x0.shape
    keys = path_keys(_member_index(members, M), P).to(x0.device)
    net_change = network.net_change(torch.float64, x0.device)

    def propensity(x, ctx):
        return network.propensity(x)

    def jump(x, channel, ctx):
        return x + net_change.index_select(0, channel)

    result = ssa(x0.reshape(M * P, S), propensity, jump, keys=keys.reshape(-1), seed=seed, t_end=t_end,
                 obs_times=_reshape_obs(obs_times, (M, P), x0.device), t_start=t_start,
                 record_events=record_events, pad=-1, max_iterations=max_iterations)
    return _unflatten(result, (M, P))


@register_integrator
class Gillespie(AbstractIntegrator):
    r"""Exact stochastic simulation of jump processes (Gillespie's direct method).

    Jump systems (:mod:`simulators.jump`) simulate themselves through
    ``system.simulate`` with this integrator; it has no vector field to step.
    ``max_iterations`` bounds the events of one path (a guard against runaway
    rates; it does not change the result, so it is not part of the dataset's
    identity). Paths are independent: ``batch_independent`` is True.
    """

    name = "gillespie"
    stochastic = True

    def __init__(self, max_iterations: int = 100_000_000):
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"integrator.max_iterations must be an integer >= 1, got {max_iterations!r}")
        self.max_iterations = max_iterations

    def check_system(self, system):
        from .systems import AbstractJumpSystem

        if not isinstance(system, AbstractJumpSystem):
            raise ValueError(f"gillespie simulates jump processes; {system.name} is not one "
                             "(use rk4, dopri5 or euler_maruyama)")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        raise ValueError("gillespie does not step a vector field: jump systems simulate through "
                         "system.simulate(integrator, grid, ...)")
