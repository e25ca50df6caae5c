r"""The ramped-hazard case of the exact SSA engine: one species, birth and death, with
propensities that ramp linearly in time from a kink on (a linearly ramped parameter held
until then, e.g. the death rate of the Allee model, :mod:`simulators.tipping.allee`).

Between events :math:`a_j(t + s) = a_j(t) + b_j(\max(t + s, κ) − \max(t, κ))` with slopes
:math:`b_j \ge 0`; the holding time solves the integrated hazard
(:func:`~simulators.jump.engine.holding_time`) and the channel is chosen with the rates at
the event time (time-inhomogeneous Gillespie; Anderson 2007, "A modified next reaction
method for simulating chemical systems with time dependent propensities and delays").
"""
from __future__ import annotations

from typing import Callable

import torch

from .engine import EventFn, holding_time

__all__ = ["ramped_birth_death"]

Propensities = Callable[[torch.Tensor, torch.Tensor], tuple]


def ramped_birth_death(propensities: Propensities, kink: float = 0.0) -> EventFn:
    r"""The SSA rule (:data:`~simulators.jump.engine.EventFn`) of a one-species birth–death
    process whose propensities ramp linearly in time from ``kink`` on.

    ``propensities(t, n) -> (a_birth, a_death, b_birth, b_death)``: for ``t``, ``n`` ``(b,)``
    the propensities at t and their slopes :math:`b \ge 0` after the kink (tensors or
    floats), so that :math:`a_j(t + s) = a_j(t) + b_j (\max(t + s, κ) − \max(t, κ))` until
    the next event. The holding time solves the integrated hazard
    (:func:`~simulators.jump.engine.holding_time`); the event is a birth with probability
    :math:`a_+/(a_+ + a_−)` at the event time (channel 0 of the direct method: birth iff
    :math:`W A(t+τ) < a_+(t+τ)`), a death otherwise. An empty population (A = B = 0) waits
    forever.
    """
    def event(x, t, e, w, ctx):
        n = x[0]
        # an extinct path waits at t = +inf: evaluate its (zero) rates at a finite time
        birth, death, birth_slope, death_slope = propensities(t.nan_to_num(posinf=kink), n)
        rate = birth + death
        slope = birth_slope + death_slope
        tau = holding_time(e, rate, slope, t, kink)
        t_next = t + tau
        ramp = (t_next.clamp(min=kink) - t.clamp(min=kink)).nan_to_num_(posinf=0.0)  # ramped part of tau
        birth_now = birth + ramp * birth_slope
        is_birth = w * (rate + ramp * slope) < birth_now
        n_next = torch.where(torch.isinf(t_next), n, n - 1.0 + 2.0 * is_birth)
        return t_next, (n_next,)

    return event
