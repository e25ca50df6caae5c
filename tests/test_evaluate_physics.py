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
    assert "## Physics checks" in (result.run_dir / "report.md").read_text()
