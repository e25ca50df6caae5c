r"""S4D: a diagonal state-space layer with HiPPO-derived initialisations, and its block.

Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal State
Space Models" (NeurIPS 2022). Each of the H channels is an independent SSM

.. math::  x'(t) = A x(t) + B u(t),\qquad y(t) = 2\,\mathrm{Re}(C x(t)) + D u(t)

with diagonal complex :math:`A \in \mathbb{C}^{N/2}`. A real SSM of state size N has
eigenvalues in conjugate pairs, so only N/2 modes are stored and the output takes
twice the real part. Discretised with step Δ (learned per channel):

* ZOH:      :math:`\bar A = e^{\Delta A}`, :math:`\bar B = (\bar A - 1) A^{-1} B`;
* bilinear: :math:`\bar A = (1 + \Delta A/2)/(1 - \Delta A/2)`, :math:`\bar B = \Delta B/(1 - \Delta A/2)`.

Recurrence (state before the first input is :math:`x_{-1}`, default 0):
:math:`x_k = \bar A x_{k-1} + \bar B u_k`, :math:`y_k = 2\mathrm{Re}(C x_k) + D u_k`,
so the output is the causal convolution with
:math:`K_l = 2\mathrm{Re}(C \bar A^l \bar B)` plus the free response
:math:`2\mathrm{Re}(C \bar A^{k+1} x_{-1})`.

Initialisations of A (n = 0 … N/2 − 1, N = d_state):
``lin`` :math:`-\tfrac12 + i\pi n`; ``inv`` :math:`-\tfrac12 + i\tfrac N\pi(\tfrac N{2n+1} - 1)`;
``real`` :math:`-(n+1)`; ``legs`` the eigenvalues with positive imaginary part of the
normal part :math:`A + PP^\top` of HiPPO-LegS (real parts −½), with :math:`B = V^* B_{\rm LegS}`;
the other inits use B = 1. B is a fixed buffer (C is learned, so it would be redundant).

Re A is stored through a reparameterisation that keeps it negative:
``exp`` :math:`-e^{w}`, ``softplus`` :math:`-\log(1 + e^{w})`, ``stablessm``
:math:`-1/(w^2 + 0.1)` (Wang & Li, "StableSSM", 2023; it reaches only Re A > −10).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .hippo import hippo_nplr
from .step_cache import cached, clear_step_cache

__all__ = ["S4D", "S4DBlock", "INITS", "DISCRETIZATIONS", "REAL_PARAMS"]


# --- initialisations: (N/2,) complex128 eigenvalues A and input vector B -------------

def _init_lin(N: int) -> tuple[Tensor, Tensor]:
    n = torch.arange(N // 2, dtype=torch.float64)
    return torch.complex(torch.full_like(n, -0.5), math.pi * n), torch.ones(N // 2, dtype=torch.complex128)


def _init_inv(N: int) -> tuple[Tensor, Tensor]:
    n = torch.arange(N // 2, dtype=torch.float64)
    imag = N / math.pi * (N / (2 * n + 1) - 1)
    return torch.complex(torch.full_like(n, -0.5), imag), torch.ones(N // 2, dtype=torch.complex128)


def _init_real(N: int) -> tuple[Tensor, Tensor]:
    n = torch.arange(N // 2, dtype=torch.float64)
    return torch.complex(-(n + 1), torch.zeros_like(n)), torch.ones(N // 2, dtype=torch.complex128)


def _init_legs(N: int) -> tuple[Tensor, Tensor]:
    nplr = hippo_nplr("legs", N)  # eigenvalues sorted by imaginary part
    modes = slice(N // 2, N)  # the half with positive imaginary part
    B = nplr.eigenvectors.conj().T @ nplr.B.to(torch.complex128)  # B in the eigenbasis
    return nplr.eigenvalues[modes], B[modes]


INITS: dict[str, Callable[[int], tuple[Tensor, Tensor]]] = {
    "legs": _init_legs, "lin": _init_lin, "inv": _init_inv, "real": _init_real,
}


# --- discretisations: (ΔA, Δ, A, B) -> (Ā, B̄, log Ā) --------------------------------

def _zoh(dtA: Tensor, dt: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return torch.exp(dtA), torch.expm1(dtA) / A * B, dtA


def _bilinear(dtA: Tensor, dt: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    A_bar = (1 + dtA / 2) / (1 - dtA / 2)
    return A_bar, dt / (1 - dtA / 2) * B, torch.log(A_bar)


DISCRETIZATIONS = {"zoh": _zoh, "bilinear": _bilinear}


# --- reparameterisations of Re A < 0 ----------------------------------------------------

class _Reparam(NamedTuple):
    to_real: Callable[[Tensor], Tensor]  # weight w -> Re A
    from_real: Callable[[Tensor], Tensor]  # Re A -> w
    slowest_decay: float  # inf when every Re A < 0 is reachable; else Re A must exceed -this


REAL_PARAMS = {
    "exp": _Reparam(lambda w: -torch.exp(w), lambda a: torch.log(-a), math.inf),
    "softplus": _Reparam(lambda w: -F.softplus(w), lambda a: torch.log(torch.expm1(-a)), math.inf),
    "stablessm": _Reparam(lambda w: -1.0 / (w * w + 0.1), lambda a: torch.sqrt(-1.0 / a - 0.1), 10.0),
}


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_choice(value, name: str, choices: dict) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class S4D(nn.Module):
    """Diagonal SSM layer (S4D) over H = ``d_model`` independent channels.

    Input and output shape (B, L, H); state shape (B, H, N/2), complex, N = ``d_state``.
    Parameters: ``log_dt`` (H,), ``A_real_weight`` and ``A_imag`` (H, N/2) (Re A =
    reparam(A_real_weight)), ``C`` (H, N/2, 2) (real view of a complex tensor) and
    ``D`` (H,). ``log_dt``, ``A_real_weight`` and ``A_imag`` carry
    ``_optim = {"weight_decay": 0.0, "lr": lr}`` ("lr" only when ``lr`` is given).

    ``forward(u, state, rate)`` uses step Δ·rate; ``step(u_t, state, dt)`` uses Δ·dt,
    where ``dt`` is the real time gap in units of the nominal sampling interval (a
    scalar or a (B,) tensor). Feeding ``dt=rate`` at every step reproduces
    ``forward(..., rate=rate)``.
    """

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs",
                 discretization: str = "zoh", real_param: str = "exp",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, lr: float | None = None,
                 dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.d_model = _check_int(d_model, "d_model", 1)
        self.d_state = _check_int(d_state, "d_state", 2)
        if self.d_state % 2:
            raise ValueError(f"d_state must be even (N/2 conjugate-pair modes are stored), got {d_state!r}")
        self.init = _check_choice(init, "init", INITS)
        self.discretization = _check_choice(discretization, "discretization", DISCRETIZATIONS)
        self.real_param = _check_choice(real_param, "real_param", REAL_PARAMS)
        dt_min, dt_max = _check_positive(dt_min, "dt_min"), _check_positive(dt_max, "dt_max")
        if dt_min > dt_max:
            raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min!r} > dt_max={dt_max!r}")
        if lr is not None:
            _check_positive(lr, "lr")
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a real floating dtype, got {dtype!r}")
        H, modes = self.d_model, self.d_state // 2
        factory = dict(dtype=dtype, device=device)

        A, B = INITS[init](self.d_state)  # (N/2,) complex128 each
        reparam = REAL_PARAMS[real_param]
        if (-A.real).max() >= reparam.slowest_decay:
            raise ValueError(f"real_param {real_param!r} reaches only Re A > -{reparam.slowest_decay}, "
                             f"but init {init!r} with d_state={d_state} needs Re A = {A.real.min().item():g}")
        u = torch.rand(H, dtype=torch.float64)
        log_dt = math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min))
        self.log_dt = nn.Parameter(log_dt.to(**factory))
        self.A_real_weight = nn.Parameter(reparam.from_real(A.real).expand(H, modes).clone().to(**factory))
        self.A_imag = nn.Parameter(A.imag.expand(H, modes).clone().to(**factory))
        self.C = nn.Parameter(torch.randn(H, modes, 2, **factory) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(H, **factory))
        self.register_buffer("B", torch.view_as_real(B.expand(H, modes).clone()).to(**factory))
        optim = {"weight_decay": 0.0} | ({} if lr is None else {"lr": float(lr)})
        for param in (self.log_dt, self.A_real_weight, self.A_imag):
            param._optim = dict(optim)

    # --- continuous and discrete parameters ------------------------------------------------

    @property
    def A(self) -> Tensor:
        """Continuous-time eigenvalues, (H, N/2) complex, Re A < 0."""
        return torch.complex(REAL_PARAMS[self.real_param].to_real(self.A_real_weight), self.A_imag)

    def discretize(self, rate: float | Tensor = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(Ā, B̄, log Ā) for step Δ·rate. rate: scalar -> (H, N/2); (B,) -> (B, H, N/2)."""
        dt = torch.exp(self.log_dt) * (rate[:, None] if isinstance(rate, Tensor) and rate.dim() else rate)
        A, B = self.A, torch.view_as_complex(self.B)
        dt = dt[..., None]  # (..., H, 1)
        return DISCRETIZATIONS[self.discretization](dt * A, dt, A, B)

    def kernel(self, length: int, rate: float = 1.0) -> Tensor:
        """Convolution kernel K_l = 2 Re(C Ā^l B̄), l < length: (H, length), real."""
        length = _check_int(length, "length", 1)
        A_bar, B_bar, log_A_bar = self.discretize(_check_positive(rate, "rate"))
        return self._kernel(B_bar, self._reversed_powers(log_A_bar, length))

    def _kernel(self, B_bar: Tensor, reversed_powers: Tensor) -> Tensor:
        C_B = (torch.view_as_complex(self.C) * B_bar)[..., None]  # (H, N/2, 1)
        return 2 * torch.bmm(reversed_powers, C_B)[..., 0].real.flip(-1)  # (H, L)

    @staticmethod
    def _reversed_powers(log_A_bar: Tensor, length: int) -> Tensor:
        """Ā^(L-1-l) for l < L = length, laid out (H, L, N/2) for batched matmuls.

        Reversed, so that the final state Σ_l Ā^(L-1-l) B̄ u_l is a plain matmul with the
        inputs. Exponents e = jm + i (m ≈ √L) use Ā^e = (Ā^m)^j · Ā^i: two small
        exponentials and one complex product per entry instead of a complex
        exponential per entry (about 4x faster on CPU); no negative powers are formed.
        """
        block = max(1, math.isqrt(length))
        blocks = -(-length // block)
        real_dtype = log_A_bar.real.dtype
        inner = torch.arange(block - 1, -1, -1, device=log_A_bar.device, dtype=real_dtype)
        outer = block * torch.arange(blocks - 1, -1, -1, device=log_A_bar.device, dtype=real_dtype)
        log_A_bar = log_A_bar[:, None, :]  # (H, 1, N/2)
        small = torch.exp(log_A_bar * inner[:, None])  # (H, m, N/2)
        large = torch.exp(log_A_bar * outer[:, None])  # (H, J, N/2)
        powers = large[:, :, None, :] * small[:, None, :, :]  # (H, J, m, N/2): exponents Jm-1 … 0
        return powers.reshape(powers.shape[0], blocks * block, -1)[:, blocks * block - length:]

    # --- modes ---------------------------------------------------------------------------

    def default_state(self, batch: int, device=None, dtype=None) -> Tensor:
        """Zero state (batch, H, N/2), complex; ``dtype`` may be the real or complex dtype."""
        batch = _check_int(batch, "batch", 1)
        dtype = dtype or self.C.dtype
        complex_dtype = torch.promote_types(dtype, torch.complex64)  # float64 -> complex128
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=complex_dtype,
                           device=device or self.C.device)

    def forward(self, u: Tensor, state: Tensor | None = None, rate: float = 1.0) -> tuple[Tensor, Tensor]:
        """Convolution mode (see :meth:`_convolve`). Under autocast or with half-precision
        inputs the FFTs and powers run in float32 (FFTs of half precision are limited to
        powers of two and lose the kernel's dynamic range); y is returned in u's dtype."""
        if u.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(u.device.type):
            with torch.autocast(device_type=u.device.type, enabled=False):
                y, final_state = self._convolve(u.float(), state, rate)
            return y.to(u.dtype), final_state
        return self._convolve(u, state, rate)

    def _convolve(self, u: Tensor, state: Tensor | None = None, rate: float = 1.0) -> tuple[Tensor, Tensor]:
        """Convolution mode. u: (B, L, H) -> y: (B, L, H), final state (B, H, N/2).

        ``state`` (B, H, N/2) is the state before the first input; it adds the free
        response 2 Re(C Ā^{k+1} x). The final state is
        Ā^L x + Σ_l Ā^{L-1-l} B̄ u_l, computed exactly as a matmul with the powers of Ā.
        ``rate`` > 0 scales Δ (rate 2 = samples twice as far apart).
        """
        self._check_input(u, 3, "u", "(B, L, H)")
        batch, length, _ = u.shape
        self._check_state(state, batch)
        A_bar, B_bar, log_A_bar = self.discretize(_check_positive(rate, "rate"))
        powers = self._reversed_powers(log_A_bar, length)  # (H, L, N/2): Ā^(L-1-l)
        kernel = self._kernel(B_bar, powers)  # (H, L)
        n_fft = 2 * length  # zero padding: linear, not circular, convolution
        u_hl = u.transpose(1, 2).contiguous()  # (B, H, L): FFTs along the contiguous last axis
        spectrum = torch.fft.rfft(u_hl, n=n_fft) * torch.fft.rfft(kernel, n=n_fft)  # (B, H, L+1)
        y = torch.fft.irfft(spectrum, n=n_fft)[..., :length].transpose(1, 2) + self.D * u  # (B, L, H)
        # Σ_l Ā^(L-1-l) u_l: a real matmul of the inputs with the (real, imag) parts of the powers
        powers_real = torch.view_as_real(powers).reshape(self.d_model, length, -1)  # (H, L, 2 N/2)
        summed = torch.bmm(u_hl.transpose(0, 1), powers_real).reshape(self.d_model, batch, -1, 2)
        final_state = B_bar[:, None] * torch.view_as_complex(summed.contiguous())  # (H, B, N/2)
        if state is not None:
            weights = (torch.view_as_complex(self.C) * A_bar * state).permute(1, 2, 0)  # (H, N/2, B)
            free = torch.bmm(powers, weights).real.flip(1)  # (H, L, B): Re(C Ā^(l+1) x)
            y = y + 2 * free.permute(2, 1, 0)
            final_state = final_state + (powers[:, 0] * A_bar)[:, None] * state.transpose(0, 1)
        return y, final_state.transpose(0, 1).contiguous()

    def step(self, u_t: Tensor, state: Tensor, dt: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Recurrent mode, differentiable. u_t: (B, H), state: (B, H, N/2) -> (y_t (B, H), state).

        ``dt`` (None = 1) is the gap since the previous sample in units of the nominal
        sampling interval: a positive scalar or a (B,) tensor; the step is Δ·dt.
        """
        self._check_input(u_t, 2, "u_t", "(B, H)")
        self._check_state(state, u_t.shape[0], required=True)
        rate = 1.0 if dt is None else dt
        if isinstance(rate, Tensor):
            if rate.dim() > 1 or (rate.dim() == 1 and rate.shape[0] != u_t.shape[0]):
                raise ValueError(f"dt must be a scalar or a (B,) = ({u_t.shape[0]},) tensor, "
                                 f"got shape {tuple(rate.shape)}")
            if not bool((rate > 0).all()):
                raise ValueError(f"dt must be > 0, got {rate}")
        else:
            _check_positive(rate, "dt")
        A_bar, B_bar, C = self.step_tensors(rate)
        decayed = A_bar * state
        if decayed.dtype == B_bar.dtype and u_t.dtype == decayed.real.dtype:
            # one pass fewer over the state than A x + B u (steps of large batches are memory-bound)
            state = decayed.addcmul_(B_bar, u_t[..., None].to(decayed.dtype))
        else:  # mixed precisions: let type promotion widen the state
            state = decayed + B_bar * u_t[..., None]
        y = 2 * torch.einsum("hn,bhn->bh", C, state).real + self.D * u_t
        return y, state

    def step_tensors(self, rate: float | Tensor = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(Ā, B̄, C) of :meth:`step` for step Δ·rate, C complex (H, N/2).

        Memoised by :func:`~dynlab.models.ssm.step_cache.cached` for scalar rates:
        computed once per parameter version and rate (and once per rollout scope under
        autograd); a (B,) tensor rate is discretised at every call.
        """
        def compute() -> tuple[Tensor, Tensor, Tensor]:
            A_bar, B_bar, _ = self.discretize(rate)
            return A_bar, B_bar, torch.view_as_complex(self.C)

        if isinstance(rate, Tensor):
            return compute()
        return cached(self, "step", float(rate), (self.log_dt, self.A_real_weight, self.A_imag, self.C, self.B),
                      compute)

    def train(self, mode: bool = True) -> "S4D":
        clear_step_cache(self)
        return super().train(mode)

    def _check_input(self, x: Tensor, dims: int, name: str, layout: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be {layout} with H = d_model = {self.d_model}, got {shape}")

    def _check_state(self, state: Tensor | None, batch: int, required: bool = False) -> None:
        if state is None and not required:
            return
        expected = (batch, self.d_model, self.d_state // 2)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected or not state.is_complex():
            shape = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"state must be a complex tensor of shape (B, H, N/2) = {expected}, got {shape}")

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, init={self.init!r}, "
                f"discretization={self.discretization!r}, real_param={self.real_param!r}")


class S4DBlock(nn.Module):
    """S4D layer followed by a pointwise output map: y = GLU(W · GELU(S4D(x))).

    x, y: (B, L, d_model); the state is the S4D state (B, d_model, d_state/2), complex.
    Pre-norm and residual belong to the backbone. ``forward`` and ``step`` agree.
    Keyword arguments other than ``dropout`` go to :class:`S4D`.
    """

    def __init__(self, d_model: int, d_state: int = 64, dropout: float = 0.0, **s4d_kwargs):
        super().__init__()
        if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.ssm = S4D(d_model, d_state, **s4d_kwargs)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, 2 * d_model, dtype=self.ssm.C.dtype, device=self.ssm.C.device)

    def _pointwise(self, y: Tensor) -> Tensor:
        y = self.activation(y)
        if self.training and self.dropout.p > 0:  # identity otherwise: skip the call (steps are overhead-bound)
            y = self.dropout(y)
        return F.glu(self.output(y), dim=-1)

    def default_state(self, batch: int, device=None, dtype=None) -> Tensor:
        return self.ssm.default_state(batch, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, L, d_model) -> (y (B, L, d_model), final state)."""
        y, state = self.ssm(x, state)
        return self._pointwise(y), state

    def step(self, x_t: Tensor, state: Tensor, dt: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x_t: (B, d_model) -> (y_t (B, d_model), state)."""
        y, state = self.ssm.step(x_t, state, dt=dt)
        return self._pointwise(y), state
