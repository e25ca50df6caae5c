r"""Exact stochastic simulation (Gillespie 1976, 1977), batched over paths.

In a state ``x`` with channel rates (propensities) :math:`a_1(x), …, a_R(x)` and
total rate :math:`a_0 = \sum_r a_r`, the direct method draws

* the holding time :math:`τ = E / a_0`, :math:`E \sim \text{Exp}(1)`
  (for an MJP :math:`a_0 = −Q_{ii}`);
* the channel with probability :math:`a_r / a_0`, by inverting the cumulative
  rates with a uniform :math:`W \in [0, 1)`: the first r with
  :math:`\sum_{s \le r} a_s > W a_0` (for an MJP the channel is the target
  state j, chosen with probability :math:`Q_{ij} / (−Q_{ii})`),

then sets :math:`t \leftarrow t + τ` and applies the jump of that channel.

Many paths advance together as tensors (CPU or CUDA): the Python loop runs over
events, every path takes its n-th event in the n-th iteration, and a path whose
next event lies beyond ``t_end`` stops: it writes nothing more and is dropped
from the batch once half the batch has stopped. The random numbers of the n-th
event of a path come from :class:`~simulators.random.CounterRNG` keyed by the
path's key (member and path index, :func:`path_keys`) and n, so a path is
bit-identical whatever else is simulated with it (on one kind of device: CPU and
CUDA agree in law, not to the last bit, as their ``log`` differ).

Speed: on the CPU the loop runs on one thread (its operations act on a few
thousand numbers, where thread hand-offs cost more than they gain); on CUDA the
events of one draw on a regular grid are replayed as one CUDA graph
(:class:`_ChunkGraph`), so the cost per event is a few microseconds of kernels
instead of Python launching each of them.

A state is a tuple of ``(B,)`` tensors (one per component: the state index of
an MJP, one count per species of a reaction network), so that every operation
of an event is a contiguous elementwise one; the rule of a model is an
``event(x, w, context) -> (a0, x_next)`` function (:mod:`.mjp`, :mod:`.reactions`).

Observations: the state at observation time s is :math:`X(s)`, the state after
the last jump at or before s (paths are right-continuous). A regular grid
``s_i = iΔ`` shared by all paths is located by arithmetic (the slots passed by
time t are the ``ceil(t/Δ)`` first), so a jump within a rounding error (~1e-16
relative) of an observation time may be seen on either side of it; any other
grid is followed slot by slot.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from ..integrators.base import AbstractIntegrator, register_integrator
from ..random import CounterRNG

__all__ = ["Gillespie", "SSAResult", "JumpPaths", "ssa", "path_keys", "regular_grid", "EventFn",
           "MAX_PATHS", "STREAM_JUMP", "EVENTS_PER_DRAW", "CUDA_GRAPHS"]

#: CounterRNG stream of the jumps: draw d of a path is a (2, EVENTS_PER_DRAW) block of uniforms,
#: row 0 for the holding times, row 1 for the channel choices of its events.
STREAM_JUMP = 0x41
#: events whose random numbers are drawn in one go. It fixes the counter layout
#: (event n of a path uses element n % EVENTS_PER_DRAW of draw n // EVENTS_PER_DRAW),
#: so changing it changes every dataset.
EVENTS_PER_DRAW = 16
#: paths per member (a path key is ``member · MAX_PATHS + path``)
MAX_PATHS = 1 << 20
#: random numbers per CounterRNG call on the CPU: rows are split so that the hashing stays in cache
#: (measured best among 2**14 … 2**20 for 1,000 and 10,000 paths)
_DRAW_BLOCK = 1 << 16
#: drop stopped paths from the batch once at most this fraction is still running
_COMPACT_BELOW = 0.5
_TINY = torch.finfo(torch.float64).tiny

#: ``event(x, w, context) -> (a0, x_next)``: total rate in the state ``x`` (a tuple
#: of ``(b,)`` tensors) and the state after the jump chosen by ``w ∈ [0, 1)``.
#: Where ``a0 = 0`` (absorbing) ``x_next`` may be anything valid: the path has stopped.
EventFn = Callable[[tuple[torch.Tensor, ...], torch.Tensor, Mapping[str, torch.Tensor]],
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


def _regular_step(obs: torch.Tensor) -> float | None:
    """Δ if ``obs`` is ``(T,)`` with ``obs_i = iΔ`` (to rounding), else None."""
    if obs.ndim != 1 or obs.shape[0] < 2 or float(obs[0]) != 0.0:
        return None
    step = float(obs[-1]) / (obs.shape[0] - 1)
    if step <= 0:
        return None
    ideal = torch.arange(obs.shape[0], dtype=torch.float64, device=obs.device) * step
    return step if bool(torch.allclose(obs, ideal, rtol=0.0, atol=1e-12 * max(1.0, float(obs[-1])))) else None


@dataclass
class SSAResult:
    """Output of :func:`ssa` for ``B`` paths, one tensor per state component.

    * ``observed``: states at the observation times, each ``(B, T)``;
    * ``jump_time`` ``(B, E)`` and ``jump_state`` (each ``(B, E)``): the path as a
      jump record. Entry 0 is ``(0, X(0))``, entry e > 0 the e-th jump in
      ``(0, t_end]``; unused entries are NaN / ``pad``. ``None`` unless asked for;
    * ``n_events``: entries the full record needs (1 + jumps in ``(0, t_end]``),
      ``(B,)``; more than E means the record was truncated;
    * ``iterations``: event steps taken, a multiple of ``EVENTS_PER_DRAW`` (at least the
      events of the longest path).
    """

    observed: tuple[torch.Tensor, ...]
    jump_time: torch.Tensor | None = None
    jump_state: tuple[torch.Tensor, ...] | None = None
    n_events: torch.Tensor | None = None
    iterations: int = 0


def _draw(keys: torch.Tensor, seed: int, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp(1) holding-time draws and uniform [0, 1) channel draws of the next
    ``EVENTS_PER_DRAW`` events of every path, each ``(EVENTS_PER_DRAW, b)`` (event-major)."""
    b = keys.shape[0]
    exp_draws = torch.empty(EVENTS_PER_DRAW, b, dtype=torch.float64, device=keys.device)
    choice_draws = torch.empty_like(exp_draws)
    # on a GPU one call for all rows: fewer kernel launches
    rows_per_call = max(1, _DRAW_BLOCK // (2 * EVENTS_PER_DRAW)) if keys.device.type == "cpu" else max(b, 1)
    for start in range(0, b, rows_per_call):
        stop = min(b, start + rows_per_call)
        u = CounterRNG(seed, keys[start:stop]).uniform((2, EVENTS_PER_DRAW), step=draw, stream=STREAM_JUMP)
        exp_draws[:, start:stop] = torch.log(u[:, 0]).neg_().clamp_(min=_TINY).t()  # u = 1 would give E = 0
        # W = 1 − V on [0, 1): exact, as V is a multiple of 2**-53 in (0, 1]
        choice_draws[:, start:stop] = u[:, 1].neg().add_(1.0).t()
    return exp_draws, choice_draws


@contextlib.contextmanager
def _one_thread(device: torch.device):
    """Run the event loop's CPU ops on one thread: they act on a few thousand numbers each,
    where torch's hand-offs to worker threads cost more than they save (and much more on
    a busy machine). Batches of paths run in parallel through dask workers instead."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ssa(x0: Sequence[torch.Tensor], event: EventFn, *, keys: torch.Tensor, seed: int, t_end: float,
        obs_times: torch.Tensor, t_start: float = 0.0, context: Mapping[str, torch.Tensor] | None = None,
        record_events: int = 0, pad: float = -1, max_iterations: int = 100_000_000) -> SSAResult:
    r"""Gillespie's direct method for ``B`` independent paths at once.

    Args:
        x0: the state at ``t_start``: a sequence of ``(B,)`` tensors (components).
        event: the model's rule (:data:`EventFn`).
        keys: ``(B,)`` int64 counter keys (:func:`path_keys`).
        seed: the dataset's seed.
        t_end: last observation time; a path stops at its first event after it.
        obs_times: sorted observation times in ``[0, t_end]``, ``(T,)`` shared by
            all paths or ``(B, T)`` per path.
        t_start: start time ≤ 0 (a negative start is a discarded spin-up).
        context: per-path tensors ``(B, ...)`` passed to ``event`` (for example
            each path's row offset into a table); they follow the paths when
            stopped ones are dropped.
        record_events: E > 0 keeps the jump record (see :class:`SSAResult`).
        pad: fill value of unused ``jump_state`` entries.
        max_iterations: guard against runaway rates (raises ``RuntimeError``).

    On the CPU the loop runs on one thread (see ``_one_thread``).
    """
    device = torch.as_tensor(x0[0]).device if len(x0) else torch.device("cpu")
    with _one_thread(device):
        return _ssa(x0, event, keys, seed, t_end, obs_times, t_start, context, record_events, pad, max_iterations)


@dataclass
class _Paths:
    """The running paths: state components, time, first slot not yet passed, global row,
    per-path context, and (when recording) the entries of the jump record used so far."""

    x: tuple[torch.Tensor, ...]
    t: torch.Tensor
    slot: torch.Tensor
    rows: torch.Tensor
    ctx: dict[str, torch.Tensor]
    count: torch.Tensor | None

    def select(self, keep: torch.Tensor) -> "_Paths":
        return _Paths(tuple(c[keep] for c in self.x), self.t[keep], self.slot[keep], self.rows[keep],
                      {k: v[keep] for k, v in self.ctx.items()}, None if self.count is None else self.count[keep])


@dataclass
class _Outputs:
    """Where events write: observation slots (and the jump record), obs-major flat arrays."""

    observed: list[torch.Tensor]
    rec_time: torch.Tensor | None
    rec_state: list[torch.Tensor] | None
    n_paths: int
    n_obs: int
    record_events: int
    t_end: float


def _event(event: EventFn, st: _Paths, out: _Outputs, e: torch.Tensor, w: torch.Tensor):
    """One event of every running path: the holding time, the jump, and the write of the
    current state into the first observation slot not yet passed. Slot ``st.slot`` gets x
    now; a later event overwrites it unless this holding interval is the one that passes it."""
    a0, x_next = event(st.x, w, st.ctx)
    t_next = st.t + e / a0  # inf where no channel is open (absorbing)
    index = torch.add(st.rows, st.slot, alpha=out.n_paths)
    for buffer, c in zip(out.observed, st.x):
        buffer.scatter_(0, index, c)
    return t_next, x_next


def _finish_event(st: _Paths, out: _Outputs, t_next: torch.Tensor, x_next: tuple[torch.Tensor, ...]) -> None:
    if out.record_events:
        E = out.record_events
        kept = (t_next <= out.t_end) & (t_next >= 0)
        entry = torch.where(kept & (st.count < E), st.count, E)
        index = torch.add(st.rows, entry, alpha=out.n_paths)
        out.rec_time.scatter_(0, index, t_next)
        for buffer, c in zip(out.rec_state, x_next):
            buffer.scatter_(0, index, c)
        st.count = st.count + kept
    # paths past t_end keep jumping until they are dropped, but write only their sinks
    st.x, st.t = x_next, t_next


def _regular_chunk(event: EventFn, st: _Paths, out: _Outputs, step: float, exp_draws, choice_draws) -> None:
    """Events on a regular grid s_i = iΔ: the slots passed by time t are the ceil(t/Δ) first."""
    for e, w in zip(exp_draws, choice_draws):
        t_next, x_next = _event(event, st, out, e, w)
        st.slot = torch.ceil(t_next / step).clamp_(0.0, float(out.n_obs)).to(torch.int64)
        _finish_event(st, out, t_next, x_next)


#: replay the events of one draw as a CUDA graph (regular grids): one launch instead of hundreds.
#: Off by default until it has been checked on a GPU against eager mode
#: (tests/test_jump_mjp.py::test_cuda_graphs_give_the_eager_numbers..., marked gpu).
CUDA_GRAPHS = False


class _ChunkGraph:
    """:func:`_regular_chunk` captured as a CUDA graph on static copies of the running paths.

    The graph reads the state from its static tensors and writes the new state back into
    them, so a replay advances the paths by ``EVENTS_PER_DRAW`` events; the same kernels run
    as in eager mode, so the numbers are the same. Captured again whenever the batch shrinks.
    """

    def __init__(self, graph, static: _Paths, exp_draws: torch.Tensor, choice_draws: torch.Tensor):
        self.graph, self.static, self.exp_draws, self.choice_draws = graph, static, exp_draws, choice_draws

    @classmethod
    def capture(cls, event, st: _Paths, out: _Outputs, step: float, exp_draws, choice_draws) -> "_ChunkGraph | None":
        static = _Paths(tuple(c.clone() for c in st.x), st.t.clone(), st.slot.clone(), st.rows, dict(st.ctx),
                        None if st.count is None else st.count.clone())
        exp_static, choice_static = exp_draws.clone(), choice_draws.clone()

        def chunk(paths: _Paths, outputs: _Outputs) -> None:
            work = _Paths(paths.x, paths.t, paths.slot, paths.rows, paths.ctx, paths.count)
            _regular_chunk(event, work, outputs, step, exp_static.unbind(0), choice_static.unbind(0))
            for dst, src in zip(paths.x, work.x):
                dst.copy_(src)
            paths.t.copy_(work.t)
            paths.slot.copy_(work.slot)
            if paths.count is not None:
                paths.count.copy_(work.count)

        try:
            # warm up on throw-away copies (outputs included) on a side stream, then capture
            scratch = _Outputs([b.clone() for b in out.observed],
                               None if out.rec_time is None else out.rec_time.clone(),
                               None if out.rec_state is None else [b.clone() for b in out.rec_state],
                               out.n_paths, out.n_obs, out.record_events, out.t_end)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                chunk(_Paths(tuple(c.clone() for c in static.x), static.t.clone(), static.slot.clone(), static.rows,
                             static.ctx, None if static.count is None else static.count.clone()), scratch)
            torch.cuda.current_stream().wait_stream(side)
            del scratch
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                chunk(static, out)
        except Exception as err:  # pragma: no cover - depends on the CUDA runtime
            warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); running eagerly")
            return None
        return cls(graph, static, exp_static, choice_static)

    def replay(self, st: _Paths, exp_draws: torch.Tensor, choice_draws: torch.Tensor) -> None:
        static = self.static
        if st.t is not static.t:  # first replay after a capture: load the current state
            for dst, src in zip(static.x, st.x):
                dst.copy_(src)
            static.t.copy_(st.t)
            static.slot.copy_(st.slot)
            if static.count is not None:
                static.count.copy_(st.count)
            st.x, st.t, st.slot, st.count = static.x, static.t, static.slot, static.count
        self.exp_draws.copy_(exp_draws)
        self.choice_draws.copy_(choice_draws)
        self.graph.replay()


def _ssa(x0, event, keys, seed, t_end, obs_times, t_start, context, record_events, pad, max_iterations):
    x = tuple(torch.as_tensor(c) for c in x0)
    if not x or any(c.ndim != 1 or c.shape != x[0].shape for c in x):
        raise ValueError("x0 must be a non-empty sequence of (B,) tensors of one length")
    device = x[0].device
    n_paths = x[0].shape[0]
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device).reshape(-1)
    if keys.shape[0] != n_paths:
        raise ValueError(f"keys has {keys.shape[0]} entries for {n_paths} paths")
    if not (math.isfinite(t_end) and math.isfinite(t_start)) or t_start > 0 or t_end < 0:
        raise ValueError(f"need t_start <= 0 <= t_end, both finite; got t_start={t_start!r}, t_end={t_end!r}")
    obs = torch.as_tensor(obs_times, dtype=torch.float64, device=device)
    if obs.ndim == 2 and obs.shape[0] != n_paths or obs.ndim not in (1, 2) or obs.shape[-1] < 1:
        raise ValueError(f"obs_times must be (T,) or (B, T) with B={n_paths}, T >= 1; got {tuple(obs.shape)}")
    outside = (obs < 0) | (obs > t_end)
    if bool(outside.any()):
        raise ValueError(f"observation times must lie in [0, t_end={t_end}], got {obs[outside][0].item()!r}")
    if bool((obs.diff(dim=-1) < 0).any()):
        raise ValueError("observation times must be sorted (non-decreasing) along the last dim")
    step = _regular_step(obs)
    if step is None:
        if obs.ndim == 1:
            obs = obs.expand(n_paths, -1)
        if record_events:  # X(0) is observed as an extra first slot: entry 0 of the record
            obs = torch.cat((obs.new_zeros(n_paths, 1), obs), dim=1)
        # flat per-path rows closed by +inf ("no observation left")
        obs_flat = torch.cat((obs, obs.new_full((n_paths, 1), math.inf)), dim=1).reshape(-1)
    n_obs = obs.shape[-1]

    # obs-major slots: slot i of path p is element i·B + p; slots n_obs·B + p are sinks.
    # Slots nobody wrote keep a sentinel and are filled forward at the end.
    def sentinel_of(c):
        return math.nan if c.dtype.is_floating_point else torch.iinfo(c.dtype).min
    observed = [torch.full(((n_obs + 1) * n_paths,), sentinel_of(c), dtype=c.dtype, device=device) for c in x]
    if record_events:
        E = record_events
        rec_time = torch.full(((E + 1) * n_paths,), math.nan, dtype=torch.float64, device=device)
        rec_state = [torch.full(((E + 1) * n_paths,), pad, dtype=c.dtype, device=device) for c in x]
        n_events = torch.ones(n_paths, dtype=torch.int64, device=device)
        count = n_events.clone()
    ctx = {name: torch.as_tensor(v, device=device) for name, v in (context or {}).items()}

    st = _Paths(x=x, t=torch.full((n_paths,), float(t_start), dtype=torch.float64, device=device),
                slot=torch.zeros(n_paths, dtype=torch.int64, device=device),  # first slot not yet passed
                rows=torch.arange(n_paths, device=device), ctx=ctx,
                count=count if record_events else None)
    if step is None:
        next_obs = obs[:, 0].clone()  # time of the first slot not yet passed
    out = _Outputs(observed, rec_time if record_events else None, rec_state if record_events else None,
                   n_paths, n_obs, record_events, t_end)
    use_graphs = step is not None and device.type == "cuda" and CUDA_GRAPHS
    graph = None
    n = 0
    while True:
        running = st.t <= t_end
        n_running = int(running.sum())
        if n_running == 0:
            break
        if n >= max_iterations:
            raise RuntimeError(f"a path needed more than max_iterations={max_iterations} events to reach "
                               f"t_end={t_end}; are the rates finite and sensible?")
        if n and n_running <= _COMPACT_BELOW * st.rows.shape[0]:  # drop the stopped paths
            keep = running.nonzero().squeeze(1)
            if record_events:
                n_events[st.rows] = st.count  # the stopped paths' totals are final
            st = st.select(keep)
            keys = keys[keep]
            graph = None
            if step is None:
                next_obs = next_obs[keep]
        exp_draws, choice_draws = _draw(keys, seed, n // EVENTS_PER_DRAW)
        if step is not None:
            if use_graphs and graph is None:
                graph = _ChunkGraph.capture(event, st, out, step, exp_draws, choice_draws)
                if graph is None:
                    use_graphs = False
            if graph is not None:
                graph.replay(st, exp_draws, choice_draws)
            else:
                _regular_chunk(event, st, out, step, exp_draws.unbind(0), choice_draws.unbind(0))
        else:
            obs_row = st.rows * (n_obs + 1)
            for e, w in zip(exp_draws.unbind(0), choice_draws.unbind(0)):
                t_next, x_next = _event(event, st, out, e, w)
                # advance slot by slot (elementwise: no thread hand-offs of a batched search)
                due = next_obs < t_next
                while bool(due.any()):
                    st.slot = st.slot + due
                    next_obs = obs_flat.index_select(0, obs_row + st.slot)
                    due = next_obs < t_next
                _finish_event(st, out, t_next, x_next)
        n += EVENTS_PER_DRAW

    result = SSAResult(observed=tuple(_fill_forward(buf.view(n_obs + 1, n_paths)[:n_obs].t()) for buf in observed),
                       iterations=n)
    if record_events:
        n_events[st.rows] = st.count
        rec_time = rec_time.view(E + 1, n_paths)[:E].t().contiguous()
        rec_state = [buf.view(E + 1, n_paths)[:E].t().contiguous() for buf in rec_state]
        rec_time[:, 0] = 0.0
        for buf, seen in zip(rec_state, result.observed):
            buf[:, 0] = seen[:, 0]  # X(0): slot 0 of a regular grid, the extra first slot otherwise
        if step is None:
            result.observed = tuple(seen[:, 1:].contiguous() for seen in result.observed)
        result.jump_time, result.jump_state, result.n_events = rec_time, tuple(rec_state), n_events
    return result


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


@register_integrator
class Gillespie(AbstractIntegrator):
    r"""Exact stochastic simulation of jump processes (Gillespie's direct method, :func:`ssa`).

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

    def check_system(self, system: Any) -> None:
        from .systems import AbstractJumpSystem

        if not isinstance(system, AbstractJumpSystem):
            raise ValueError(f"gillespie simulates jump processes; {system.name} is not one "
                             "(use rk4, dopri5 or euler_maruyama)")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        raise ValueError("gillespie does not step a vector field: jump systems simulate through "
                         "system.simulate(integrator, grid, ...)")


@dataclass
class JumpPaths:
    """Paths of M processes × P paths each (see :func:`simulators.jump.simulate_mjp`,
    :func:`simulators.jump.simulate_reactions`).

    * ``observed``: ``(M, P, T, *state)`` states at the observation times;
    * ``jump_time`` ``(M, P, E)`` and ``jump_state`` ``(M, P, E, *state)``: the
      jump record (entry 0 = time 0; padding NaN / −1), or None;
    * ``n_events``: ``(M, P)`` entries the full record needs, or None;
    * ``iterations``: events of the longest path.
    """

    observed: torch.Tensor
    jump_time: torch.Tensor | None
    jump_state: torch.Tensor | None
    n_events: torch.Tensor | None
    iterations: int

    @classmethod
    def from_result(cls, result: SSAResult, n_members: int, n_paths: int, *, stack: bool) -> "JumpPaths":
        """Reshape a flat :class:`SSAResult` (paths member-major); ``stack`` puts the state
        components on a last axis (species), otherwise the single component is taken."""
        def shape(parts):
            if parts is None:
                return None
            value = torch.stack(parts, dim=-1) if stack else parts[0]
            return value.reshape(n_members, n_paths, *value.shape[1:])

        reshape = lambda v: None if v is None else v.reshape(n_members, n_paths, *v.shape[1:])  # noqa: E731
        return cls(observed=shape(result.observed), jump_time=reshape(result.jump_time),
                   jump_state=shape(result.jump_state), n_events=reshape(result.n_events),
                   iterations=result.iterations)


def member_index(members: Any, n_members: int) -> torch.Tensor:
    """``members`` as an int64 tensor of length ``n_members`` (default ``0 … M−1``)."""
    if members is None:
        return torch.arange(n_members, dtype=torch.int64)
    members = torch.as_tensor(list(members) if isinstance(members, range) else members, dtype=torch.int64)
    if members.shape != (n_members,):
        raise ValueError(f"members must list {n_members} member indices, got shape {tuple(members.shape)}")
    return members


def flat_obs_times(obs_times: Any, n_members: int, n_paths: int, device: torch.device) -> torch.Tensor:
    """``(T,)`` stays; ``(M, P, T)`` becomes ``(M·P, T)`` (the layout of :func:`ssa`)."""
    obs = torch.as_tensor(obs_times, dtype=torch.float64, device=device)
    if obs.ndim == 1:
        return obs
    if obs.ndim != 3 or tuple(obs.shape[:2]) != (n_members, n_paths):
        raise ValueError(f"obs_times must be (T,) or (M, P, T) with (M, P) = ({n_members}, {n_paths}), "
                         f"got {tuple(obs.shape)}")
    return obs.reshape(n_members * n_paths, obs.shape[-1])
