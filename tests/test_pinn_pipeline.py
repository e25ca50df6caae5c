"""run_pinn end to end at tiny sizes: the run directory, its marker, results and report."""
from __future__ import annotations

import json

import pytest

from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pinn.pipeline import MARKER, run_pinn


def _cfg(experiment, run_dir, *extra):
    return compose("run", [f"experiment={experiment}", f"run_dir={run_dir}", *extra])


def test_run_pinn_lorenz63_writes_a_complete_run_directory(tmp_path):
    import xarray as xr

    run_dir = tmp_path / "l63"
    cfg = _cfg("pinn_lorenz63", run_dir, "time.t_end=0.2", "time.spinup=0.0", "pinn.windows=2", "pinn.steps=15",
               "pinn.lbfgs_steps=5", "pinn.points=32", "pinn.network.width=8")
    result = run_pinn(cfg, log=lambda msg: None)
    for name in (MARKER, "config.yaml", "metrics.jsonl", "report.md", "error_field.png", "error_in_time.png"):
        assert (run_dir / name).is_file(), name
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["event"] == "final" and final["rel_l2"] == pytest.approx(result.rel_l2)
    assert sum(1 for r in lines if r.get("event") == "window_end") == 2
    ds = xr.open_zarr(run_dir / "results.zarr", zarr_format=3)
    err = ds["u_pinn"] - ds["u_ref"]
    rel = float((err ** 2).sum() ** 0.5 / (ds["u_ref"] ** 2).sum() ** 0.5)
    assert rel == pytest.approx(result.rel_l2, rel=1e-10)
    assert ds["u_ref"].shape == (21, 3)
    assert "relative L2" in (run_dir / "report.md").read_text()
    # a rerun into the same (marked) folder is allowed
    run_pinn(cfg, log=lambda msg: None)


@pytest.mark.parametrize("experiment,extra", [
    ("pinn_allen_cahn", ["system.n=64", "time.dt=1e-3", "time.save_every=0.01", "time.t_end=0.05"]),
    ("pinn_ks", ["system.n=64", "time.dt=1e-4", "time.save_every=0.01", "time.t_end=0.02"]),
])
def test_run_pinn_pde_experiments_at_tiny_size(tmp_path, experiment, extra):
    import xarray as xr

    cfg = _cfg(experiment, tmp_path / "run", *extra, "pinn.steps=3", "pinn.points=64",
               "pinn.network.width=8", "pinn.network.depth=2")
    result = run_pinn(cfg, log=lambda msg: None)
    ds = xr.open_zarr(tmp_path / "run" / "results.zarr", zarr_format=3)
    assert ds["u_pinn"].dims == ("time", "x") and ds.sizes["x"] == 64
    assert 0 < result.rel_l2 < 10
    # exact IC: the PINN equals the reference at t = 0 to rounding (float32)
    assert float(abs(ds["error"].isel(time=0)).max()) < 1e-6


def test_run_pinn_refuses_foreign_folders_and_configs_without_pinn(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by dynlab"):
        run_pinn(_cfg("pinn_lorenz63", foreign), log=lambda msg: None)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="no pinn section"):
        run_pinn(compose("run", [f"run_dir={tmp_path / 'x'}"]), log=lambda msg: None)
    with pytest.raises(ConfigError, match="pinn.steps"):
        run_pinn(_cfg("pinn_lorenz63", tmp_path / "y", "pinn.steps=0"), log=lambda msg: None)


def test_dynlab_run_dispatches_pinn_experiments(tmp_path, capsys):
    from dynlab.cli import main as cli_main

    run_dir = tmp_path / "cli"
    code = cli_main(["run", "experiment=pinn_lorenz63", f"run_dir={run_dir}", "time.t_end=0.2", "time.spinup=0.0",
                     "pinn.windows=1", "pinn.steps=10", "pinn.lbfgs_steps=2", "pinn.points=16",
                     "pinn.network.width=8", "progress=false"])
    out = capsys.readouterr().out
    assert code == 0 and "pinn_lorenz63: relative L2" in out and (run_dir / "report.md").is_file()
