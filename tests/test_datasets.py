"""`dynlab simulate` datasets: schema, round trip, determinism, resumability, identity, dask."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

import dynlab
from dynlab.cli import main as cli_main
from dynlab.config import compose
from dynlab.data import store
from dynlab.errors import ConfigError, SimulationError, StoreError
from dynlab.pipeline.simulate import plan_simulation, simulate
from simulators import (AbstractSystem, Params, TimeGrid, Variable, make_integrator, make_system, register_system,
                        run_members)

QUIET = ["progress=false"]


def small(out: Path, *extra: str) -> list[str]:
    """Six members in chunks of one member (small data would otherwise fit one chunk)."""
    return ["ensemble.members=6", "ensemble.chunk_members=1", "time.t_end=2", "time.spinup=1", f"out={out}",
            *QUIET, *extra]


def run(overrides):
    return simulate(compose("simulate", overrides), log=lambda msg: None)


def arrays(path: Path) -> dict[str, np.ndarray]:
    ds = dynlab.open_dataset(path)
    return {name: ds[name].values for name in ds.data_vars}


def test_schema_units_and_attributes(tmp_path):
    out = tmp_path / "l96.zarr"
    run(small(out))
    ds = dynlab.open_dataset(out)
    assert ds.X.dims == ("member", "time", "k")
    assert ds.sizes == {"member": 6, "time": 41, "k": 40}
    assert ds.X.attrs["units"] == "1" and "Lorenz96" in ds.X.attrs["long_name"]
    np.testing.assert_allclose(ds.time.values, np.arange(41) * 0.05)
    assert ds.time.dtype == np.float64  # not decoded into timedeltas
    assert ds.time.attrs["units"] == "1"
    # the same with plain xarray: the units attribute must not trigger timedelta decoding
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finished store opens quietly with plain xarray
        raw = xr.open_zarr(out)
    assert raw.time.dtype == np.float64
    assert ds.attrs["system"] == "lorenz96" and ds.attrs["seed"] == 0 and ds.attrs["integrator"] == "rk4"
    assert ds.attrs["dynlab_config_hash"] == plan_simulation(compose("simulate", small(out))).config_hash
    assert "K: 40" in ds.attrs["dynlab_config"] and "torch" in ds.attrs["versions"]
    assert isinstance(ds.X.data, __import__("dask").array.Array)  # lazy


def test_two_scale_and_lorenz63_schemas(tmp_path):
    run(["system=lorenz96_two_scale", "system.K=4", "system.J=3", "ensemble.members=2", "time.t_end=0.5",
         "time.spinup=0.1", f"out={tmp_path / 'two.zarr'}", *QUIET])
    ds = dynlab.open_dataset(tmp_path / "two.zarr")
    assert ds.X.dims == ("member", "time", "k") and ds.Y.dims == ("member", "time", "k", "j")
    assert ds.Y.shape == (2, 11, 4, 3)
    run(["system=lorenz63", "ensemble.members=2", "time.t_end=1", f"out={tmp_path / 'l63.zarr'}", *QUIET])
    ds = dynlab.open_dataset(tmp_path / "l63.zarr")
    assert set(ds.data_vars) == {"x", "y", "z"} and ds.x.dims == ("member", "time")


def test_round_trip_equals_the_simulator_output(tmp_path):
    out = tmp_path / "rt.zarr"
    run(small(out))
    direct = run_members(make_system("lorenz96"), make_integrator("rk4"),
                         TimeGrid(dt=0.01, save_every=0.05, t_end=2.0, spinup=1.0), seed=0, members=range(6))
    np.testing.assert_array_equal(dynlab.open_dataset(out).X.values, direct["X"].numpy())


@pytest.mark.parametrize("integrator", ["rk4", "dopri5"])
def test_bit_identical_whatever_the_block_size(tmp_path, integrator):
    extra = [f"integrator={integrator}", "time.t_end=0.5", "ensemble.members=4"]
    run(small(tmp_path / "a.zarr", "ensemble.block_size=1", *extra))
    run(small(tmp_path / "b.zarr", "ensemble.block_size=4", *extra))
    run(small(tmp_path / "c.zarr", *extra))
    a, b, c = (arrays(tmp_path / f"{n}.zarr")["X"] for n in "abc")
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_members_do_not_depend_on_the_ensemble_size(tmp_path):
    run(small(tmp_path / "six.zarr"))
    run(small(tmp_path / "three.zarr", "ensemble.members=3"))
    assert np.array_equal(arrays(tmp_path / "six.zarr")["X"][:3], arrays(tmp_path / "three.zarr")["X"])


def test_rerun_does_nothing_and_a_different_config_is_refused(tmp_path):
    out = tmp_path / "d.zarr"
    first = run(small(out))
    again = run(small(out))
    assert again.computed_members == 0 and again.config_hash == first.config_hash
    with pytest.raises(StoreError) as err:
        run(small(out, "system.F=9"))
    other = plan_simulation(compose("simulate", small(out, "system.F=9"))).config_hash
    assert first.config_hash in str(err.value) and other in str(err.value)
    replaced = run(small(out, "system.F=9", "overwrite=true"))
    assert replaced.computed_members == 6
    assert dynlab.open_dataset(out).attrs["dynlab_config_hash"] == other


def test_hash_ignores_out_block_size_and_progress(tmp_path):
    h = lambda *o: plan_simulation(compose("simulate", list(o))).config_hash  # noqa: E731
    base = h(f"out={tmp_path}/x.zarr")
    assert base == h(f"out={tmp_path}/y.zarr", "ensemble.block_size=3", "progress=false", "parallel=dask",
                     "ensemble.chunk_members=2")
    assert base == h(f"out={tmp_path}/x.zarr", "system.F=8")  # 8 and 8.0 are the same
    assert base == h(f"out={tmp_path}/x.zarr", "integrator=rk4")  # auto resolves to rk4
    assert base != h(f"out={tmp_path}/x.zarr", "seed=1")
    assert base != h(f"out={tmp_path}/x.zarr", "dtype=float32")


def test_resume_after_partial_run_equals_uninterrupted(tmp_path):
    whole = tmp_path / "whole.zarr"
    part = tmp_path / "part.zarr"
    run(small(whole, "ensemble.block_size=1"))
    run(small(part, "ensemble.block_size=1"))
    # forget two chunks, as if the run had been killed before writing them
    arr = zarr.open_array(str(part), path="_dynlab/chunk_done", mode="r+")
    arr[1] = 0
    arr[3] = 0
    with pytest.raises(StoreError, match="incomplete"):
        dynlab.open_dataset(part)
    resumed = run(small(part, "ensemble.block_size=2"))  # another block size on resume
    assert resumed.computed_members == 2
    assert np.array_equal(arrays(whole)["X"], arrays(part)["X"])


def test_killed_subprocess_resumes_to_the_same_bytes(tmp_path):
    args = ["ensemble.members=12", "ensemble.chunk_members=1", "ensemble.block_size=1", "time.t_end=20",
            "time.spinup=0", *QUIET]
    whole, killed = tmp_path / "whole.zarr", tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "dynlab.cli", "simulate", *args]
    proc = subprocess.Popen(cmd + [f"out={killed}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done = None
    while time.time() < deadline:
        done = store.chunks_done(killed) if (killed / "zarr.json").exists() else None
        if done is not None and 2 <= done.sum() < len(done) - 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = store.chunks_done(killed)
    assert 0 < done.sum() < len(done)
    with pytest.raises(StoreError, match="incomplete"):
        dynlab.open_dataset(killed)
    assert cli_main(["simulate", *args, f"out={killed}"]) == 0
    assert cli_main(["simulate", *args, "ensemble.block_size=null", f"out={whole}"]) == 0
    assert np.array_equal(arrays(whole)["X"], arrays(killed)["X"])


def test_dask_path_equals_serial_path(tmp_path):
    pytest.importorskip("dask.distributed")
    run(small(tmp_path / "serial.zarr", "ensemble.block_size=1"))
    run(small(tmp_path / "dask.zarr", "ensemble.block_size=1", "parallel=dask", "parallel.n_workers=2"))
    assert np.array_equal(arrays(tmp_path / "serial.zarr")["X"], arrays(tmp_path / "dask.zarr")["X"])


@register_system
class _BlowsUpFromMember4(AbstractSystem):
    """dx/dt = x²: from x0 = 1 it blows up at t = 1; members below 4 start at 0 and stay there."""

    name = "test_blowup"

    @dataclass(frozen=True)
    class Params(Params):
        pass

    @property
    def state_shape(self):
        return (1,)

    def vector_field(self, t, x):
        return x * x

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return (rng.members >= 4).to(dtype)[:, None]

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "x"),)

    def observables(self, x):
        return {"x": x[..., 0]}


def test_blowup_names_member_and_time_and_keeps_finished_blocks(tmp_path):
    cfg = compose("simulate", ["ensemble.members=8", "ensemble.chunk_members=1", "ensemble.block_size=1", "time.dt=0.01", "time.save_every=0.1",
                               "time.spinup=0", "time.t_end=3", f"out={tmp_path / 'b.zarr'}", *QUIET])
    cfg.system = {"name": "test_blowup"}
    with pytest.raises(SimulationError, match=r"member 4 became non-finite at model time 1\.\d") as err:
        simulate(cfg, log=lambda m: None)
    done = store.chunks_done(tmp_path / "b.zarr")
    chunk = plan_simulation(cfg).member_chunk
    assert done[: 4 // chunk].all() and not done[4 // chunk:].any()
    assert "kept" in str(err.value)


@pytest.mark.parametrize("override,message", [
    ("system=foo", "unknown system 'foo'"),
    ("time.dt=0", "time.dt=0 is invalid: expected a finite number > 0"),
    ("time.dt=-0.01", "time.dt=-0.01 is invalid: expected a finite number > 0"),
    ("system.F=nan", "system.F=nan is invalid: expected a finite number"),
    ("system.F=inf", "system.F=inf is invalid: expected a finite number"),
    ("system.K=3", "parameter K must be >= 4"),
    ("time.save_every=0.055", "time.save_every=0.055 is not a whole number of steps"),
    ("integrator=rk5", "unknown integrator 'rk5'"),
    ("ensemble.members=0", "ensemble.members=0 is invalid: expected an integer >= 1"),
    ("seed=-3", "seed=-3 is invalid: expected an integer >= 0"),
    ("system.G=1", "unknown config key 'system.G'"),
    ("dtype=float16", "dtype='float16' is invalid: expected one of float64, float32"),
])
def test_bad_input_is_refused_before_compute_with_one_line(tmp_path, capsys, override, message):
    out = tmp_path / "bad.zarr"
    assert cli_main(["simulate", override, f"out={out}", *QUIET]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unwritable_output_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert cli_main(["simulate", f"out={blocker / 'x.zarr'}", *QUIET]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_open_dataset_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        dynlab.open_dataset(tmp_path / "nothing.zarr")
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(foreign, zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match="dynlab_format"):
        dynlab.open_dataset(foreign)
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a Zarr store"):
        dynlab.open_dataset(tmp_path / "plain")
    with pytest.raises(StoreError, match="dynlab did not write"):
        run(small(foreign))


def test_float32_dataset(tmp_path):
    run(small(tmp_path / "f32.zarr", "dtype=float32"))
    ds = dynlab.open_dataset(tmp_path / "f32.zarr")
    assert ds.X.dtype == np.float32


def test_cli_prints_config(capsys):
    assert cli_main(["simulate", "system=lorenz63", "--cfg"]) == 0
    assert "name: lorenz63" in capsys.readouterr().out
