r"""HiPPO matrices: online projection of a signal's history onto orthogonal polynomials.

Gu, Dao, Ermon, Rudra, Ré, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections" (NeurIPS 2020); Gu, Johnson, Timalsina, Rudra, Ré, "How to Train Your
HiPPO" (ICLR 2023) for FouT.

A measure :math:`\mu^{(t)}` on the past and an orthonormal basis :math:`\{g_n\}` of
:math:`L^2(\mu^{(t)})` define coefficients
:math:`c_n(t) = \int f(s)\, g_n^{(t)}(s)\, d\mu^{(t)}(s)`, and
:math:`f(s) \approx \sum_{n<N} c_n(t)\, g_n^{(t)}(s)` on the support of the measure.
For the measures below ``c`` obeys a linear ODE driven by the newest value
:math:`f(t)`:

* ``legs`` (scaled Legendre, uniform on :math:`[0, t]`):
  :math:`\dot c = \tfrac1t (A c + B f)`, basis :math:`g_n(s) = \sqrt{2n+1}\,P_n(2s/t - 1)`,
  :math:`A_{nk} = -\sqrt{2n+1}\sqrt{2k+1}` (n > k), :math:`-(n+1)` (n = k), 0 (n < k);
  :math:`B_n = \sqrt{2n+1}`. Exact: no truncation error enters the ODE.
* ``legt`` (translated Legendre, uniform on the window :math:`[t-\theta, t]`):
  :math:`\dot c = A c + B f`, basis :math:`g_n(s) = \sqrt{2n+1}\,P_n(x)`,
  :math:`x = 2(s-t)/\theta + 1 \in [-1, 1]`;
  :math:`A_{nk} = -\tfrac1\theta\sqrt{2n+1}\sqrt{2k+1}\,\{1 \text{ if } k \le n;\ (-1)^{n-k} \text{ if } k > n\}`,
  :math:`B_n = \tfrac1\theta\sqrt{2n+1}`.
  Derivation: differentiating :math:`c_n = \tfrac12\int_{-1}^1 f\,g_n\,dx` gives
  :math:`\tfrac1\theta g_n(1) f(t) - \tfrac1\theta g_n(-1) f(t-\theta) - \tfrac2\theta\tfrac12\int f g_n' dx`
  with :math:`P_n' = \sum_{k<n,\ n-k \text{ odd}} (2k+1) P_k`; the value leaving the window,
  :math:`f(t-\theta)`, is replaced by its reconstruction :math:`\sum_k c_k g_k(-1)`.
  This is exact when f is a polynomial of degree < N on the window.
* ``lagt`` (translated Laguerre, :math:`\tfrac1\theta e^{-(t-s)/\theta}` on :math:`(-\infty, t]`):
  :math:`\dot c = A c + B f`, basis :math:`g_n(s) = L_n((t-s)/\theta)`,
  :math:`A_{nk} = -\tfrac1\theta` (k ≤ n), 0 (k > n); :math:`B_n = \tfrac1\theta`
  (from :math:`L_n(0) = 1` and :math:`L_n' = -\sum_{k<n} L_k`). Here θ is the memory's
  time scale rather than a hard window.
* ``fout`` (translated Fourier, uniform on :math:`[t-\theta, t]`):
  :math:`\dot c = A c + B f`, basis on :math:`x = (s - t)/\theta + 1 \in [0, 1]` ordered
  :math:`g_0 = 1,\ g_{2k-1} = \sqrt2\cos 2\pi k x,\ g_{2k} = \sqrt2\sin 2\pi k x`.
  The boundary term :math:`\tfrac1\theta g_n(0)\,(f(t) - f(t-\theta))` uses the truncated
  series' value at the seam, :math:`\sum_k c_k g_k(0) \approx (f(t) + f(t-\theta))/2`,
  so :math:`A = \tfrac1\theta(-2\,g(0) g(0)^\top + J)`, :math:`B = \tfrac2\theta g(0)`,
  with :math:`g(0) = (1, \sqrt2, 0, \sqrt2, 0, \dots)` and the rotation
  :math:`J_{2k-1, 2k} = 2\pi k = -J_{2k, 2k-1}`. Exact for θ-periodic inputs whose
  frequencies are all kept.

All matrices are float64; A is (N, N), B is (N,).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable, NamedTuple

import torch
from torch import Tensor

__all__ = ["MEASURES", "NPLR", "hippo_matrix", "hippo_nplr", "legendre_endpoint_derivatives"]


def _check_size(N, name: str = "N") -> int:
    if isinstance(N, bool) or not isinstance(N, Integral) or N < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {N!r}")
    return int(N)


def _check_theta(theta) -> float:
    if isinstance(theta, bool) or not isinstance(theta, Real) or not math.isfinite(theta) or theta <= 0:
        raise ValueError(f"theta (window length) must be a finite number > 0, got {theta!r}")
    return float(theta)


def _root_2n1(N: int) -> Tensor:
    return torch.sqrt(2.0 * torch.arange(N, dtype=torch.float64) + 1.0)  # (N,)


def _legs(N: int, theta: float) -> tuple[Tensor, Tensor]:
    r = _root_2n1(N)
    A = -torch.tril(r[:, None] * r[None, :], diagonal=-1)
    A = A - torch.diag(torch.arange(1, N + 1, dtype=torch.float64))
    return A, r.clone()


def _legt(N: int, theta: float) -> tuple[Tensor, Tensor]:
    r = _root_2n1(N)
    n = torch.arange(N)
    sign = torch.where(n[None, :] <= n[:, None], 1.0, (-1.0) ** (n[:, None] - n[None, :]).double())
    A = -(r[:, None] * r[None, :]) * sign / theta
    return A, r / theta


def _lagt(N: int, theta: float) -> tuple[Tensor, Tensor]:
    A = -torch.tril(torch.ones(N, N, dtype=torch.float64)) / theta
    return A, torch.ones(N, dtype=torch.float64) / theta


def _fout(N: int, theta: float) -> tuple[Tensor, Tensor]:
    n = torch.arange(N)
    # value of each basis function at the seam x = 0 (equal to its value at x = 1)
    seam = torch.where(n == 0, 1.0, torch.where(n % 2 == 1, math.sqrt(2.0), 0.0)).double()
    rotation = torch.zeros(N, N, dtype=torch.float64)
    for cos_index in range(1, N - 1, 2):  # pair (cos_k, sin_k) = (2k-1, 2k)
        omega = 2.0 * math.pi * ((cos_index + 1) // 2)
        rotation[cos_index, cos_index + 1] = omega
        rotation[cos_index + 1, cos_index] = -omega
    A = (-2.0 * seam[:, None] * seam[None, :] + rotation) / theta
    return A, 2.0 * seam / theta


MEASURES: dict[str, Callable[[int, float], tuple[Tensor, Tensor]]] = {
    "legs": _legs, "legt": _legt, "lagt": _lagt, "fout": _fout,
}


def hippo_matrix(measure: str, N: int, theta: float = 1.0) -> tuple[Tensor, Tensor]:
    """HiPPO transition ``A`` (N, N) and input ``B`` (N,), float64, for ``measure``.

    ``measure`` is one of ``legs``, ``legt``, ``lagt``, ``fout`` (conventions and
    maths in the module docstring). ``theta`` > 0 is the window length (time scale for
    ``lagt``) of the translated measures; ``legs`` ignores it and its dynamics carry
    the extra factor 1/t: dc/dt = (A c + B f)/t.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown HiPPO measure {measure!r}; expected one of {sorted(MEASURES)}")
    N = _check_size(N)
    theta = _check_theta(theta)
    return MEASURES[measure](N, theta)


class NPLR(NamedTuple):
    """Normal plus low rank form ``A = V diag(Λ) V* - P Pᵀ``.

    eigenvalues Λ: (N,) complex128, sorted by imaginary part; eigenvectors V: (N, N)
    complex128 and unitary; low_rank P: (N,) float64; B: (N,) float64 (the HiPPO input).
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    low_rank: Tensor
    B: Tensor


def hippo_nplr(measure: str, N: int) -> NPLR:
    r"""Normal-plus-low-rank decomposition of HiPPO-LegS (Gu, Goel, Ré, S4, 2022).

    With :math:`P_n = \sqrt{n + 1/2}`, :math:`S = A + P P^\top` has
    :math:`S_{nn} = -\tfrac12` and :math:`S_{nk} = -S_{kn} = -\tfrac12\sqrt{(2n+1)(2k+1)}`
    for n > k, i.e. :math:`S = -\tfrac12 I + K` with K skew-symmetric. S is normal; it is
    diagonalised through the Hermitian matrix :math:`iK = U \mu U^*` (``eigh``, stable —
    A itself is never eigendecomposed, it is far from normal), giving
    :math:`\Lambda = -\tfrac12 - i\mu` and ``V = U``. Only ``measure="legs"`` is supported.
    """
    if measure != "legs":
        raise ValueError(f"hippo_nplr supports measure 'legs' only, got {measure!r}")
    N = _check_size(N)
    A, B = _legs(N, 1.0)
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    S = A + P[:, None] * P[None, :]
    skew = 0.5 * (S - S.T)
    mu, V = torch.linalg.eigh(1j * skew.to(torch.complex128))  # iK = V diag(mu) V*
    eigenvalues = -0.5 - 1j * mu.to(torch.complex128)  # K = V diag(-i mu) V*
    order = torch.argsort(eigenvalues.imag)
    return NPLR(eigenvalues[order], V[:, order], P, B)


def legendre_endpoint_derivatives(N: int, max_order: int) -> Tensor:
    r"""``D[m, n] = g_n^{(m)}(1)`` for :math:`g_n = \sqrt{2n+1} P_n`, m = 0..max_order.

    :math:`P_n^{(m)}(1) = \frac{(n+m)!}{2^m\, m!\, (n-m)!}` for m ≤ n and 0 for m > n
    (m = 1: :math:`P_n'(1) = n(n+1)/2`; by parity :math:`P_n^{(m)}(-1) = (-1)^{n+m} P_n^{(m)}(1)`).
    Returns (max_order + 1, N) float64. Computed through log-gamma so that large N does
    not overflow integers.
    """
    N = _check_size(N)
    if isinstance(max_order, bool) or not isinstance(max_order, Integral) or max_order < 0:
        raise ValueError(f"max_order must be an integer >= 0, got {max_order!r}")
    n = torch.arange(N, dtype=torch.float64)
    rows = []
    for m in range(int(max_order) + 1):
        log_value = (torch.lgamma(n + m + 1) - torch.lgamma((n - m).clamp(min=0) + 1)
                     - m * math.log(2.0) - math.lgamma(m + 1))
        rows.append(torch.where(n >= m, torch.exp(log_value), torch.zeros_like(n)))
    return torch.stack(rows) * _root_2n1(N)  # (max_order + 1, N)
