"""ETDRK4 (Kassam & Trefethen 2005) on the periodic PDEs: order, exactness, the KS energy identity."""
from __future__ import annotations

import math

import pytest
import torch

from simulators import CounterRNG, TimeGrid, make_system, run_members
from simulators.integrators.etdrk4 import ETDRK4, etdrk4_coefficients
from simulators.pde import AllenCahn, KuramotoSivashinsky
from simulators.pde.fourier import spectral_derivative


def _integrate(system, x0, dt, t_end):
    n = round(t_end / dt)
    return ETDRK4().integrate(system, x0, t0=0.0, dt=dt, n_steps=n, save_every=n)[-1]


def test_coefficients_match_closed_forms_where_these_are_stable():
    # for |hλ| ~ 1 the closed forms of Cox & Matthews are accurate; the contour means must agree
    z = torch.tensor([-3.0, -1.0, 0.7, 2.0], dtype=torch.float64)
    c = etdrk4_coefficients(z)
    ez = torch.exp(z)
    closed = {"Q": (torch.exp(z / 2) - 1) / z,
              "f1": (-4 - z + ez * (4 - 3 * z + z * z)) / z ** 3,
              "f2": (2 + z + ez * (z - 2)) / z ** 3,
              "f3": (-4 - 3 * z - z * z + ez * (4 - z)) / z ** 3}
    for name, value in closed.items():
        assert torch.allclose(c[name].real, value, rtol=1e-12, atol=1e-14), name
        assert c[name].imag.abs().max() < 1e-14
    # hλ → 0: the limits of the φ-functions give Q = 1/2 and f1 = f2 = f3 = 1/6 (classical RK4 weights)
    c0 = etdrk4_coefficients(torch.zeros(1, dtype=torch.float64))
    assert abs(c0["Q"].real.item() - 0.5) < 1e-14
    for name in ("f1", "f2", "f3"):
        assert abs(c0[name].real.item() - 1 / 6) < 1e-14


def test_linear_problem_is_integrated_exactly():
    # with α = 0 the KS equation is linear (N = 0): ETDRK4 must reproduce exp(tL) u0 to rounding
    ks = KuramotoSivashinsky(alpha=0.0, beta=1.0, gamma=1.0, length=22.0, n=32, initial="random")
    x0 = ks.sample_initial(CounterRNG(0, range(2)))
    x1 = _integrate(ks, x0, 0.3, 3.0)
    k = ks.wavenumbers()
    exact = torch.fft.irfft(torch.exp(3.0 * ks.symbol(k)) * torch.fft.rfft(x0), n=32)
    assert (x1 - exact).abs().max() < 1e-12


def test_fourth_order_convergence_on_chaotic_ks():
    ks = KuramotoSivashinsky(alpha=1.0, beta=1.0, gamma=1.0, length=22.0, n=32, initial="random", amplitude=1.0)
    x0 = ks.sample_initial(CounterRNG(3, range(2)))
    ref = _integrate(ks, x0, 0.025 / 8, 2.0)
    errors = [float((_integrate(ks, x0, dt, 2.0) - ref).abs().max()) for dt in (0.1, 0.05, 0.025)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(3.6 < p < 4.4 for p in orders), (errors, orders)


def test_ks_nonlinear_term_conserves_energy_exactly():
    # the dealiased Galerkin term -α/2 ∂x(u²) is orthogonal to u (3/2-rule: the product is exact)
    ks = KuramotoSivashinsky(n=64)
    u = torch.randn(5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    N = ks.nonlinear(0.0, u)
    assert ((u * N).sum(-1).abs() / (u.norm(dim=-1) * N.norm(dim=-1))).max() < 1e-13


def test_ks_energy_identity_along_a_trajectory():
    # dE/dt (4th-order central differences in time) = β∫u_x² − γ∫u_xx² on the benchmark solution
    ks = make_system("kuramoto_sivashinsky", n=128)
    dt = 2e-5
    out = run_members(ks, ETDRK4(), TimeGrid(dt=dt, save_every=dt, t_end=0.02), seed=0, members=[0])["u"][0]
    inv = ks.invariants(out)
    E, rhs = inv["energy"], inv["energy_tendency"]
    dE = (E[:-4] - 8 * E[1:-3] + 8 * E[3:-1] - E[4:]) / (12 * dt)
    rel = ((dE - rhs[2:-2]).abs() / rhs[2:-2].abs().max()).max()
    assert rel < 1e-6, float(rel)


def test_ac_free_energy_decreases_and_benchmark_bounds():
    ac = make_system("allen_cahn", n=256)
    out = run_members(ac, ETDRK4(), TimeGrid(dt=2e-4, save_every=0.02, t_end=0.4), seed=0, members=[0])["u"][0]
    F = ac.invariants(out)["free_energy"]
    assert bool((F[1:] <= F[:-1] + 1e-12).all())
    assert out.abs().max() < 1.0 + 1e-3  # maximum principle (up to the discretisation)


def _fd_allen_cahn(d, a, x0, t_end):
    """Independent reference: 4th-order periodic finite differences + scipy Radau (method of lines)."""
    import scipy.sparse as sp
    from scipy.integrate import solve_ivp

    n = x0.size
    h = 2.0 / n
    diags = {0: -30.0, 1: 16.0, -1: 16.0, 2: -1.0, -2: -1.0}
    D2 = sp.lil_matrix((n, n))
    for off, w in diags.items():
        for i in range(n):
            D2[i, (i + off) % n] += w / (12 * h * h)
    D2 = sp.csr_matrix(D2)

    def f(t, u):
        return d * (D2 @ u) + a * u - a * u ** 3

    def jac(t, u):
        return d * D2 + sp.diags(a - 3 * a * u * u)

    sol = solve_ivp(f, (0.0, t_end), x0, method="Radau", jac=jac, rtol=1e-10, atol=1e-12)
    assert sol.success
    return sol.y[:, -1]


def test_allen_cahn_against_independent_scipy_solution():
    import numpy as np

    d, a, t_end = 2e-3, 5.0, 0.5
    ac = AllenCahn(d=d, a=a, n=128)
    x0 = ac.initial_benchmark(ac.x)[None]
    u = _integrate(ac, x0, 1e-3, t_end)[0].numpy()
    fine = 1024
    xf = -1 + 2 * np.arange(fine) / fine
    ref = _fd_allen_cahn(d, a, xf ** 2 * np.cos(np.pi * xf), t_end)[:: fine // 128]
    assert np.abs(u - ref).max() < 2e-5, np.abs(u - ref).max()


def test_spectral_derivative_and_validation():
    x = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
    assert torch.allclose(spectral_derivative(torch.sin(3 * x), 2 * math.pi, 2), -9 * torch.sin(3 * x), atol=1e-12)
    for bad in ({"n": 63}, {"d": -1.0}, {"initial": "bump"}, {"modes": 0}):
        with pytest.raises(ValueError):
            AllenCahn(**bad)
    with pytest.raises(ValueError):
        ETDRK4().check_system(make_system("lorenz63"))


@pytest.mark.slow
def test_chaotic_ks_l22_leading_lyapunov_exponent():
    """λ₁ ≈ 0.043 (Edson, Bunder, Mattner & Roberts 2019, ANZIAM J. 61, 270: 0.043 at L = 22)
    to 0.048 (Cvitanović, Davidchack & Siminos 2010, SIAM J. Appl. Dyn. Syst. 9, 1); 10 % tolerance,
    8 members × 1250 time units = 10⁴ time units averaged (ETDRK4, dt = 0.25, 64 Fourier modes)."""
    from simulators import lyapunov_spectrum

    ks = make_system("kuramoto_sivashinsky", alpha=1.0, beta=1.0, gamma=1.0, length=22.0, n=64,
                     initial="random", amplitude=0.5)
    it = ETDRK4()
    dt = 0.25
    x0 = ks.sample_initial(CounterRNG(0, range(8)))
    x0 = it.integrate(ks, x0, t0=0.0, dt=dt, n_steps=800, save_every=800)[-1]  # 200 time units onto the attractor
    lam = lyapunov_spectrum(lambda x: it.step(ks, 0.0, x, dt), x0, dt=dt, n_steps=5000, n_exponents=1,
                            qr_every=4, transient=200)
    mean = float(lam.mean())
    print(f"KS L=22 lambda_1: mean {mean:.4f}, members {[round(v, 4) for v in lam[:, 0].tolist()]}")
    assert 0.043 * 0.9 < mean < 0.048 * 1.1, lam
