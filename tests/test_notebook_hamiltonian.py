"""The Hamiltonian energy notebook runs end to end at small size."""
from __future__ import annotations

import runpy
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "hamiltonian_energy.py"


def test_hamiltonian_energy_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("DYNLAB_NOTEBOOK_OUT", str(tmp_path))
    env = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    for figure in ("mass_spring_energy.png", "kepler_energy.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    results = env["results"]
    # the notebook's point: bounded symplectic errors, a drifting RK4
    z2 = 0.2 ** 2 / 4  # (ωh)²/4: leapfrog's relative energy error is at most z2 / (1 − z2)
    assert results[("mass_spring", "leapfrog")]["max_abs"] <= z2 / (1 - z2) * (1 + 1e-9)
    assert results[("mass_spring", "rk4")]["trend"] < -10 * abs(results[("mass_spring", "leapfrog")]["trend"])
    assert results[("mass_spring", "yoshida4")]["max_abs"] < results[("mass_spring", "leapfrog")]["max_abs"]
    assert results[("kepler", "rk4")]["trend"] < 0
