"""`dynlab evaluate` on a Hamiltonian run writes the family's physics checks beside the forecasts."""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from dynlab.config import compose
from dynlab.pipeline.run import run


def test_hamiltonian_run_reports_energy_checks(tmp_path):
    cfg = compose("run", ["system=mass_spring", "name=ms", "learner=linear", "ensemble.members=8", "time.t_end=10",
                          "data.context=4", "train.steps=0", "evaluate.eval.horizon=10",
                          "evaluate.eval.starts_per_member=2", "evaluate.eval.long_rollout=0",
                          "evaluate.eval.plots=false", "evaluate.eval.baselines=[persistence]",
                          f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    table = xr.open_zarr(result.run_dir / "physics.zarr", consolidated=False)
    assert "reference:yoshida4" in [str(v) for v in table["learner"].values]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    # the symplectic reference keeps energy bounded: its relative oscillation is small
    ref = float(np.nanmedian(table["energy_oscillation_relative"].sel(learner="reference:yoshida4").values))
    assert ref < 1e-3 and "physics_energy_mse" in summary
    low, high = summary["physics_intervals"]["energy_mse"]
    assert low <= summary["physics_energy_mse"] <= high
    assert "## Physics checks" in (result.run_dir / "report.md").read_text()


def test_lorenz96_run_reports_climate_floor_and_lyapunov_spectra(tmp_path):
    cfg = compose("run", ["system=lorenz96", "system.K=8", "name=l96", "learner=linear", "ensemble.members=12",
                          "time.t_end=20", "time.spinup=5", "data.context=4", "data.split.train=0.5",
                          "data.split.val=0.25", "data.split.test=0.25", "train.steps=0",
                          "evaluate.eval.horizon=10", "evaluate.eval.starts_per_member=2",
                          "evaluate.eval.long_rollout=200", "evaluate.eval.climate_transient=20",
                          "evaluate.eval.lyapunov_exponents=3", "evaluate.eval.lyapunov_steps=60",
                          "evaluate.eval.plots=false", "evaluate.eval.baselines=[persistence]",
                          f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    climate = xr.open_zarr(result.run_dir / "climate.zarr", consolidated=False)
    assert {"wasserstein_ratio", "acf_ratio", "spec_space_ratio"} <= set(climate.data_vars)
    # a linear one-step map cannot hold Lorenz96's climate: far beyond the truth-vs-truth floor
    assert summary["climate_acf_ratio"] > 2 or summary["climate_wasserstein_ratio"] > 2
    assert len(summary["lyapunov_system"]) == 3 and summary["lyapunov_system"][0] > 0.5  # chaotic truth
    assert summary["lyapunov_emulator"][0] < summary["lyapunov_system"][0]  # the linear fit is not chaotic
    report = (result.run_dir / "report.md").read_text()
    assert "## Climate against the noise floor" in report and "## Lyapunov spectrum" in report


def test_seasonal_ebm_run_reports_finite_climate_checks_with_a_reference_row(tmp_path):
    """`dynlab run` on a seasonal abrupt-4x EBM: the physics table was NaN throughout (a blown-up
    linear map, seasonal sampling); now the reference row is finite (annual means), the emulator's
    row is finite or marked as a blow-up, and the climate floor's ratios carry intervals."""
    cfg = compose("run", ["system=ebm_1d", "system.n_lat=18", "system.scenario=abrupt_4x", "system.initial_spread=3",
                          "time.dt=0.01", "time.save_every=0.05", "time.spinup=2", "time.t_end=8", "name=ebm",
                          "learner=linear", "learner.ridge=0.01", "ensemble.members=8", "data.context=4",
                          "data.split.train=0.5", "data.split.val=0.25", "data.split.test=0.25", "train.steps=0",
                          "evaluate.eval.horizon=20", "evaluate.eval.starts_per_member=2",
                          "evaluate.eval.long_rollout=100", "evaluate.eval.climate_transient=10",
                          "evaluate.eval.plots=false", "evaluate.eval.baselines=[persistence]",
                          f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    table = xr.open_zarr(result.run_dir / "physics.zarr", consolidated=False)
    assert [str(v) for v in table["learner"].values] == ["reference:rk4", "linear"]
    ref = table.sel(learner="reference:rk4")
    for k in ("budget_residual_flux", "ecs", "tau", "warming"):
        assert np.all(np.isfinite(ref[k].values)), k
    assert np.all(np.abs(ref["budget_residual_flux"].values) < 0.15) and np.all(ref["ecs"].values > 2)
    lin = table.sel(learner="linear")
    blown = lin["finite_years"].values < float(ref["finite_years"].max())
    assert np.all(np.isfinite(lin["budget_residual_flux"].values) | blown)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert set(summary["climate_intervals"]) >= {"wasserstein_ratio", "acf_ratio"}
    low, high = summary["climate_intervals"]["wasserstein_ratio"]
    assert low <= high
    report = (result.run_dir / "report.md").read_text()
    assert "annual means" in report and "| interval |" in report
