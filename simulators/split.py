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
  (finite-volume diffusion on a latitude grid), solved by the Thomas algorithm,
  batched over the leading dimensions.

A split system subclasses :class:`AbstractSplitSystem` and implements
:meth:`~AbstractSplitSystem.linear_operator` and
:meth:`~AbstractSplitSystem.nonlinear`; its :meth:`vector_field` is their sum,
so every other integrator (RK4, Dormand–Prince) runs it unchanged.
"""
from __future__ import annotations

from abc import abstractmethod
import torch

from .core import AbstractSystem

__all__ = ["AbstractLinearOperator", "DiagonalOperator", "TridiagonalOperator", "AbstractSplitSystem"]


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
    """

    def __init__(self, lower: torch.Tensor, diag: torch.Tensor, upper: torch.Tensor):
        n = diag.shape[-1]
        for name, t in (("lower", lower), ("diag", diag), ("upper", upper)):
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        self.lower, self.diag, self.upper = lower, diag, upper
        self.n = n

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        l, d, u = (t.to(dtype=x.dtype, device=x.device) for t in (self.lower, self.diag, self.upper))
        y = d * x
        y[..., 1:] += l[1:] * x[..., :-1]
        y[..., :-1] += u[:-1] * x[..., 1:]
        return y

    def solve_shifted(self, a: float, b: torch.Tensor) -> torch.Tensor:
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
