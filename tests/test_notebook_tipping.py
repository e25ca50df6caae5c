"""The tipping-series notebook runs end to end at small sizes and writes its figures."""
from __future__ import annotations

import runpy
from pathlib import Path

import torch

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tipping_series.py"
FIGURES = ("may_bifurcation.png", "may_potential.png", "may_tipping_series.png", "may_potential_snapshots.png")


def test_tipping_series_notebook_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_FIGURE_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    # the small run still tips: upper branch before the fold, lower branch at the end
    xs, times = namespace["xs"], namespace["times"]
    assert xs[:, times < 0.5 * namespace["t_fold"]].mean() > 5.0
    assert xs[:, -1].mean() < 1.5
    assert "upper branch folds at c = 2.604" in capsys.readouterr().out
