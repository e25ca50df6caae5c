"""The error-growth notebook runs at small size, evaluates several learners and plots them."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "error_growth.py"


def test_error_growth_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("DYNLAB_METRICS", raising=False)
    env = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    for figure in ("error_growth.png", "vpt.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    assert (tmp_path / "evaluation" / "report.md").exists()
    assert env["learners"][:3] == ["coarse reference", "hippo", "persistence"]
    assert {"linear", "damped_persistence", "climatology"} <= set(env["learners"])  # the default baselines
    table = env["table"]
    # a small systematic error (RMS at lead 1 far below the baselines') keeps the forecast valid longest
    rmse1 = env["metrics"]["rmse"].isel(lead=0)
    assert float(rmse1.sel(learner="coarse reference")) < 0.01 * float(rmse1.sel(learner="persistence"))
    assert table["coarse reference"]["vpt"] > max(table["persistence"]["vpt"], table["linear"]["vpt"])
    assert np.isfinite(env["lam"]) and env["lam"] > 0

    # the same notebook reads a metrics.zarr it is pointed at
    monkeypatch.setenv("DYNLAB_METRICS", str(tmp_path / "evaluation" / "metrics.zarr"))
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path / "again"))
    (tmp_path / "again").mkdir()
    again = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    assert again["table"] == table
