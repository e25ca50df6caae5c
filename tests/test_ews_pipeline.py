"""``dynlab ews`` at tiny sizes through ``compose("ews", ...)`` + ``ews(cfg)``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.ews.config import EWSConfig
from dynlab.ews.pipeline import MARKER, ews

TINY = ["report.n_boot=20", "report.lr_replicates=4", "report.sensitivity=true"]


def test_may_preset_tiny_writes_report_store_and_figures(tmp_path):
    out = tmp_path / "may"
    cfg = compose("ews", ["ews_preset=may_tipping", "members=8", "system.c=2.45", "ramp_rate=0.004",
                          "time.dt=0.1", "time.spinup=5", "time.t_end=60", "analysis.lead=3",
                          "analysis.min_points=20", f"out={out}", *TINY])
    res = ews(cfg)
    assert (out / MARKER).is_file()
    for name in ("report.md", "summary.json", "figures/roc.png", "figures/indicators.png",
                 "figures/tau_sensitivity.png"):
        assert (out / name).stat().st_size > 200, name
    ds = xr.open_zarr(out / "results.zarr")
    assert ds["tau_variance"].dims == ("ensemble", "member") and ds.sizes["member"] == 8
    table = ds["table"].sel(metric="auc").values
    assert np.all((table >= 0) & (table <= 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transitions"]["ramped"] >= 6           # the ramp carries c past the fold at t ~ 38
    from simulators.tipping import may_folds

    assert summary["t_fold"] == pytest.approx((may_folds()[-1].c - 2.45) / 0.004, rel=1e-9)
    # every ramped run stops `lead` before its own transition
    stop, trans = ds["stop_time"].sel(ensemble="ramped").values, ds["transition_time"].sel(ensemble="ramped").values
    np.testing.assert_allclose(stop[np.isfinite(trans)], trans[np.isfinite(trans)] - 3.0)
    report = res.paths["report"].read_text()
    assert "Boettiger & Hastings" in report and "## Protocol" in report and "prosecutor" in report
    # a second run into the same dynlab folder is allowed
    ews(compose("ews", ["ews_preset=may_tipping", "members=4", "system.c=2.45", "ramp_rate=0.004",
                        "time.dt=0.1", "time.spinup=5", "time.t_end=60", "analysis.min_points=20",
                        "analysis.likelihood=false", "report.plots=false", f"out={out}", *TINY]))


def test_allee_prosecutor_control_scores_chance_collapses(tmp_path):
    out = tmp_path / "allee"
    cfg = compose("ews", ["ews_preset=allee_prosecutor", "members=24", "time.t_end=80", f"out={out}",
                          "report.plots=false", *TINY])
    res = ews(cfg)
    p = res.summary["prosecutor"]
    assert p["n_collapsed"] + p["n_survivors"] == 24
    assert p["n_collapsed"] >= 1                       # N = 10 collapses by chance within t_end
    assert res.summary["transitions"]["ramped"] == 24  # the ramp passes the fold at t = 60
    assert "table" in p and set(p["table"]) >= {"tau_variance", "lr"}


def test_refuses_a_folder_dynlab_did_not_create(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    cfg = compose("ews", ["ews_preset=allee_prosecutor", "members=4", f"out={tmp_path}"])
    with pytest.raises(ConfigError, match="did not create"):
        ews(cfg)
    assert (tmp_path / "precious.txt").read_text() == "keep"


@pytest.mark.parametrize("override, match", [
    ({"analysis": {"window": 0}}, "analysis.window"),
    ({"analysis": {"detrend": "spline"}}, "analysis.detrend"),
    ({"members": 1}, "members"),
    ({"bogus": 1}, "bogus"),
    ({"report": {"alpha": 1.5}}, "report.alpha"),
])
def test_schema_rejects_bad_values(override, match):
    with pytest.raises(ConfigError, match=match):
        EWSConfig.from_cfg(override)


def test_unknown_system_is_a_config_error(tmp_path):
    cfg = compose("ews", ["ews_preset=may_tipping", "system.name=lorenz63", f"out={tmp_path / 'x'}"])
    with pytest.raises(ConfigError, match="system.name"):
        ews(cfg)
