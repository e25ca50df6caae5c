"""The SSM-modes notebook runs at small size, its modes agree and it makes its figures."""
from __future__ import annotations

import runpy
from pathlib import Path

import matplotlib

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "ssm_modes.py"


def test_ssm_modes_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    assert namespace["max_mode_gap"] < 1e-10
    assert namespace["skill_ratio"] > 10
    if namespace["selective_scan"] is not None:
        assert namespace["scan_gap"] < 1e-10
    for figure in ("s4d_modes.png", "hippo_lorenz63.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    import matplotlib.pyplot as plt
    plt.close("all")
