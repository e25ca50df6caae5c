r"""Fourier helpers for periodic 1-D PDEs on ``n`` equispaced points of a domain of length ``ℓ``.

Real FFT along the last dimension: mode ``m = 0 … n/2`` has wavenumber
:math:`k_m = 2πm/ℓ`. Products are dealiased by zero-padding (Orszag 1971;
Canuto et al. 2006, §3.2): a product of ``p`` factors is exact for the retained
modes when the padded grid has at least :math:`(p+1)n/2` points, so the
3/2-rule serves a quadratic term and 2× padding a cubic one.
"""
from __future__ import annotations

import math

import torch

__all__ = ["wavenumbers", "padded_power", "spectral_derivative", "grid"]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
        raise ValueError(f"parameter n (grid points) must be an even integer >= 4, got {n!r}")


def grid(n: int, x_min: float, length: float) -> torch.Tensor:
    """Grid points ``x_min + ℓ j / n``, ``j = 0 … n−1`` (float64, ``(n,)``)."""
    _check_n(n)
    return x_min + length * torch.arange(n, dtype=torch.float64) / n


def wavenumbers(n: int, length: float, *, odd: bool = False) -> torch.Tensor:
    """Wavenumbers ``2πm/ℓ`` of the rfft modes ``m = 0 … n/2`` (float64, ``(n//2+1,)``).

    ``odd=True`` zeroes the Nyquist mode, as an odd derivative of a real signal must.
    """
    _check_n(n)
    k = (2.0 * math.pi / length) * torch.arange(n // 2 + 1, dtype=torch.float64)
    if odd:
        k[-1] = 0.0
    return k


def padded_power(uh: torch.Tensor, n: int, power: int, pad: float) -> torch.Tensor:
    r"""The rfft (length-``n`` convention) of :math:`u^p`, computed on ``⌈pad·n⌉`` points
    and truncated back to ``n//2+1`` modes with the Nyquist mode zeroed.

    ``uh``: ``(..., n//2+1)`` rfft coefficients of ``u``.
    """
    if pad < 1:
        raise ValueError(f"padding factor must be >= 1, got {pad!r}")
    m = int(math.ceil(pad * n / 2)) * 2
    big = torch.zeros(*uh.shape[:-1], m // 2 + 1, dtype=uh.dtype, device=uh.device)
    big[..., : n // 2] = uh[..., : n // 2]
    u = torch.fft.irfft(big, n=m, dim=-1) * (m / n)
    ph = torch.fft.rfft(u ** power, dim=-1)[..., : n // 2 + 1] * (n / m)
    ph = ph.clone()
    ph[..., -1] = 0
    return ph


def spectral_derivative(u: torch.Tensor, length: float, order: int) -> torch.Tensor:
    r""":math:`∂_x^{order} u` of real periodic samples ``(..., n)`` by the FFT (Nyquist zeroed for odd orders)."""
    n = u.shape[-1]
    k = wavenumbers(n, length, odd=order % 2 == 1).to(u.device)
    return torch.fft.irfft((1j * k) ** order * torch.fft.rfft(u, dim=-1), n=n, dim=-1)
