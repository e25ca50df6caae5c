"""IMEX integrators on split systems x' = L x + N(t, x): second order (ARS(2,2,2)) and
first order (semi-implicit Euler) against exact solutions of linear problems, stability far
beyond the explicit limit, and the registry's checks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from simulators import CounterRNG, TimeGrid, make_integrator, make_system
from simulators.core import Params, Variable
from simulators.split import AbstractSplitSystem, BorderedOperator, DiagonalOperator, TridiagonalOperator


class ForcedLinear(AbstractSplitSystem):
    """x' = λ x + μ x + cos t (λ in L, μ x + cos t in N), componentwise; exact solution known."""

    name = "forced_linear_test"

    @dataclass(frozen=True)
    class Params(Params):
        mu: float = 0.3

    def __init__(self, lam, mu=0.3, noise=0.0):
        super().__init__(mu=mu)
        self.lam = torch.as_tensor(lam, dtype=torch.float64)
        self.noise = noise

    @property
    def state_shape(self):
        return (self.lam.numel(),)

    @property
    def is_stochastic(self):
        return self.noise > 0

    def diffusion(self, t, x):
        return torch.full_like(x, self.noise) if self.noise > 0 else None

    def linear_operator(self, dtype=torch.float64, device="cpu"):
        return DiagonalOperator(self.lam.to(dtype=dtype, device=device))

    def nonlinear(self, t, x):
        return self.params.mu * x + math.cos(float(t))

    def exact(self, t, x0):
        a = self.lam + self.params.mu
        p = lambda s: (-a * math.cos(s) + math.sin(s)) / (a * a + 1)  # noqa: E731
        return torch.exp(a * t) * (x0 - p(0.0)) + p(t)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return torch.ones(len(rng.members), *self.state_shape, dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("x", ("time", "k"), "1", "x"),)

    def observables(self, x):
        return {"x": x}


class HeatWithSource(AbstractSplitSystem):
    """x' = L x + s on a tridiagonal diffusion matrix (no-flux ends) with a constant source s."""

    name = "heat_source_test"

    @dataclass(frozen=True)
    class Params(Params):
        n: int = 16

    def __init__(self, n=16, kappa=400.0):
        super().__init__(n=n)
        off = torch.full((n,), kappa, dtype=torch.float64)
        diag = -2.0 * off
        diag[0] = diag[-1] = -kappa
        self.op = TridiagonalOperator(off, diag - 1.0, off)  # −1: a little damping
        self.source = torch.sin(torch.linspace(0, 3, n, dtype=torch.float64))

    @property
    def state_shape(self):
        return (self.params.n,)

    def linear_operator(self, dtype=torch.float64, device="cpu"):
        return self.op

    def nonlinear(self, t, x):
        return self.source.to(x.dtype).expand_as(x)

    def matrix(self):
        n = self.params.n
        return self.op.matvec(torch.eye(n, dtype=torch.float64)).T.numpy()  # columns L e_j

    def exact(self, t, x0):
        L = self.matrix()
        E = expm(L * t)
        s = self.source.numpy()
        return E @ x0 + np.linalg.solve(L, (E - np.eye(len(s))) @ s)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return torch.cos(torch.linspace(0, 5, self.params.n, dtype=dtype)).expand(len(rng.members), -1).clone()

    @property
    def variables(self):
        return (Variable("x", ("time", "k"), "1", "x"),)

    def observables(self, x):
        return {"x": x}


def _error(integrator, system, h, t_end, exact):
    x0 = system.sample_initial(CounterRNG(0, [0]))
    n = round(t_end / h)
    x = integrator.integrate(system, x0, t0=0.0, dt=h, n_steps=n, save_every=n)[-1, 0]
    return float(np.abs(x.numpy() - exact(x0[0])).max())


@pytest.mark.parametrize("name, order", [("imex", 2), ("imex_euler", 1)])
def test_convergence_order_on_a_forced_linear_problem(name, order):
    system = ForcedLinear([-2.0, -0.5, -20.0])
    integ = make_integrator(name)
    errs = [_error(integ, system, h, 2.0, lambda x0: system.exact(2.0, x0).numpy()) for h in (0.02, 0.01, 0.005)]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.15 for r in rates), (errs, rates)


def test_second_order_on_a_stiff_tridiagonal_heat_equation():
    """Spectral radius of L ≈ 1600: explicit RK4 needs h < 1.7e-3; IMEX runs at h = 0.02 and
    converges at order 2 to the matrix-exponential solution."""
    system = HeatWithSource()
    imex = make_integrator("imex")
    errs = [_error(imex, system, h, 1.0, lambda x0: system.exact(1.0, x0.numpy())) for h in (0.02, 0.01, 0.005)]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - 2) < 0.3 for r in rates), (errs, rates)
    assert errs[0] < 1e-3
    rk4 = _error(make_integrator("rk4"), system, 0.02, 1.0, lambda x0: system.exact(1.0, x0.numpy()))
    assert not math.isfinite(rk4) or rk4 > 1e6  # the explicit method blows up at this step


@pytest.mark.parametrize("name", ["imex", "imex_euler"])
def test_stiff_stability_far_beyond_the_explicit_limit(name):
    """λ = −10⁶ with h = 0.05 (|hλ| = 5·10⁴): the transient is damped and the solution
    follows the slow manifold x ≈ cos t / |λ|."""
    system = ForcedLinear([-1e6], mu=0.0)
    x0 = system.sample_initial(CounterRNG(0, [0]))
    traj = make_integrator(name).integrate(system, x0, t0=0.0, dt=0.05, n_steps=200, save_every=1)[:, 0, 0]
    exact = torch.stack([system.exact((k + 1) * 0.05, x0)[0, 0] for k in range(200)])
    assert bool(torch.isfinite(traj).all())
    tail = slice(5, None)  # after the L-stable damping of the initial transient
    assert float((traj[tail] - exact[tail]).abs().max()) < 0.05 * float(exact.abs().max())


def test_imex_euler_draws_the_member_noise_like_euler_maruyama():
    """With L = 0 the semi-implicit step is Euler–Maruyama: identical paths from the same streams."""
    system = ForcedLinear([0.0, 0.0], mu=-0.7, noise=0.4)
    grid = TimeGrid(dt=0.01, save_every=0.1, t_end=1.0)
    a = system.simulate(make_integrator("imex_euler"), grid, seed=5, members=[0, 3])["x"]
    b = system.simulate(make_integrator("euler_maruyama"), grid, seed=5, members=[0, 3])["x"]
    assert torch.allclose(a, b, rtol=0, atol=1e-14) and float(a.std()) > 0.01


def test_registry_refuses_what_imex_cannot_integrate():
    with pytest.raises(ValueError, match="split systems"):
        make_integrator("imex").check_system(make_system("lorenz63"))
    with pytest.raises(ValueError, match="stochastic.*imex_euler"):
        make_integrator("imex").check_system(ForcedLinear([-1.0], noise=0.1))
    make_integrator("imex_euler").check_system(ForcedLinear([-1.0], noise=0.1))


def _random_tridiagonal(n, symmetrisable, seed=0):
    g = torch.Generator().manual_seed(seed)
    lower = -torch.rand(n, generator=g, dtype=torch.float64) - 0.1
    upper = -torch.rand(n, generator=g, dtype=torch.float64) - 0.1
    if not symmetrisable:
        upper[n // 2] = 0.3  # l_{i+1} u_i < 0 somewhere: no real diagonal similarity to a symmetric matrix
    return TridiagonalOperator(lower, -(lower.abs() + upper.abs()) - 0.5, upper)


@pytest.mark.parametrize("symmetrisable", [True, False])
def test_tridiagonal_solves_agree_and_do_not_depend_on_the_batch(symmetrisable):
    """LAPACK (pttrs after symmetrisation, or gttrs) and the Thomas sweep solve (I − aL) y = b
    to rounding; a row's result has the same bits whatever block it is solved in."""
    op = _random_tridiagonal(23, symmetrisable)
    b = torch.randn(40, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = 0.7
    y = op.solve_shifted(a, b)
    assert op._factors[(a, torch.float64)][0] == ("pt" if symmetrisable else "gt")
    torch.testing.assert_close(y - a * op.matvec(y), b, rtol=0, atol=1e-13)
    torch.testing.assert_close(op._solve_thomas(a, b), y, rtol=0, atol=1e-13)
    for start, size in ((0, 1), (3, 5), (17, 13), (1, 39)):
        assert torch.equal(op.solve_shifted(a, b[start:start + size]), y[start:start + size])
    assert op.solve_shifted(a, b.reshape(8, 5, 23)).shape == (8, 5, 23)
    y32 = op.solve_shifted(a, b.float())
    assert y32.dtype == torch.float32 and torch.allclose(y32.double(), y, atol=1e-5)


def test_bordered_operator_accumulates_the_functional():
    op = _random_tridiagonal(9, True)
    row = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    bordered = BorderedOperator(op, row)
    x = torch.randn(4, 10, dtype=torch.float64)
    Lx = bordered.matvec(x)
    torch.testing.assert_close(Lx[:, :-1], op.matvec(x[:, :-1]))
    torch.testing.assert_close(Lx[:, -1], x[:, :-1] @ row)
    y = bordered.solve_shifted(0.3, x)
    torch.testing.assert_close(y - 0.3 * bordered.matvec(y), x, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="last dimension of 10"):
        bordered.matvec(torch.zeros(2, 9))
