r"""Rolling-window indicators of batched series, O(T) by cumulative sums.

A window of ``w`` points is trailing: the value at index i uses points
``i − w + 1 … i`` and is NaN for i < w − 1 (pandas ``rolling(window=w)``, as
ewstools). All sums are accumulated in float64 after subtracting each series'
mean (the moments are shift invariant), so the cumulative sums do not cancel.

Definitions (ewstools 2.x, pandas' rolling estimators), on the residuals r and the
state x, with n = w points, :math:`m_k = \frac1n\sum (r − \bar r)^k`:

* ``variance`` :math:`\frac{1}{n−1}\sum (r − \bar r)^2` (ddof 1); ``std`` its root;
* ``cv`` = std of the residuals / mean of the *state* x over the window;
* ``ac1``: Pearson correlation of :math:`(r_{i−w+1} … r_{i−1})` with
  :math:`(r_{i−w+2} … r_i)`, each with its own mean and variance
  (``pandas.Series.autocorr(lag=1)``);
* ``skewness``: the bias-corrected :math:`G_1 = \frac{\sqrt{n(n−1)}}{n−2}\,m_3/m_2^{3/2}`;
* ``kurtosis``: the bias-corrected excess
  :math:`G_2 = \frac{n−1}{(n−2)(n−3)}\bigl((n+1)(m_4/m_2^2 − 3) + 6\bigr)`.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["ROLLING", "Windows", "window_sums"]


def window_sums(v: torch.Tensor, w: int) -> torch.Tensor:
    """Sums over trailing windows of ``w`` points: ``(..., T) -> (..., T)`` (NaN before index w − 1)."""
    c = torch.cumsum(v, dim=-1)
    c = torch.cat([torch.zeros_like(c[..., :1]), c], dim=-1)      # (..., T + 1)
    out = torch.full_like(v, float("nan"))
    out[..., w - 1:] = c[..., w:] - c[..., :-w]
    return out


class Windows:
    """Trailing-window sums of one batch, computed once and shared by every indicator.

    ``r`` residuals and ``x`` state ``(B, T)``, window ``w``. The residuals are centred by
    each series' mean before any power is summed (shift invariance keeps the cumulative
    sums from cancelling)."""

    def __init__(self, r: torch.Tensor, x: torch.Tensor, w: int):
        self.r, self.x, self.w = r, x, w
        self.z = r - r.mean(dim=-1, keepdim=True)
        self._sums: dict[int, torch.Tensor] = {}

    def power_sum(self, k: int) -> torch.Tensor:
        if k not in self._sums:
            self._sums[k] = window_sums(self.z ** k if k > 1 else self.z, self.w)
        return self._sums[k]


def variance(win: Windows):
    w = win.w
    s1, s2 = win.power_sum(1), win.power_sum(2)
    return (s2 - s1 * s1 / w) / (w - 1)


def std(win: Windows):
    return variance(win).clamp_min(0).sqrt()


def cv(win: Windows):
    return std(win) / (window_sums(win.x, win.w) / win.w)


def ac1(win: Windows):
    z = win.z
    a, b = z[..., :-1], z[..., 1:]                                 # pairs (z_j, z_{j+1})
    n = win.w - 1
    sa, sb = window_sums(a, n), window_sums(b, n)
    saa, sbb, sab = window_sums(a * a, n), window_sums(b * b, n), window_sums(a * b, n)
    cov = sab - sa * sb / n
    va, vb = saa - sa * sa / n, sbb - sb * sb / n
    out = torch.full_like(z, float("nan"))
    out[..., 1:] = cov / (va * vb).sqrt()                          # pair j ends at index j + 1
    return out


def _moments(win: Windows):
    w = win.w
    s1, s2, s3, s4 = (win.power_sum(k) for k in (1, 2, 3, 4))
    mu = s1 / w
    m2 = s2 / w - mu ** 2
    m3 = s3 / w - 3 * mu * s2 / w + 2 * mu ** 3
    m4 = s4 / w - 4 * mu * s3 / w + 6 * mu ** 2 * s2 / w - 3 * mu ** 4
    return m2, m3, m4


def skewness(win: Windows):
    m2, m3, _ = _moments(win)
    n = float(win.w)
    return (n * (n - 1)) ** 0.5 / (n - 2) * m3 / m2 ** 1.5


def kurtosis(win: Windows):
    m2, _, m4 = _moments(win)
    n = float(win.w)
    return (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)


# name -> (function of the shared window sums, smallest window it needs)
ROLLING: dict[str, tuple[Callable[[Windows], torch.Tensor], int]] = {
    "variance": (variance, 2),
    "std": (std, 2),
    "cv": (cv, 2),
    "ac1": (ac1, 3),
    "skewness": (skewness, 3),
    "kurtosis": (kurtosis, 4),
}
