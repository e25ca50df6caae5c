"""Every tipping-point preset simulates through ``dynlab simulate`` (the pipeline function)
into a dataset with units, long names and the driver next to the state."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pipeline.simulate import simulate
from simulators import TimeGrid, make_integrator, make_system

# config, state variable, driver (name, initial value, rate) or None, time overrides
PRESETS = [
    ("may_grazing", "x", ("c", 2.3, 0.0), ["time.t_end=2", "time.spinup=1"]),
    ("may_grazing_ramp", "x", ("c", 2.0, 0.003), ["time.t_end=2", "time.spinup=1"]),
    ("ou", "x", None, ["time.t_end=1"]),
    ("lsn", "x", ("R", 1.0, -0.004), ["time.t_end=1"]),
    ("gbm", "x", None, ["time.t_end=0.1"]),
    ("allee", "n", ("mu", 0.4, 0.01), ["time.t_end=2", "time.spinup=0.5"]),
    ("allee_stationary", "n", ("mu", 0.4, 0.0), ["time.t_end=2", "time.spinup=0.5"]),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("preset, state, driver, overrides", PRESETS, ids=[p[0] for p in PRESETS])
def test_preset_simulates_through_the_pipeline(tmp_path, preset, state, driver, overrides):
    out = tmp_path / f"{preset}.zarr"
    simulate(compose("simulate", [f"system={preset}", "ensemble.members=3", *overrides, f"out={out}",
                                  "progress=false"]), log=lambda msg: None)
    ds = dynlab.open_dataset(out)
    assert ds[state].dims == ("member", "time") and ds.sizes["member"] == 3
    for name, var in ds.data_vars.items():
        assert var.attrs["units"] and var.attrs["long_name"], name
    values = ds[state].values
    assert np.isfinite(values).all()
    if driver is not None:
        name, start, rate = driver
        expected = start + rate * ds["time"].values
        np.testing.assert_allclose(ds[name].values, np.broadcast_to(expected, (3, ds.sizes["time"])), rtol=1e-12)
    if state == "n":
        assert (values == np.round(values)).all() and (values >= 0).all()
        assert ds["extinction_time"].dims == ("member",)
    if preset.startswith("may"):
        assert (values >= 0).all()
    assert ds.attrs["integrator"] == ("gillespie_ramp" if state == "n" else "euler_maruyama")


def test_bad_parameter_from_the_command_line_names_the_value(tmp_path):
    cfg = compose("simulate", ["system=may_grazing", "system.sigma=-0.2", f"out={tmp_path / 'x.zarr'}"])
    with pytest.raises(ConfigError, match=r"sigma .*-0.2"):
        simulate(cfg, log=lambda msg: None)
    cfg = compose("simulate", ["system=allee", "system.mu=1.5", f"out={tmp_path / 'y.zarr'}"])
    with pytest.raises(ConfigError, match=r"mu=1.5"):
        simulate(cfg, log=lambda msg: None)


def test_sde_members_do_not_depend_on_the_batch():
    may = make_system("may_grazing", c=2.0, c_rate=0.01, sigma=0.3)
    grid = TimeGrid(dt=0.05, save_every=0.25, t_end=2.0, spinup=0.5)
    em = make_integrator("euler_maruyama")
    whole = may.simulate(em, grid, seed=4, members=range(5))
    part = may.simulate(em, grid, seed=4, members=[3, 1])
    assert torch.equal(whole["x"][[3, 1]], part["x"]) and torch.equal(whole["c"][[3, 1]], part["c"])
