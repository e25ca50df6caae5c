"""Ornstein–Uhlenbeck transition moments (Euler–Maruyama and the exact sampler) and the
linearised saddle-node's moment equations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulators import CounterRNG, TimeGrid, make_integrator, make_system, run_members
from simulators.tipping import LinearisedSaddleNode, OrnsteinUhlenbeck, lsn_moments, ou_exact_paths, ou_transition

EM = make_integrator("euler_maruyama")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def standard_errors(x: torch.Tensor) -> tuple[float, float, float, float]:
    """Sample mean and variance of ``x`` (M,) with their standard errors (Gaussian data)."""
    m = x.shape[0]
    mean, var = float(x.mean()), float(x.var())
    return mean, var, math.sqrt(var / m), var * math.sqrt(2.0 / (m - 1))


OU = dict(r=1.5, theta=1.0, sigma=0.8)


def test_ou_transition_moments_euler_maruyama():
    """Short run, small step: the ensemble's mean and variance after Δt are the exact
    transition moments θ + (X0 − θ)e^{−rΔt}, σ²(1 − e^{−2rΔt})/(2r) within sampling
    error plus the scheme's O(dt) bias."""
    ou = make_system("ou", x0=3.0, **OU)
    dt, n = 0.002, 250
    out = run_members(ou, EM, TimeGrid(dt=dt, save_every=n * dt, t_end=n * dt), seed=5, members=range(20_000))
    mean, var, se_mean, se_var = standard_errors(out["x"][:, -1])
    exact_mean, exact_var = ou_transition(3.0, n * dt, **OU)
    # Euler–Maruyama's own moments after n steps: the bias to allow for
    a = 1.0 - OU["r"] * dt
    em_mean = OU["theta"] + (3.0 - OU["theta"]) * a ** n
    em_var = OU["sigma"] ** 2 * dt * (1.0 - a ** (2 * n)) / (1.0 - a * a)
    assert abs(mean - exact_mean) < 4 * se_mean + abs(em_mean - exact_mean)
    assert abs(var - exact_var) < 4 * se_var + abs(em_var - exact_var)
    # the allowance for the bias is small next to the sampling error: the test keeps its power
    assert abs(em_mean - exact_mean) < se_mean and abs(em_var - exact_var) < se_var


def test_ou_exact_sampler_has_no_step_error():
    """Four steps of Δt = 0.5: Euler–Maruyama's variance σ²Δt would be twice the truth."""
    M, dt = 20_000, 0.5
    rng = CounterRNG(3, range(M))
    x0 = torch.full((M,), 3.0, dtype=torch.float64)
    paths = ou_exact_paths(x0, rng, dt=dt, n_steps=4, **OU)
    assert paths.shape == (M, 5)
    for k in range(1, 5):
        mean, var, se_mean, se_var = standard_errors(paths[:, k])
        exact_mean, exact_var = ou_transition(3.0, k * dt, **OU)
        assert abs(mean - exact_mean) < 4 * se_mean
        assert abs(var - exact_var) < 4 * se_var
    one_step = EM.integrate(make_system("ou", x0=3.0, **OU), x0[:, None], t0=0.0, dt=dt, n_steps=1,
                            save_every=1, rng=rng)[-1, :, 0]
    _, var, _, se_var = standard_errors(one_step)
    assert abs(var - ou_transition(3.0, dt, **OU)[1]) > 10 * se_var


def test_ou_stationary_start():
    ou = OrnsteinUhlenbeck(**OU)  # x0 = None: the stationary law
    x = ou.sample_initial(CounterRNG(0, range(20_000)))[:, 0]
    mean, var, se_mean, se_var = standard_errors(x)
    assert abs(mean - OU["theta"]) < 4 * se_mean
    assert abs(var - OU["sigma"] ** 2 / (2 * OU["r"])) < 4 * se_var


LSN = dict(R0=1.0, m=-0.2, theta=1.0, sigma=0.3)


def em_moment_recursion(times_every: int, n: int, dt: float, x0: float) -> tuple[np.ndarray, np.ndarray]:
    """Euler–Maruyama's exact moments for the LSN: E ← E + dt·2√R(θ + √R − E),
    V ← (1 − 2dt√R)² V + dt σ²(θ + √R), R at the start of each step."""
    E, V = x0, 0.0
    means, variances = [E], [V]
    for i in range(n):
        s = math.sqrt(max(LSN["R0"] + LSN["m"] * i * dt, 0.0))
        E, V = (E + dt * 2 * s * (LSN["theta"] + s - E),
                (1 - 2 * dt * s) ** 2 * V + dt * LSN["sigma"] ** 2 * (LSN["theta"] + s))
        if (i + 1) % times_every == 0:
            means.append(E)
            variances.append(V)
    return np.array(means), np.array(variances)


def test_lsn_moments_follow_the_moment_equations():
    """R ramps from 1 to 0.2: the ensemble follows dE/dt = 2√R(√R + θ − E) and
    dV/dt = −4√R V + σ²(√R + θ); the inconsistent −2√R variance equation is rejected."""
    x0, dt, every, n = 3.5, 0.01, 100, 400
    lsn = make_system("lsn", x0=x0, **LSN)
    grid = TimeGrid(dt=dt, save_every=every * dt, t_end=n * dt)
    out = lsn.simulate(EM, grid, seed=2, members=range(10_000))
    assert torch.allclose(out["R"][0], LSN["R0"] + LSN["m"] * grid.times.to(torch.float64))
    times = grid.times.numpy()
    E, V = lsn_moments(times, mean0=x0, var0=0.0, **LSN)
    em_E, em_V = em_moment_recursion(every, n, dt, x0)
    assert np.allclose(em_E, E, rtol=5e-3) and np.allclose(em_V, V, rtol=2e-2)  # O(dt) apart
    # the wrong variance equation dV/dt = −2√R V + σ²(√R + θ)
    from scipy.integrate import solve_ivp
    def wrong_rhs(t, v):
        s = math.sqrt(LSN["R0"] + LSN["m"] * t)
        return -2 * s * v + LSN["sigma"] ** 2 * (s + LSN["theta"])
    wrong = solve_ivp(wrong_rhs, (0, times[-1]), [0.0], t_eval=times, rtol=1e-10).y[0]
    for k in range(1, len(times)):
        mean, var, se_mean, se_var = standard_errors(out["x"][:, k])
        assert abs(mean - em_E[k]) < 4 * se_mean
        assert abs(var - em_V[k]) < 4 * se_var
        assert abs(var - wrong[k]) > 10 * se_var


def test_lsn_without_ramp_is_the_ou_model():
    lsn = LinearisedSaddleNode(R0=0.64, m=0.0, theta=1.5, sigma=0.4)
    ou = OrnsteinUhlenbeck(r=2 * 0.8, theta=1.5 + 0.8, sigma=0.4 * math.sqrt(1.5 + 0.8))
    x = torch.linspace(-1.0, 5.0, 13, dtype=torch.float64)[:, None]
    for t in (0.0, 7.0):
        assert torch.allclose(lsn.vector_field(t, x), ou.vector_field(t, x))
        assert torch.allclose(lsn.diffusion(t, x), ou.diffusion(t, x))
    E, V = lsn.moments([0.0, 0.3, 2.0], mean0=0.0, var0=0.0)
    for k, t in enumerate([0.0, 0.3, 2.0]):
        m, v = ou.transition(0.0, t)
        assert E[k] == pytest.approx(m, abs=1e-8) and V[k] == pytest.approx(v, abs=1e-8)
    assert lsn.stationary_moments() == pytest.approx((2.3, ou.stationary_variance))


def test_lsn_past_the_bifurcation_has_no_restoring_force():
    lsn = LinearisedSaddleNode(R0=0.5, m=-0.1, theta=1.0, sigma=0.2)  # R = 0 at t = 5
    x = torch.tensor([[0.0], [3.0]], dtype=torch.float64)
    assert torch.equal(lsn.vector_field(6.0, x), torch.zeros_like(x))
    assert torch.allclose(lsn.diffusion(6.0, x), torch.full_like(x, 0.2))
    # before it: relaxation towards θ + √R at rate 2√R
    s = math.sqrt(0.5 - 0.1 * 2.0)
    assert torch.allclose(lsn.vector_field(2.0, x), 2 * s * (1.0 + s - x))


@pytest.mark.parametrize("cls, params, name", [
    (OrnsteinUhlenbeck, {"r": 0.0}, "r"), (OrnsteinUhlenbeck, {"sigma": -1.0}, "sigma"),
    (LinearisedSaddleNode, {"R0": -0.5}, "R0"), (LinearisedSaddleNode, {"theta": -1.0}, "theta"),
    (LinearisedSaddleNode, {"m": float("nan")}, "m"),
])
def test_bad_parameters_are_named(cls, params, name):
    with pytest.raises(ValueError, match=rf"parameter {name} .*{list(params.values())[0]!r}"):
        cls(**params)
