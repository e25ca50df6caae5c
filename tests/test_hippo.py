"""HiPPO matrices: the ODE states of inputs the basis represents exactly are the exact
projections (checked against scipy's solve_ivp), and LegS's NPLR form."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import laguerre, legendre
from scipy.integrate import solve_ivp

from dynlab.models.ssm.hippo import hippo_matrix, hippo_nplr, legendre_endpoint_derivatives

N = 8
RNG = np.random.default_rng(0)
POLY = np.polynomial.Polynomial(RNG.standard_normal(N - 1))  # degree N - 2 < N


def scaled_legendre(x: np.ndarray) -> np.ndarray:
    """g_n(x) = sqrt(2n+1) P_n(x), shape (N, len(x))."""
    return np.stack([np.sqrt(2 * n + 1) * legendre.legval(x, np.eye(N)[n]) for n in range(N)])


def legendre_projection(f, start: float, end: float) -> np.ndarray:
    """c_n = (1/(end-start)) ∫ f(s) g_n(x(s)) ds, x = 2(s-start)/(end-start) - 1."""
    x, w = legendre.leggauss(64)
    s = start + (x + 1) * (end - start) / 2
    return scaled_legendre(x) @ (w * f(s)) / 2


def integrate(rhs, c0, t0, t1):
    sol = solve_ivp(rhs, (t0, t1), c0, method="DOP853", rtol=1e-12, atol=1e-13)
    assert sol.success
    return sol.y[:, -1]


def test_legs_state_of_polynomial_is_its_projection():
    A, B = (m.numpy() for m in hippo_matrix("legs", N))
    t0, t1 = 0.5, 3.0
    c1 = integrate(lambda t, c: (A @ c + B * POLY(t)) / t, legendre_projection(POLY, 0.0, t0), t0, t1)
    np.testing.assert_allclose(c1, legendre_projection(POLY, 0.0, t1), atol=1e-9)
    s = np.linspace(0.0, t1, 50)
    np.testing.assert_allclose(c1 @ scaled_legendre(2 * s / t1 - 1), POLY(s), atol=1e-8)


def test_legt_state_of_polynomial_is_its_projection():
    theta = 1.5
    A, B = (m.numpy() for m in hippo_matrix("legt", N, theta=theta))
    t0, t1 = 0.0, 2.0  # the window moves by more than its length
    c1 = integrate(lambda t, c: A @ c + B * POLY(t), legendre_projection(POLY, t0 - theta, t0), t0, t1)
    np.testing.assert_allclose(c1, legendre_projection(POLY, t1 - theta, t1), atol=1e-9)
    s = np.linspace(t1 - theta, t1, 50)
    np.testing.assert_allclose(c1 @ scaled_legendre(2 * (s - t1) / theta + 1), POLY(s), atol=1e-8)


def test_lagt_state_of_polynomial_is_its_projection():
    theta = 0.7
    A, B = (m.numpy() for m in hippo_matrix("lagt", N, theta=theta))
    x, w = laguerre.laggauss(40)
    basis = np.stack([laguerre.lagval(x, np.eye(N)[n]) for n in range(N)])  # L_n(x)

    def projection(t):  # c_n = ∫_0^∞ f(t - θx) L_n(x) e^{-x} dx
        return basis @ (w * POLY(t - theta * x))

    c1 = integrate(lambda t, c: A @ c + B * POLY(t), projection(0.0), 0.0, 1.5)
    np.testing.assert_allclose(c1, projection(1.5), rtol=1e-9, atol=1e-9)


def test_fout_state_of_periodic_signal_is_its_projection():
    theta, K = 2.0, 3
    n_modes = 2 * K + 1
    A, B = (m.numpy() for m in hippo_matrix("fout", n_modes, theta=theta))
    amplitudes = RNG.standard_normal(n_modes)

    def basis(x):  # 1, √2 cos 2πkx, √2 sin 2πkx on x ∈ [0, 1)
        rows = [np.ones_like(x)]
        for k in range(1, K + 1):
            rows += [np.sqrt(2) * np.cos(2 * np.pi * k * x), np.sqrt(2) * np.sin(2 * np.pi * k * x)]
        return np.stack(rows)

    def signal(s):  # θ-periodic, band-limited to the kept frequencies
        return amplitudes @ basis(np.asarray(s) / theta)

    def projection(t):  # trapezoid rule is exact for trigonometric polynomials
        x = np.arange(64) / 64
        return basis(x) @ signal(t - theta + theta * x) / 64

    c1 = integrate(lambda t, c: A @ c + B * signal(t), projection(0.3), 0.3, 2.9)
    np.testing.assert_allclose(c1, projection(2.9), atol=1e-9)


def test_matrices_are_float64_with_documented_shapes():
    for measure in ("legs", "legt", "lagt", "fout"):
        A, B = hippo_matrix(measure, 5, theta=2.0)
        assert A.shape == (5, 5) and B.shape == (5,)
        assert A.dtype == B.dtype == torch.float64
    A1, B1 = hippo_matrix("legt", 5, theta=1.0)
    A2, B2 = hippo_matrix("legt", 5, theta=4.0)
    torch.testing.assert_close(A2, A1 / 4)
    torch.testing.assert_close(B2, B1 / 4)


@pytest.mark.parametrize("size", [1, 7, 64])
def test_legs_nplr_reproduces_a_and_normal_part_has_real_part_minus_half(size):
    A, B = hippo_matrix("legs", size)
    nplr = hippo_nplr("legs", size)
    V, P = nplr.eigenvectors, nplr.low_rank.to(torch.complex128)
    rebuilt = V @ torch.diag(nplr.eigenvalues) @ V.conj().T - torch.outer(P, P)
    torch.testing.assert_close(rebuilt.real, A, atol=1e-10, rtol=0)
    assert rebuilt.imag.abs().max() < 1e-10
    torch.testing.assert_close(V.conj().T @ V, torch.eye(size, dtype=torch.complex128), atol=1e-10, rtol=0)
    torch.testing.assert_close(nplr.eigenvalues.real, torch.full((size,), -0.5, dtype=torch.float64))
    torch.testing.assert_close(nplr.low_rank, torch.sqrt(torch.arange(size) + 0.5).double())
    torch.testing.assert_close(nplr.B, B)
    # eigenvalues of a real matrix come in conjugate pairs
    imag = nplr.eigenvalues.imag
    torch.testing.assert_close(imag, -imag.flip(0), atol=1e-9, rtol=0)


def test_legendre_endpoint_derivatives_match_numpy():
    D = legendre_endpoint_derivatives(N, 3).numpy()
    for n in range(N):
        unit = np.eye(N)[n]
        for m in range(4):
            value = np.sqrt(2 * n + 1) * legendre.legval(1.0, legendre.legder(unit, m) if m else unit)
            assert D[m, n] == pytest.approx(value, rel=1e-12, abs=1e-12)
        derivative_at_minus_one = legendre.legval(-1.0, legendre.legder(unit))
        assert derivative_at_minus_one == pytest.approx((-1) ** (n + 1) * n * (n + 1) / 2, abs=1e-12)
    np.testing.assert_allclose(D[1] / np.sqrt(2 * np.arange(N) + 1), np.arange(N) * (np.arange(N) + 1) / 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(measure="legx", N=4), "legx"),
    (dict(measure="legs", N=0), "0"),
    (dict(measure="legs", N=2.5), "2.5"),
    (dict(measure="legt", N=4, theta=0.0), "0.0"),
    (dict(measure="lagt", N=4, theta=-1.0), "-1.0"),
])
def test_hippo_matrix_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hippo_matrix(**kwargs)


def test_hippo_nplr_rejects_other_measures():
    with pytest.raises(ValueError, match="legt"):
        hippo_nplr("legt", 4)
    with pytest.raises(ValueError, match="-3"):
        hippo_nplr("legs", -3)
