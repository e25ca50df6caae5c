"""The early-warning notebook runs end to end at small sizes and writes its figures."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import torch

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "ews_may.py"
FIGURES = ("ews_indicator_series.png", "ews_roc.png")


def test_ews_notebook_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_FIGURE_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ns = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    # the small ramp (c: 2.3 -> fold at t ~ 61) tips most runs and scores every statistic
    assert int(np.isfinite(ns["t_tr"]).sum()) >= ns["members"] // 2
    assert all(0 <= area <= 1 for _, _, area in ns["rows"])
    assert "detection at 5% false alarms" in capsys.readouterr().out
