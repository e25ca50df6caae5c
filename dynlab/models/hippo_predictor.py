r"""In-context HiPPO predictor: next-state prediction with closed-form SSM weights, no training.

After HiPPO-Prophecy (Arangath Joseph et al., arXiv 2407.09375): a HiPPO memory keeps
the Legendre coefficients c(t) of the recent signal of each channel, and a fixed linear
readout of c gives the signal's time derivatives at the present, so the next sample
is extrapolated as :math:`x_{t+\Delta t} \approx x_t + \Delta t\, x'(t)`.

**Readout.** LegT (window θ) reconstructs
:math:`f(s) \approx \sum_n c_n \sqrt{2n+1}\,P_n(x)`, :math:`x = 2(s-t)/\theta + 1`, so the
present is the end point x = 1 and, with :math:`dx/ds = 2/\theta`,

.. math::  f^{(m)}(t) \approx \Big(\frac2\theta\Big)^m \sum_n c_n \sqrt{2n+1}\,P_n^{(m)}(1),
   \qquad P_n'(1) = \frac{n(n+1)}2,\quad P_n^{(m)}(1) = \frac{(n+m)!}{2^m m!\,(n-m)!}.

(With the window reversed, x = −1 at the present, the same follows from
:math:`P_n'(-1) = (-1)^{n+1} n(n+1)/2`.) This is exact when f is a polynomial of degree
< N on the window. LegS (uniform on [0, t]) is the same with θ replaced by t.
The predictor of order p is the Taylor polynomial of the reconstruction anchored at
the observed sample,

.. math::  \hat x_{k+1} = x_k + \sum_{m=1}^{p} \frac{\Delta t^m}{m!} f^{(m)}(t_k)
   = x_k + r^\top c_k,

a fixed readout vector r. p = 1 is the derivative rule above; p ≥ 2 adds curvature terms.

**Memory.** The LegT ODE :math:`\dot c = A c + B f` (see :mod:`dynlab.models.ssm.hippo`)
is discretised with the sampling step Δt. ``foh`` (default) is exact for an input that
is linear between samples (first-order hold):
:math:`c_{k+1} = e^{A\Delta t} c_k + b_0 x_k + b_1 x_{k+1}`, with
:math:`b_0, b_1` read off :math:`\exp\big(\Delta t \left[\begin{smallmatrix} A & B & 0\\ 0&0&1\\ 0&0&0 \end{smallmatrix}\right]\big)`.
The linear interpolant misses f by :math:`-\tfrac12 (s-s_k)(s_{k+1}-s) f''`, whose mean
over a step is :math:`-\Delta t^2 f''/12`, so the memory holds
:math:`c[f] + \tfrac{\Delta t^2}{12} c[f''] + \dots`; the LegT readout removes this bias by
using :math:`f^{(m)} - \tfrac{\Delta t^2}{12} f^{(m+2)}` for each derivative (an
Euler–Maclaurin correction; rows m + 2 ≥ N vanish). With the window θ **fixed in model time**, the
one-step error is then O(Δt^{p+1}) for p ≤ 3 (measured slopes ≈ 2, 3.9, 5.2 for
p = 1, 2, 3 with θ = 0.5 on a sine).

**Order with a window in samples.** When the window scales with the step,
θ = n·Δt (``HiPPOEmulator``'s default ``theta_steps = 8``), the predictor is one fixed
linear filter of the last samples whatever Δt is, and that filter reproduces
polynomials only up to degree 1: every order p then converges as **O(Δt²)** (measured
slopes 2.05 for p = 1, 2, 3), so p > 1 buys a smaller constant at best. The shipped
default p = 1 is consistent with both: O(Δt²) either way. For the higher orders to
pay, fix θ in model time, short against the signal's time scale. A parameter-free
polynomial through the last few samples
(:class:`~dynlab.emulators.baselines.PolynomialExtrapolation`) is the baseline an
in-context predictor must beat. ``bilinear`` is the trapezoid rule (:math:`b_0 = b_1`) with no
correction: its O(Δt²) memory error caps the one-step error at O(Δt³). Either way a
fixed error remains from approximating the signal on the window by a polynomial of
degree < N, so θ must be short against the signal's time scale and N large enough.
LegS runs the same discretisations in log time τ = ln t, where
:math:`dc/d\tau = A c + B f` is time invariant (no bias correction); sample k sits at
:math:`t_k = (k+1)\Delta t`, so :math:`\Delta t^m (2/t_k)^m = (2/(k+1))^m`.

**Start.** With no history the memory holds the first sample as a constant past,
:math:`c = x_0 e_0`, which is an equilibrium of both memories (:math:`A e_0 = -B`), so
the first prediction is persistence. Because of that the LegT predictor is a linear
time-invariant filter of :math:`x - x_0`:
:math:`\hat x_k = x_k + \sum_{j \le k} w_{k-j} (x_j - x_0)`, with
:math:`w_0 = r^\top b_1`, :math:`w_l = r^\top (e^{lA\Delta t} b_1 + e^{(l-1)A\Delta t} b_0)`;
``forward`` applies it as an FFT convolution (the SSM's convolution mode).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from .ssm.hippo import hippo_matrix, legendre_endpoint_derivatives

__all__ = ["HiPPOPredictor", "HiPPOMemory", "derivative_readout", "MEMORY_DISCRETIZATIONS"]


def derivative_readout(N: int, window: float, max_order: int) -> Tensor:
    """Rows m = 0..max_order map Legendre coefficients c (N,) on a window of length
    ``window`` ending at the present to f^{(m)}(present) = (2/window)^m Σ_n c_n g_n^{(m)}(1).
    Returns (max_order + 1, N) float64."""
    if isinstance(window, bool) or not isinstance(window, Real) or not window > 0:
        raise ValueError(f"window must be a number > 0, got {window!r}")
    D = legendre_endpoint_derivatives(N, max_order)
    scale = (2.0 / float(window)) ** torch.arange(max_order + 1, dtype=torch.float64)
    return scale[:, None] * D


def _foh(A: Tensor, B: Tensor, step: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """First-order hold, batched over steps (S,): (Φ (S,N,N), b_prev (S,N), b_new (S,N))."""
    N = A.shape[0]
    M = torch.zeros(step.shape[0], N + 2, N + 2, dtype=torch.float64)
    M[:, :N, :N] = A
    M[:, :N, N] = B
    M[:, N, N + 1] = 1.0
    E = torch.linalg.matrix_exp(step[:, None, None] * M)
    slope = E[:, :N, N + 1] / step[:, None]  # weight of (x_{k+1} - x_k) / Δ, times Δ
    return E[:, :N, :N], E[:, :N, N] - slope, slope


def _bilinear(A: Tensor, B: Tensor, step: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Trapezoid rule, batched over steps (S,): (Φ, b_prev, b_new) with b_prev = b_new."""
    identity = torch.eye(A.shape[0], dtype=torch.float64)
    half = step[:, None, None] / 2 * A  # (S, N, N)
    transition = torch.linalg.solve(identity - half, identity + half)
    b = torch.linalg.solve(identity - half, (step[:, None] / 2 * B)[..., None])[..., 0]
    return transition, b, b


MEMORY_DISCRETIZATIONS: dict[str, Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]] = {
    "foh": _foh, "bilinear": _bilinear,
}
MEASURES = ("legt", "legs")


class HiPPOMemory(NamedTuple):
    """Recurrent state: Legendre coefficients (B, D, N), the last sample (B, D), and the
    number of samples seen. ``coefficients is None`` is the empty memory."""

    coefficients: Tensor | None
    last: Tensor | None
    seen: int


class HiPPOPredictor(nn.Module):
    """Training-free next-step predictor from a HiPPO LegT/LegS memory (module docstring).

    Works channel-wise on x: (B, L, D); ``forward(x)`` returns (B, L, D), entry t being
    the prediction of x_{t+1} from x_{≤t}. ``step(x_t, state)`` is one recurrent step
    (x_t: (B, D)); ``rollout(context (B, C, D), steps)`` forecasts (B, steps, D).
    N: memory size; theta: LegT window (same time units as dt; ignored by LegS);
    dt: sampling step; order: Taylor order p of the readout, 1 ≤ p < N. The defaults
    (N = 6 over a window of 10 samples) suit chaotic systems sampled at dt = 0.01.
    Has no parameters; its buffers are float64 and cast to the input's dtype.
    """

    def __init__(self, measure: str = "legt", N: int = 6, theta: float = 0.1, dt: float = 0.01,
                 order: int = 1, discretization: str = "foh"):
        super().__init__()
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; expected one of {list(MEASURES)}")
        if discretization not in MEMORY_DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {discretization!r}; "
                             f"expected one of {sorted(MEMORY_DISCRETIZATIONS)}")
        if isinstance(N, bool) or not isinstance(N, Integral) or N < 2:
            raise ValueError(f"N must be an integer >= 2, got {N!r}")
        if isinstance(order, bool) or not isinstance(order, Integral) or not 1 <= order < N:
            raise ValueError(f"order must be an integer in [1, N) = [1, {N}), got {order!r} "
                             "(derivatives of order >= N of the reconstruction vanish)")
        for name, value in (("dt", dt), ("theta", theta)):
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if measure == "legt" and theta <= dt:
            raise ValueError(f"theta (window) must exceed dt so the window holds samples, "
                             f"got theta={theta!r} <= dt={dt!r}")
        self.measure, self.N, self.theta, self.dt = measure, int(N), float(theta), float(dt)
        self.order, self.discretization = int(order), discretization
        A, B = hippo_matrix(measure, self.N, theta=self.theta)
        self.register_buffer("A", A, persistent=False)
        self.register_buffer("B", B, persistent=False)
        if measure == "legt":
            transition, input_prev, input_new = MEMORY_DISCRETIZATIONS[discretization](
                A, B, torch.tensor([self.dt], dtype=torch.float64))
            self.register_buffer("transition", transition[0], persistent=False)  # (N, N)
            self.register_buffer("input_prev", input_prev[0], persistent=False)  # (N,)
            self.register_buffer("input_new", input_new[0], persistent=False)  # (N,)
            derivatives = derivative_readout(self.N, self.theta, order + 2)  # rows m = 0..p+2
            if discretization == "foh":  # remove the hold's bias: f^(m) -> f^(m) - Δt²/12 f^(m+2)
                derivatives = derivatives[:-2] - self.dt ** 2 / 12 * derivatives[2:]
            taylor = torch.tensor([dt ** m / math.factorial(m) for m in range(1, order + 1)], dtype=torch.float64)
            self.register_buffer("readout", taylor @ derivatives[1:order + 1], persistent=False)  # (N,)
        else:  # LegS: the readout depends on the sample index k (see _readout)
            rows = legendre_endpoint_derivatives(self.N, order)[1:]  # g_n^{(m)}(1), m = 1..p
            self.register_buffer("derivative_rows", rows, persistent=False)  # (p, N)

    # --- recurrent mode --------------------------------------------------------------------

    def default_state(self, batch: int, device=None, dtype=None) -> HiPPOMemory:
        """The empty memory; the first step fills it with a constant past."""
        if isinstance(batch, bool) or not isinstance(batch, Integral) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        return HiPPOMemory(None, None, 0)

    initial_state = default_state  # the Emulator name

    def step(self, x_t: Tensor, state: HiPPOMemory, forcing_t: Tensor | None = None) -> tuple[Tensor, HiPPOMemory]:
        """x_t: (B, D) -> (prediction of x_{t+1} (B, D), state)."""
        self._check_no_forcing(forcing_t)
        if not isinstance(x_t, Tensor) or x_t.dim() != 2:
            shape = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be (B, D), got {shape}")
        if not isinstance(state, HiPPOMemory):
            raise ValueError(f"state must be a HiPPOMemory (from default_state), got {type(state).__name__}")
        update = None
        if state.coefficients is not None:
            if state.last.shape != x_t.shape:
                raise ValueError(f"x_t shape {tuple(x_t.shape)} differs from the state's "
                                 f"{tuple(state.last.shape)}")
            update = self._memory_update(state.seen - 1)
        return self._advance(x_t, state, update)

    def _advance(self, x_t: Tensor, state: HiPPOMemory, update) -> tuple[Tensor, HiPPOMemory]:
        """Memory update with (Φ, b_prev, b_new) (None for the empty memory), then readout."""
        if state.coefficients is None:
            coefficients = x_t[..., None] * self._unit(x_t)  # (B, D, N): constant past
        else:
            transition, input_prev, input_new = (m.to(dtype=x_t.dtype, device=x_t.device) for m in update)
            coefficients = (state.coefficients @ transition.T
                            + state.last[..., None] * input_prev + x_t[..., None] * input_new)
        prediction = x_t + coefficients @ self._readout(state.seen, x_t)
        return prediction, HiPPOMemory(coefficients, x_t, state.seen + 1)

    def _unit(self, like: Tensor) -> Tensor:
        e0 = torch.zeros(self.N, dtype=like.dtype, device=like.device)
        e0[0] = 1.0
        return e0

    def _memory_update(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """(Φ, b_prev, b_new) taking the memory from sample k to k + 1 (float64)."""
        if self.measure == "legt":
            return self.transition, self.input_prev, self.input_new
        return tuple(m[0] for m in self._legs_updates(k, 1))

    def _legs_updates(self, first: int, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """LegS updates k -> k + 1 for k = first .. first + count - 1, in log time."""
        k = torch.arange(first, first + count, dtype=torch.float64)
        log_step = torch.log((k + 2) / (k + 1))  # τ_{k+1} - τ_k, t_k = (k + 1) Δt
        return MEMORY_DISCRETIZATIONS[self.discretization](self.A.cpu(), self.B.cpu(), log_step)

    def _readout(self, k: int, like: Tensor) -> Tensor:
        """r (N,) at sample k: x̂_{k+1} = x_k + c_k · r."""
        if self.measure == "legt":
            readout = self.readout
        else:  # Δt^m/m! (2/t_k)^m with t_k = (k + 1) Δt
            scale = [(2.0 / (k + 1)) ** m / math.factorial(m) for m in range(1, self.order + 1)]
            rows = self.derivative_rows  # (p, N)
            readout = torch.tensor(scale, dtype=rows.dtype, device=rows.device) @ rows
        return readout.to(dtype=like.dtype, device=like.device)

    # --- parallel mode and rollouts --------------------------------------------------------

    def forward(self, x: Tensor, forcing: Tensor | None = None) -> Tensor:
        """x: (B, L, D) -> predictions (B, L, D); entry t predicts x_{t+1} from x_{≤t}."""
        self._check_no_forcing(forcing)
        self._check_sequence(x, "x")
        if self.measure == "legs":  # time-varying memory: run the recurrence
            updates = self._legs_updates(0, max(x.shape[1] - 1, 1))  # batched over steps
            state, predictions = self.default_state(x.shape[0]), []
            for t in range(x.shape[1]):
                update = None if t == 0 else tuple(m[t - 1] for m in updates)
                prediction, state = self._advance(x[:, t], state, update)
                predictions.append(prediction)
            return torch.stack(predictions, dim=1)
        length = x.shape[1]
        weights = self.filter_weights(length).to(device=x.device)  # (L,) float64
        deviation = (x - x[:, :1]).transpose(1, 2).to(torch.float64)  # (B, D, L)
        n_fft = 2 * length
        correction = torch.fft.irfft(torch.fft.rfft(deviation, n=n_fft) * torch.fft.rfft(weights, n=n_fft),
                                     n=n_fft)[..., :length]
        return x + correction.transpose(1, 2).to(x.dtype)

    def filter_weights(self, length: int) -> Tensor:
        """LegT filter w_l, l < length (module docstring): (length,) float64."""
        if self.measure != "legt":
            raise ValueError(f"filter_weights exists for the time-invariant 'legt' memory, not {self.measure!r}")
        transition, input_prev, input_new = (m.cpu() for m in (self.transition, self.input_prev, self.input_new))
        row = self.readout.cpu()  # r^T Φ^l, updated in place of powers of Φ
        weights = torch.empty(length, dtype=torch.float64)
        previous = torch.zeros((), dtype=torch.float64)
        for lag in range(length):
            weights[lag] = row @ input_new + previous
            previous = row @ input_prev
            row = row @ transition
        return weights

    def rollout(self, context: Tensor, steps: int, forcing: Tensor | None = None) -> Tensor:
        """Warm up on context (B, C, D), then feed predictions back: (B, steps, D)."""
        self._check_no_forcing(forcing)
        self._check_sequence(context, "context")
        if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        state = self.default_state(context.shape[0])
        for t in range(context.shape[1]):
            prediction, state = self.step(context[:, t], state)
        forecast = [prediction]
        for _ in range(steps - 1):
            prediction, state = self.step(prediction, state)
            forecast.append(prediction)
        return torch.stack(forecast, dim=1)

    @staticmethod
    def _check_sequence(x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1] < 1 or not x.dtype.is_floating_point:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a real (B, L, D) tensor with L >= 1, got {shape}")

    @staticmethod
    def _check_no_forcing(forcing) -> None:
        if forcing is not None:
            raise ValueError("HiPPOPredictor is autonomous and takes no forcing, got a forcing tensor")

    def extra_repr(self) -> str:
        return (f"measure={self.measure!r}, N={self.N}, theta={self.theta}, dt={self.dt}, "
                f"order={self.order}, discretization={self.discretization!r}")
