"""The Allen–Cahn PINN notebook runs at small size and makes its figures."""
from __future__ import annotations

import math
import runpy
from pathlib import Path

import matplotlib

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "pinn_allen_cahn.py"


def test_pinn_allen_cahn_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    ns = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    for label in ("causal", "plain"):
        r = ns["results"][label]
        assert math.isfinite(r["rel_l2"]) and 0 < r["rel_l2"] < 2
        assert 0 < r["steps"] <= ns["steps"]
        assert (tmp_path / f"pinn_ac_{label}.png").stat().st_size > 1000
    assert (tmp_path / "pinn_ac_error_in_time.png").stat().st_size > 1000
    # the causal run logged its weights, and they are a non-increasing sequence's minimum in (0, 1]
    weights = [h["min_weight"] for h in ns["results"]["causal"]["history"] if "min_weight" in h]
    assert weights and all(0 < w <= 1 for w in weights)
    import matplotlib.pyplot as plt
    plt.close("all")
