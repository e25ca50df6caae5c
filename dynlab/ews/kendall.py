r"""Kendall's τ of batched series against time, in O(T log² T) by counting inversions (no O(T²) pair loop).

For a series :math:`y_1 … y_n` in time order (time has no ties), Kendall's
:math:`τ_b` against time is

.. math:: τ_b = \frac{n_0 − n_y − 2D}{\sqrt{n_0\,(n_0 − n_y)}},
          \qquad n_0 = \tfrac{n(n−1)}{2},

with D the discordant pairs (i < j, :math:`y_i > y_j`: the inversions) and
:math:`n_y` the tied pairs (:math:`y_i = y_j`); this is scipy's ``kendalltau``
(variant b), which pandas and ewstools call. Inversions and ties are counted
by a bottom-up merge: at level ℓ the series is cut into blocks of
:math:`2^{ℓ+1}` points; every pair (i, j) lies in sibling halves of exactly one
block, where locating each right-half value in the sorted left half (``searchsorted``)
counts the left values above it; the same searches give the merged order for the next
level. Every level is a batched search and scatter, so thousands of series go at once.
"""
from __future__ import annotations

import torch

__all__ = ["kendall_tau_tensor", "inversions_and_ties"]

SMALL_BLOCK = 4  # halves up to this size are merged by all-pairs comparison


def inversions_and_ties(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs i < j with ``y_i > y_j`` and with ``y_i == y_j``, per row of ``y`` ``(B, n)``
    (no NaN; the row is padded with +inf to a power of two, and the ties among all
    +inf values, the row's own included, are *not* removed). Two int64 tensors ``(B,)``.

    Bottom-up merge sort: at each level the sorted halves of every block are merged by
    placing each element at (its index in its half) + (how many elements of the other half
    precede it), both from ``searchsorted``; the right half's counts of left values ≤ it give
    the inversions. Ties are counted once on the fully sorted row."""
    B, n = y.shape
    size = 1 << max(n - 1, 0).bit_length()
    if size > n:  # +inf padding at the end adds no inversions
        y = torch.cat([y, y.new_full((B, size - n), float("inf"))], dim=-1)
    inv = torch.zeros(B, dtype=torch.int64, device=y.device)
    s = y.contiguous()                                             # blocks of 1 are sorted
    half = 1
    while half < size:
        blocks = s.reshape(B, size // (2 * half), 2, half)
        left, right = blocks[:, :, 0].contiguous(), blocks[:, :, 1].contiguous()
        if half <= SMALL_BLOCK:  # tiny blocks: compare all pairs (cheaper than many tiny searches)
            left_le = (left[..., None, :] <= right[..., :, None]).sum(-1)
            right_lt = (right[..., None, :] < left[..., :, None]).sum(-1)
        else:
            left_le = torch.searchsorted(left, right, right=True)     # left values <= each right value
            right_lt = torch.searchsorted(right, left, right=False)   # right values < each left value
        inv += (half - left_le).sum(dim=(1, 2))
        idx = torch.arange(half, device=y.device)
        merged = torch.empty_like(s).reshape(B, size // (2 * half), 2 * half)
        merged.scatter_(-1, idx + right_lt, left)                 # stable merge positions
        merged.scatter_(-1, idx + left_le, right)
        s = merged.reshape(B, size)
        half *= 2
    # tied pairs from the sorted row: each element ties with those before it in its run
    pos = torch.arange(size, device=y.device).expand(B, size)
    start = torch.ones_like(s, dtype=torch.bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    run_start = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), dim=-1).values
    ties = (pos - run_start).sum(-1)
    return inv, ties


def kendall_tau_tensor(y: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """:math:`τ_b` of each row of ``y`` ``(B, n)`` against its position, using only the points
    where ``valid`` ``(B, n)`` is true and ``y`` is finite (default: the finite ones). ``(B,)`` float64; NaN where
    fewer than 2 points are valid or all valid values are equal."""
    if y.ndim != 2:
        raise ValueError(f"y must have shape (B, n), got {tuple(y.shape)}")
    ok = torch.isfinite(y) if valid is None else (valid & torch.isfinite(y))
    m = ok.sum(-1)
    width = max(int(m.max()) if m.numel() else 0, 1)
    if bool((ok == ok[:1]).all()):  # the same points valid in every row (the usual NaN prefix): slice
        yc = y[:, ok[0]].to(torch.float64)
    else:  # move the excluded points to the end, keeping the order of the others, as +inf
        order = torch.sort((~ok).to(torch.int8), dim=-1, stable=True).indices
        yc = torch.where(ok, y, torch.full_like(y, float("inf"))).gather(-1, order)[:, :width].to(torch.float64)
    # rows in chunks of about 2**18 values, so that every merge level works in cache
    rows = max(1, (1 << 18) // (1 << max(width - 1, 0).bit_length()))
    inv, ties = zip(*(inversions_and_ties(yc[i:i + rows]) for i in range(0, yc.shape[0], rows))) \
        if yc.shape[0] else ((torch.zeros(0, dtype=torch.int64),), (torch.zeros(0, dtype=torch.int64),))
    inv, ties = torch.cat(inv), torch.cat(ties)
    fill = (1 << max(width - 1, 0).bit_length()) - m       # excluded points and padding, all +inf
    ties = ties - fill * (fill - 1) // 2
    n0 = (m * (m - 1) // 2).to(torch.float64)
    ties = ties.to(torch.float64)
    tau = (n0 - ties - 2 * inv.to(torch.float64)) / torch.sqrt(n0 * (n0 - ties))
    return torch.where((m >= 2) & (n0 > ties), tau, torch.full_like(tau, float("nan")))
