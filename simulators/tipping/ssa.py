r"""Exact stochastic simulation of a birth–death process whose rates ramp linearly in time.

One species, two reactions: birth :math:`n \to n + 1` with propensity
:math:`a_+(t, n)` and death :math:`n \to n − 1` with :math:`a_−(t, n)`. Between
events the propensities are affine in time,
:math:`a_j(t + s) = a_j(t) + s\,b_j(t)` with slopes :math:`b_j \ge 0` (a
linearly ramped rate parameter). The next event is then exact
(time-inhomogeneous Gillespie): with :math:`A = a_+ + a_−`, :math:`B = b_+ + b_−`
and :math:`E \sim \mathrm{Exp}(1)`, the waiting time τ solves the integrated
hazard :math:`Aτ + \tfrac12 Bτ^2 = E`,

.. math::  τ = \frac{2E}{A + \sqrt{A^2 + 2BE}}

(the cancellation-free root; τ = E/A when B = 0 and τ = ∞ when A = B = 0, an
extinct population), and the event is a death with probability
:math:`a_−(t+τ)/A(t+τ)`, the rates *at the event time*.

All members advance together as tensors: iteration i performs the i-th event
of every member that has not yet reached the end of the interval. Member m's
i-th event uses two uniforms of :class:`~simulators.random.CounterRNG` keyed by
``(seed, m, i // UNIFORM_BLOCK, lane)`` and the position ``i % UNIFORM_BLOCK``,
so its path depends only on its own index, never on the batch it is computed in.
Event counts are not tied to time steps, so the interval's identity (``lane``)
keys the numbers: the spin-up and the saved run use different lanes.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch

from ..integrators.base import AbstractIntegrator, register_integrator
from ..random import STREAM_NOISE, CounterRNG

__all__ = ["SSAResult", "birth_death_ssa", "GillespieRamp", "LANE_OFFSET"]

#: lanes 0 and 1 of the noise stream are the normal variates of the SDE integrators
LANE_OFFSET = 2
#: events per random draw: event i of a member uses element ``i % UNIFORM_BLOCK`` of
#: the draw at step ``i // UNIFORM_BLOCK`` (still a function of the member's own counters)
UNIFORM_BLOCK = 64

Propensities = Callable[[torch.Tensor, torch.Tensor], tuple[Any, Any, Any, Any]]


class SSAResult(NamedTuple):
    """``samples`` ``(M, T)``: n at the save times (right-continuous: events at or
    before a save time count); ``n`` ``(M,)`` at the end of the interval;
    ``extinction_time`` ``(M,)``: time of the event that took n to 0 inside the
    interval (NaN if none); ``events`` ``(M,)``: number of events."""

    samples: torch.Tensor
    n: torch.Tensor
    extinction_time: torch.Tensor
    events: torch.Tensor


def birth_death_ssa(propensities: Propensities, n0: torch.Tensor, rng: CounterRNG, *, t_start: float,
                    t_stop: float, save_times: torch.Tensor, lane: int,
                    progress: Callable[[int], None] | None = None) -> SSAResult:
    r"""Run the exact SSA from ``(t_start, n0)`` to ``t_stop`` (see the module docstring).

    Args:
        propensities: ``(t, n) -> (a_birth, a_death, b_birth, b_death)``: for ``t``
            and ``n`` of shape ``(M,)``, the propensities at ``t`` ``(M,)`` and their
            time derivatives (tensors ``(M,)`` or floats), constant until the next
            event, non-negative and valid on the whole interval.
        n0: initial counts ``(M,)``.
        rng: the members' counter-based generator.
        save_times: increasing times in ``[t_start, t_stop]`` ``(T,)`` at which n is recorded.
        lane: identifies the interval in the random stream.
        progress: called with the number of save times newly passed by every member.
    """
    device = n0.device
    f64 = torch.float64
    n = n0.to(f64).clone()
    M = n.shape[0]
    save_times = save_times.to(device=device, dtype=f64)
    T = save_times.shape[0]
    samples = torch.empty((M, T), dtype=f64, device=device)
    k = torch.zeros(M, dtype=torch.int64, device=device)  # next save index of each member
    t = torch.full((M,), float(t_start), dtype=f64, device=device)
    extinction_time = torch.full((M,), math.nan, dtype=f64, device=device)
    events = torch.zeros(M, dtype=torch.int64, device=device)
    active = torch.full((M,), t_stop > t_start, dtype=torch.bool, device=device)
    reported = 0
    step = 0
    while bool(active.any()):
        if step % UNIFORM_BLOCK == 0:  # the numbers of UNIFORM_BLOCK events in one draw
            block = rng.uniform((UNIFORM_BLOCK, 2), step=step // UNIFORM_BLOCK, stream=STREAM_NOISE,
                                lane=lane + LANE_OFFSET, dtype=f64).to(device)
        u = block[:, step % UNIFORM_BLOCK]  # (M, 2)
        birth, death, birth_slope, death_slope = propensities(t, n)
        A = birth + death
        B = birth_slope + death_slope
        E = -torch.log(u[:, 0])
        tau = 2.0 * E / (A + torch.sqrt(A * A + 2.0 * B * E))  # inf when A = B = 0
        t_event = t + tau
        fire = active & (t_event <= t_stop)
        if T:
            # n holds on [t, t_event); a member that stops holds it to t_stop
            hold_until = torch.where(fire, t_event, math.inf)
            while True:
                due = active & (k < T) & (save_times[k.clamp(max=T - 1)] < hold_until)
                if not bool(due.any()):
                    break
                samples[due, k[due]] = n[due]
                k = k + due
        # a death with probability a_death / (a_birth + a_death) at the event time
        is_death = u[:, 1] * (A + tau * B) <= death + tau * death_slope
        n = n + fire * (1.0 - 2.0 * is_death)
        extinction_time = torch.where(fire & (n == 0), t_event, extinction_time)
        events = events + fire
        t = torch.where(fire, t_event, t)
        active = fire
        step += 1
        if progress is not None and T:
            passed = int(k.min())
            if passed > reported:
                progress(passed - reported)
                reported = passed
    if progress is not None and T > reported:
        progress(T - reported)
    return SSAResult(samples, n, extinction_time, events)


@register_integrator
class GillespieRamp(AbstractIntegrator):
    r"""Exact SSA for birth–death systems with linearly ramped rates (:func:`birth_death_ssa`).

    The system provides ``birth_death_propensities(t, n)`` (the propensities of
    birth and death and their time slopes, :func:`birth_death_ssa`) with rates
    that ramp from model time 0 (:class:`~simulators.tipping.ramp.LinearRamp`); an interval must therefore
    lie on one side of t = 0, as the spin-up and the saved run do. The state is
    the count, shape ``(M, 1)``. ``dt`` only fixes the save times: there is no
    time step. The interval's first global step ``step0`` keys its random lane.
    """

    name = "gillespie_ramp"
    stochastic = True

    def check_system(self, system):
        if not callable(getattr(system, "birth_death_propensities", None)):
            raise ValueError(f"gillespie_ramp simulates birth-death jump processes; the system "
                             f"{system.name} has no birth_death_propensities(t, n)")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        self.check_system(system)
        if n_steps % save_every:
            raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
        if rng is None:
            raise ValueError(f"gillespie_ramp needs a CounterRNG for the jump process {system.name}")
        t_stop = t0 + n_steps * dt
        if t0 < 0.0 < t_stop and not math.isclose(t_stop, 0.0, abs_tol=1e-12):
            raise ValueError(f"gillespie_ramp integrates t < 0 and t >= 0 separately (the ramp starts at 0); "
                             f"got the interval [{t0}, {t_stop}]")
        n_saves = n_steps // save_every
        save_times = t0 + dt * save_every * torch.arange(1, n_saves + 1, dtype=torch.float64)
        save_times[-1:] = t_stop  # land exactly on the end
        done = [0]

        def report(count: int) -> None:
            done[0] += count
            if callback is not None:
                callback(done[0])

        result = birth_death_ssa(system.birth_death_propensities, x0[:, 0], rng, t_start=t0,
                                 t_stop=min(t_stop, 0.0) if t0 < 0.0 else t_stop,
                                 save_times=save_times, lane=step0, progress=report)
        return result.samples.T[..., None].to(x0.dtype)  # (n_saves, M, 1)
