r"""Counter-based random numbers: one reproducible stream per ensemble member.

The normal variate used by member ``m`` for element ``e`` at step ``s`` of stream
``k`` is a pure function of ``(seed, k, m, s, e)``: a SplitMix64-style integer
hash (Steele, Lea & Flood 2014) of those counters, mapped to two uniforms on
(0, 1] and through the Box–Muller transform. Nothing depends on which other
members share the batch, on the block or worker that computes them, or on how
often a run was interrupted, so an ensemble is bit-identical whatever its
chunking (DESIGN.md, "Randomness").

All arithmetic is on int64 tensors (wrapping multiplication), so it runs
batched on any device torch supports.
"""
from __future__ import annotations

import math

import torch

__all__ = ["CounterRNG", "STREAM_INITIAL", "STREAM_NOISE", "STREAM_PARAMS"]

# Stream identifiers: independent sequences for different purposes.
STREAM_INITIAL = 1
STREAM_NOISE = 2
STREAM_PARAMS = 3

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """Interpret an unsigned 64-bit constant as a signed int64."""
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser: a bijective avalanche of 64 bits."""
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def _mix_int(x: int) -> int:
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return _signed(x ^ (x >> 31))


class CounterRNG:
    """Reproducible per-member random numbers.

    Args:
        seed: the dataset's seed (a non-negative integer).
        members: global member indices, shape ``(M,)`` (int64).

    ``normal(shape, step=..., stream=...)`` returns standard normal variates of
    shape ``(M, *shape)``; row ``i`` depends only on ``(seed, stream,
    members[i], step)`` and the element's position in ``shape``.
    """

    def __init__(self, seed: int, members: torch.Tensor | range | list[int]):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        members = torch.as_tensor(list(members) if isinstance(members, range) else members,
                                  dtype=torch.int64)
        if members.ndim != 1:
            raise ValueError(f"members must be one-dimensional, got shape {tuple(members.shape)}")
        if members.numel() and int(members.min()) < 0:
            raise ValueError(f"member indices must be non-negative, got {int(members.min())}")
        self.seed = seed
        self.members = members

    def to(self, device: torch.device | str) -> "CounterRNG":
        out = CounterRNG(self.seed, self.members.to(device))
        return out

    def _bits(self, shape: tuple[int, ...], step: int, stream: int, lane: int) -> torch.Tensor:
        key = _mix_int(_mix_int(_mix_int(self.seed * 0x100 + stream) + step) + lane)
        n = math.prod(shape)
        device = self.members.device
        member_key = _mix(self.members * _GOLDEN + key)  # (M,)
        elem = torch.arange(n, dtype=torch.int64, device=device)
        bits = _mix(member_key[:, None] + (elem[None, :] + 1) * _GOLDEN)
        return bits.reshape(len(self.members), *shape)

    def uniform(self, shape: tuple[int, ...] | torch.Size, *, step: int = 0, stream: int = STREAM_NOISE,
                dtype: torch.dtype = torch.float64, lane: int = 0) -> torch.Tensor:
        """Uniform variates on (0, 1], shape ``(M, *shape)``."""
        shape = tuple(shape)
        bits = _shr(self._bits(shape, step, stream, lane), 11)  # 53 random bits
        u = (bits.to(torch.float64) + 1.0) * 2.0**-53
        return u.to(dtype)

    def normal(self, shape: tuple[int, ...] | torch.Size, *, step: int = 0, stream: int = STREAM_NOISE,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Standard normal variates (Box–Muller), shape ``(M, *shape)``."""
        u1 = self.uniform(shape, step=step, stream=stream, lane=0)
        u2 = self.uniform(shape, step=step, stream=stream, lane=1)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
        return z.to(dtype)
