r"""Counter-based random numbers of path samplers: one SplitMix64 stream per path.

Every path has a 64-bit key (:func:`~simulators.jump.engine.path_keys`: member and path
index). Its random numbers come in *draws* of ``2K`` numbers (K events: a holding-time
variate and a channel variate each). With the SplitMix64 finaliser ``mix`` (Steele, Lea &
Flood 2014, "Fast splittable pseudorandom number generators", OOPSLA; the same bijective
64-bit avalanche as :mod:`simulators.random`) and the golden-ratio increment γ:

.. math::
    k_\text{path} = \text{mix}(\text{key}·γ + k_\text{stream}), \qquad
    k_d = \text{mix}(k_\text{path} + (d + 1)γ), \qquad
    b_{d,j} = \text{mix}(k_d + (j + 1)γ), \quad j < 2K,

where :math:`k_\text{stream}` hashes (seed, stream). So the numbers of draw d are the first
2K outputs of a SplitMix64 generator seeded with :math:`k_d`, and the :math:`k_d` are the
outputs of one seeded with :math:`k_\text{path}`: a pure function of (seed, stream, key, d, j),
whatever the batch, the block of members or the worker. SplitMix64 passes BigCrush
(TestU01) as a sequential generator. One hash per number: about nine integer passes
instead of twenty for :class:`~simulators.random.CounterRNG`'s two-level key per element.

The top 53 bits :math:`m_{d,j}` give :math:`U = (m + 1)\,2^{-53} \in (0, 1]`; numbers
``j < K`` become holding-time variates :math:`E = −\log U \sim \text{Exp}(1)` (at least
:math:`2^{-53}`, never 0) and numbers ``j ≥ K`` channel variates :math:`W = 1 − U \in [0, 1)`
(exact: U is a multiple of :math:`2^{-53}`).

On the CPU the hashing runs in numpy's unsigned 64-bit arithmetic (logical shifts, wrapping
products, in place, in cache-sized blocks of rows) and the logarithm is numpy's; on CUDA the
same integer operations run in torch (signed int64 with masked shifts: the same bits), so
CPU and CUDA share every integer and agree in law, not to the last bit of ``log``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..random import _GOLDEN, _mix, _mix_int

__all__ = ["stream_key", "path_stream_keys", "draw", "DRAW_NUMBERS"]

_U64 = np.uint64
_GOLDEN_U = _U64(_GOLDEN & ((1 << 64) - 1))
_MIX1_U = _U64(0xBF58476D1CE4E5B9)
_MIX2_U = _U64(0x94D049BB133111EB)
#: numbers hashed per numpy call (64 Ki × 8 bytes: 512 KiB, in L2)
DRAW_NUMBERS = 1 << 16


def stream_key(seed: int, stream: int) -> int:
    """The (seed, stream) part of every key, as a signed int64 value."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _mix_int(_mix_int(seed * 0x100 + stream))


def path_stream_keys(keys: torch.Tensor, seed: int, stream: int) -> torch.Tensor:
    """:math:`k_\\text{path} = \\text{mix}(\\text{key}·γ + k_\\text{stream})`, int64 ``(B,)``."""
    return _mix(keys.to(torch.int64) * _GOLDEN + stream_key(seed, stream))


def _mix_np(x: np.ndarray, tmp: np.ndarray) -> None:
    """SplitMix64 finaliser in place on uint64 (``tmp``: scratch of the same shape)."""
    np.right_shift(x, _U64(30), out=tmp)
    x ^= tmp
    x *= _MIX1_U
    np.right_shift(x, _U64(27), out=tmp)
    x ^= tmp
    x *= _MIX2_U
    np.right_shift(x, _U64(31), out=tmp)
    x ^= tmp


def _draw_keys(path_key: torch.Tensor, d: int) -> torch.Tensor:
    return _mix(path_key + ((d + 1) * _GOLDEN + (1 << 63)) % (1 << 64) - (1 << 63))


def draw(path_key: torch.Tensor, d: int, events: int, buffer: np.ndarray | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Variates of draw ``d`` of every path: ``(E, W)``, each ``(events, B)`` float64 (event-major),
    E ~ Exp(1) for the holding times and W ~ U[0, 1) for the channel choices.

    ``buffer`` (CPU): a float64 array of at least ``2·events·B`` elements to write into (reused
    memory: fresh large arrays cost page faults), which the result then views.
    """
    B = path_key.shape[0]
    K = events
    if path_key.device.type != "cpu":
        return _draw_torch(path_key, d, K)
    key = _draw_keys(path_key, d).numpy().view(np.uint64)
    if buffer is not None and buffer.size >= 2 * K * B:
        out = buffer[:2 * K * B].reshape(2 * K, B)
    else:
        out = np.empty((2 * K, B), dtype=np.float64)
    _fill(key, out, K, 0, 2 * K)
    both = torch.from_numpy(out)
    return both[:K], both[K:]


def _fill(key: np.ndarray, out: np.ndarray, K: int, start: int, stop: int) -> None:
    """Rows ``start:stop`` of ``out`` (2K, B): E = −log U in rows < K, W = 1 − U in rows ≥ K
    (module docstring); blocks of rows of about :data:`DRAW_NUMBERS` numbers stay in cache."""
    B = key.shape[0]
    step = max(1, DRAW_NUMBERS // max(B, 1))
    bits = np.empty((min(step, stop - start), B), dtype=np.uint64)
    tmp = np.empty_like(bits)
    first = start
    while first < stop:
        last = min(stop, first + step, K if first < K else stop)  # a block is all E or all W
        b, t = bits[:last - first], tmp[:last - first]
        offsets = (np.arange(first + 1, last + 1, dtype=np.uint64) * _GOLDEN_U)[:, None]
        np.add(offsets, key[None, :], out=b)
        _mix_np(b, t)
        b >>= _U64(11)
        b += _U64(1)                                           # m + 1 ∈ [1, 2**53]
        block = out[first:last]
        np.copyto(block, b.view(np.int64), casting="unsafe")  # exact in float64
        block *= 2.0 ** -53                                    # U ∈ (0, 1]
        if first < K:
            np.log(block, out=block)
            np.negative(block, out=block)                      # E = −log U
        else:
            np.subtract(1.0, block, out=block)                 # W = 1 − U
        first = last


def _draw_torch(path_key: torch.Tensor, d: int, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same numbers with torch's int64 operations (any device)."""
    offsets = (torch.arange(1, 2 * K + 1, dtype=torch.int64, device=path_key.device) * _GOLDEN)[:, None]
    bits = _mix(offsets + _draw_keys(path_key, d)[None, :])
    m = (bits >> 11) & ((1 << 53) - 1)
    u = (m.to(torch.float64) + 1.0) * 2.0 ** -53
    return u[:K].log().neg_(), u[K:].neg().add_(1.0)
