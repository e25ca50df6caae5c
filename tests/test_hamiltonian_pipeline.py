"""Hamiltonian systems through `dynlab simulate`: datasets, per-member parameters, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pipeline.simulate import simulate
from simulators import make_system

SHORT = {  # a few steps of each system's own grid
    "mass_spring": ["time.t_end=0.5"],
    "pendulum": ["time.t_end=0.5"],
    "double_pendulum": ["time.t_end=0.1"],
    "henon_heiles": ["time.t_end=0.5"],
    "kepler": ["time.dt=0.01", "time.t_end=0.5"],
    "three_body": ["time.dt=0.01", "time.save_every=0.05", "time.t_end=0.2"],
    "n_body": ["time.dt=0.01", "time.save_every=0.05", "time.t_end=0.2", "system.bodies=4"],
}
DEFAULT_INTEGRATOR = {"double_pendulum": "rk4", "three_body": "dopri5"}  # close encounters: adaptive steps


def _run(tmp_path, name, *overrides, store="x.zarr"):
    out = tmp_path / store
    simulate(compose("simulate", [f"system={name}", "ensemble.members=3", f"out={out}", "progress=false",
                                  *SHORT[name], *overrides]), log=lambda _: None)
    return dynlab.open_dataset(out)


@pytest.mark.parametrize("name", sorted(SHORT))
def test_every_system_simulates_through_the_pipeline(tmp_path, name):
    ds = _run(tmp_path, name)
    system = make_system(name)
    for var in ("q", "p", "H"):
        assert ds[var].attrs["units"] == "1" and ds[var].attrs["long_name"]
    own = ("body", "axis") if name in ("kepler", "three_body", "n_body") else ("dof",)
    assert ds.q.dims == ("member", "time", *own) and ds.p.dims == ds.q.dims
    assert ds.H.dims == ("member", "time")
    assert ds.attrs["integrator"] == DEFAULT_INTEGRATOR.get(name, "leapfrog")
    assert ds.attrs["system"] == name
    # H is the Hamiltonian of the stored (q, p)
    if name == "n_body":
        system = make_system(name, bodies=4)
    q = torch.from_numpy(ds.q.values)
    p = torch.from_numpy(ds.p.values)
    np.testing.assert_allclose(ds.H.values, system.hamiltonian(q, p).numpy(), rtol=1e-12, atol=1e-12)
    assert np.isfinite(ds.H.values).all()


def test_randomised_parameters_are_member_variables_and_deterministic(tmp_path):
    randomize = "system.randomize={k:[1.0,3.0],m:[0.25,1.0]}"
    whole = _run(tmp_path, "mass_spring", randomize, "ensemble.members=6", store="whole.zarr")
    split = _run(tmp_path, "mass_spring", randomize, "ensemble.members=6", "ensemble.chunk_members=1",
                 "ensemble.block_size=1", store="split.zarr")
    fewer = _run(tmp_path, "mass_spring", randomize, "ensemble.members=2", store="fewer.zarr")
    for var in ("k", "m"):
        assert whole[var].dims == ("member",)
        assert whole[var].attrs["units"] == "1" and "drawn per member" in whole[var].attrs["long_name"]
    assert len(np.unique(whole.k.values)) == 6 and (whole.k.values > 1.0).all() and (whole.k.values <= 3.0).all()
    for var in ("k", "m", "q", "p", "H"):
        np.testing.assert_array_equal(whole[var].values, split[var].values)
        np.testing.assert_array_equal(whole[var].values[:2], fewer[var].values)
    # each member's energy uses its own k and m
    H = 0.5 * whole.k * whole.q.isel(dof=0) ** 2 + whole.p.isel(dof=0) ** 2 / (2 * whole.m)
    np.testing.assert_allclose(whole.H.values, H.values, rtol=1e-13)


def test_friction_is_an_attribute_and_picks_rk4(tmp_path):
    ds = _run(tmp_path, "pendulum", "system.friction=0.5", "time.t_end=2.0")
    assert ds.attrs["integrator"] == "rk4"
    assert "'friction': 0.5" in ds.attrs["system_parameters"]
    assert (np.diff(ds.H.values, axis=1) < 0).all()  # energy falls at every save


def test_figure_eight_and_yoshida4_through_the_pipeline(tmp_path):
    ds = _run(tmp_path, "three_body", "system.initial=figure_eight", "integrator=yoshida4",
              "time.t_end=0.5")
    assert ds.attrs["integrator"] == "yoshida4"
    np.testing.assert_allclose(ds.q.values[:, 0], ds.q.values[:1, 0].repeat(3, axis=0))
    np.testing.assert_allclose(ds.H.values, np.broadcast_to(ds.H.values[:, :1], ds.H.shape), rtol=1e-8)


@pytest.mark.parametrize("overrides, needle", [
    (["system=double_pendulum", "integrator=leapfrog"], "double_pendulum is not separable"),
    (["system=mass_spring", "integrator=yoshida4", "system.friction=0.1"], "friction=0.1"),
    (["system=mass_spring", "system.m=-1"], "m must be > 0, got -1.0"),
    (["system=n_body", "system.softening=-0.5"], "softening must be >= 0, got -0.5"),
    (["system=henon_heiles", "system.energy=[0.1,0.5]"], "energy must lie below"),
    (["system=mass_spring", "system.randomize={spring:[1,2]}"], "'spring'"),
])
def test_bad_configs_are_refused_before_any_compute(tmp_path, overrides, needle):
    with pytest.raises(ConfigError) as err:
        simulate(compose("simulate", [*overrides, f"out={tmp_path / 'x.zarr'}", "progress=false"]),
                 log=lambda _: None)
    assert needle in str(err.value)
    assert not (tmp_path / "x.zarr").exists()
