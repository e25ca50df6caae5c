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

__all__ = ["ROLLING", "window_sums"]


def window_sums(v: torch.Tensor, w: int) -> torch.Tensor:
    """Sums over trailing windows of ``w`` points: ``(..., T) -> (..., T)`` (NaN before index w − 1)."""
    c = torch.cumsum(v, dim=-1)
    c = torch.cat([torch.zeros_like(c[..., :1]), c], dim=-1)      # (..., T + 1)
    out = torch.full_like(v, float("nan"))
    out[..., w - 1:] = c[..., w:] - c[..., :-w]
    return out


def _central(r: torch.Tensor, w: int):
    """Window count, mean and central sums S2, S3, S4 of ``r`` ``(B, T)`` over trailing windows."""
    z = r - r.nanmean(dim=-1, keepdim=True)
    s1, s2 = window_sums(z, w), window_sums(z * z, w)
    mean = s1 / w
    return z, mean, s1, s2


def variance(r, x, w):
    _, mean, s1, s2 = _central(r, w)
    return (s2 - s1 * mean) / (w - 1)


def std(r, x, w):
    return variance(r, x, w).clamp_min(0).sqrt()


def cv(r, x, w):
    return std(r, x, w) / (window_sums(x, w) / w)


def ac1(r, x, w):
    z = r - r.nanmean(dim=-1, keepdim=True)
    a, b = z[..., :-1], z[..., 1:]                                 # pairs (z_j, z_{j+1})
    n = w - 1
    sa, sb = window_sums(a, n), window_sums(b, n)
    saa, sbb, sab = window_sums(a * a, n), window_sums(b * b, n), window_sums(a * b, n)
    cov = sab - sa * sb / n
    va, vb = saa - sa * sa / n, sbb - sb * sb / n
    out = torch.full_like(r, float("nan"))
    out[..., 1:] = cov / (va * vb).sqrt()                          # pair j ends at index j + 1
    return out


def _moments(r, w):
    z = r - r.nanmean(dim=-1, keepdim=True)
    s1, s2, s3, s4 = (window_sums(z ** k, w) for k in (1, 2, 3, 4))
    mu = s1 / w
    m2 = s2 / w - mu ** 2
    m3 = s3 / w - 3 * mu * s2 / w + 2 * mu ** 3
    m4 = s4 / w - 4 * mu * s3 / w + 6 * mu ** 2 * s2 / w - 3 * mu ** 4
    return m2, m3, m4


def skewness(r, x, w):
    m2, m3, _ = _moments(r, w)
    n = float(w)
    return (n * (n - 1)) ** 0.5 / (n - 2) * m3 / m2 ** 1.5


def kurtosis(r, x, w):
    m2, _, m4 = _moments(r, w)
    n = float(w)
    return (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)


# name -> (function of residuals r (B, T), state x (B, T), window w; smallest window it needs)
ROLLING: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], int]] = {
    "variance": (variance, 2),
    "std": (std, 2),
    "cv": (cv, 2),
    "ac1": (ac1, 3),
    "skewness": (skewness, 3),
    "kurtosis": (kurtosis, 4),
}
