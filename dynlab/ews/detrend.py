r"""Detrending of batched series ``(B, T)``: Gaussian kernel, LOWESS, linear, none.

Every method returns the trend ``(B, T)``; the residuals are ``x − trend``.
Conventions follow ewstools (Bury 2023, ewstools 2.x ``TimeSeries.detrend``):

* **gaussian**: the bandwidth ``bw`` is a number of points (a value in (0, 1] is a
  fraction of the series length ``T``, so ``bw·T`` points). As in R's ``ksmooth``
  (used by the R package ``earlywarnings``) the kernel's quartiles sit at
  ``±0.25·bw``; a Gaussian's quartiles are at ±0.675σ, so
  :math:`σ = (0.25/0.675)\,bw`. The kernel is truncated at radius
  ``int(4σ + 0.5)`` points and normalised to sum 1, and the series is extended
  by half-sample symmetric reflection (``d c b a | a b c d | d c b a``), the
  conventions of ``scipy.ndimage.gaussian_filter1d(mode="reflect")``. The
  convolution is done by FFT: O((T + r) log(T + r)) per series.
* **lowess**: Cleveland's (1979) locally weighted linear regression with
  ``k = int(span·T + 1e-10)`` nearest points (a span > 1 is a number of points),
  tricube weights :math:`(1 − d^3)^3` of the distance over the neighbourhood's
  radius, and 3 robustness iterations with bisquare weights of the residuals
  over 6 × their median absolute value (the conventions of statsmodels' ``lowess``
  with ``it=3, delta=0``, which ewstools calls). O(T·k) per series.
* **linear**: the least-squares line in time.
* **none**: the trend is zero and the indicators see the series itself.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["DETRENDERS", "gaussian_trend", "lowess_trend", "linear_trend", "no_trend", "points"]


def points(value: float, length: int, name: str) -> float:
    """A size given as a fraction of ``length`` (value in (0, 1]) or a number of points (> 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0 (a fraction in (0, 1] of the series or a count), got {value!r}")
    return value * length if value <= 1 else float(value)


def reflect_index(index: torch.Tensor, n: int) -> torch.Tensor:
    """Map any integer positions onto ``0 … n−1`` by half-sample symmetric reflection
    (period ``2n``: ``−1 → 0``, ``n → n−1``), scipy's ``mode="reflect"``."""
    period = index.remainder(2 * n)
    return torch.where(period >= n, 2 * n - 1 - period, period)


def gaussian_kernel(sigma: float, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Normalised Gaussian weights on ``−r … r``, ``r = int(4σ + 0.5)`` (scipy's truncation)."""
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (offsets / sigma) ** 2) if sigma > 0 else (offsets == 0).to(dtype)
    return w / w.sum()


def gaussian_trend(x: torch.Tensor, times: torch.Tensor, *, bandwidth: float = 0.2, **_) -> torch.Tensor:
    """Gaussian-kernel smoother of ``x`` ``(B, T)`` (module docstring); ``(B, T)``."""
    n = x.shape[-1]
    sigma = (0.25 / 0.675) * points(bandwidth, n, "bandwidth")
    w = gaussian_kernel(sigma, x.dtype, x.device)
    radius = (w.numel() - 1) // 2
    idx = reflect_index(torch.arange(-radius, n + radius, device=x.device), n)
    padded = x[..., idx]                                     # (B, T + 2r)
    size = padded.shape[-1] + w.numel() - 1
    nfft = 1 << (size - 1).bit_length()
    full = torch.fft.irfft(torch.fft.rfft(padded, nfft) * torch.fft.rfft(w, nfft), nfft)
    return full[..., 2 * radius: 2 * radius + n]


def _tricube(d: torch.Tensor) -> torch.Tensor:
    # clowess' cut-offs: weight 1 within 0.001 of the radius' fraction, 0 beyond 0.999
    w = (1 - d.clamp(max=1) ** 3) ** 3
    return torch.where(d <= 1e-3, torch.ones_like(w), torch.where(d > 0.999, torch.zeros_like(w), w))


def lowess_trend(x: torch.Tensor, times: torch.Tensor, *, span: float = 0.2, iterations: int = 3, **_) -> torch.Tensor:
    r"""LOWESS of ``x`` ``(B, T)`` against ``times`` ``(T,)`` (increasing); ``(B, T)``.

    For each point i the neighbourhood is the ``k`` points nearest in time (a
    contiguous window; it moves right while :math:`t_i > (t_{left} + t_{right})/2`),
    the radius the largest distance in it, the fit a weighted straight line.
    """
    n = x.shape[-1]
    k = int(points(span, n, "span") + 1e-10)
    if k < 2:
        raise ValueError(f"span={span!r} gives {k} point(s) per neighbourhood; lowess needs at least 2")
    k = min(k, n)
    t = times.to(x.dtype)
    # neighbourhood start for each i (statsmodels/clowess update rule, vectorised over i)
    left = torch.zeros(n, dtype=torch.int64, device=x.device)
    for i in range(1, n):  # O(T) scalar loop on times only (shared by the whole batch)
        l = int(left[i - 1])
        while l + k < n and float(t[i]) > (float(t[l]) + float(t[l + k])) / 2.0:
            l += 1
        left[i] = l
    window = left[:, None] + torch.arange(k, device=x.device)          # (T, k)
    tw = t[window]                                                      # (T, k)
    dist = (tw - t[:, None]).abs()
    radius = torch.maximum(t - t[left], t[left + k - 1] - t)            # (T,)
    base = _tricube(dist / radius.clamp_min(torch.finfo(x.dtype).tiny)[:, None])   # (T, k)
    xw = x[..., window]                                                 # (B, T, k)
    robust = torch.ones_like(x)
    fit = x
    for it in range(iterations + 1):
        w = base * robust[..., window]                                  # (B, T, k)
        sw = w.sum(-1).clamp_min(torch.finfo(x.dtype).tiny)
        tbar = (w * tw).sum(-1) / sw
        ybar = (w * xw).sum(-1) / sw
        dt = tw - tbar[..., None]
        stt = (w * dt * dt).sum(-1)
        slope = (w * dt * (xw - ybar[..., None])).sum(-1) / stt.clamp_min(torch.finfo(x.dtype).tiny)
        slope = torch.where(stt.sqrt() > 1e-3 * (t[-1] - t[0]).abs(), slope, torch.zeros_like(slope))
        fit = ybar + slope * (t - tbar)
        if it == iterations:
            break
        resid = x - fit
        # torch.median returns the lower middle value; use the mean of the two middles as numpy does
        srt = resid.abs().sort(dim=-1).values
        scale = 6.0 * 0.5 * (srt[..., (n - 1) // 2] + srt[..., n // 2])[..., None]
        u = (resid / scale.clamp_min(torch.finfo(x.dtype).tiny)).abs()
        robust = torch.where(u < 1, (1 - u * u) ** 2, torch.zeros_like(u))
    return fit


def linear_trend(x: torch.Tensor, times: torch.Tensor, **_) -> torch.Tensor:
    """Least-squares straight line through ``x`` ``(B, T)`` against ``times``; ``(B, T)``."""
    t = times.to(x.dtype)
    tc = t - t.mean()
    slope = (x * tc).sum(-1, keepdim=True) / (tc * tc).sum()
    return x.mean(-1, keepdim=True) + slope * tc


def no_trend(x: torch.Tensor, times: torch.Tensor, **_) -> torch.Tensor:
    """Zero trend: the indicators are computed on ``x`` itself."""
    return torch.zeros_like(x)


DETRENDERS: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian": gaussian_trend,
    "lowess": lowess_trend,
    "linear": linear_trend,
    "none": no_trend,
}
