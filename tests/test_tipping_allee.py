"""The Allee birth–death model: the one SSA engine with a ramped hazard against closed-form
laws (a death process with a ramped rate, started before the ramp, immigration–death), the
mean-field fold, ramped collapse against chance collapse, and per-member determinism."""
from __future__ import annotations

import math

import pytest
import torch

from simulators import TimeGrid, make_integrator, make_system
from simulators.jump import SSAOptions, ssa
from simulators.tipping import AlleeBirthDeath, ramped_birth_death

SSA = make_integrator("gillespie_ramp")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_moments(x: torch.Tensor, mean: float, var: float, z: float = 4.0) -> None:
    m = x.shape[0]
    se_mean = math.sqrt(var / m)
    se_var = math.sqrt(2.0 / (m - 1)) * var + math.sqrt(var / m)  # generous for skewed counts
    assert abs(float(x.mean()) - mean) <= z * se_mean, (float(x.mean()), mean)
    assert abs(float(x.var()) - var) <= z * se_var, (float(x.var()), var)


def birth_death_paths(propensities, n0: float, M: int, seed: int, t_end: float, times, t_start: float = 0.0):
    """The engine on M one-species paths with the ramped-hazard rule: (n at ``times`` (M, T), absorbed_at)."""
    result = ssa((torch.full((M,), float(n0), dtype=torch.float64),), ramped_birth_death(propensities),
                 keys=torch.arange(M), seed=seed,
                 options=SSAOptions(t_end=t_end, obs_times=torch.as_tensor(times, dtype=torch.float64),
                                    t_start=t_start))
    return result.observed[0], result.absorbed_at


@pytest.mark.parametrize("t_start", [0.0, -1.0])
def test_ssa_death_process_with_a_ramped_rate_is_binomial(t_start):
    """Deaths at μ(t) n with μ(t) = μ0 + ρ max(t, 0): each individual survives from t_start to t
    with probability exp(−μ0 (t − t_start) − ρt²/2), so n(t) ~ Binomial(n0, p(t)). Ignoring the
    ramp would give exp(−μ0 t); started at −1 the hazard has its kink at 0 inside the run."""
    mu0, rho, n0, M = 0.2, 0.6, 20, 4000

    def propensities(t, n):
        return 0.0 * n, (mu0 + rho * t.clamp(min=0.0)) * n, 0.0, rho * n

    times = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    n, extinct = birth_death_paths(propensities, n0, M, 4, 2.0, times, t_start)
    for k, t in enumerate(times.tolist()):
        p = math.exp(-mu0 * (t - t_start) - 0.5 * rho * t * t)
        assert_moments(n[:, k], n0 * p, n0 * p * (1 - p))
    p_no_ramp = math.exp(-mu0 * (2.0 - t_start))
    assert abs(float(n[:, -1].mean()) - n0 * p_no_ramp) > 20 * math.sqrt(n0 / M)
    died = n[:, -1] == 0
    assert torch.isnan(extinct[~died]).all() and (extinct[died] <= 2.0).all() and (extinct[died] > t_start).all()


def test_ssa_immigration_death_is_poisson():
    """Arrivals at rate λ, deaths at μ n from n = 0: n(t) ~ Poisson(λ(1 − e^{−μt})/μ)."""
    lam, mu, M = 5.0, 1.0, 4000

    def propensities(t, n):
        return torch.full_like(n, lam), mu * n, 0.0, 0.0

    times = torch.tensor([0.5, 3.0], dtype=torch.float64)
    n, _ = birth_death_paths(propensities, 0.0, M, 9, 3.0, times)
    for k, t in enumerate(times.tolist()):
        mean = lam * (1 - math.exp(-mu * t)) / mu
        assert_moments(n[:, k], mean, mean)


def test_mean_field_fold_and_propensities():
    allee = AlleeBirthDeath(N=40, beta=4.0, A=1.0, nu=1.0, mu=0.5)
    mu_c, x_c = allee.fold()
    assert (mu_c, x_c) == pytest.approx((1.0, 1.0))

    def drift(x, mu):  # mean-field density drift
        return 4.0 * x * x / (1.0 + x) - mu * x - x * x

    eps = 1e-6
    assert abs(drift(x_c, mu_c)) < 1e-12
    assert abs(drift(x_c + eps, mu_c) - drift(x_c - eps, mu_c)) / (2 * eps) < 1e-6
    threshold, upper = allee.equilibria()
    assert abs(drift(threshold, 0.5)) < 1e-12 and abs(drift(upper, 0.5)) < 1e-12
    assert threshold < x_c < upper and allee.equilibria(1.05) == ()
    assert allee.initial_count() == round(40 * upper)
    # propensities in counts: the drift is birth − death, and only μ(t) ramps
    n = torch.tensor([0.0, 10.0, 80.0], dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64)
    birth, death, birth_slope, death_slope = allee.birth_death_propensities(t, n)
    assert torch.allclose(birth, 4.0 * n * n / (40.0 + n)) and torch.allclose(death, 0.5 * n + n * n / 40.0)
    assert torch.allclose(allee.vector_field(0.0, n), birth - death)
    assert torch.allclose(40.0 * drift(n / 40.0, 0.5), birth - death)
    ramped = AlleeBirthDeath(N=40, mu=0.5, mu_rate=0.1)
    _, death, _, death_slope = ramped.birth_death_propensities(torch.full((3,), 2.0, dtype=torch.float64), n)
    assert torch.allclose(death, 0.7 * n + n * n / 40.0) and torch.allclose(death_slope, 0.1 * n)
    _, held, _, after_kink = ramped.birth_death_propensities(torch.full((3,), -1.0, dtype=torch.float64), n)
    # μ is held during the spin-up; the slope is the one after the kink at t = 0 (ramped_birth_death)
    assert torch.allclose(held, 0.5 * n + n * n / 40.0) and torch.allclose(after_kink, 0.1 * n)


def test_ramp_collapses_while_the_stationary_control_only_rarely_does():
    grid = TimeGrid(dt=0.5, save_every=0.5, t_end=15.0)
    members = range(256)
    ramped = make_system("allee", N=10, mu=0.5, mu_rate=0.1)  # the fold μ_c = 1 at t = 5
    stationary = make_system("allee", N=10, mu=0.5)
    r = ramped.simulate(SSA, grid, seed=0, members=members)
    s = stationary.simulate(SSA, grid, seed=0, members=members)
    assert torch.allclose(r["mu"][0], 0.5 + 0.1 * grid.times.to(torch.float64))
    assert torch.equal(s["mu"], torch.full_like(s["mu"], 0.5))
    ramp_extinct = ~torch.isnan(r["extinction_time"])
    chance_extinct = ~torch.isnan(s["extinction_time"])
    assert float(ramp_extinct.double().mean()) > 0.9
    assert 0 < int(chance_extinct.sum()) < 0.3 * 256
    # mean extinction times: the ramp's (censored at t_end, so a lower bound) against the
    # stationary exponential estimate, events / exposure
    ramp_mean = float(torch.nan_to_num(r["extinction_time"], nan=grid.t_end).mean())
    exposure = float(torch.nan_to_num(s["extinction_time"], nan=grid.t_end).sum())
    chance_mean = exposure / int(chance_extinct.sum())
    assert chance_mean > 5 * ramp_mean, (chance_mean, ramp_mean)
    # extinction is absorbing and the recorded time matches the series
    for out in (r, s):
        times = grid.times.to(torch.float64)
        for i in torch.nonzero(~torch.isnan(out["extinction_time"]))[:20, 0].tolist():
            t_ext = float(out["extinction_time"][i])
            assert (out["n"][i, times >= t_ext] == 0).all() and (out["n"][i, times < t_ext] > 0).all()


def test_members_are_independent_of_the_batch():
    allee = make_system("allee", N=5, mu=0.5, mu_rate=0.05)
    grid = TimeGrid(dt=0.5, save_every=0.5, t_end=2.0, spinup=0.5)
    whole = allee.simulate(SSA, grid, seed=3, members=range(6))
    part = allee.simulate(SSA, grid, seed=3, members=[4, 2])
    for name in ("n", "extinction_time"):
        torch.testing.assert_close(part[name], whole[name][[4, 2]], rtol=0, atol=0, equal_nan=True)
    # both config names run the one engine
    plain = allee.simulate(make_integrator("gillespie"), grid, seed=3, members=range(6))
    for name in whole:
        torch.testing.assert_close(plain[name], whole[name], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(whole["n"], whole["n"].round()) and (whole["n"] >= 0).all()


def test_refuses_other_integrators():
    allee = make_system("allee")
    with pytest.raises(ValueError, match="gillespie_ramp"):
        allee.simulate(make_integrator("euler_maruyama"), TimeGrid(dt=0.1, save_every=0.1, t_end=1.0), seed=0,
                       members=range(2))
    with pytest.raises(ValueError, match="gillespie_ramp simulates jump processes; ou is not one"):
        SSA.check_system(make_system("ou"))


@pytest.mark.parametrize("params, pattern", [
    ({"N": 0}, "parameter N .*0"), ({"N": 2.5}, "parameter N .*2.5"), ({"beta": -1.0}, "parameter beta .*-1.0"),
    ({"mu_rate": -0.01}, "parameter mu_rate .*-0.01"), ({"mu": 1.2}, "parameter mu=1.2 .*fold mu_c=1"),
    ({"n0": -3}, "parameter n0 .*-3"), ({"nu": 0.0}, "parameter nu .*0.0"),
])
def test_bad_parameters_are_named(params, pattern):
    with pytest.raises(ValueError, match=pattern):
        AlleeBirthDeath(**params)
    AlleeBirthDeath(mu=1.2, n0=10)  # past the fold is fine from a given start
