r"""The exact path sampler: Gillespie's direct method (1976, 1977), batched over paths.

In a state ``x`` at time t with total event rate :math:`a_0(t + s)` (the sum of the
channel rates, or :math:`−Q_{ii}` of an MJP) the next event comes after the holding time τ
that solves :math:`\int_0^τ a_0(t + s)\,ds = E` with :math:`E \sim \text{Exp}(1)`; the
channel is then chosen with probability :math:`a_r / a_0` at the event time, by inverting
the cumulative rates with :math:`W \sim U[0, 1)`: the first r with
:math:`\sum_{q \le r} a_q > W a_0`. A model states its rule as one function

``event(x, t, e, w, context) -> (t_next, x_next)``

(:data:`EventFn`): constant rates give :math:`τ = E/a_0` (:func:`holding_time`); rates that
ramp linearly in time give the integrated-hazard root (:func:`holding_time`, with a slope
and a kink where the ramp starts) — the ramped-hazard case of the Allee model. Where no
channel is open (:math:`a_0 = 0`, absorbing) ``t_next`` is +inf and ``x_next`` must be a
valid state.

All paths advance together as tensors: the Python loop runs over *draws* of
:data:`EVENTS_PER_DRAW` events, each path taking its n-th event in the n-th iteration. The
variates of a draw come from :mod:`.streams` keyed by (seed, path key, draw): a path is
bit-identical whatever else is simulated with it (block of members, worker, batch size).
Per event only the model's few elementwise operations run; the observations and the jump
record are written once per draw, for its K events at once:

* observation :math:`X(s)` is the state after the last jump at or before s (paths are
  right-continuous): state :math:`x_k`, held on :math:`[t_k, t_{k+1})`, fills the
  observation slots :math:`s \in [t_k, t_{k+1})`. On a shared regular grid
  :math:`s_i = iΔ` the first of them, :math:`\lceil t_k/Δ \rceil`, is written and the others
  are filled forward at the end (a jump within rounding, ~1e-16 relative, of an observation
  time may be seen on either side of it); on any other grid every slot gets its state by an
  exact search of the draw's times;
* the jump record keeps ``(t_k, x_k)`` of the jumps in ``[0, t_end]``;
* the absorption time is the time of a jump after which no channel is open.

Paths whose next event lies beyond ``t_end`` stop writing and are dropped from the batch
once half of it has stopped. On the CPU the event loop runs on one thread (its operations act
on a few thousand numbers, where thread hand-offs cost more than they gain) while a second
thread draws the next block of variates and a third writes the last block's observations
(:attr:`SSAOptions.prefetch`; the same numbers either way). The unverified CUDA-graph replay
of earlier versions is gone: on CUDA the loop runs eagerly.

Speed (``benchmarks/bench_gillespie.py``): per event a reaction network costs about eight
elementwise operations on the running paths, the draws about ten integer passes per variate.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from . import streams

__all__ = ["SSAOptions", "SSAResult", "ssa", "holding_time", "next_time", "path_keys", "regular_grid", "EventFn",
           "MAX_PATHS", "STREAM_JUMP", "EVENTS_PER_DRAW"]

#: stream of the jump variates (:mod:`.streams`)
STREAM_JUMP = 0x41
#: events per draw: fixes the layout of the random numbers (event n of a path uses number
#: n % K of draw n // K), so changing it changes every dataset
EVENTS_PER_DRAW = 64
#: paths per member (a path key is ``member · MAX_PATHS + path``)
MAX_PATHS = 1 << 20
#: drop stopped paths from the batch once at most this fraction is still running
_COMPACT_BELOW = 0.5
#: observation slots located per pass of a draw's writes
_SLOTS_PER_PASS = 32

#: ``event(x, t, e, w, context) -> (t_next, x_next)``: from the state ``x`` (a tuple of
#: ``(b,)`` tensors) at times ``t`` ``(b,)``, the time of the next event given the Exp(1)
#: variates ``e`` and the state after it, its channel chosen by ``w ∈ [0, 1)``.
EventFn = Callable[[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]],
                   tuple[torch.Tensor, tuple[torch.Tensor, ...]]]


def path_keys(members: torch.Tensor | range | Sequence[int], n_paths: int) -> torch.Tensor:
    """Counter keys of the paths of ``members``: ``member · 2**20 + path``, shape ``(M, n_paths)``.

    Every random number of a path is keyed by this integer (plus a stream and a
    counter), so a path's randomness depends only on (seed, member, path).
    """
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or not 1 <= n_paths <= MAX_PATHS:
        raise ValueError(f"n_paths must be an integer between 1 and {MAX_PATHS}, got {n_paths!r}")
    if members.numel() and int(members.max()) >= (1 << 42):
        raise ValueError(f"member index {int(members.max())} is too large for path keys (max 2**42 - 1)")
    return members[:, None] * MAX_PATHS + torch.arange(n_paths, dtype=torch.int64)


def regular_grid(t_end: float, n_obs: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Observation times ``s_i = iΔ``, ``Δ = t_end / (n_obs − 1)``, ``i = 0 … n_obs − 1`` (float64);
    one point (``n_obs = 1``) is ``t_end``."""
    if n_obs == 1:
        return torch.tensor([float(t_end)], dtype=torch.float64, device=device)
    times = torch.arange(n_obs, dtype=torch.float64, device=device) * (float(t_end) / (n_obs - 1))
    return times.clamp_(max=float(t_end))


def holding_time(e: torch.Tensor, rate: torch.Tensor, slope: torch.Tensor | float | None = None,
                 t: torch.Tensor | None = None, kink: float = 0.0) -> torch.Tensor:
    r"""Exact holding time τ for the Exp(1) variates ``e`` ``(b,)``.

    * constant total rate :math:`a_0` (``slope`` None): :math:`τ = E / a_0` (+inf where
      :math:`a_0 = 0`);
    * a rate that ramps from the ``kink`` on, :math:`a_0(t + s) = a_0 + b\,(\max(t + s, κ) − \max(t, κ))`
      with slope :math:`b \ge 0` (a linearly ramped parameter held until κ): the root of
      the integrated hazard. Before the kink (d = κ − t > 0) the rate is constant: if
      :math:`E \le a_0 d` then :math:`τ = E/a_0`; otherwise, with what is left,
      :math:`E' = E − a_0 \max(d, 0)`, :math:`τ = \max(d, 0) + 2E'/(a_0 + \sqrt{a_0^2 + 2bE'})`
      (the cancellation-free root of :math:`a_0 s + b s^2/2 = E'`; +inf where
      :math:`a_0 = b = 0`).
    """
    if slope is None:
        return e / rate
    if t is None:
        raise ValueError("holding_time with a slope needs the current times t")
    lead = (kink - t).clamp_(min=0.0)  # time until the ramp starts
    before = rate * lead
    rest = e - before
    ramped = lead + 2.0 * rest / (rate + torch.sqrt(rate * rate + 2.0 * slope * rest))
    return torch.where(rest <= 0.0, e / rate, ramped)


def next_time(t: torch.Tensor, e: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """:math:`t + E/a_0` for a constant total rate in one pass (``addcdiv``: the quotient is
    rounded, then the sum, as ``t + holding_time(e, rate)``)."""
    return torch.addcdiv(t, e, rate)


@dataclass(frozen=True)
class SSAOptions:
    """Settings of one :func:`ssa` run (none of them changes the law of the paths).

    ``obs_times``: sorted observation times in ``[0, t_end]``, ``(T,)`` shared by all
    paths or ``(B, T)`` per path; ``t_start`` ≤ 0 (a negative start is a discarded
    spin-up); ``record_events`` E > 0 keeps the first E entries of the jump record (padded
    with NaN / ``pad``); ``max_iterations`` guards against runaway rates (``RuntimeError``);
    ``prefetch`` (CPU) draws the next block of variates and writes the last block's
    observations in two more threads, beside the event loop (the same numbers either way): up
    to about twice the speed on idle cores, no gain where every core is already busy.
    """

    t_end: float
    obs_times: Any
    t_start: float = 0.0
    record_events: int = 0
    pad: float = -1
    max_iterations: int = 100_000_000
    prefetch: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.t_end, (int, float)) and isinstance(self.t_start, (int, float))
                and math.isfinite(self.t_end) and math.isfinite(self.t_start)) or self.t_start > 0 or self.t_end < 0:
            raise ValueError(f"need t_start <= 0 <= t_end, both finite; got t_start={self.t_start!r}, "
                             f"t_end={self.t_end!r}")
        for name in ("record_events", "max_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (name == "max_iterations"):
                raise ValueError(f"{name} must be an integer >= {int(name == 'max_iterations')}, got {value!r}")


@dataclass
class SSAResult:
    """Output of :func:`ssa` for ``B`` paths, one tensor per state component.

    * ``observed``: states at the observation times, each ``(B, T)``;
    * ``jump_time`` ``(B, E)`` and ``jump_state`` (each ``(B, E)``): the jump record,
      entry 0 is ``(0, X(0))``, entry e > 0 the e-th jump in ``(0, t_end]``; unused
      entries NaN / ``pad``; None unless asked for;
    * ``n_events``: entries the full record needs (1 + jumps in ``(0, t_end]``), ``(B,)``,
      None unless the record was asked for; more than E means it was cut short;
    * ``absorbed_at``: ``(B,)`` time of the jump in ``(t_start, t_end]`` after which no
      channel was open (the extinction time of a population), NaN if none;
    * ``iterations``: event steps taken, a multiple of :data:`EVENTS_PER_DRAW`.
    """

    observed: tuple[torch.Tensor, ...]
    absorbed_at: torch.Tensor
    jump_time: torch.Tensor | None = None
    jump_state: tuple[torch.Tensor, ...] | None = None
    n_events: torch.Tensor | None = None
    iterations: int = 0


@contextlib.contextmanager
def _one_thread(device: torch.device):
    """The event loop's CPU ops on one thread: they act on a few thousand numbers each,
    where torch's hand-offs to worker threads cost more than they save."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Paths:
    """The running paths: state components, time, global row, stream key, context, and
    (recording) the record entries used so far."""

    x: tuple[torch.Tensor, ...]
    t: torch.Tensor
    rows: torch.Tensor
    key: torch.Tensor
    ctx: dict[str, torch.Tensor]
    count: torch.Tensor | None
    obs: torch.Tensor | None  # (b, T + 1) per-path observation times (irregular grids), else None

    def select(self, keep: torch.Tensor) -> "_Paths":
        pick = lambda v: None if v is None else v[keep]  # noqa: E731
        return _Paths(tuple(c[keep] for c in self.x), self.t[keep], self.rows[keep], self.key[keep],
                      {k: v[keep] for k, v in self.ctx.items()}, pick(self.count), pick(self.obs))


@dataclass
class _Outputs:
    """Where draws write: obs-major flat buffers (slot i of path p at i·B + p; sinks at n_obs·B + p)."""

    observed: list[torch.Tensor]
    rec_time: torch.Tensor | None
    rec_state: list[torch.Tensor] | None
    absorbed_at: torch.Tensor
    obs: torch.Tensor | None  # (T,) shared observation times
    step: float | None  # Δ of a regular shared grid s_i = iΔ, else None
    n_paths: int
    n_obs: int
    record_events: int
    t_end: float
    t_start: float


def ssa(x0: Sequence[torch.Tensor], event: EventFn, *, keys: torch.Tensor, seed: int, options: SSAOptions,
        context: Mapping[str, torch.Tensor] | None = None) -> SSAResult:
    r"""The direct method for ``B`` independent paths at once (module docstring).

    Args:
        x0: the state at ``options.t_start``: a sequence of ``(B,)`` tensors (components).
        event: the model's rule (:data:`EventFn`).
        keys: ``(B,)`` int64 counter keys (:func:`path_keys`).
        seed: the dataset's seed.
        options: :class:`SSAOptions`.
        context: per-path tensors ``(B, ...)`` passed to ``event``; they follow the paths
            when stopped ones are dropped.
    """
    if not isinstance(options, SSAOptions):
        raise ValueError(f"options must be an SSAOptions, got {type(options).__name__}")
    x = tuple(torch.as_tensor(c) for c in x0)
    if not x or any(c.ndim != 1 or c.shape != x[0].shape for c in x):
        raise ValueError("x0 must be a non-empty sequence of (B,) tensors of one length")
    device = x[0].device
    with _one_thread(device):
        return _run(x, event, keys, seed, options, context or {})


def _observation_layout(obs: torch.Tensor, n_paths: int, record: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Shared ``(T,)`` times, or per-path ``(B, T + 1)`` rows closed by +inf. An irregular
    grid with a record gets time 0 as an extra first slot (entry 0 of the record)."""
    if obs.ndim == 1 and not (record and float(obs[0]) != 0.0):
        return obs.contiguous(), None
    obs = obs.expand(n_paths, -1) if obs.ndim == 1 else obs
    if record:
        obs = torch.cat((obs.new_zeros(n_paths, 1), obs), dim=1)
    return None, torch.cat((obs, obs.new_full((n_paths, 1), math.inf)), dim=1).contiguous()


def _run(x, event, keys, seed, options: SSAOptions, context) -> SSAResult:
    device = x[0].device
    n_paths = x[0].shape[0]
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device).reshape(-1)
    if keys.shape[0] != n_paths:
        raise ValueError(f"keys has {keys.shape[0]} entries for {n_paths} paths")
    t_end, t_start = float(options.t_end), float(options.t_start)
    obs = torch.as_tensor(options.obs_times, dtype=torch.float64, device=device)
    if obs.ndim == 2 and obs.shape[0] != n_paths or obs.ndim not in (1, 2) or obs.shape[-1] < 1:
        raise ValueError(f"obs_times must be (T,) or (B, T) with B={n_paths}, T >= 1; got {tuple(obs.shape)}")
    outside = (obs < 0) | (obs > t_end)
    if bool(outside.any()):
        raise ValueError(f"observation times must lie in [0, t_end={t_end}], got {obs[outside][0].item()!r}")
    if bool((obs.diff(dim=-1) < 0).any()):
        raise ValueError("observation times must be sorted (non-decreasing) along the last dim")
    E = options.record_events
    shared, per_path = _observation_layout(obs, n_paths, E > 0)
    extra_slot = E > 0 and (per_path is not None)
    n_obs = shared.shape[0] if shared is not None else per_path.shape[1] - 1

    def sentinel_of(c):
        return math.nan if c.dtype.is_floating_point else torch.iinfo(c.dtype).min

    out = _Outputs(
        observed=[torch.full(((n_obs + 1) * n_paths,), sentinel_of(c), dtype=c.dtype, device=device) for c in x],
        rec_time=torch.full(((E + 1) * n_paths,), math.nan, dtype=torch.float64, device=device) if E else None,
        rec_state=[torch.full(((E + 1) * n_paths,), options.pad, dtype=c.dtype, device=device) for c in x] if E else None,
        absorbed_at=torch.full((n_paths,), math.nan, dtype=torch.float64, device=device),
        obs=shared, step=_regular_step(shared), n_paths=n_paths, n_obs=n_obs, record_events=E, t_end=t_end, t_start=t_start)
    n_events = torch.ones(n_paths, dtype=torch.int64, device=device) if E else None
    st = _Paths(x=x, t=torch.full((n_paths,), t_start, dtype=torch.float64, device=device),
                rows=torch.arange(n_paths, device=device),
                key=streams.path_stream_keys(keys, seed, STREAM_JUMP),
                ctx={name: torch.as_tensor(v, device=device) for name, v in context.items()},
                count=n_events.clone() if E else None, obs=per_path)
    K = EVENTS_PER_DRAW
    # on the CPU one thread draws the next block of variates and another writes the last
    # block's observations while the events run (each a FIFO of one worker)
    threaded = options.prefetch and device.type == "cpu"
    drawer = ThreadPoolExecutor(max_workers=1) if threaded else None
    writer = ThreadPoolExecutor(max_workers=1) if threaded else None
    # two sets of reused buffers, for draw d and d + 1 (fresh large arrays cost page faults)
    scratch = [_Scratch.allocate(n_paths, K, [c.dtype for c in x], device) for _ in range(2 if threaded else 1)]
    writes = []
    try:
        pending = drawer.submit(streams.draw, st.key, 0, K, scratch[0].draws) if threaded else None
        n = 0
        while True:
            running = st.t <= t_end
            n_running = int(running.sum())
            if n_running == 0:
                break
            if n >= options.max_iterations:
                raise RuntimeError(f"a path needed more than max_iterations={options.max_iterations} events to "
                                   f"reach t_end={t_end}; are the rates finite and sensible?")
            keep = None
            if n and n_running <= _COMPACT_BELOW * st.rows.shape[0]:  # drop the stopped paths
                keep = running.nonzero().squeeze(1)
                if E:
                    n_events[st.rows] = st.count  # the stopped paths' totals are final
                st = st.select(keep)
            if pending is not None:
                e_draw, w_draw = pending.result()
                if keep is not None:
                    e_draw, w_draw = e_draw[:, keep], w_draw[:, keep]
                pending = drawer.submit(streams.draw, st.key, n // K + 1, K, scratch[(n // K + 1) % 2].draws)
            else:
                e_draw, w_draw = streams.draw(st.key, n // K, K, buffer=scratch[0].draws)
            times, states = _draw_events(event, st, out, e_draw, w_draw)
            work = scratch[(n // K) % len(scratch)]
            if threaded:
                writes.append(writer.submit(_write_observations, out, times, states, st.rows, st.obs, work))
            else:
                _write_observations(out, times, states, st.rows, st.obs, work)
            n += K
        for done in writes:
            done.result()  # raise what a write raised
    finally:
        if threaded:
            drawer.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True)

    observed = tuple(_fill_forward(buf.view(n_obs + 1, n_paths)[:n_obs].t()) for buf in out.observed)
    result = SSAResult(observed=observed, absorbed_at=out.absorbed_at, iterations=n)
    if E:
        n_events[st.rows] = st.count
        rec_time = out.rec_time.view(E + 1, n_paths)[:E].t().contiguous()
        rec_state = [buf.view(E + 1, n_paths)[:E].t().contiguous() for buf in out.rec_state]
        rec_time[:, 0] = 0.0
        for buf, seen in zip(rec_state, observed):
            buf[:, 0] = seen[:, 0]  # X(0): the slot at time 0
        if extra_slot:
            result.observed = tuple(seen[:, 1:].contiguous() for seen in observed)
        result.jump_time, result.jump_state, result.n_events = rec_time, tuple(rec_state), n_events
    return result


def _draw_events(event: EventFn, st: _Paths, out: _Outputs, e_draw: torch.Tensor, w_draw: torch.Tensor):
    """K events of every running path (and the jump record); returns the times
    ``[t_0 … t_K]`` and per component the states ``[x_0 … x_{K-1}]`` (x_k held on
    ``[t_k, t_{k+1})``) for :func:`_write_observations`."""
    times = [st.t]
    states = [[c] for c in st.x]
    x, t = st.x, st.t
    for e, w in zip(e_draw.unbind(0), w_draw.unbind(0)):
        t, x = event(x, t, e, w, st.ctx)
        times.append(t)
        for seq, c in zip(states, x):
            seq.append(c)
    st.x, st.t = x, t
    if out.record_events:  # the jumps in [0, t_end]: entries count, count + 1, ...
        E = out.record_events
        after = torch.stack(times[1:])
        kept = (after <= out.t_end) & (after >= 0)
        entry = st.count + kept.cumsum(0) - 1
        index = (torch.where(kept & (entry < E), entry, E) * out.n_paths + st.rows).reshape(-1)
        out.rec_time.scatter_(0, index, after.reshape(-1))
        for buffer, seq in zip(out.rec_state, states):
            buffer.scatter_(0, index, torch.stack(seq[1:]).reshape(-1))
        st.count = st.count + kept.sum(0)
    return times, [seq[:-1] for seq in states]


@dataclass
class _Scratch:
    """Reused flat buffers of one draw: its variates (numpy, CPU), its times, its states."""

    draws: Any
    times: torch.Tensor
    rows: torch.Tensor
    states: list[torch.Tensor]

    @classmethod
    def allocate(cls, b: int, K: int, dtypes: list[torch.dtype], device: torch.device) -> "_Scratch":
        draws = np.empty(2 * K * b, dtype=np.float64) if device.type == "cpu" else None
        return cls(draws, torch.empty((K + 1) * b, dtype=torch.float64, device=device),
                   torch.empty((K + 1) * b, dtype=torch.float64, device=device),
                   [torch.empty(K * b, dtype=dtype, device=device) for dtype in dtypes])


def _write_observations(out: _Outputs, times: list[torch.Tensor], states: list[list[torch.Tensor]],
                        rows: torch.Tensor, obs_rows: torch.Tensor | None, work: _Scratch) -> None:
    r"""Observation slots and absorption times of one draw (module docstring): slot i gets the
    state :math:`x_k` with :math:`t_k \le s_i < t_{k+1}`."""
    b, K1 = rows.shape[0], len(times)
    by_event = torch.stack(times, out=work.times[:K1 * b].view(K1, b))  # (K + 1, b)
    X = [torch.stack(seq, out=space[:len(seq) * b].view(len(seq), b)) if seq[0].dtype == space.dtype
         else torch.stack(seq) for seq, space in zip(states, work.states)]  # (K, b)
    if out.step is not None:
        _write_regular(out, by_event, X, rows, work)
    else:
        _write_searched(out, by_event, X, rows, obs_rows, work)
    ends = by_event[[0, K1 - 1]]
    # absorption: a jump in (t_start, t_end] after which no event comes (T = +inf from then on)
    now_absorbed = torch.isinf(ends[1]) & torch.isfinite(ends[0])
    if bool(now_absorbed.any()):
        cols = now_absorbed.nonzero().squeeze(1)
        block = by_event[:, cols]
        when = torch.where(torch.isinf(block), -math.inf, block).amax(0)  # the last jump
        inside = (when <= out.t_end) & (when > out.t_start)
        out.absorbed_at[rows[cols[inside]]] = when[inside]


def _write_regular(out: _Outputs, by_event: torch.Tensor, X: list[torch.Tensor], rows: torch.Tensor,
                   work: _Scratch) -> None:
    r"""A shared regular grid :math:`s_i = iΔ`: the slots passed by time t are the
    :math:`c(t) = \lceil t/Δ \rceil` first (clamped to [0, n_obs]), so :math:`x_k` writes slot
    :math:`c(t_k)` where :math:`c(t_{k+1}) > c(t_k)`; the slots it also covers are filled forward at
    the end. A jump within rounding (~1e-16 relative) of an observation time may be seen on either
    side of it."""
    c = torch.mul(by_event, 1.0 / out.step, out=work.rows[:by_event.numel()].view_as(by_event)).ceil_()
    k, col = (c[1:] > c[:-1]).nonzero().unbind(1)  # before clamping: sparse (a few % of the events)
    first = c[k, col].clamp_(0.0, float(out.n_obs))
    last = c[k + 1, col].clamp_(0.0, float(out.n_obs))
    index = torch.where(last > first, first, float(out.n_obs)).to(torch.int64).mul_(out.n_paths).add_(rows[col])
    for buffer, values in zip(out.observed, X):
        buffer.index_put_((index,), values[k, col])


def _write_searched(out: _Outputs, by_event: torch.Tensor, X: list[torch.Tensor], rows: torch.Tensor,
                    obs_rows: torch.Tensor | None, work: _Scratch) -> None:
    r"""Any grid, shared ``(T,)`` or per path: with the draw's times as rows ``(b, K + 1)``, the
    slots passed during it are :math:`c_0 \le i < c_K`, :math:`c = \#\{i : s_i < t\}` at its first
    and last time; slot i gets :math:`x_k` with k found by a search in the row (exact)."""
    b, K1 = rows.shape[0], by_event.shape[0]
    T = work.rows[:K1 * b].view(b, K1).copy_(by_event.t())
    ends = T[:, [0, K1 - 1]]
    c = torch.searchsorted(out.obs, ends) if out.obs is not None else torch.searchsorted(obs_rows, ends)
    first, stop = c[:, 0], c[:, 1]
    passed = int((stop - first).max()) if b else 0
    sink = out.n_obs * out.n_paths + rows[:, None]
    col = torch.arange(b, device=rows.device)[:, None]
    for j0 in range(0, passed, _SLOTS_PER_PASS):
        slot = first[:, None] + torch.arange(j0, min(passed, j0 + _SLOTS_PER_PASS), device=rows.device)
        valid = slot < stop[:, None]
        slot = slot.clamp_(max=out.n_obs - 1)
        s = out.obs[slot] if out.obs is not None else obs_rows.gather(1, slot)
        k = (torch.searchsorted(T, s, right=True) - 1).clamp_(0, K1 - 2)  # t_k <= s < t_{k+1}
        index = torch.where(valid, slot * out.n_paths + rows[:, None], sink).reshape(-1)
        source = (k * b + col).reshape(-1)
        for buffer, values in zip(out.observed, X):
            buffer.index_put_((index,), values.reshape(-1).take(source))


def _regular_step(obs: torch.Tensor | None) -> float | None:
    """Δ if ``obs`` is ``(T,)`` with ``obs_i = iΔ`` (to rounding), else None."""
    if obs is None or obs.ndim != 1 or obs.shape[0] < 2 or float(obs[0]) != 0.0:
        return None
    step = float(obs[-1]) / (obs.shape[0] - 1)
    if step <= 0:
        return None
    ideal = torch.arange(obs.shape[0], dtype=torch.float64, device=obs.device) * step
    return step if bool(torch.allclose(obs, ideal, rtol=0.0, atol=1e-12 * max(1.0, float(obs[-1])))) else None


def _fill_forward(values: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` slots with sentinels (never written) → each takes the last written slot before
    it: the observations of one holding interval after its first share its state."""
    if values.dtype.is_floating_point:
        written = ~torch.isnan(values)
    else:
        written = values != torch.iinfo(values.dtype).min
    T = values.shape[1]
    src = torch.where(written, torch.arange(T, device=values.device), 0).cummax(dim=1).values
    return torch.gather(values, 1, src)
