r"""Split systems: a linear part L and a nonlinear part N,

.. math::  \dot x = L\,x + N(t, x),

for implicit-explicit (IMEX) and exponential (ETDRK4) integrators. ``L`` is
constant in time and acts on the trailing state dimension(s); it is given as a
:class:`AbstractLinearOperator` that an integrator can apply, invert shifted,
or (when diagonal) exponentiate:

* :class:`DiagonalOperator`: ``L = F⁻¹ diag(λ) F`` where ``F`` is the identity
  or the real FFT along the last dimension (a Fourier-diagonal PDE operator such
  as ``d ∂²ₓ`` or ``−∂²ₓ − ∂⁴ₓ`` on a periodic grid);
* :class:`TridiagonalOperator`: a tridiagonal matrix along the last dimension
  (finite-volume diffusion on a latitude grid), solved by LAPACK's ``?gttrs``
  on the CPU or the Thomas algorithm elsewhere, batched over the leading dimensions;
* :class:`BorderedOperator`: an operator on ``(x, e)`` whose extra last component
  accumulates a linear functional of ``x`` (:math:`\dot e = c^\top x + …`): a budget
  integral carried in the state, solved by the inner operator plus one dot product.

A split system subclasses :class:`AbstractSplitSystem` and implements
:meth:`~AbstractSplitSystem.linear_operator` and
:meth:`~AbstractSplitSystem.nonlinear`; its :meth:`vector_field` is their sum,
so every other integrator (RK4, Dormand–Prince) runs it unchanged.
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from scipy.linalg import lapack

from .core import AbstractSystem

__all__ = ["AbstractLinearOperator", "DiagonalOperator", "TridiagonalOperator", "BorderedOperator",
           "AbstractSplitSystem"]

_GTTRF = {torch.float64: lapack.dgttrf, torch.float32: lapack.sgttrf}
_GTTRS = {torch.float64: lapack.dgttrs, torch.float32: lapack.sgttrs}
_PTTRF = {torch.float64: lapack.dpttrf, torch.float32: lapack.spttrf}
_PTTRS = {torch.float64: lapack.dpttrs, torch.float32: lapack.spttrs}


class AbstractLinearOperator:
    """A constant linear operator ``L`` on states ``(..., n)`` (last dim acted on)."""

    @abstractmethod
    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``L x`` for ``x`` of shape ``(..., n)``."""

    @abstractmethod
    def solve_shifted(self, a: float, b: torch.Tensor) -> torch.Tensor:
        """Solve ``(I − a L) y = b`` for ``y``; ``b`` is ``(..., n)``, ``a`` a real scalar."""


class DiagonalOperator(AbstractLinearOperator):
    r"""``L = F⁻¹ diag(λ) F``.

    Args:
        eigenvalues: ``λ``, shape ``(n,)`` for ``basis="identity"`` or
            ``(n//2 + 1,)`` (complex or real) for ``basis="rfft"``, the real FFT of a
            length-``n`` real signal along the last dimension.
        basis: ``"identity"`` or ``"rfft"``.
        n: the physical length (needed for ``"rfft"``; odd and even ``n`` both work).
    """

    BASES = ("identity", "rfft")

    def __init__(self, eigenvalues: torch.Tensor, basis: str = "identity", n: int | None = None):
        if basis not in self.BASES:
            raise ValueError(f"basis must be one of {self.BASES}, got {basis!r}")
        if eigenvalues.ndim != 1:
            raise ValueError(f"eigenvalues must be 1-D, got shape {tuple(eigenvalues.shape)}")
        if basis == "rfft":
            if n is None or n < 1 or eigenvalues.shape[0] != n // 2 + 1:
                raise ValueError(f"an rfft-diagonal operator needs n with n//2 + 1 == {eigenvalues.shape[0]}, got n={n!r}")
        else:
            n = eigenvalues.shape[0]
        self.eigenvalues = eigenvalues
        self.basis = basis
        self.n = int(n)

    def to_basis(self, x: torch.Tensor) -> torch.Tensor:
        """``F x``: the coordinates in which ``L`` is diagonal."""
        return torch.fft.rfft(x, dim=-1) if self.basis == "rfft" else x

    def from_basis(self, xh: torch.Tensor) -> torch.Tensor:
        """``F⁻¹ x̂`` (real output)."""
        return torch.fft.irfft(xh, n=self.n, dim=-1) if self.basis == "rfft" else xh

    def _lam(self, like: torch.Tensor) -> torch.Tensor:
        lam = self.eigenvalues.to(like.device)
        return lam.to(like.dtype) if not like.is_complex() else lam.to(like.dtype)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        xh = self.to_basis(x)
        return self.from_basis(self._lam(xh) * xh)

    def solve_shifted(self, a: float, b: torch.Tensor) -> torch.Tensor:
        bh = self.to_basis(b)
        return self.from_basis(bh / (1 - a * self._lam(bh)))


class TridiagonalOperator(AbstractLinearOperator):
    """Tridiagonal ``L`` along the last dimension: ``(L x)_i = l_i x_{i-1} + d_i x_i + u_i x_{i+1}``.

    Args:
        lower: ``l``, shape ``(n,)`` (``l_0`` is ignored).
        diag: ``d``, shape ``(n,)``.
        upper: ``u``, shape ``(n,)`` (``u_{n-1}`` is ignored).

    :meth:`solve_shifted` factorises ``I − aL`` once per ``(a, dtype)`` with LAPACK and
    solves every right-hand side with it on CPU tensors of float32/float64 that need no
    gradient: ``?pttrf/?pttrs`` after a diagonal similarity when ``I − aL`` is
    symmetrisable and positive definite (diffusion on a non-uniform grid, damping),
    else ``?gttrf/?gttrs`` with pivoting. Each column is solved by the same scalar
    recurrence, so a member's result never depends on the others in the batch.
    Elsewhere (GPU, autograd) it runs the batched Thomas algorithm in torch.
    """

    def __init__(self, lower: torch.Tensor, diag: torch.Tensor, upper: torch.Tensor):
        n = diag.shape[-1]
        for name, t in (("lower", lower), ("diag", diag), ("upper", upper)):
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        self.lower, self.diag, self.upper = lower, diag, upper
        self.n = n
        self._factors: dict[tuple, tuple] = {}

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        l, d, u = (t.to(dtype=x.dtype, device=x.device) for t in (self.lower, self.diag, self.upper))
        y = d * x
        y[..., 1:].addcmul_(l[1:], x[..., :-1])
        y[..., :-1].addcmul_(u[:-1], x[..., 1:])
        return y

    def solve_shifted(self, a: float, b: torch.Tensor) -> torch.Tensor:
        """Solve ``(I − a L) y = b`` for ``b`` of shape ``(..., n)``, batched over the leading dims."""
        if b.shape[-1] != self.n:
            raise ValueError(f"right-hand side must have a last dimension of {self.n}, got shape {tuple(b.shape)}")
        if b.device.type == "cpu" and b.dtype in _GTTRS and not b.requires_grad and b.numel():
            return self._solve_lapack(float(a), b)
        return self._solve_thomas(a, b)

    def _factorise(self, a: float, dtype: torch.dtype) -> tuple:
        """LAPACK factors of ``I − aL``: ``("pt", scale, d, e)`` when a diagonal similarity
        ``S (I − aL) S⁻¹`` makes it symmetric positive definite (``?pttrf``, LDLᵀ without
        pivoting, about twice as fast to solve), else ``("gt", *gttrf factors)``."""
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        l, d, u = (t.detach().cpu().to(torch.float64).numpy() for t in (self.lower, self.diag, self.upper))
        sub, main, sup = -a * l[1:], 1.0 - a * d, -a * u[:-1]
        prod = sub * sup
        if np.all(prod > 0) or (np.all(prod >= 0) and np.array_equal(sub == 0, sup == 0)):
            ratio = np.where(sub != 0, np.sqrt(np.abs(sup / np.where(sub != 0, sub, 1.0))), 1.0)
            scale = np.concatenate(([1.0], np.cumprod(ratio)))            # s_{i+1} = s_i sqrt(sup_i / sub_i)
            if np.all(np.isfinite(scale)) and scale.max() / scale.min() < 1e100:
                e = np.sign(sup) * np.sqrt(prod)                            # the symmetric off-diagonal
                dd, ee, info = _PTTRF[dtype](main.astype(np_dtype), e.astype(np_dtype))
                if info == 0:
                    return ("pt", torch.as_tensor(scale, dtype=dtype), dd, ee)
        *factors, info = _GTTRF[dtype](sub.astype(np_dtype), main.astype(np_dtype), sup.astype(np_dtype))
        if info != 0:
            raise ValueError(f"I - a L is singular for a={a!r} (LAPACK gttrf info={info})")
        return ("gt", *factors)

    def _solve_lapack(self, a: float, b: torch.Tensor) -> torch.Tensor:
        key = (a, b.dtype)
        factors = self._factors.get(key)
        if factors is None:
            factors = self._factors[key] = self._factorise(a, b.dtype)
        kind, *factors = factors
        if kind == "pt":  # S (I − aL) S⁻¹ (S y) = S b
            scale = factors[0]
            rhs = (b.reshape(-1, self.n) * scale).numpy().T         # (n, B) Fortran order, our own copy
            z, info = _PTTRS[b.dtype](factors[1], factors[2], rhs, overwrite_b=1)
            y = torch.from_numpy(z.T).div_(scale)
        else:
            rhs = b.reshape(-1, self.n).contiguous()
            z, info = _GTTRS[b.dtype](*factors, rhs.numpy().T)      # no copy of b: gttrs copies it
            y = torch.from_numpy(z.T)
        if info != 0:  # pragma: no cover - only on invalid arguments
            raise ValueError(f"LAPACK tridiagonal solve failed with info={info}")
        return y.reshape(b.shape)

    def _solve_thomas(self, a: float, b: torch.Tensor) -> torch.Tensor:
        """Thomas algorithm for ``(I − a L) y = b``, batched over the leading dims of ``b``."""
        l, d, u = (t.to(dtype=b.dtype, device=b.device) for t in (self.lower, self.diag, self.upper))
        sub, main, sup = -a * l, 1 - a * d, -a * u
        n = self.n
        c = torch.empty_like(main)
        cols = b.unbind(-1)
        c[0] = sup[0] / main[0]
        y_prev = cols[0] / main[0]
        ys = [y_prev]
        for i in range(1, n):
            denom = main[i] - sub[i] * c[i - 1]
            if i < n - 1:
                c[i] = sup[i] / denom
            y_prev = (cols[i] - sub[i] * y_prev) / denom
            ys.append(y_prev)
        for i in range(n - 2, -1, -1):
            ys[i] = ys[i] - c[i] * ys[i + 1]
        return torch.stack(ys, dim=-1)


class BorderedOperator(AbstractLinearOperator):
    r"""``L = [[A, 0], [cᵀ, 0]]`` on states ``(..., n + 1)``: ``A`` acts on the first ``n``
    components and the last one accumulates :math:`c^\top x` (it never feeds back).

    For a budget integral carried in the state (:math:`\dot e = c^\top x + N_e`, e.g. the
    accumulated heating of an energy-balance model whose ``−B T`` sits in ``A``):
    ``(I − aL) y = b`` is solved by :math:`y_x = (I − aA)^{-1} b_x`,
    :math:`y_e = b_e + a\,c^\top y_x`.

    Args:
        inner: the operator ``A`` on the first ``n`` components.
        row: ``c``, shape ``(n,)``.
    """

    def __init__(self, inner: AbstractLinearOperator, row: torch.Tensor):
        if row.ndim != 1:
            raise ValueError(f"row must be 1-D, got shape {tuple(row.shape)}")
        self.inner = inner
        self.row = row
        self.n = row.shape[0] + 1

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] != self.n:
            raise ValueError(f"states must have a last dimension of {self.n}, got shape {tuple(x.shape)}")
        return x[..., :-1], x[..., -1:]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        xs, _ = self._split(x)
        c = self.row.to(dtype=x.dtype, device=x.device)
        return torch.cat((self.inner.matvec(xs), (xs * c).sum(-1, keepdim=True)), dim=-1)

    def solve_shifted(self, a: float, b: torch.Tensor) -> torch.Tensor:
        bs, be = self._split(b)
        ys = self.inner.solve_shifted(a, bs)
        c = self.row.to(dtype=b.dtype, device=b.device)
        return torch.cat((ys, be + a * (ys * c).sum(-1, keepdim=True)), dim=-1)


class AbstractSplitSystem(AbstractSystem):
    r"""A system whose drift is ``f(t, x) = L x + N(t, x)``; see the module docstring."""

    @abstractmethod
    def linear_operator(self, dtype: torch.dtype = torch.float64,
                        device: torch.device | str = "cpu") -> AbstractLinearOperator:
        """The constant linear part ``L`` (acting on the last state dimension)."""

    @abstractmethod
    def nonlinear(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The remainder ``N(t, x) = f(t, x) − L x``, same shape as ``x``."""

    def vector_field(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.linear_operator(x.dtype, x.device).matvec(x) + self.nonlinear(t, x)
