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
  (CPU and GPU): a stable in-chunk scan (Hillis–Steele doubling on GPU, a two-level
  blocked scan on CPU), the state carried between chunks, and a custom autograd
  function that recomputes each chunk in backward, so activation memory is one chunk.
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

DEFAULT_CHUNK_SIZE = 32


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
#
# Inside a chunk tensors are time-major with the channel axis innermost, (T, B, N, H):
# slices along time are contiguous blocks, and the contractions over the state axis N
# (y = C·h, Σ_n λB) become batched (1 × N) @ (N × H) products.
#
# Two stable in-chunk scans (decays are only ever multiplied, never divided, unlike
# h_t = e^{S_t} Σ_s e^{-S_s} x_s with S the cumulative log-decay, whose e^{-S_s}
# overflows on long chunks):
#   "doubling": Hillis–Steele, log2(T) levels, each one fused multiply-add over the
#               whole chunk: few, large operations (GPU: few kernel launches).
#   "blocked":  two-level scan: the chunk is cut into sub-blocks of Q = 8 steps, all
#               sub-blocks are scanned at once (Q vectorised steps), then the state is
#               carried across sub-blocks and added with one fix-up pass: O(T) work
#               instead of O(T log T), about 2× fewer memory passes (CPU).

_EXP_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}  # exp(floor) ≈ smallest normal number


def _n_levels(T: int) -> int:
    """Number of doubling levels k = 1, 2, 4, … < T, i.e. ceil(log2 T)."""
    return (T - 1).bit_length()


def _scan_doubling(decay: Tensor, x: Tensor, spare: Tensor, products: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    r"""Inclusive scan x_t ← x_t + a_t x_{t-1} along dim 0 by Hillis–Steele doubling.

    a = ``decay`` = exp(ΔA) (a_0 unused). Before the level with offset k, x_t holds
    Σ_{t-k < s ≤ t} (Π_{s<r≤t} a_r) x_s and P_k[t] = Π_{t-k < r ≤ t} a_r (clipped at 0);
    one fused multiply-add per level doubles the window; ceil(log2 T) levels.

    ``x`` and ``spare`` are ping-pong buffers; ``products`` holds buffers for P_2,
    P_4, …: one per level keeps them all (the reverse scan reuses them), two cycle.
    Returns (buffer holding the states, [P_1 = decay, P_2, …]).
    """
    T = x.shape[0]
    src, dst = x, spare
    level_products = [decay]
    k = 1
    while k < T:
        dst[:k].copy_(src[:k])
        torch.addcmul(src[k:], level_products[-1][k:], src[:-k], out=dst[k:])
        src, dst = dst, src
        if 2 * k < T:
            prev, nxt = level_products[-1], products[(len(level_products) - 1) % len(products)]
            nxt[:k].copy_(prev[:k])
            torch.mul(prev[k:], prev[:-k], out=nxt[k:])
            level_products.append(nxt)
        k *= 2
    return src, level_products


def _scan_doubling_reverse(level_products: list[Tensor], x: Tensor, spare: Tensor) -> Tensor:
    r"""Reverse scan x_t ← x_t + a_{t+1} x_{t+1} with the forward level products.

    The coefficient that carries x_{t+k} back to t is Π_{t < r ≤ t+k} a_r = P_k[t+k],
    exactly the forward product at level k, so no products are recomputed.
    """
    T = x.shape[0]
    src, dst = x, spare
    k, level = 1, 0
    while k < T:
        dst[T - k:].copy_(src[T - k:])
        torch.addcmul(src[:-k], level_products[level][k:], src[k:], out=dst[:-k])
        src, dst = dst, src
        k, level = 2 * k, level + 1
    return src


def _sub_blocks(x: Tensor, n_step: int) -> list[Tensor]:
    """Views of x (T, …) as runs of sub-blocks (P, q, …): full blocks of n_step, then the tail."""
    T, full = x.shape[0], x.shape[0] // n_step
    runs = [x[:full * n_step].view(full, n_step, *x.shape[1:])] if full else []
    if T > full * n_step:
        runs.append(x[full * n_step:].unsqueeze(0))
    return runs


def _scan_blocked(decay: Tensor, x: Tensor, cum: Tensor, n_step: int) -> Tensor:
    r"""Inclusive scan x_t ← x_t + a_t x_{t-1} along dim 0, two-level, in place.

    1. every sub-block (q = ``n_step`` steps) is scanned from zero, all sub-blocks at
       once, while cum[p, j] = Π_{r≤j} a[p, r] accumulates the decay from the sub-block start;
    2. sub-block by sub-block, the state e_{p-1} at the end of the previous one enters
       as x[p, j] += cum[p, j] · e_{p-1} (one pass over the chunk in total).
    """
    carry = None
    for xv, av, cv in zip(_sub_blocks(x, n_step), _sub_blocks(decay, n_step), _sub_blocks(cum, n_step)):
        cv[:, 0] = av[:, 0]
        for j in range(1, xv.shape[1]):
            xv[:, j].addcmul_(av[:, j], xv[:, j - 1])
            torch.mul(cv[:, j - 1], av[:, j], out=cv[:, j])
        for p in range(xv.shape[0]):
            if carry is not None:
                xv[p].addcmul_(cv[p], carry)
            carry = xv[p, -1]
    return x


def _scan_blocked_reverse(decay: Tensor, x: Tensor, cum: Tensor, n_step: int) -> Tensor:
    r"""Reverse scan x_t ← x_t + a_{t+1} x_{t+1} along dim 0, two-level, in place.

    Within sub-blocks from the end; cum[p, j] = Π_{j<r<q} a[p, r]; then from the last
    sub-block back, x[p, j] += cum[p, j] · a[p+1, 0] x[p+1, 0].
    """
    link = None  # a x at the first step of the following sub-block
    runs = list(zip(_sub_blocks(x, n_step), _sub_blocks(decay, n_step), _sub_blocks(cum, n_step)))
    for xv, av, cv in reversed(runs):
        q = xv.shape[1]
        cv[:, q - 1] = 1.0
        for j in range(q - 2, -1, -1):
            xv[:, j].addcmul_(av[:, j + 1], xv[:, j + 1])
            torch.mul(cv[:, j + 1], av[:, j + 1], out=cv[:, j])
        for p in reversed(range(xv.shape[0])):
            if link is not None:
                xv[p].addcmul_(cv[p], link)
            link = av[p, 0] * xv[p, 0]
    return x


class _DoublingScan:
    """Hillis–Steele scans of one chunk; keeps the level products for the reverse scan."""

    def __init__(self, T: int, new_buffer: Callable[[], Tensor], keep_products: bool):
        self.spare, self.spare_reverse = new_buffer(), new_buffer()
        n_products = max(1, _n_levels(T) - 1) if keep_products else 2
        self.products = [new_buffer() for _ in range(n_products)]
        self.level_products: list[Tensor] = []

    def forward(self, decay: Tensor, x: Tensor) -> Tensor:
        n = x.shape[0]
        states, self.level_products = _scan_doubling(decay, x, self.spare[:n], [p[:n] for p in self.products])
        return states

    def reverse(self, decay: Tensor, x: Tensor) -> Tensor:
        return _scan_doubling_reverse(self.level_products, x, self.spare_reverse[:x.shape[0]])


class _BlockedScan:
    """Two-level scans of one chunk with sub-blocks of ``SUB_BLOCK`` steps."""

    SUB_BLOCK = 8

    def __init__(self, T: int, new_buffer: Callable[[], Tensor], keep_products: bool):
        self.cum = new_buffer()

    def forward(self, decay: Tensor, x: Tensor) -> Tensor:
        return _scan_blocked(decay, x, self.cum[:x.shape[0]], self.SUB_BLOCK)

    def reverse(self, decay: Tensor, x: Tensor) -> Tensor:
        return _scan_blocked_reverse(decay, x, self.cum[:x.shape[0]], self.SUB_BLOCK)


CHUNK_SCANS = {"doubling": _DoublingScan, "blocked": _BlockedScan}


def _time_major(x: Tensor, s: int, e: int) -> Tensor:
    """(B, L, ·)[:, s:e] -> contiguous (T, B, ·) copy (small: no state axis)."""
    return x[:, s:e].transpose(0, 1).contiguous()


def _chunk_states(scan, decay: Tensor, x: Tensor, u_c: Tensor, dt_c: Tensor, A_t: Tensor, B_c: Tensor,
                  h_in: Tensor) -> tuple[Tensor, Tensor]:
    """States of one chunk. u_c, dt_c: (T, B, H); B_c: (T, B, N); A_t: (N, H); h_in: (B, N, H).

    Fills ``decay`` = exp(ΔA) (T, B, N, H); returns (states h_t (T, B, N, H), Δu (T, B, H)).
    """
    torch.mul(dt_c[:, :, None, :], A_t, out=decay)
    # exp of an argument whose result is subnormal takes a slow path on CPUs (~20×
    # slower); decays below the smallest normal number are raised to it, an absolute
    # change under 1e-38 (float32) or 1e-307 (float64) times the state.
    decay.clamp_(min=_EXP_FLOOR[decay.dtype]).exp_()
    dtu = dt_c * u_c
    torch.mul(B_c[..., None], dtu[:, :, None, :], out=x)  # Δ_t B_t u_t
    x[0].addcmul_(decay[0], h_in)  # the incoming state enters through the first step
    return scan.forward(decay, x), dtu


def _contract_state(C_c: Tensor, states: Tensor) -> Tensor:
    """Σ_n C_n h_n: (T, B, N) and (T, B, N, H) -> (T, B, H) as batched (1×N)@(N×H)."""
    T, batch, N, H = states.shape
    return torch.bmm(C_c.reshape(T * batch, 1, N), states.reshape(T * batch, N, H)).view(T, batch, H)


class _ChunkedScanFn(torch.autograd.Function):
    """Core scan (u, Δ, A, B, C, h0) -> (C·h, h_{L-1}) chunk by chunk.

    Forward keeps only the inputs and the state entering each chunk, (L/T, B, N, H).
    Backward walks the chunks in reverse, recomputes each chunk's states from its
    entering state and runs the adjoint recurrence
    λ_t = C_t ȳ_t + exp(Δ_{t+1} A) λ_{t+1} (λ_t = ∂loss/∂h_t) as a reverse scan, so
    activation memory is a few chunk-sized buffers (reused by every chunk: fresh
    multi-megabyte allocations page-fault on CPU), never L × N.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h0, chunk_size, algorithm):
        batch, length, H = u.shape
        N = A.shape[1]
        T = max(1, min(chunk_size, length))
        n_chunks = -(-length // T)
        new_buffer = lambda: u.new_empty(T, batch, N, H)
        scan = CHUNK_SCANS[algorithm](T, new_buffer, keep_products=False)
        decay, x = new_buffer(), new_buffer()
        A_t = A.t().contiguous()  # (N, H)
        y = u.new_empty(batch, length, H)
        starts = u.new_empty(n_chunks, batch, N, H)  # state entering each chunk
        h = h0.transpose(1, 2)  # (B, N, H)
        for c in range(n_chunks):
            s, e = c * T, min(length, (c + 1) * T)
            n = e - s
            starts[c] = h
            states, _ = _chunk_states(scan, decay[:n], x[:n], _time_major(u, s, e), _time_major(dt, s, e),
                                      A_t, _time_major(B, s, e), h)
            y[:, s:e] = _contract_state(_time_major(C, s, e), states).transpose(0, 1)
            h = states[-1].clone()  # the buffers are reused by the next chunk
        ctx.save_for_backward(u, dt, A, B, C, starts)
        ctx.chunk, ctx.algorithm = T, algorithm
        return y, h.transpose(1, 2).contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_last):
        u, dt, A, B, C, starts = ctx.saved_tensors
        T = ctx.chunk
        batch, length, H = u.shape
        N = A.shape[1]
        new_buffer = lambda: u.new_empty(T, batch, N, H)
        scan = CHUNK_SCANS[ctx.algorithm](T, new_buffer, keep_products=True)
        decay, x, lam, work, work2 = (new_buffer() for _ in range(5))
        A_t = A.t().contiguous()
        du, ddt = torch.empty_like(u), torch.empty_like(dt)
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        dA_t = torch.zeros_like(A_t)
        # g = ∂loss/∂(state leaving the current chunk), through everything after it
        g = dh_last.transpose(1, 2) if dh_last is not None else u.new_zeros(batch, N, H)
        for c in reversed(range(starts.shape[0])):
            s, e = c * T, min(length, (c + 1) * T)
            n = e - s
            u_c, dt_c, B_c, C_c, dy_c = (_time_major(t, s, e) for t in (u, dt, B, C, dy))
            h_in = starts[c]
            decay_c, lam_c, w, work2_c = decay[:n], lam[:n], work[:n], work2[:n]
            states, dtu = _chunk_states(scan, decay_c, x[:n], u_c, dt_c, A_t, B_c, h_in)
            # adjoint: λ_t = C_t ȳ_t + a_{t+1} λ_{t+1}; the later chunks enter at t = n-1
            torch.mul(C_c[..., None], dy_c[:, :, None, :], out=lam_c)
            lam_c[-1] += g
            lam_c = scan.reverse(decay_c, lam_c)
            g = decay_c[0] * lam_c[0]  # ∂loss/∂h_in
            # h_t = a_t h_{t-1} + Δ_t B_t u_t with a_t = exp(Δ_t A):
            #   ∂(Δu)_t = Σ_n λ B_t,  ∂B_t = Σ_h λ (Δu)_t,  ∂C_t = Σ_h ȳ_t h_t,
            #   ∂(Δ_t A) = λ a_t h_{t-1} =: w  ->  ∂Δ_t += Σ_n A w,  ∂A += Σ_{b,t} Δ_t w
            s_dtu = _contract_state(B_c, lam_c)  # (n, B, H)
            dB[:, s:e] = torch.mul(lam_c, dtu[:, :, None, :], out=w).sum(-1).transpose(0, 1)
            dC[:, s:e] = torch.mul(states, dy_c[:, :, None, :], out=w).sum(-1).transpose(0, 1)
            torch.mul(decay_c[1:], states[:-1], out=w[1:])  # a_t h_{t-1}
            torch.mul(decay_c[0], h_in, out=w[0])
            w.mul_(lam_c)
            ddt_c = torch.mul(w, A_t, out=work2_c).sum(2)
            dA_t += w.mul_(dt_c[:, :, None, :]).sum((0, 1))
            du[:, s:e] = (s_dtu * dt_c).transpose(0, 1)
            ddt[:, s:e] = ddt_c.add_(s_dtu * u_c).transpose(0, 1)
        return (du, ddt, dA_t.t().contiguous(), dB, dC, g.transpose(1, 2).contiguous(), None, None)


def _scan_chunked(u, dt, A, B, C, h0, chunk_size: int, algorithm: str = "auto") -> tuple[Tensor, Tensor]:
    if algorithm == "auto":
        # CPU: fewer memory passes win; GPU: fewer (larger) kernel launches win
        algorithm = "blocked" if u.device.type == "cpu" else "doubling"
    if algorithm not in CHUNK_SCANS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected 'auto' or one of {sorted(CHUNK_SCANS)}")
    return _ChunkedScanFn.apply(u, dt, A, B, C, h0, chunk_size, algorithm)


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
    return _selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                           return_final_state, lengths, backend, chunk_size)


def _selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                    return_final_state, lengths, backend, chunk_size, **core_options):
    """Validate, form Δ, run the backend's core scan, apply D, z and padding."""
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a string, got {backend!r}")
    _validate(u, delta, A, B, C, D, z, delta_bias, initial_state, lengths)
    chunk_size = _check_chunk_size(chunk_size)
    core = BACKENDS[_resolve_backend(backend, u)]
    prep = _prepare(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), initial_state, lengths)
    y, final_state = core(prep.u, prep.dt, prep.A, prep.B, prep.C, prep.h0, chunk_size, **core_options)
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
                           lengths: Tensor | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                           algorithm: str = "auto") -> Tensor | tuple[Tensor, Tensor]:
    """Chunked parallel scan of :func:`selective_scan` in pure torch (CPU and GPU).

    L is cut into chunks of ``chunk_size`` = T; the state is carried from chunk to
    chunk, and inside a chunk the recurrence is scanned in parallel over time by
    ``algorithm``: "doubling" (Hillis–Steele, log2 T levels over the whole chunk,
    O(T log T) work), "blocked" (two-level: all sub-blocks of 8 steps at once, then a
    carry and one fix-up pass, O(T) work) or "auto" (blocked on CPU, doubling on GPU).
    Both only multiply decays, so they are stable for any Δ·A.

    A custom autograd function saves only the inputs and the (L/T, B, H, N) states
    entering each chunk; the backward pass recomputes every chunk and runs the
    adjoint scan in reverse, so activation memory is O(T · B · H · N), not
    O(L · B · H · N). Results do not depend on T or the algorithm beyond rounding.
    Not twice differentiable.
    """
    return _selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                           return_final_state, lengths, "chunked", chunk_size, algorithm=algorithm)
