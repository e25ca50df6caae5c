"""A tipping run's evaluation carries the emulator-side early-warning checks (issue 11, item 4)."""
from __future__ import annotations

import json

import xarray as xr

from dynlab.config import compose
from dynlab.pipeline.run import run


def test_tipping_run_reports_recovery_rate_and_slowing_down(tmp_path):
    cfg = compose("run", ["system=may_grazing_ramp", "name=tip", "learner=linear", "ensemble.members=12",
                          "time.t_end=260", "data.context=4", "train.steps=0", "evaluate.eval.horizon=10",
                          "evaluate.eval.starts_per_member=4", "evaluate.eval.long_rollout=0",
                          "evaluate.eval.plots=false", f"cache_dir={tmp_path / 'cache'}",
                          f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    res = xr.open_zarr(result.run_dir / "ews_emulator.zarr", consolidated=False)
    # the truth slows down before the fold (c ≈ 2.604) and its indicators trend upwards ...
    assert 2.3 < summary["ews_truth_c_at_level"] < summary["ews_fold_c"] < 2.61
    assert summary["ews_tau_variance_median_truth"] > 0.1
    # ... a linear one-step map without c as input has one fixed eigenvalue, so it cannot
    assert float(res["recovery_emulator"].std()) < 1e-6
    assert abs(summary["ews_tau_variance_median_emulator"]) < summary["ews_tau_variance_median_truth"]
    assert "Early warning on the emulator" in (result.run_dir / "report.md").read_text()
