"""Jump systems through the system contract and `dynlab simulate`: variables and dims,
bit-identical data whatever the block of members or the number of paths, the
observation layer (grids, mislabelling), spin-up, validation of bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import dynlab
from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pipeline.simulate import simulate
from simulators import TimeGrid, make_integrator, make_system
from simulators.jump import mislabel, path_keys, stationary_distribution

GILLESPIE = make_integrator("gillespie")
GRID = TimeGrid(dt=0.1, save_every=0.1, t_end=4.0)


def run(system, members, grid=GRID, seed=0):
    return system.simulate(GILLESPIE, grid, seed=seed, members=members)


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, equal_nan=True, msg=name)


def test_dataset_through_the_pipeline(tmp_path):
    out = tmp_path / "ratchet.zarr"
    simulate(compose("simulate", ["system=flashing_ratchet", "ensemble.members=3", "system.n_paths=5",
                                  "system.n_obs=21", "time.t_end=2", f"out={out}", "progress=false"]))
    ds = dynlab.open_dataset(out)
    assert ds.attrs["integrator"] == "gillespie"
    assert ds.state.dims == ("member", "path", "obs") and ds.state.shape == (3, 5, 21)
    assert ds.time.dims == ("member", "path", "obs")
    assert ds.rate_matrix.dims == ("member", "from_state", "to_state") and ds.rate_matrix.shape == (3, 6, 6)
    assert "time" not in ds.dims
    for name in ds.data_vars:
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"]
    np.testing.assert_allclose(ds.time.values[0, 0], np.linspace(0, 2, 21), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds.rate_matrix.values.sum(-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(ds.initial_distribution.values[0], stationary_distribution(
        torch.tensor(ds.rate_matrix.values[0])).numpy(), rtol=1e-12)
    states = ds.state.values
    assert set(np.unique(states)) <= set(range(6)) and np.all(states == np.round(states))


def test_pipeline_bytes_do_not_depend_on_the_block_of_members(tmp_path):
    common = ["system=mjp_prior", "ensemble.members=5", "system.n_paths=4", "system.n_obs=12", "time.t_end=3",
              "system.keep_jumps=true", "system.max_events=40", "system.mislabel_rate=0.1", "progress=false"]
    simulate(compose("simulate", common + [f"out={tmp_path / 'a.zarr'}"]))
    simulate(compose("simulate", common + ["ensemble.block_size=1", "ensemble.chunk_members=1",
                                           f"out={tmp_path / 'b.zarr'}"]))
    a, b = dynlab.open_dataset(tmp_path / "a.zarr"), dynlab.open_dataset(tmp_path / "b.zarr")
    assert set(a.data_vars) == {"state", "true_state", "time", "rate_matrix", "initial_distribution", "n_states",
                                "jump_time", "jump_state", "n_events"}
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    n = a.n_states.values
    assert n.min() >= 2 and n.max() <= 6
    assert a.jump_time.dims == ("member", "path", "event")


@pytest.mark.parametrize("name,kwargs", [
    ("flashing_ratchet", dict(grid="irregular", n_obs=21, mislabel_rate=0.2, keep_jumps=True, max_events=64,
                              initial="uniform")),
    ("mjp_prior", dict(grid="regular", keep_jumps=True, max_events=64)),
    ("birth_death", dict(birth=20.0, death=1.0, grid="irregular", keep_jumps=True, max_events=300)),
    ("lotka_volterra", dict(n_obs=11, prey0=10, predator0=10)),
])
def test_a_member_does_not_depend_on_its_block_nor_on_the_number_of_paths(name, kwargs):
    system = make_system(name, n_paths=6, **kwargs)
    together = run(system, range(5))
    apart = [run(system, [0, 1]), run(system, range(2, 5))]
    assert_same(together, {k: torch.cat([apart[0][k], apart[1][k]]) for k in together})
    fewer = run(make_system(name, n_paths=3, **kwargs), [3, 4])
    for k, v in fewer.items():
        full = together[k][3:5]
        if v.ndim >= 2 and system.variables[[var.name for var in system.variables].index(k)].dims[:1] == ("path",):
            full = full[:, :3]
        torch.testing.assert_close(v, full, rtol=0, atol=0, equal_nan=True, msg=k)


def test_regular_and_irregular_grids():
    regular = run(make_system("flashing_ratchet", n_paths=4, n_obs=9), [0])
    np.testing.assert_allclose(regular["time"][0, 2].numpy(), np.linspace(0, 4, 9), atol=1e-15)
    irregular = run(make_system("flashing_ratchet", n_paths=4, n_obs=50, grid="irregular"), [0])
    t = irregular["time"][0]
    assert bool((t.diff(dim=1) >= 0).all()) and float(t.min()) >= 0 and float(t.max()) <= 4.0
    assert not torch.equal(t[0], t[1])  # each path its own times
    # sorted uniforms: pooled, uniform on [0, t_end]
    assert scipy.stats.kstest(t.reshape(-1).numpy() / 4.0, "uniform").pvalue > 1e-3


def test_mislabelling_flips_at_the_given_rate_to_a_uniform_other_state():
    states = torch.arange(4).repeat(500, 25).reshape(500, 100) % 4  # (paths, obs)
    keys = path_keys([7], 500)[0]
    noisy = mislabel(states, 4, 0.3, keys, seed=2)
    flipped = noisy != states
    n = flipped.numel()
    p = scipy.stats.binomtest(int(flipped.sum()), n, 0.3).pvalue
    print(f"mislabelling: {float(flipped.float().mean()):.4f} flipped (rate 0.3), binomial p = {p:.3f}")
    assert p > 1e-3
    shift = ((noisy - states) % 4)[flipped].numpy()  # 1, 2, 3 equally likely
    assert scipy.stats.chisquare(np.bincount(shift, minlength=4)[1:]).pvalue > 1e-3
    assert torch.equal(mislabel(states, 4, 0.0, keys, seed=2), states)
    assert bool((mislabel(states, 4, 1.0, keys, seed=2) != states).all())


def test_mislabelled_dataset_keeps_the_true_state():
    out = run(make_system("flashing_ratchet", n_paths=20, mislabel_rate=0.05), range(4))
    rate = float((out["state"] != out["true_state"]).float().mean())
    assert 0.03 < rate < 0.07


def test_spinup_starts_the_paths_before_time_zero():
    """From state 0 with a spin-up of 6 (12 relaxation times) the state at time 0 is ~ pi."""
    system = make_system("flashing_ratchet", n_paths=2000, n_obs=2, keep_jumps=True, max_events=8, initial="uniform")
    p0 = torch.zeros(1, 6, dtype=torch.float64)
    p0[0, 0] = 1.0
    system.initial_distributions = lambda Q, n, members, seed: p0.expand(len(members), 6)
    out = run(system, [0], grid=TimeGrid(dt=0.5, save_every=0.5, t_end=0.5, spinup=6.0))
    counts = np.bincount(out["state"][0, :, 0].numpy(), minlength=6)
    pi = stationary_distribution(out["rate_matrix"][0]).numpy()
    assert scipy.stats.chisquare(counts, pi * counts.sum()).pvalue > 1e-3
    assert torch.equal(out["jump_state"][0, :, 0], out["state"][0, :, 0])  # entry 0: X(0)
    assert float(out["jump_time"][0, :, 1:].nan_to_num(1.0).min()) >= 0  # no spin-up jumps recorded


@pytest.mark.parametrize("override,match", [
    ("system.mislabel_rate=1.5", r"mislabel_rate must be a probability in \[0, 1\], got 1.5"),
    ("system.mislabel_rate=-0.1", r"mislabel_rate must be a probability in \[0, 1\], got -0.1"),
    ("system.r=-1.0", r"parameter r must be > 0, got -1.0"),
    ("system.b=-0.5", r"parameter b must be >= 0, got -0.5"),
    ("system.grid=sparse", r"parameter grid must be one of regular, irregular, got 'sparse'"),
    ("system.n_paths=0", r"parameter n_paths must be an integer between 1 and 1048576, got 0"),
    ("system.initial=random", r"parameter initial must be one of stationary, uniform, dirichlet, got 'random'"),
])
def test_bad_config_values_are_refused_by_name(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        simulate(compose("simulate", ["system=flashing_ratchet", override, f"out={tmp_path / 'x.zarr'}",
                                      "progress=false"]))


def test_bad_reaction_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match=r"parameter death must be >= 0, got -0.1"):
        make_system("birth_death", death=-0.1)
    with pytest.raises(ValueError, match=r"parameter x0 must be an integer >= 0, got -3"):
        make_system("schlogl", x0=-3)


def test_gillespie_and_the_ode_integrators_refuse_each_other():
    with pytest.raises(ValueError, match=r"gillespie simulates jump processes; lorenz63 is not one"):
        GILLESPIE.check_system(make_system("lorenz63"))
    with pytest.raises(ValueError, match=r"flashing_ratchet is a jump process simulated exactly; "
                                         r"use integrator=gillespie, not 'euler_maruyama'"):
        make_system("flashing_ratchet").simulate(make_integrator("euler_maruyama"), GRID, seed=0, members=[0])


def test_reaction_dataset_through_the_pipeline(tmp_path):
    out = tmp_path / "bd.zarr"
    simulate(compose("simulate", ["system=birth_death", "ensemble.members=2", "system.n_paths=3",
                                  "system.n_obs=11", "time.t_end=10", f"out={out}", "progress=false"]))
    ds = dynlab.open_dataset(out)
    assert ds.counts.dims == ("member", "path", "obs", "species") and ds.counts.shape == (2, 3, 11, 1)
    assert list(ds.species.values) == [0] and ds.species.attrs["species_names"] == "X"
    mean = 100 * (1 - math.exp(-0.1 * 10))  # Poisson mean at t = 10 from empty
    assert abs(float(ds.counts.isel(obs=-1).mean()) - mean) < 4 * math.sqrt(mean / 6)
