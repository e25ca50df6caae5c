r"""Kendall's τ of batched series against time, in O(T log² T) by counting inversions.

For a series :math:`y_1 … y_n` in time order (time has no ties), Kendall's
:math:`τ_b` against time is

.. math:: τ_b = \frac{n_0 − n_y − 2D}{\sqrt{n_0\,(n_0 − n_y)}},
          \qquad n_0 = \tfrac{n(n−1)}{2},

with D the discordant pairs (i < j, :math:`y_i > y_j`: the inversions) and
:math:`n_y` the tied pairs (:math:`y_i = y_j`); this is scipy's ``kendalltau``
(variant b), which pandas and ewstools call. Inversions and ties are counted
by a bottom-up merge: at level ℓ the series is cut into blocks of
:math:`2^{ℓ+1}` points; every pair (i, j) lies in sibling halves of exactly one
block, where sorting the left half once and locating each right-half value in it
(``searchsorted``) counts the left values above and equal to it. Every level is a
batched sort and search, so thousands of series go at once.
"""
from __future__ import annotations

import torch

__all__ = ["kendall_tau_tensor", "inversions_and_ties"]


def inversions_and_ties(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs i < j with ``y_i > y_j`` and with ``y_i == y_j``, per row of ``y`` ``(B, n)``
    (no NaN; the row is padded with +inf to a power of two, and the ties among all
    +inf values, the row's own included, are *not* removed). Two int64 tensors ``(B,)``."""
    B, n = y.shape
    size = 1 << max(n - 1, 0).bit_length()
    if size > n:  # +inf padding at the end adds no inversions; its ties are removed below
        y = torch.cat([y, y.new_full((B, size - n), float("inf"))], dim=-1)
    inv = torch.zeros(B, dtype=torch.int64, device=y.device)
    ties = torch.zeros(B, dtype=torch.int64, device=y.device)
    half = 1
    while half < size:
        blocks = y.reshape(B, size // (2 * half), 2, half)          # (B, nb, 2, half)
        left = blocks[:, :, 0].sort(dim=-1).values.contiguous()
        right = blocks[:, :, 1].contiguous()
        below_or_equal = torch.searchsorted(left, right, right=True)   # left values <= each right value
        below = torch.searchsorted(left, right, right=False)            # left values < each right value
        inv += (half - below_or_equal).sum(dim=(1, 2))
        ties += (below_or_equal - below).sum(dim=(1, 2))
        half *= 2
    return inv, ties


def kendall_tau_tensor(y: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """:math:`τ_b` of each row of ``y`` ``(B, n)`` against its position, using only the points
    where ``valid`` ``(B, n)`` is true and ``y`` is finite (default: the finite ones). ``(B,)`` float64; NaN where
    fewer than 2 points are valid or all valid values are equal."""
    if y.ndim != 2:
        raise ValueError(f"y must have shape (B, n), got {tuple(y.shape)}")
    ok = torch.isfinite(y) if valid is None else (valid & torch.isfinite(y))
    # move the excluded points to the end, keeping the order of the others, and set them to +inf
    order = torch.sort((~ok).to(torch.int8), dim=-1, stable=True).indices
    yc = torch.where(ok, y, torch.full_like(y, float("inf"))).gather(-1, order).to(torch.float64)
    inv, ties = inversions_and_ties(yc)
    m = ok.sum(-1)
    fill = (1 << max(y.shape[-1] - 1, 0).bit_length()) - m    # excluded points and padding, all +inf
    ties = ties - fill * (fill - 1) // 2
    n0 = (m * (m - 1) // 2).to(torch.float64)
    ties = ties.to(torch.float64)
    tau = (n0 - ties - 2 * inv.to(torch.float64)) / torch.sqrt(n0 * (n0 - ties))
    return torch.where((m >= 2) & (n0 > ties), tau, torch.full_like(tau, float("nan")))
