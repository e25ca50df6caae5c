"""May's grazing model: the folds of the deterministic model, the potential, reflection
at 0, and a ramp through the fold that tips while constant grazing stays."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from simulators import TimeGrid, make_integrator, make_system, run_members
from simulators.tipping import (MayGrazing, ProjectedIntegrator, may_drift, may_drift_derivative,
                                may_equilibria, may_folds, may_potential)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_folds_of_the_deterministic_model():
    lower, upper = may_folds(r=1.0, K=10.0, h=1.0)
    assert upper.c == pytest.approx(2.604, abs=1e-3) and upper.x == pytest.approx(4.78, abs=5e-3)
    assert lower.c == pytest.approx(1.787, abs=1e-3)
    for fold in (lower, upper):
        assert abs(may_drift(fold.x, fold.c)) < 1e-10
        assert abs(may_drift_derivative(fold.x, fold.c)) < 1e-10
    # independently: the folds are the extrema of the equilibrium curve c(x) = r(1 − x/K)(x² + h²)/x
    def curve(x):
        return (1.0 - x / 10.0) * (x * x + 1.0) / x
    low = minimize_scalar(curve, bounds=(0.5, 3.0), method="bounded", options={"xatol": 1e-10})
    high = minimize_scalar(lambda x: -curve(x), bounds=(3.0, 8.0), method="bounded", options={"xatol": 1e-10})
    assert low.fun == pytest.approx(lower.c, abs=1e-8) and low.x == pytest.approx(lower.x, abs=1e-4)
    assert -high.fun == pytest.approx(upper.c, abs=1e-8) and high.x == pytest.approx(upper.x, abs=1e-4)


@pytest.mark.parametrize("c, n_stable, n_unstable", [(1.5, 1, 1), (2.0, 2, 2), (2.7, 1, 1)])
def test_equilibria_bistable_only_between_the_folds(c, n_stable, n_unstable):
    eq = may_equilibria(c)
    assert sum(s for _, s in eq) == n_stable
    assert sum(not s for _, s in eq) == n_unstable  # x = 0 is always unstable
    for x, stable in eq:
        assert abs(may_drift(x, c)) < 1e-9
        assert (may_drift_derivative(x, c) < 0) == stable


def test_potential_is_minus_the_integral_of_the_drift():
    x = torch.linspace(0.0, 9.0, 181, dtype=torch.float64, requires_grad=True)
    V = may_potential(x, 2.3)
    (dV,) = torch.autograd.grad(V.sum(), x)
    assert torch.allclose(dV, -may_drift(x.detach(), 2.3), atol=1e-12)
    assert float(V.detach()[0]) == 0.0
    # the wells are the stable equilibria: the upper one is the deeper at c = 2.3
    (x_low, _), (x_up, _) = [(xe, s) for xe, s in may_equilibria(2.3) if s]
    assert may_potential(x_up, 2.3) < may_potential(x_low, 2.3) < 0


def test_ramp_through_the_fold_tips_and_constant_grazing_stays():
    grid = TimeGrid(dt=0.1, save_every=1.0, t_end=60.0)
    em = make_integrator("euler_maruyama")
    members = range(64)
    ramped = make_system("may_grazing", c=2.3, c_rate=0.01, sigma=0.1)  # fold at t ≈ 30.4
    out = ramped.simulate(em, grid, seed=1, members=members)
    x, c = out["x"], out["c"]
    assert torch.allclose(c[0], 2.3 + 0.01 * grid.times.to(c.dtype))
    assert float(x[:, :10].mean()) > 6.0  # upper branch (x* ≈ 6.6 at c = 2.3)
    assert float(x[:, -1].mean()) < 1.0  # lower branch (x* ≈ 0.4 at c = 2.9)
    assert float((x[:, -1] < 2.0).double().mean()) > 0.95
    # nothing tips long before the fold
    assert float((x[:, 20] > 4.5).double().mean()) > 0.95

    steady = make_system("may_grazing", c=2.3, sigma=0.1)
    x = steady.simulate(em, grid, seed=1, members=members)["x"]
    assert float((x.min(dim=1).values > 4.5).double().mean()) > 0.95


def test_reflection_keeps_the_biomass_non_negative():
    may = make_system("may_grazing", c=2.3, sigma=0.6, x0=0.05)
    grid = TimeGrid(dt=0.05, save_every=0.05, t_end=2.0)
    em = make_integrator("euler_maruyama")
    reflected = may.simulate(em, grid, seed=0, members=range(200))["x"]
    assert float(reflected.min()) >= 0.0
    unprojected = copy.copy(may)
    unprojected.has_projection = False  # the driver applies the reflection only when asked to
    free = run_members(unprojected, em, grid, seed=0, members=range(200))["x"]
    assert float(free.min()) < 0.0
    # the same noise drives both: paths that never reach 0 are identical
    untouched = free.min(dim=1).values >= 0
    assert 0 < int(untouched.sum()) < 200
    assert torch.equal(free[untouched], reflected[untouched])


def test_projection_needs_a_fixed_step_integrator():
    with pytest.raises(ValueError, match="dopri5"):
        ProjectedIntegrator(make_integrator("dopri5"), torch.abs)
    may = make_system("may_grazing")
    with pytest.raises(ValueError, match="dopri5"):
        may.simulate(make_integrator("dopri5"), TimeGrid(dt=0.1, save_every=0.1, t_end=1.0), seed=0,
                     members=range(2))


def test_default_start_is_the_upper_branch():
    assert make_system("may_grazing", c=2.0).initial_biomass() == pytest.approx(7.3166, abs=1e-3)
    assert make_system("may_grazing", c=2.8).initial_biomass() < 0.5  # past the fold: the lower branch
    assert make_system("may_grazing", x0=3.0).initial_biomass() == 3.0


@pytest.mark.parametrize("params, name", [({"r": -1.0}, "r"), ({"K": 0.0}, "K"), ({"h": float("nan")}, "h"),
                                          ({"c": -0.5}, "c"), ({"sigma": -0.1}, "sigma"), ({"x0": -1.0}, "x0"),
                                          ({"c_rate": float("inf")}, "c_rate")])
def test_bad_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=rf"parameter {name} .*{list(params.values())[0]!r}"):
        MayGrazing(**params)


def test_drift_sign():
    # logistic growth dominates at low grazing, grazing wins just above the upper fold
    assert may_drift(5.0, 1.0) > 0
    assert may_drift(4.78, 2.7) < 0
    assert np.all(np.asarray(may_drift(np.array([8.0, 9.0]), 2.0)) < 0)  # above the upper equilibrium
