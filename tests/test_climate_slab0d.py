"""The 0-D slab ocean against its analytic solutions: step and ramp responses (RK4 at fourth
order, Euler at first), the equilibrium −F/λ, and the Ornstein–Uhlenbeck statistics with noise."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pipeline.simulate import simulate
from simulators import TimeGrid, make_integrator, make_system
from simulators.climate import SECONDS_PER_YEAR, SlabOcean0D

# tiny tensors: extra threads only add synchronisation (badly so on a busy machine)
pytestmark = pytest.mark.usefixtures("single_thread")

LAMBDA = -1.24
DEPTH = 50.0
C_YR = 1000.0 * 4181.3 * DEPTH / SECONDS_PER_YEAR   # W yr m-2 K-1, written out independently
F2X = 5.35 * math.log(2.0)


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def step_response(t, F):
    """C dT/dt = F + λT, T(0) = 0:  T = −F/λ (1 − e^{λt/C})."""
    return -F / LAMBDA * (1.0 - np.exp(LAMBDA * t / C_YR))


def ramp_response(t, k):
    """C dT/dt = k t + λT, T(0) = 0:  T = (k/μ)(t − τ(1 − e^{−t/τ})), μ = −λ, τ = C/μ."""
    mu, tau = -LAMBDA, C_YR / -LAMBDA
    return k / mu * (t - tau * (1.0 - np.exp(-t / tau)))


def run(dt, t_end=20.0, integrator="rk4", members=1, **params):
    system = make_system("slab_ocean_0d", feedback=LAMBDA, mixed_layer_depth=DEPTH, **params)
    grid = TimeGrid(dt=dt, save_every=t_end / 10 if dt <= t_end / 10 else dt, t_end=t_end)
    return system, grid, system.simulate(make_integrator(integrator), grid, seed=0, members=range(members))


def test_heat_capacity_and_relaxation_time():
    s = make_system("slab_ocean_0d", mixed_layer_depth=1.0)
    assert s.heat_capacity == pytest.approx(4.18e6, rel=1e-3)  # 4.18 MJ m-2 K-1 per metre
    s = make_system("slab_ocean_0d", feedback=LAMBDA, mixed_layer_depth=DEPTH)
    assert s.relaxation_time == pytest.approx(C_YR / 1.24)
    assert s.equilibrium_response(F2X) == pytest.approx(2.99, abs=0.01)


@pytest.mark.parametrize("integrator, order", [("rk4", 4), ("euler_maruyama", 1)])
def test_step_response_converges_at_the_method_order(integrator, order):
    errors = []
    dts = [1.0, 0.5, 0.25] if integrator == "rk4" else [0.2, 0.1, 0.05]
    for dt in dts:
        system, grid, out = run(dt, integrator=integrator, scenario="abrupt_2x")
        exact = step_response(grid.times.numpy(), F2X)
        errors.append(np.abs(out["T"][0].numpy() - exact).max())
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.15)
    assert errors[-1] < (1e-6 if integrator == "rk4" else 2e-2)


def test_step_response_tight_and_signed():
    system, grid, out = run(0.05, t_end=60.0, scenario="abrupt_2x")
    t = grid.times.numpy()
    np.testing.assert_allclose(out["T"][0].numpy(), step_response(t, F2X), rtol=0, atol=1e-9)
    assert out["T"][0, -1] > 2.9  # warming under positive forcing, towards −F/λ = 2.99 K
    np.testing.assert_allclose(out["forcing"][0].numpy(), F2X, rtol=1e-12)
    np.testing.assert_allclose(out["co2"][0].numpy(), 560.0)
    # N = F + λT decays to zero as the slab equilibrates
    np.testing.assert_allclose(out["N_toa"][0].numpy(), F2X + LAMBDA * out["T"][0].numpy(), rtol=1e-12)
    assert out["N_toa"][0, 0] == pytest.approx(F2X) and abs(out["N_toa"][0, -1]) < 0.01
    # cooling under a CO2 halving
    _, _, out = run(0.05, t_end=60.0, scenario="abrupt", co2_multiple=0.5)
    assert out["T"][0, -1] == pytest.approx(-2.99, abs=0.01)


def test_ramp_response():
    system, grid, out = run(0.1, t_end=100.0, scenario="ramp_1pct")
    k = 5.35 * math.log(1.01)
    np.testing.assert_allclose(out["T"][0].numpy(), ramp_response(grid.times.numpy(), k), rtol=1e-9, atol=1e-9)
    # transient response at doubling (year 69.7) lags the equilibrium 2.99 K
    assert 1.5 < float(ramp_response(69.66, k)) < 2.99


def test_noise_gives_ornstein_uhlenbeck_statistics():
    sigma, M, dt, t_end = 1.0, 2000, 0.05, 20.0
    system, grid, out = run(dt, t_end=t_end, integrator="euler_maruyama", members=M, noise=sigma, scenario="constant")
    assert system.is_stochastic and system.default_integrator == "euler_maruyama"
    T = out["T"][:, -1].numpy()
    tau = C_YR / -LAMBDA
    var = sigma ** 2 / (2 * -LAMBDA * C_YR) * (1 - math.exp(-2 * t_end / tau))
    assert abs(T.mean()) < 4 * math.sqrt(var / M)
    assert T.var() == pytest.approx(var, rel=0.15)  # sampling error 3 % (1 sigma), EM bias 0.5 %
    # the same member gets the same path in any block
    sub = system.simulate(make_integrator("euler_maruyama"), grid, seed=0, members=range(7, 9))
    assert torch.equal(sub["T"], out["T"][7:9])


def test_float32_runs():
    system = make_system("slab_ocean_0d", scenario="abrupt_4x")
    out = system.simulate(make_integrator("rk4"), TimeGrid(dt=0.1, save_every=1.0, t_end=10.0), seed=0,
                          members=range(2), dtype=torch.float32)
    assert out["T"].dtype == torch.float32 and torch.isfinite(out["T"]).all()


@pytest.mark.parametrize("params, message", [
    (dict(feedback=0.5), "feedback .* must be < 0 .* got 0.5"),
    (dict(mixed_layer_depth=0.0), "mixed_layer_depth .* must be > 0, got 0.0"),
    (dict(noise=-1.0), "noise .* must be >= 0, got -1.0"),
    (dict(scenario="abrupt_8x"), "unknown scenario 'abrupt_8x'"),
    (dict(scenario=3), "scenario must be a scenario name"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        SlabOcean0D(**params)


def test_pipeline(tmp_path):
    out = tmp_path / "slab.zarr"
    simulate(compose("simulate", ["system=slab_ocean_0d", "system.scenario=abrupt_4x", "ensemble.members=3",
                                  "time.t_end=20", f"out={out}", "progress=false"]), log=lambda m: None)
    ds = dynlab.open_dataset(out)
    assert ds.attrs["integrator"] == "rk4"
    assert ds.time.attrs["units"] == "year" and ds.time.dtype == np.float64
    for name, units in {"T": "K", "N_toa": "W m-2", "forcing": "W m-2", "co2": "ppm"}.items():
        assert ds[name].dims == ("member", "time") and ds[name].attrs["units"] == units
    np.testing.assert_allclose(ds.co2.values, 1120.0)
    F4X = 5.35 * math.log(4.0)
    np.testing.assert_allclose(ds.T.values[0], step_response(ds.time.values, F4X), atol=1e-8)
    with pytest.raises(ConfigError, match="rk4 cannot integrate the stochastic system slab_ocean_0d"):
        simulate(compose("simulate", ["system=slab_ocean_0d", "system.noise=1", "integrator=rk4",
                                      f"out={tmp_path / 'x.zarr'}", "progress=false"]))
