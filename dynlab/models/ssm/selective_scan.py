r"""Selective scan: the input-dependent diagonal linear recurrence of Mamba.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (2023),
Algorithm 2 (S6). For every batch element b and channel d (``channels`` = H) with a
diagonal state of size N:

.. math::

    \Delta_t &= \mathrm{softplus}?(\delta_t + \delta_{\rm bias})                   \\
    h_t &= \exp(\Delta_t A) \odot h_{t-1} + \Delta_t\, B_t\, u_t                  \\
    y_t &= C_t \cdot h_t + D\, u_t,\qquad y_t \leftarrow y_t\,\mathrm{silu}(z_t)

(zero-order hold for A, Euler for B, as in the paper). Shapes at the public boundary:

* ``u``, ``delta``, ``z``: (batch, length, channels) = (B, L, H)
* ``A``: (H, N); ``B``, ``C``: (B, L, N) (shared by all channels, input dependent)
* ``D``, ``delta_bias``: (H,)
* ``initial_state`` and the final state: (B, H, N), the state h_{-1} before the first
  input and h_{L-1} after the last.

Backends behind :func:`selective_scan` (one contract, chosen by name from ``BACKENDS``):

* ``"ref"`` — :func:`selective_scan_ref`, a per-step loop (one exponential and one
  update per step); float64 capable; autograd through the loop. The ground truth.
* ``"chunked"`` — :func:`selective_scan_chunked`, a chunked parallel scan in pure torch
  (CPU and GPU) with a custom autograd function whose activation memory is one chunk.
* ``"triton"`` — the Triton kernel in :mod:`dynlab.kernels.selective_scan_triton`
  (CUDA; on CPU only under ``TRITON_INTERPRET=1``).

``backend="auto"`` takes Triton for CUDA tensors when Triton imports, else ``"chunked"``.

Precision: the state is always accumulated in float32 (float64 when any input is
float64). bf16/fp16 inputs are upcast, ``y`` is returned in ``u``'s dtype and the final
state in the accumulation dtype.

Variable lengths: ``lengths`` (B,) marks right-padded sequences. At padded positions
Δ is set to 0, so exp(ΔA) = 1 and the input term ΔBu = 0: the state is carried
unchanged and the final state is each sequence's state after its last valid step.
Outputs at padded positions are set to exactly 0 (always finite, and no gradient flows
into padded inputs), so valid outputs and all gradients equal those of the unpadded
sequences run alone.
"""
from __future__ import annotations

import math
from numbers import Integral
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "selective_scan",
    "selective_scan_ref",
    "selective_scan_chunked",
    "BACKENDS",
    "DEFAULT_CHUNK_SIZE",
]

DEFAULT_CHUNK_SIZE = 64


# --- validation ----------------------------------------------------------------------------

def _shape(x) -> object:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def _check_tensor(x, name: str, expected: tuple, layout: str) -> None:
    if not isinstance(x, Tensor) or tuple(x.shape) != expected:
        raise ValueError(f"{name} must have shape {layout} = {expected}, got {_shape(x)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a real floating tensor, got dtype {x.dtype}")


def _validate(u, delta, A, B, C, D, z, delta_bias, initial_state, lengths) -> None:
    """Raise ValueError naming the first argument whose shape, dtype or device is wrong."""
    if not isinstance(u, Tensor) or u.dim() != 3:
        raise ValueError(f"u must be a 3-D tensor (batch, length, channels), got {_shape(u)}")
    if not u.dtype.is_floating_point:
        raise ValueError(f"u must be a real floating tensor, got dtype {u.dtype}")
    batch, length, channels = u.shape
    if not isinstance(A, Tensor) or A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A must have shape (channels, state) = ({channels}, N), got {_shape(A)}")
    state = A.shape[1]
    _check_tensor(A, "A", (channels, state), "(channels, state)")
    _check_tensor(delta, "delta", (batch, length, channels), "(batch, length, channels)")
    _check_tensor(B, "B", (batch, length, state), "(batch, length, state)")
    _check_tensor(C, "C", (batch, length, state), "(batch, length, state)")
    optional = {
        "z": (z, (batch, length, channels), "(batch, length, channels)"),
        "D": (D, (channels,), "(channels,)"),
        "delta_bias": (delta_bias, (channels,), "(channels,)"),
        "initial_state": (initial_state, (batch, channels, state), "(batch, channels, state)"),
    }
    for name, (x, expected, layout) in optional.items():
        if x is not None:
            _check_tensor(x, name, expected, layout)
    # Activations share one dtype (autocast produces them together); parameters and
    # the state may be kept in a wider dtype.
    for name, x in (("delta", delta), ("B", B), ("C", C), ("z", z)):
        if x is not None and x.dtype != u.dtype:
            raise ValueError(f"{name} must have the dtype of u ({u.dtype}), got {x.dtype}")
    named = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z,
             "delta_bias": delta_bias, "initial_state": initial_state, "lengths": lengths}
    for name, x in named.items():
        if x is not None and x.device != u.device:
            raise ValueError(f"{name} is on {x.device} but u is on {u.device}")
    if lengths is not None:
        if not isinstance(lengths, Tensor) or tuple(lengths.shape) != (batch,):
            raise ValueError(f"lengths must have shape (batch,) = ({batch},), got {_shape(lengths)}")
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
        if batch and (int(lengths.min()) < 0 or int(lengths.max()) > length):
            raise ValueError(f"lengths must lie in [0, length = {length}], got {lengths.tolist()}")


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    return int(chunk_size)


# --- shared pre- and post-processing ---------------------------------------------------------

class _Prepared(NamedTuple):
    u: Tensor            # (B, L, H), accumulation dtype
    dt: Tensor           # (B, L, H), final Δ (bias, softplus and padding applied)
    A: Tensor            # (H, N)
    B: Tensor            # (B, L, N)
    C: Tensor            # (B, L, N)
    h0: Tensor           # (B, H, N)
    valid: Tensor | None  # (B, L) bool, None when every position is valid


def _accumulation_dtype(*tensors) -> torch.dtype:
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, lengths) -> _Prepared:
    """Upcast to the accumulation dtype and form Δ; differentiable (plain autograd)."""
    acc = _accumulation_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, length, channels = u.shape
    dt = delta.to(acc)
    if delta_bias is not None:
        dt = dt + delta_bias.to(acc)
    if delta_softplus:
        dt = F.softplus(dt)
    valid = None
    if lengths is not None:
        valid = torch.arange(length, device=u.device) < lengths.to(u.device)[:, None]  # (B, L)
        # Δ = 0 at padding: exp(0·A) = 1 and Δ·B·u = 0 carry the state unchanged.
        # torch.where (not a product) keeps the padded Δ's gradient exactly 0.
        dt = torch.where(valid[..., None], dt, torch.zeros((), dtype=acc, device=u.device))
    if initial_state is None:
        h0 = torch.zeros(batch, channels, A.shape[1], dtype=acc, device=u.device)
    else:
        h0 = initial_state.to(acc)
    return _Prepared(u.to(acc), dt, A.to(acc), B.to(acc), C.to(acc), h0, valid)


def _finish(y: Tensor, prep: _Prepared, D, z, out_dtype: torch.dtype) -> Tensor:
    """y ← (y + D u) · silu(z), zero at padded positions, cast to the input dtype."""
    if D is not None:
        y = y + prep.u * D.to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    if prep.valid is not None:
        y = torch.where(prep.valid[..., None], y, torch.zeros((), dtype=y.dtype, device=y.device))
    return y.to(out_dtype)


# --- backend 1: sequential reference ---------------------------------------------------------

def _scan_ref(u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor,
              chunk_size: int) -> tuple[Tensor, Tensor]:
    """Core recurrence, one step at a time. Returns (C·h (B, L, H), h_{L-1} (B, H, N))."""
    h = h0
    ys = []
    # unbind (not indexing) so that autograd's backward is O(L), not O(L²) zero-filled slices
    for u_t, dt_t, B_t, C_t in zip(u.unbind(1), dt.unbind(1), B.unbind(1), C.unbind(1)):
        decay = torch.exp(dt_t[:, :, None] * A)  # (B, H, N)
        h = decay * h + (dt_t * u_t)[:, :, None] * B_t[:, None, :]
        ys.append(torch.matmul(h, C_t[:, :, None]).squeeze(-1))  # (B, H)
    y = torch.stack(ys, dim=1) if ys else u.new_zeros(u.shape)
    return y, h


# --- backend 2: chunked parallel scan in torch -----------------------------------------------

def _affine_scan(coef: Tensor, x: Tensor, spare: Tensor, coef_work: tuple[Tensor, Tensor],
                 reverse: bool = False) -> Tensor:
    r"""Inclusive scan of the affine recurrence along dim 0 by Hillis–Steele doubling.

    Forward:  x_t ← x_t + coef_t · x_{t-1}  (coef_0 unused);
    reverse:  x_t ← x_t + coef_t · x_{t+1}  (coef_{T-1} unused).

    After the level with offset k, x_t holds the sum over the last 2k inputs, each
    multiplied by the product of coefficients that separates it from t, and coef_t
    that product over 2k steps. Products of decays exp(ΔA) are never divided, so
    this is stable for any decay (no exp(-S) factors as in a cumsum-in-log-space
    formulation). ceil(log2 T) levels, each one fused multiply-add over the chunk.

    ``x`` and ``spare`` are ping-pong buffers (x is overwritten), ``coef`` is read
    only, ``coef_work`` are two buffers like ``coef``. Returns the buffer holding the
    result (``x`` or ``spare``).
    """
    T = x.shape[0]
    src, dst = x, spare
    a = coef
    level, k = 0, 1
    while k < T:
        if reverse:
            dst[T - k:].copy_(src[T - k:])
            torch.addcmul(src[:-k], a[:-k], src[k:], out=dst[:-k])
        else:
            dst[:k].copy_(src[:k])
            torch.addcmul(src[k:], a[k:], src[:-k], out=dst[k:])
        src, dst = dst, src
        if 2 * k < T:
            a_next = coef_work[level % 2]
            if reverse:
                a_next[T - k:].copy_(a[T - k:])
                torch.mul(a[:-k], a[k:], out=a_next[:-k])
            else:
                a_next[:k].copy_(a[:k])
                torch.mul(a[k:], a[:-k], out=a_next[k:])
            a = a_next
        level, k = level + 1, 2 * k
    return src


class _Workspace:
    """Chunk-sized (T, B, H, N) buffers reused by every chunk (no per-chunk allocation)."""

    def __init__(self, names: tuple[str, ...], T: int, like: Tensor, batch: int, H: int, N: int):
        for name in names:
            setattr(self, name, torch.empty(T, batch, H, N, dtype=like.dtype, device=like.device))


def _chunk_states(ws: _Workspace, u_c: Tensor, dt_c: Tensor, A: Tensor, B_c: Tensor,
                  h_in: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """States of one chunk. u_c, dt_c: (T, B, H); B_c: (T, B, N); h_in: (B, H, N).

    Returns (decay exp(ΔA) (T, B, H, N), states h_t (T, B, H, N), Δu (T, B, H)), all
    views of workspace buffers or fresh chunk-sized tensors.
    """
    T = u_c.shape[0]
    decay = ws.decay[:T]
    torch.mul(dt_c[..., None], A, out=decay)
    decay.exp_()
    dtu = dt_c * u_c  # (T, B, H)
    x = ws.x[:T]
    torch.mul(dtu[..., None], B_c[:, :, None, :], out=x)  # Δ_t B_t u_t
    x[0].addcmul_(decay[0], h_in)  # fold the incoming state into the first input
    states = _affine_scan(decay, x, ws.spare[:T], (ws.work0[:T], ws.work1[:T]))
    return decay, states, dtu


class _ChunkedScanFn(torch.autograd.Function):
    """Core scan (u, Δ, A, B, C, h0) -> (C·h, h_{L-1}) chunk by chunk.

    Forward keeps only the inputs and the state entering each chunk, (L/T, B, H, N).
    Backward walks the chunks in reverse, recomputes each chunk's states from its
    entering state and runs the adjoint recurrence
    λ_t = C_t ⊗ ȳ_t + exp(Δ_{t+1} A) λ_{t+1} (λ = ∂loss/∂h_t) as a reverse scan, so
    activation memory is a few chunk-sized buffers, never L × N.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h0, chunk_size):
        batch, length, H = u.shape
        N = A.shape[1]
        T = max(1, min(chunk_size, length))
        n_chunks = -(-length // T)
        y = u.new_empty(batch, length, H)
        starts = u.new_empty(n_chunks, batch, H, N)  # state entering each chunk
        ws = _Workspace(("decay", "x", "spare", "work0", "work1"), T, u, batch, H, N)
        h = h0
        for c in range(n_chunks):
            s, e = c * T, min(length, (c + 1) * T)
            starts[c] = h
            tm = lambda x: x[:, s:e].transpose(0, 1)  # (B, T, ·) -> time-major (T, B, ·) view
            _, states, _ = _chunk_states(ws, tm(u), tm(dt), A, tm(B), h)
            y[:, s:e] = torch.matmul(states, tm(C)[..., None]).squeeze(-1).transpose(0, 1)
            h = states[-1].clone()  # the buffers are reused by the next chunk
        ctx.save_for_backward(u, dt, A, B, C, starts)
        ctx.chunk = T
        return y, h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_last):
        u, dt, A, B, C, starts = ctx.saved_tensors
        T = ctx.chunk
        batch, length, H = u.shape
        N = A.shape[1]
        du, ddt = torch.empty_like(u), torch.empty_like(dt)
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        dA = torch.zeros_like(A)
        ws = _Workspace(("decay", "x", "spare", "work0", "work1", "h_prev", "lam", "lam_spare", "coef"),
                        T, u, batch, H, N)
        # g = ∂loss/∂(state leaving the current chunk) through everything after it
        g = dh_last if dh_last is not None else u.new_zeros(batch, H, N)
        for c in reversed(range(starts.shape[0])):
            s, e = c * T, min(length, (c + 1) * T)
            n = e - s
            tm = lambda x: x[:, s:e].transpose(0, 1)
            u_c, dt_c, B_c, C_c, dy_c = tm(u), tm(dt), tm(B), tm(C), tm(dy)
            h_in = starts[c]
            decay, states, dtu = _chunk_states(ws, u_c, dt_c, A, B_c, h_in)
            h_prev = ws.h_prev[:n]
            h_prev[0] = h_in
            h_prev[1:] = states[:-1]
            # adjoint: λ_t = C_t ȳ_t + exp(Δ_{t+1}A) λ_{t+1}, with the later chunks entering at t = n-1
            lam = ws.lam[:n]
            torch.mul(dy_c[..., None], C_c[:, :, None, :], out=lam)
            lam[-1] += g
            coef = ws.coef[:n]
            coef[:-1] = decay[1:]
            coef[-1] = 1.0
            lam = _affine_scan(coef, lam, ws.lam_spare[:n], (ws.work0[:n], ws.work1[:n]), reverse=True)
            g = decay[0] * lam[0]  # ∂loss/∂h_in
            # h_t = a_t h_{t-1} + Δ_t B_t u_t with a_t = exp(Δ_t A):
            #   ∂/∂(Δu)_t = Σ_n λ B_t,   ∂/∂B_t = Σ_h λ (Δu)_t,   ∂/∂C_t = Σ_h ȳ_t h_t,
            #   ∂/∂(Δ_t A) = λ a_t h_{t-1} =: w  ->  ∂Δ_t += Σ_n A w,  ∂A += Σ_{b,t} Δ_t w
            s_dtu = torch.matmul(lam, B_c[..., None]).squeeze(-1)  # (n, B, H)
            dB[:, s:e] = torch.matmul(dtu[:, :, None, :], lam).squeeze(-2).transpose(0, 1)
            dC[:, s:e] = torch.matmul(dy_c[:, :, None, :], states).squeeze(-2).transpose(0, 1)
            w = h_prev.mul_(decay).mul_(lam)
            ddt_c = (w * A).sum(-1)
            dA += w.mul_(dt_c[..., None]).sum((0, 1))
            du[:, s:e] = (s_dtu * dt_c).transpose(0, 1)
            ddt[:, s:e] = (ddt_c + s_dtu * u_c).transpose(0, 1)
        return du, ddt, dA, dB, dC, g, None


def _scan_chunked(u, dt, A, B, C, h0, chunk_size: int) -> tuple[Tensor, Tensor]:
    return _ChunkedScanFn.apply(u, dt, A, B, C, h0, chunk_size)


# --- backend 3: Triton -----------------------------------------------------------------------

def _triton_available() -> bool:
    try:
        from dynlab.kernels import selective_scan_triton
    except ImportError:
        return False
    return selective_scan_triton.HAS_TRITON


def _scan_triton(u, dt, A, B, C, h0, chunk_size: int) -> tuple[Tensor, Tensor]:
    from dynlab.kernels.selective_scan_triton import HAS_TRITON, selective_scan_triton_core
    if not HAS_TRITON:
        raise ImportError("backend='triton' needs triton: pip install 'dynlab[triton]'")
    return selective_scan_triton_core(u, dt, A, B, C, h0, checkpoint_every=chunk_size)


# Core scans: (u, Δ, A, B, C, h0, chunk_size) in the accumulation dtype -> (C·h, final state).
BACKENDS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "ref": _scan_ref,
    "chunked": _scan_chunked,
    "triton": _scan_triton,
}


def _resolve_backend(backend: str, u: Tensor) -> str:
    if backend == "auto":
        return "triton" if u.is_cuda and _triton_available() else "chunked"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected 'auto' or one of {sorted(BACKENDS)}")
    return backend


# --- public functions ------------------------------------------------------------------------

def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Tensor | None = None, z: Tensor | None = None,
                   delta_bias: Tensor | None = None, delta_softplus: bool = False,
                   initial_state: Tensor | None = None, return_final_state: bool = False,
                   lengths: Tensor | None = None, backend: str = "auto",
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor | tuple[Tensor, Tensor]:
    r"""Selective scan h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = C_t·h_t + D u_t (see module doc).

    Args:
        u: (B, L, H) input. delta: (B, L, H) raw step, Δ = softplus?(delta + delta_bias).
        A: (H, N) diagonal state matrix (negative real parts for a stable scan).
        B, C: (B, L, N) input and output maps. D, delta_bias: (H,). z: (B, L, H) gate.
        initial_state: (B, H, N) state before the first input (default 0).
        return_final_state: also return the state after the last (valid) step.
        lengths: (B,) integer valid lengths of right-padded sequences; padded outputs are 0.
        backend: "auto", "ref", "chunked" or "triton".
        chunk_size: chunk length T of the chunked scan and the checkpoint interval of
            the Triton backward (results do not depend on it).

    Returns:
        y (B, L, H) in u's dtype, and with ``return_final_state`` the final state
        (B, H, N) in the accumulation dtype (float32, or float64 for float64 inputs).
    """
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a string, got {backend!r}")
    _validate(u, delta, A, B, C, D, z, delta_bias, initial_state, lengths)
    chunk_size = _check_chunk_size(chunk_size)
    core = BACKENDS[_resolve_backend(backend, u)]
    prep = _prepare(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), initial_state, lengths)
    y, final_state = core(prep.u, prep.dt, prep.A, prep.B, prep.C, prep.h0, chunk_size)
    y = _finish(y, prep, D, z, u.dtype)
    return (y, final_state) if return_final_state else y


def selective_scan_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                       D: Tensor | None = None, z: Tensor | None = None,
                       delta_bias: Tensor | None = None, delta_softplus: bool = False,
                       initial_state: Tensor | None = None, return_final_state: bool = False,
                       lengths: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Sequential reference of :func:`selective_scan` (same arguments and results).

    One exponential and one state update per step, in float32 or float64; gradients
    by autograd through the loop (memory O(L · B · H · N)). Use it to test the fast
    backends, not to train.
    """
    return selective_scan(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                          delta_softplus=delta_softplus, initial_state=initial_state,
                          return_final_state=return_final_state, lengths=lengths, backend="ref")


def selective_scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                           D: Tensor | None = None, z: Tensor | None = None,
                           delta_bias: Tensor | None = None, delta_softplus: bool = False,
                           initial_state: Tensor | None = None, return_final_state: bool = False,
                           lengths: Tensor | None = None,
                           chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked parallel scan of :func:`selective_scan` in pure torch (CPU and GPU).

    L is cut into chunks of ``chunk_size`` = T. Inside a chunk the recurrence is a
    log-depth (Hillis–Steele) scan over time; the state is carried from chunk to
    chunk. A custom autograd function saves only the inputs and the (L/T, B, H, N)
    states entering each chunk, and the backward pass recomputes every chunk and
    runs the adjoint scan in reverse, so activation memory is O(T · B · H · N).
    Work per chunk is O(T log T · B · H · N). Results do not depend on T beyond
    rounding. Not twice differentiable.
    """
    return selective_scan(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                          delta_softplus=delta_softplus, initial_state=initial_state,
                          return_final_state=return_final_state, lengths=lengths,
                          backend="chunked", chunk_size=chunk_size)


# --- the module is callable --------------------------------------------------------------------
# This module and its main function share the name ``selective_scan``. Importing the
# submodule sets the package attribute ``dynlab.models.ssm.selective_scan`` to the module,
# so ``from dynlab.models.ssm import selective_scan`` can yield the module (depending on
# import order). Making the module callable keeps ``selective_scan(...)`` working either way.
class _CallableModule(type(math)):
    def __call__(self, *args, **kwargs):
        return selective_scan(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
