"""The climate-scenario notebook runs at small size, plots its figures and closes its budget."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "climate_scenario.py"


def test_climate_scenario_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    for figure in ("climate_scenario.png", "climate_zonal_warming.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    assert (tmp_path / "ebm_1pct.zarr").is_dir() and (tmp_path / "slab_1pct.zarr").is_dir()
    ds = env["ds"]
    assert ds.attrs["integrator"] == "euler_maruyama"  # noise makes it an SDE
    # the 1 %/yr ramp: forcing grows linearly, 5.35 ln(1.01) W m-2 per year
    np.testing.assert_allclose(np.diff(env["F_ann"]), 5.35 * np.log(1.01), rtol=1e-6)
    assert env["dT"].mean(0)[-1] > 0 and env["F_ann"][-1] > 0
    assert float(np.abs(ds.budget_residual).max()) < 1e-9 * env["heat_change"]
