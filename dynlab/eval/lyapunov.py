r"""The emulator's own chaos: Lyapunov spectrum of its one-step map.

An emulator's recurrent step :math:`(x_t, h_t) \mapsto (\hat x_{t+1}, h_{t+1})`
is a map :math:`F` on the joint state :math:`z = (x, h) \in \mathbb R^{D + H}`
(``h`` the hidden state, any pytree of tensors, flattened per member; complex
leaves count as two real coordinates). Its Lyapunov spectrum is computed by the
QR method (Benettin et al. 1980; Shimada & Nagashima 1979) with
:func:`simulators.lyapunov.lyapunov_spectrum`:

.. math::  J_F(z_{n-1}) Q_{n-1} = Q_n R_n ,\qquad
           \lambda_i = \frac{1}{N\,Δt}\sum_n \log|(R_n)_{ii}| ,

where :math:`Δt` is the emulator's save interval, so the exponents are per unit
model time and comparable with the system's. :math:`J_F Q` comes from
forward-mode AD through ``step`` (``torch.func.jvp``); the ``m`` tangent
directions are evaluated as ``m`` copies of each member in one batched step, so
any step that treats members independently works (no ``vmap`` support needed).

The Kaplan–Yorke (Lyapunov) dimension (Kaplan & Yorke 1979) is
:math:`D_{KY} = j + \sum_{i\le j} λ_i / |λ_{j+1}|`, with ``j`` the largest
index whose partial sum :math:`\sum_{i \le j} λ_i` is non-negative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.func import jvp
from torch.utils import _pytree as pytree

from simulators.lyapunov import lyapunov_spectrum

__all__ = ["LyapunovResult", "emulator_lyapunov_spectrum", "joint_step_map", "kaplan_yorke"]


@dataclass
class LyapunovResult:
    """The emulator's leading exponents.

    * ``exponents``: ``(B, k)`` per member, per unit model time, in the frame's order;
    * ``spectrum``: ``(k,)`` the member mean, sorted decreasingly;
    * ``lambda_1``: the leading exponent (of ``spectrum``);
    * ``n_positive``: exponents of ``spectrum`` above ``positive_tol``;
    * ``kaplan_yorke``: :func:`kaplan_yorke` of ``spectrum`` (from the ``k`` exponents computed);
    * ``dt``: the save interval used; ``n_state``: ``D + H``, the joint state size.
    """

    exponents: np.ndarray
    spectrum: np.ndarray
    lambda_1: float
    n_positive: int
    kaplan_yorke: float
    dt: float
    n_state: int


def kaplan_yorke(spectrum: Any) -> float:
    r"""Kaplan–Yorke dimension of a spectrum ``(m,)`` (any order; sorted here).

    :math:`j + \sum_{i\le j} λ_i / |λ_{j+1}|` with ``j`` the largest index whose
    partial sum is ≥ 0; 0 if :math:`λ_1 < 0`; ``m`` if every partial sum is ≥ 0
    (the spectrum is too short to bound the dimension). Exponents of −∞ (a map whose
    Jacobian annihilates a direction, e.g. a constant forecast) are allowed.
    """
    lam = np.asarray(spectrum, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0 or np.any(np.isnan(lam)) or np.any(lam == np.inf):
        raise ValueError(f"spectrum must be a non-empty 1-d array of numbers (finite or -inf), got {lam!r}")
    lam = np.sort(lam)[::-1]
    csum = np.cumsum(lam)
    j = int(np.sum(csum >= 0))
    if j == 0:
        return 0.0
    if j == lam.size:
        return float(lam.size)
    return j + float(csum[j - 1]) / abs(float(lam[j]))


class _JointState:
    """Flatten ``(x, hidden)`` of ``B`` members to ``(B, n)`` real vectors and back.

    Plain-number leaves of the hidden state (a step counter, as in the HiPPO predictor) are
    not differentiated: the latest value seen by :meth:`flatten` is put back by :meth:`unflatten`.
    """

    def __init__(self, x: torch.Tensor, hidden: Any):
        leaves, self.spec = pytree.tree_flatten(hidden)
        B = x.shape[0]
        self.batch = B
        self.layout = []  # (shape, dtype) per leaf; None: no state; "number": a plain number
        self.numbers: dict[int, Any] = {}
        for i, leaf in enumerate(leaves):
            if leaf is None:  # no state (e.g. the reference emulator)
                self.layout.append(None)
                continue
            if isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
                self.layout.append("number")
                self.numbers[i] = leaf
                continue
            if not isinstance(leaf, torch.Tensor):
                raise ValueError(f"hidden-state leaves must be tensors or numbers, got {type(leaf).__name__}")
            if leaf.ndim == 0 or leaf.shape[0] % B:
                raise ValueError(f"hidden-state leaf of shape {tuple(leaf.shape)} has no leading batch "
                                 f"axis of a multiple of B={B} (member-major)")
            self.layout.append((tuple(leaf.shape), leaf.dtype))
        self.n_features = x.shape[1]

    def flatten(self, x: torch.Tensor, hidden: Any) -> torch.Tensor:
        B = x.shape[0]
        parts = [x.reshape(B, -1)]
        for i, leaf in enumerate(pytree.tree_leaves(hidden)):
            if leaf is None:
                continue
            if self.layout[i] == "number":
                self.numbers[i] = leaf
                continue
            real = torch.view_as_real(leaf) if leaf.is_complex() else leaf
            parts.append(real.reshape(B, -1).to(x.dtype))
        return torch.cat(parts, dim=1)

    def unflatten(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        B, reps = z.shape[0], z.shape[0] // self.batch  # reps: tangent copies per member
        x = z[:, :self.n_features]
        leaves, at = [], self.n_features
        for i, item in enumerate(self.layout):
            if item is None or item == "number":
                leaves.append(self.numbers.get(i))
                continue
            shape, dtype = item
            per = math.prod(shape[1:]) * (shape[0] // self.batch) * (2 if dtype.is_complex else 1)
            chunk = z[:, at:at + per]
            at += per
            lead = (shape[0] * reps,) + shape[1:]
            if dtype.is_complex:
                real_dtype = torch.empty((), dtype=dtype).real.dtype
                leaf = torch.view_as_complex(chunk.to(real_dtype).reshape(*lead, 2).contiguous())
            else:
                leaf = chunk.to(dtype).reshape(lead)
            leaves.append(leaf)
        return x, pytree.tree_unflatten(leaves, self.spec)


def joint_step_map(emulator, context: torch.Tensor) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The emulator's one-step map on flattened joint states, and its starting point.

    Warms up on ``context`` ``(B, C, D)`` (no gradient) and returns ``(F, z0)``: ``z0``
    ``(B, D + H)`` is the warm-up's prediction followed by the hidden state's leaves
    (each flattened per member, complex leaves as (real, imaginary) pairs), and ``F``
    maps ``(R·B, D + H)`` → ``(R·B, D + H)`` through ``emulator.step`` (rows member-major,
    ``R`` copies per member allowed). Hidden-state leaves must have a leading axis of
    ``B`` or a multiple of it (member-major).
    """
    with torch.no_grad():
        y, hidden = emulator.warm_up(context)
    joint = _JointState(y, hidden)

    def step(z: torch.Tensor) -> torch.Tensor:
        x, h = joint.unflatten(z)
        x_next, h_next = emulator.step(x, h)
        return joint.flatten(x_next, h_next)

    return step, joint.flatten(y, hidden).detach()


def _positive_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


def emulator_lyapunov_spectrum(emulator, context: torch.Tensor, *, n_steps: int, k: int | None = None,
                               qr_every: int = 1, transient: int = 0, dt: float | None = None,
                               positive_tol: float = 0.0, seed: int = 0) -> LyapunovResult:
    """Leading ``k`` Lyapunov exponents of an emulator's free-running one-step map.

    Args:
        emulator: an :class:`~dynlab.emulators.base.AbstractEmulator` without forcing.
        context: ``(B, C, D)`` states to warm up on; each member gives its own estimate
            from the warm-up's prediction and hidden state.
        n_steps: emulator steps averaged over (after ``transient``).
        k: exponents to compute, ``1 ≤ k ≤ D`` (default ``D``).
        qr_every: steps between re-orthonormalisations.
        transient: steps run first and not averaged (the frame aligns).
        dt: model time per step (default: ``emulator.save_interval``; required otherwise).
        positive_tol: exponents above it count as positive.
        seed: seed of the random orthogonal coordinates used when ``k`` is less than the
            joint state size (so the initial frame is generic); unused otherwise.

    Returns a :class:`LyapunovResult` (exponents per unit model time).
    """
    if getattr(emulator, "n_forcing", 0):
        raise ValueError(f"the emulator needs {emulator.n_forcing} forcing features; "
                         "Lyapunov spectra are computed for unforced emulators only")
    if not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[1] < 1 \
            or context.shape[2] != emulator.n_features:
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"context must have shape (B, C >= 1, {emulator.n_features}), got {shape}")
    D = emulator.n_features
    k = D if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= D:
        raise ValueError(f"k must be an integer in [1, {D}], got {k!r}")
    _positive_int("n_steps", n_steps, 1)
    _positive_int("qr_every", qr_every, 1)
    _positive_int("transient", transient, 0)
    _positive_int("seed", seed, 0)
    dt = getattr(emulator, "save_interval", None) if dt is None else dt
    if dt is None:
        raise ValueError("dt is required: the emulator has no save_interval")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    if isinstance(positive_tol, bool) or not isinstance(positive_tol, (int, float)) or not math.isfinite(positive_tol):
        raise ValueError(f"positive_tol must be a finite number, got {positive_tol!r}")

    was_training = emulator.training
    emulator.eval()
    try:
        joint_step, z0 = joint_step_map(emulator, context)
        n = z0.shape[1]
        # With k < n the first k coordinates may span an invariant subspace (e.g. x when the
        # hidden state does not depend on x) that misses the leading directions: start from a
        # random orthonormal k-frame instead (generic with probability 1; O(n k) memory).
        frame = None
        if k < n:
            gen = torch.Generator().manual_seed(seed)
            frame = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))[0].to(z0.dtype)
        step = joint_step
        reverse_mode: list[bool] = []  # set once forward-mode AD through the step fails

        def tangent_step(z: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # Q (B, n, m): m copies of each member (member-major), one direction each
            B, n, m = Q.shape
            z_rep = z.repeat_interleave(m, dim=0)
            v = Q.permute(0, 2, 1).reshape(B * m, n)
            with torch.enable_grad():
                if not reverse_mode:
                    try:
                        out, tangent = jvp(step, (z_rep,), (v,))
                    except RuntimeError as err:  # a step that calls autograd itself (HNN: dH/dq)
                        if "functorch" not in str(err) and "transform" not in str(err):
                            raise
                        reverse_mode.append(True)
                if reverse_mode:  # the double-backward JVP, which nests inside autograd
                    out, tangent = torch.autograd.functional.jvp(step, z_rep, v)
            return out.reshape(B, m, n)[:, 0].detach(), tangent.reshape(B, m, n).permute(0, 2, 1).detach()

        exps = lyapunov_spectrum(None, z0, dt=float(dt), n_steps=n_steps, n_exponents=k, qr_every=qr_every,
                                 transient=transient, tangent_step=tangent_step, frame=frame)
    finally:
        emulator.train(was_training)
    exps = exps.detach().to(torch.float64).cpu().numpy()
    spectrum = np.sort(exps.mean(0))[::-1].copy()
    return LyapunovResult(exponents=exps, spectrum=spectrum, lambda_1=float(spectrum[0]),
                          n_positive=int(np.sum(spectrum > positive_tol)), kaplan_yorke=kaplan_yorke(spectrum),
                          dt=float(dt), n_state=int(z0.shape[1]))
