"""`dynlab run` on a Markov-jump-process store: the rate-matrix baseline scored by the MJP metrics."""
from __future__ import annotations

import json

import xarray as xr

from dynlab.config import compose
from dynlab.pipeline.run import run


def test_flashing_ratchet_run_scores_the_rate_matrix_baseline(tmp_path):
    cfg = compose("run", ["system=flashing_ratchet", "name=fr", "ensemble.members=6", "data.split.train=0.5",
                          "data.split.val=0.0", "data.split.test=0.5", f"cache_dir={tmp_path / 'cache'}",
                          f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    table = xr.open_zarr(result.run_dir / "jump.zarr", consolidated=False)
    assert table.sizes["member"] == 3 and summary["n_test_members"] == 3
    # 100 paths of 100 observations per member pin the generator down: the stationary law to a few
    # per cent, the relaxation time to tens of per cent (the grid step is a fifth of it)
    assert summary["stationary_tv_median"] < 0.1
    assert summary["relaxation_time_rel_error_median"] < 0.5
    low, high = summary["intervals"]["stationary_tv"]
    assert low <= summary["stationary_tv_median"] <= high
    assert (result.run_dir / ".dynlab-run").is_file() and "rate matrix" in (result.run_dir / "report.md").read_text()
