"""`dynlab run` on a Markov-jump-process store: rate-matrix estimates scored by the MJP metrics against
their sampling floors; `dynlab evaluate` on the run recomputes the same numbers from the store."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from dynlab.config import compose
from dynlab.errors import StoreError
from dynlab.eval.jump import FLOOR_METRICS
from dynlab.pipeline.evaluate import evaluate
from dynlab.pipeline.jump import evaluate_jump_run, is_jump_run
from dynlab.pipeline.run import run


def test_flashing_ratchet_run_scores_estimates_against_floors_and_evaluate_round_trips(tmp_path):
    cfg = compose("run", ["system=flashing_ratchet", "name=fr", "ensemble.members=4", "data.split.train=0.5",
                          "data.split.val=0.0", "data.split.test=0.5", f"cache_dir={tmp_path / 'cache'}",
                          f"run_dir={tmp_path / 'run'}", "progress=false"])
    result = run(cfg, log=lambda m: None, echo=lambda m: None)
    run_dir = result.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    table = xr.open_zarr(run_dir / "jump.zarr", consolidated=False).load()
    assert is_jump_run(run_dir) and (run_dir / ".dynlab-run").is_file()
    assert table.sizes["member"] == 2 and summary["n_test_members"] == 2
    assert list(table["estimator"].values) == ["mle", "one_step", "perturbed"]
    assert summary["sample"]["n_paths"] == 100 and summary["sample"]["n_obs"] == 101
    # 100 paths of 100 observations per member pin the generator down: the stationary law to a few
    # per cent, the relaxation time to tens of per cent (the grid step is a fifth of it)
    assert summary["stationary_tv_median"] < 0.1
    assert summary["relaxation_time_rel_error_median"] < 0.5
    low, high = summary["intervals"]["stationary_tv"]
    assert low <= summary["stationary_tv_median"] <= high
    # every distance has a floor and a ratio per estimator; the ratio is the distance over the floor
    for k in FLOOR_METRICS:
        np.testing.assert_allclose(table[f"{k}_ratio"].values, table[k].values / table[f"{k}_floor"].values[None])
        assert set(summary["floor_ratios"]) == {"mle", "one_step", "perturbed"}
    # the MLE's stationary law is within its noise; the perturbed control is not
    assert summary["stationary_check"]["mle"]["ok"]
    assert summary["floor_ratios"]["perturbed"]["stationary_tv"]["median"] > \
        2 * summary["floor_ratios"]["mle"]["stationary_tv"]["median"]
    report = (run_dir / "report.md").read_text()
    assert "sampling floor" in report and "perturbed / floor" in report

    # dynlab evaluate run=<dir>: the same numbers, recomputed from the store with the recorded seed
    (run_dir / "summary.json").unlink()
    res = evaluate({"run": str(run_dir)}, log=lambda m: None)
    assert res.out_dir == run_dir and res.paths["report"].is_file()
    again = json.loads((run_dir / "summary.json").read_text())
    assert again == summary
    xr.testing.assert_identical(xr.open_zarr(run_dir / "jump.zarr", consolidated=False).load(), table)


def test_evaluate_jump_run_refuses_a_folder_that_is_not_one(tmp_path):
    assert not is_jump_run(tmp_path)
    with pytest.raises(StoreError, match="not a jump-process run"):
        evaluate_jump_run(tmp_path)
    (tmp_path / "jump_run.json").write_text("{not json")
    assert not is_jump_run(tmp_path)
