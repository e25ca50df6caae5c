r"""Triton kernels for the selective scan (forward and backward) and their autograd function.

The pure-torch reference is :func:`dynlab.models.ssm.selective_scan.selective_scan_ref`;
the public entry point is :func:`dynlab.models.ssm.selective_scan.selective_scan`, which
forms Δ (bias, softplus, padding) and applies D and the z gate in torch around the core
scan implemented here:

.. math::  h_t = \exp(\Delta_t A) \odot h_{t-1} + \Delta_t B_t u_t,\qquad y_t = C_t \cdot h_t

with u, Δ, y: (B, L, H); A: (H, N); B, C: (B, L, N); h: (B, H, N).

Forward: one program per (batch element, block of BLOCK_H channels) walks the
sequence in time order with its (BLOCK_H, N) state in registers, accumulating in the
dtype of the inputs (the wrapper passes float32 or float64). Every K steps it writes
the state to a checkpoint buffer (B, ⌈L/K⌉, H, N).

Backward: the same grid walks the checkpoint segments in reverse. For each segment it
recomputes the K states from the checkpoint into a per-program scratch buffer, then
runs the adjoint recurrence backwards in time,

.. math::  \lambda_t = C_t \bar y_t + g,\quad g \leftarrow e^{\Delta_t A} \lambda_t,

(g = ∂loss/∂h_{t-1} carried in registers) and forms every gradient at step t from
λ_t, h_{t-1} and h_t: ∂u_t = Δ_t Σ_n λB_t, ∂Δ_t = Σ_n A λ e^{Δ_t A} h_{t-1} + u_t Σ_n λB_t,
∂B_t = Σ_h λ Δ_t u_t, ∂C_t = Σ_h ȳ_t h_t, ∂A = Σ_{b,t} Δ_t λ e^{Δ_t A} h_{t-1},
∂h_{-1} = g after step 0. Reductions over channels (∂B, ∂C) and over the batch (∂A)
are written per program and summed in torch, which keeps the result deterministic.

Memory: checkpoints B·H·N·L/K plus scratch B·H·N·K, never B·H·N·L.

This module imports without Triton (``HAS_TRITON`` is then False); the kernels are
defined only when Triton is installed. On CPU tensors the kernels run only under
``TRITON_INTERPRET=1`` (set before Triton is imported).
"""
from __future__ import annotations

import torch
from torch import Tensor

try:  # Triton is optional: the dispatcher falls back to the torch backends without it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on installs without triton
    triton = None
    tl = None

HAS_TRITON = triton is not None

__all__ = ["HAS_TRITON", "selective_scan_triton_core", "DEFAULT_BLOCK_H"]

DEFAULT_BLOCK_H = 16


if HAS_TRITON:

    # The recurrence is sequential in time, so one program's speed is set by the latency
    # of its loads, not by bandwidth. The loops below therefore go UNROLL = 4 steps at a
    # time and issue the loads of all four steps before the first of them is used: one
    # memory latency per four steps. Steps past the end of a segment load Δ = 0 (the
    # state is unchanged) and store nothing.

    @triton.jit
    def _load_inputs(dt_row, u_row, B_row, C_row, t, ok, H, N, mask_h, mask_n):
        """Rows Δ_t, u_t (BLOCK_H,) and B_t, C_t (BLOCK_N,); zeros where ``ok`` is False."""
        dt = tl.load(dt_row + t * H, mask=mask_h & ok, other=0.0)
        u = tl.load(u_row + t * H, mask=mask_h & ok, other=0.0)
        B_t = tl.load(B_row + t * N, mask=mask_n & ok, other=0.0)
        C_t = tl.load(C_row + t * N, mask=mask_n & ok, other=0.0)
        return dt, u, B_t, C_t

    @triton.jit
    def _forward_step(h, A, dt, u, B_t, C_t, y_row, t, end, H, mask_h):
        # padded channels/states have A = B = C = 0 and stay at h = 0
        h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * B_t[None, :]
        tl.store(y_row + t * H, tl.sum(h * C_t[None, :], axis=1), mask=mask_h & (t < end))
        return h

    @triton.jit
    def _selective_scan_fwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, h0_ptr,  # inputs
        y_ptr, h_last_ptr, ckpt_ptr,  # outputs
        L, H, N, n_ckpt,
        K: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, SAVE_CKPT: tl.constexpr,
    ):
        pid_b = tl.program_id(0).to(tl.int64)
        pid_h = tl.program_id(1)
        offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        offs_n = tl.arange(0, BLOCK_N)
        mask_h = offs_h < H
        mask_n = offs_n < N
        mask_hn = mask_h[:, None] & mask_n[None, :]
        hn = offs_h[:, None] * N + offs_n[None, :]  # offsets in an (H, N) slab

        A = tl.load(A_ptr + hn, mask=mask_hn, other=0.0)
        h = tl.load(h0_ptr + pid_b * H * N + hn, mask=mask_hn, other=0.0)
        u_row = u_ptr + pid_b * L * H + offs_h  # row t of a (L, H) slab is at + t * H
        dt_row = dt_ptr + pid_b * L * H + offs_h
        y_row = y_ptr + pid_b * L * H + offs_h
        B_row = B_ptr + pid_b * L * N + offs_n
        C_row = C_ptr + pid_b * L * N + offs_n
        for c in range(0, n_ckpt):
            if SAVE_CKPT:  # state before step c·K, for the backward pass
                tl.store(ckpt_ptr + (pid_b * n_ckpt + c) * H * N + hn, h, mask=mask_hn)
            end = tl.minimum(c * K + K, L)
            for t in range(c * K, end, 4):
                dt0, u0, B0, C0 = _load_inputs(dt_row, u_row, B_row, C_row, t, t < end, H, N, mask_h, mask_n)
                dt1, u1, B1, C1 = _load_inputs(dt_row, u_row, B_row, C_row, t + 1, t + 1 < end, H, N, mask_h, mask_n)
                dt2, u2, B2, C2 = _load_inputs(dt_row, u_row, B_row, C_row, t + 2, t + 2 < end, H, N, mask_h, mask_n)
                dt3, u3, B3, C3 = _load_inputs(dt_row, u_row, B_row, C_row, t + 3, t + 3 < end, H, N, mask_h, mask_n)
                h = _forward_step(h, A, dt0, u0, B0, C0, y_row, t, end, H, mask_h)
                h = _forward_step(h, A, dt1, u1, B1, C1, y_row, t + 1, end, H, mask_h)
                h = _forward_step(h, A, dt2, u2, B2, C2, y_row, t + 2, end, H, mask_h)
                h = _forward_step(h, A, dt3, u3, B3, C3, y_row, t + 3, end, H, mask_h)
        tl.store(h_last_ptr + pid_b * H * N + hn, h, mask=mask_hn)

    @triton.jit
    def _adjoint_step(h, g, dA, A, dt, u, dy, B_t, C_t, h_prev, t, ok,
                      du_row, ddt_row, dB_row, dC_row, H, N, mask_h, mask_n):
        """One reverse step at time t; h = h_t, g = ∂loss/∂h_t from later steps."""
        lam = dy[:, None] * C_t[None, :] + g  # ∂loss/∂h_t
        tl.store(dC_row + t * N, tl.sum(dy[:, None] * h, axis=0), mask=mask_n & ok)
        s = tl.sum(lam * B_t[None, :], axis=1)  # ∂loss/∂(Δu)_t
        tl.store(dB_row + t * N, tl.sum(lam * (dt * u)[:, None], axis=0), mask=mask_n & ok)
        decay = tl.exp(dt[:, None] * A)
        w = lam * decay * h_prev  # ∂loss/∂(Δ_t A)
        tl.store(ddt_row + t * H, tl.sum(w * A, axis=1) + s * u, mask=mask_h & ok)
        tl.store(du_row + t * H, s * dt, mask=mask_h & ok)
        # past the start of the segment (ok False) dt = dy = 0, so g and dA are unchanged
        return dA + dt[:, None] * w, decay * lam

    @triton.jit
    def _selective_scan_bwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, ckpt_ptr, dy_ptr, dh_last_ptr,  # inputs
        scratch_ptr,  # (B, n_blocks, K, BLOCK_H, BLOCK_N) states of one segment, per program
        du_ptr, ddt_ptr,  # (B, L, H)
        dA_part_ptr,  # (B, H, N): ∂A summed over time, per batch element
        dB_part_ptr, dC_part_ptr,  # (B, n_blocks, L, N): ∂B, ∂C summed over this channel block
        dh0_ptr,  # (B, H, N)
        L, H, N, n_ckpt, n_blocks,
        K: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        TILE = BLOCK_H * BLOCK_N  # constexpr: a product of constexprs
        pid_b = tl.program_id(0).to(tl.int64)
        pid_h = tl.program_id(1)
        offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        offs_n = tl.arange(0, BLOCK_N)
        mask_h = offs_h < H
        mask_n = offs_n < N
        mask_hn = mask_h[:, None] & mask_n[None, :]
        hn = offs_h[:, None] * N + offs_n[None, :]
        tile = tl.arange(0, BLOCK_H)[:, None] * BLOCK_N + offs_n[None, :]  # offsets in a scratch tile
        everywhere = tile >= 0  # all-true (BLOCK_H, BLOCK_N) mask, to be and-ed with a step's validity

        A = tl.load(A_ptr + hn, mask=mask_hn, other=0.0)
        g = tl.load(dh_last_ptr + pid_b * H * N + hn, mask=mask_hn, other=0.0)  # ∂loss/∂h_t from later steps
        dA = tl.zeros([BLOCK_H, BLOCK_N], dtype=A.dtype)
        u_row = u_ptr + pid_b * L * H + offs_h
        dt_row = dt_ptr + pid_b * L * H + offs_h
        dy_row = dy_ptr + pid_b * L * H + offs_h
        du_row = du_ptr + pid_b * L * H + offs_h
        ddt_row = ddt_ptr + pid_b * L * H + offs_h
        B_row = B_ptr + pid_b * L * N + offs_n
        C_row = C_ptr + pid_b * L * N + offs_n
        part = (pid_b * n_blocks + pid_h) * L * N + offs_n
        dB_row = dB_part_ptr + part
        dC_row = dC_part_ptr + part
        scratch = scratch_ptr + (pid_b * n_blocks + pid_h) * K * TILE + tile

        for cc in range(0, n_ckpt):
            c = n_ckpt - 1 - cc
            t0 = c * K
            end = tl.minimum(t0 + K, L)
            n_steps = end - t0
            # 1) recompute the segment's states; scratch[i] = h_{t0+i-1} (state before step t0+i)
            h = tl.load(ckpt_ptr + (pid_b * n_ckpt + c) * H * N + hn, mask=mask_hn, other=0.0)
            for t in range(t0, end, 4):
                dt0, u0, B0, C0 = _load_inputs(dt_row, u_row, B_row, C_row, t, t < end, H, N, mask_h, mask_n)
                dt1, u1, B1, C1 = _load_inputs(dt_row, u_row, B_row, C_row, t + 1, t + 1 < end, H, N, mask_h, mask_n)
                dt2, u2, B2, C2 = _load_inputs(dt_row, u_row, B_row, C_row, t + 2, t + 2 < end, H, N, mask_h, mask_n)
                dt3, u3, B3, C3 = _load_inputs(dt_row, u_row, B_row, C_row, t + 3, t + 3 < end, H, N, mask_h, mask_n)
                i = t - t0
                tl.store(scratch + i * TILE, h)
                h = tl.exp(dt0[:, None] * A) * h + (dt0 * u0)[:, None] * B0[None, :]
                tl.store(scratch + (i + 1) * TILE, h, mask=everywhere & (t + 1 < end))
                h = tl.exp(dt1[:, None] * A) * h + (dt1 * u1)[:, None] * B1[None, :]
                tl.store(scratch + (i + 2) * TILE, h, mask=everywhere & (t + 2 < end))
                h = tl.exp(dt2[:, None] * A) * h + (dt2 * u2)[:, None] * B2[None, :]
                tl.store(scratch + (i + 3) * TILE, h, mask=everywhere & (t + 3 < end))
                h = tl.exp(dt3[:, None] * A) * h + (dt3 * u3)[:, None] * B3[None, :]
            tl.debug_barrier()  # scratch writes visible to every thread of the program
            # 2) adjoint, backwards in time; h holds h_t on entry to the step at time t
            for j in range(0, n_steps, 4):
                ta = end - 1 - j
                tb = ta - 1
                tc = ta - 2
                td = ta - 3
                oka = ta >= t0
                okb = tb >= t0
                okc = tc >= t0
                okd = td >= t0
                # all loads of the four steps first (steps before t0 load zeros)
                dta, ua, Ba, Ca = _load_inputs(dt_row, u_row, B_row, C_row, ta, oka, H, N, mask_h, mask_n)
                dtb, ub, Bb, Cb = _load_inputs(dt_row, u_row, B_row, C_row, tb, okb, H, N, mask_h, mask_n)
                dtc, uc, Bc, Cc = _load_inputs(dt_row, u_row, B_row, C_row, tc, okc, H, N, mask_h, mask_n)
                dtd, ud, Bd, Cd = _load_inputs(dt_row, u_row, B_row, C_row, td, okd, H, N, mask_h, mask_n)
                dya = tl.load(dy_row + ta * H, mask=mask_h & oka, other=0.0)
                dyb = tl.load(dy_row + tb * H, mask=mask_h & okb, other=0.0)
                dyc = tl.load(dy_row + tc * H, mask=mask_h & okc, other=0.0)
                dyd = tl.load(dy_row + td * H, mask=mask_h & okd, other=0.0)
                hpa = tl.load(scratch + (ta - t0) * TILE, mask=everywhere & oka, other=0.0)
                hpb = tl.load(scratch + (tb - t0) * TILE, mask=everywhere & okb, other=0.0)
                hpc = tl.load(scratch + (tc - t0) * TILE, mask=everywhere & okc, other=0.0)
                hpd = tl.load(scratch + (td - t0) * TILE, mask=everywhere & okd, other=0.0)
                dA, g = _adjoint_step(h, g, dA, A, dta, ua, dya, Ba, Ca, hpa, ta, oka,
                                      du_row, ddt_row, dB_row, dC_row, H, N, mask_h, mask_n)
                dA, g = _adjoint_step(hpa, g, dA, A, dtb, ub, dyb, Bb, Cb, hpb, tb, okb,
                                      du_row, ddt_row, dB_row, dC_row, H, N, mask_h, mask_n)
                dA, g = _adjoint_step(hpb, g, dA, A, dtc, uc, dyc, Bc, Cc, hpc, tc, okc,
                                      du_row, ddt_row, dB_row, dC_row, H, N, mask_h, mask_n)
                dA, g = _adjoint_step(hpc, g, dA, A, dtd, ud, dyd, Bd, Cd, hpd, td, okd,
                                      du_row, ddt_row, dB_row, dC_row, H, N, mask_h, mask_n)
                h = hpd
            tl.debug_barrier()  # the next segment overwrites the scratch
        tl.store(dh0_ptr + pid_b * H * N + hn, g, mask=mask_hn)
        tl.store(dA_part_ptr + pid_b * H * N + hn, dA, mask=mask_hn)


def _launch_config(H: int, N: int, block_h: int) -> tuple[int, int, int]:
    BLOCK_N = triton.next_power_of_2(N)
    BLOCK_H = min(block_h, triton.next_power_of_2(H))
    return BLOCK_H, BLOCK_N, triton.cdiv(H, BLOCK_H)


class _TritonScanFn(torch.autograd.Function):
    """(u, Δ, A, B, C, h0) -> (C·h, h_{L-1}) with the Triton kernels; inputs share one float dtype."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h0, checkpoint_every, block_h, num_warps):
        u, dt, A, B, C, h0 = (x.contiguous() for x in (u, dt, A, B, C, h0))
        batch, length, H = u.shape
        N = A.shape[1]
        K = int(checkpoint_every)
        n_ckpt = triton.cdiv(length, K)
        BLOCK_H, BLOCK_N, n_blocks = _launch_config(H, N, block_h)
        save = any(ctx.needs_input_grad[:6])
        y = torch.empty_like(u)
        h_last = torch.empty_like(h0)
        ckpt = u.new_empty(batch, n_ckpt, H, N) if save else u.new_empty(1)
        if batch and H:
            _selective_scan_fwd_kernel[(batch, n_blocks)](
                u, dt, A, B, C, h0, y, h_last, ckpt, length, H, N, n_ckpt,
                K=K, BLOCK_H=BLOCK_H, BLOCK_N=BLOCK_N, SAVE_CKPT=save, num_warps=num_warps,
            )
        ctx.save_for_backward(u, dt, A, B, C, ckpt)
        ctx.config = (K, n_ckpt, BLOCK_H, BLOCK_N, n_blocks, num_warps)
        return y, h_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_last):
        u, dt, A, B, C, ckpt = ctx.saved_tensors
        K, n_ckpt, BLOCK_H, BLOCK_N, n_blocks, num_warps = ctx.config
        batch, length, H = u.shape
        N = A.shape[1]
        dy = dy.to(u.dtype).contiguous()
        dh_last = (dh_last.to(u.dtype).contiguous() if dh_last is not None
                   else u.new_zeros(batch, H, N))
        du, ddt = torch.empty_like(u), torch.empty_like(dt)
        dh0 = torch.empty_like(dh_last)
        dA_part = u.new_zeros(batch, H, N)
        dB_part = u.new_zeros(batch, n_blocks, length, N)
        dC_part = u.new_zeros(batch, n_blocks, length, N)
        scratch = u.new_empty(batch, n_blocks, K, BLOCK_H, BLOCK_N)
        if batch and H:
            _selective_scan_bwd_kernel[(batch, n_blocks)](
                u, dt, A, B, C, ckpt, dy, dh_last, scratch,
                du, ddt, dA_part, dB_part, dC_part, dh0,
                length, H, N, n_ckpt, n_blocks,
                K=K, BLOCK_H=BLOCK_H, BLOCK_N=BLOCK_N, num_warps=num_warps,
            )
        else:
            dh0 = dh_last.clone()
        return du, ddt, dA_part.sum(0), dB_part.sum(1), dC_part.sum(1), dh0, None, None, None


def selective_scan_triton_core(u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor,
                               checkpoint_every: int = 64, block_h: int = DEFAULT_BLOCK_H,
                               num_warps: int = 1) -> tuple[Tensor, Tensor]:
    """Core selective scan with the Triton kernels, differentiable (once).

    Args:
        u, dt: (B, L, H), Δ already final (bias, softplus and padding applied).
        A: (H, N). B, C: (B, L, N). h0: (B, H, N) state before the first step.
        checkpoint_every: K, the forward keeps the state every K steps and the
            backward recomputes K states at a time (memory B·H·N·(L/K + K)).
        block_h: channels per program (a power of two). num_warps: warps per program.

    All tensors must be on one device (CUDA, or CPU under ``TRITON_INTERPRET=1``) and
    share one dtype, float32 or float64, which is the accumulation dtype.

    Returns:
        (y (B, L, H) = C·h, final state h_{L-1} (B, H, N)).
    """
    if not HAS_TRITON:
        raise ImportError("selective_scan_triton_core needs triton: pip install 'dynlab[triton]'")
    tensors = {"u": u, "dt": dt, "A": A, "B": B, "C": C, "h0": h0}
    dtypes = {x.dtype for x in tensors.values()}
    if len(dtypes) != 1 or u.dtype not in (torch.float32, torch.float64):
        raise ValueError("u, dt, A, B, C, h0 must share one dtype, float32 or float64; got "
                         + ", ".join(f"{k}={v.dtype}" for k, v in tensors.items()))
    if u.dim() != 3 or A.dim() != 2:
        raise ValueError(f"u must be (B, L, H) and A (H, N), got {tuple(u.shape)} and {tuple(A.shape)}")
    batch, length, H = u.shape
    N = A.shape[1]
    expected = {"u": (batch, length, H), "dt": (batch, length, H), "A": (H, N),
                "B": (batch, length, N), "C": (batch, length, N), "h0": (batch, H, N)}
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(tensors[name].shape)}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
    if not isinstance(block_h, int) or block_h < 1 or block_h & (block_h - 1):
        raise ValueError(f"block_h must be a power of two, got {block_h!r}")
    return _TritonScanFn.apply(u, dt, A, B, C, h0, checkpoint_every, block_h, num_warps)
