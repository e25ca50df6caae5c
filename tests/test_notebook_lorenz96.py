"""The Lorenz96 notebook runs at small size and makes its figures."""
from __future__ import annotations

import os
import runpy
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "lorenz96.py"


def test_lorenz96_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    runpy.run_path(str(NOTEBOOK), run_name="__main__")
    assert (tmp_path / "hovmoller.png").stat().st_size > 1000
    assert (tmp_path / "climatology.png").stat().st_size > 1000
    assert (tmp_path / "l96.zarr").is_dir()
    assert os.environ["DYNLAB_NOTEBOOK_SMALL"] == "1"
