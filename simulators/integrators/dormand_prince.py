r"""Dormand–Prince 5(4) with step-size control, its loops in one graph.

The explicit Runge–Kutta pair of Dormand & Prince (1980), "A family of embedded
Runge–Kutta formulae", J. Comput. Appl. Math. 6, 19–26, with the tableau of
Hairer, Nørsett & Wanner, *Solving ODEs I* (2nd ed., 1993), Table II.5.2:
seven stages, the seventh evaluated at the new point (first same as last, so
six new right-hand sides per step), fifth-order solution, fourth-order
embedded error estimate :math:`e = h \sum_i (b_i - \hat b_i) k_i`.

Error test and step-size controller (HNW II.4):

.. math::
    \mathrm{err} = \Big(\frac1N \sum_j \Big(\frac{e_j}{\mathrm{atol} +
        \mathrm{rtol}\,\max(|x_j|, |x_j^{\mathrm{new}}|)}\Big)^2\Big)^{1/2},
    \qquad h_{\mathrm{new}} = h\,\min\big(10, \max(0.2,\; 0.9\,\mathrm{err}^{-1/5})\big),

with the step accepted when err ≤ 1 and no growth on the step after a rejection;
the norm runs over all members and components (as torchdiffeq's default), so
one step size serves the whole batch and time stays a scalar. The initial step
is HNW's starting-step algorithm (II.4). Output times are hit exactly: a step
that would pass the next output time is shortened to land on it (no
interpolation), and the step size before the shortening is kept for the next step.

:func:`dormand_prince_chunk` builds the function that advances one chunk of
output times: ``scan`` over outputs, ``while_loop`` over step attempts, every
decision a ``torch.where``, so the whole chunk is one graph that
``torch.compile`` turns into one call (see :mod:`.compiled`).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from .compiled import _control_flow

__all__ = ["C", "A", "B", "E", "dormand_prince_chunk", "initial_step", "rms"]

#: nodes c_i
C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
#: coupling coefficients a_ij (row i lists j < i)
A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
#: fifth-order weights b_i (= the last row of A: first same as last)
B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
#: fourth-order embedded weights \hat b_i
B_HAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
#: error weights e_i = b_i − \hat b_i
E = tuple(b - bh for b, bh in zip(B, B_HAT))

SAFETY, FAC_MIN, FAC_MAX = 0.9, 0.2, 10.0


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over all elements (0-d)."""
    return x.square().mean().sqrt()


def _combine(weights, ks):
    """``Σ w_i k_i`` over the non-zero weights (the terms in index order)."""
    out = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            out = w * k if out is None else out + w * k
    return out


def initial_step(f: Callable, t0: float, x0: torch.Tensor, f0: torch.Tensor, rtol: float, atol: float) -> float:
    """HNW (II.4) starting step for a method of order 5 (two right-hand-side evaluations)."""
    scale = atol + rtol * x0.abs()
    d0, d1 = float(rms(x0 / scale)), float(rms(f0 / scale))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = f(torch.tensor(t0 + h0, dtype=torch.float64, device=x0.device), x0 + h0 * f0)
    d2 = float(rms((f1 - f0) / scale)) / h0
    big = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else (0.01 / big) ** 0.2
    return min(100 * h0, h1)


def _going(t, t_end, h, counts, max_attempts):
    """Loop condition: output time not reached, attempts left, step size not underflowed."""
    return (t < t_end) & (counts[0] < max_attempts) & (t + h > t)


def _attempt_fn(system: Any, rtol: float, atol: float) -> Callable:
    """One step attempt ``(t_end, t, x, k1, h, rej, counts) -> same`` (all tensors), branch-free;
    ``counts`` (int64, ``(2,)``) adds up attempts and accepted steps."""
    f = system.vector_field

    def attempt(t_end, t, x, k1, h, rej, counts):
        remaining = t_end - t
        lands = h >= remaining
        hs = torch.minimum(h, remaining)
        ks = [k1]
        for i in range(1, 6):
            ks.append(f(t + C[i] * hs, x + hs * _combine(A[i], ks)))
        x_new = x + hs * _combine(B, ks)
        t_new = torch.where(lands, t_end, t + hs)
        ks.append(f(t_new, x_new))
        err = hs * _combine(E, ks)
        q = rms(err / (atol + rtol * torch.maximum(x.abs(), x_new.abs()))).to(torch.float64)
        accept = q <= 1.0
        fac = torch.where(torch.isfinite(q), (SAFETY * q.pow(-0.2)).clamp(FAC_MIN, FAC_MAX),
                          torch.full_like(q, FAC_MIN))
        fac = torch.where(rej & accept, fac.clamp(max=1.0), fac)
        h_next = hs * fac
        h_next = torch.where(accept & lands, torch.maximum(h_next, h), h_next)
        return (torch.where(accept, t_new, t), torch.where(accept, x_new, x),
                torch.where(accept, ks[6], k1), h_next, ~accept,
                counts + torch.stack((torch.ones_like(counts[0]), accept.to(counts.dtype))))

    return attempt


def dormand_prince_chunk(system: Any, rtol: float, atol: float, max_attempts: int, *,
                         graph: bool = True) -> Callable:
    r"""The function advancing a dopri5 integration over one chunk of output times.

    ``chunk(t, x, k1, h, rejected, targets)``: time ``t`` (0-d float64), state
    ``x`` ``(M, *S)``, ``k1 = f(t, x)``, proposed step ``h`` (0-d float64),
    ``rejected`` (0-d bool, the last attempt was rejected), output times
    ``targets`` ``(n,)`` float64 (non-decreasing, ≥ t; a repeated time is an
    empty interval). An interval ends early after ``max_attempts`` attempts or
    when the step size underflows (``t + h == t``).

    Returns ``(t, x, k1, h, rejected, counts, xs, ts)``: the carry after the
    chunk, the numbers of attempts and accepted steps (``counts``, int64 ``(2,)``), the
    states at the output times ``(n, M, *S)`` and the times reached ``(n,)``
    (equal to ``targets`` unless the attempts ran out).

    ``graph=True`` writes the loops with ``scan``/``while_loop`` (for
    ``torch.compile``); ``graph=False`` runs the same attempts in Python loops
    (eager mode: the reference and the fallback).
    """
    attempt = _attempt_fn(system, rtol, atol)

    def python_chunk(t, x, k1, h, rejected, targets):
        total = torch.zeros(2, dtype=torch.int64, device=x.device)
        xs, ts = [], []
        for t_end in targets:
            counts = torch.zeros_like(total)
            while bool(_going(t, t_end, h, counts, max_attempts)):
                t, x, k1, h, rejected, counts = attempt(t_end, t, x, k1, h, rejected, counts)
            total = total + counts
            xs.append(x)
            ts.append(t)
        return t, x, k1, h, rejected, total, torch.stack(xs), torch.stack(ts)

    if not graph:
        return python_chunk
    scan, while_loop = _control_flow()

    def chunk(t, x, k1, h, rejected, targets):
        def one_output(carry, t_end):
            t, x, k1, h, rej, total = carry
            t, x, k1, h, rej, counts = while_loop(
                lambda t, x, k1, h, rej, counts: _going(t, t_end, h, counts, max_attempts),
                lambda *c: attempt(t_end, *c),
                (t, x, k1, h, rej, torch.zeros_like(total)))
            return (t, x, k1, h, rej, total + counts), (x.clone(), t.clone())

        total = torch.zeros(2, dtype=torch.int64, device=x.device)
        carry, (xs, ts) = scan(one_output, (t, x, k1, h, rejected, total), targets)
        return (*carry, xs, ts)

    return chunk
