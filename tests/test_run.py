"""`dynlab run`: experiments compose, a tiny experiment runs end to end, every stage is cached."""
from __future__ import annotations

import json
import time

import pytest

from dynlab.cli import main as cli_main
from dynlab.config import compose, group_options
from dynlab.errors import ConfigError
from dynlab.eval.options import DEFAULT_BASELINES
from dynlab.pipeline.run import run


def tiny(tmp_path, *extra: str) -> list[str]:
    """The quickstart cut down to seconds: few members, short series, a 1-layer S4D, 4 steps."""
    return ["experiment=quickstart", "ensemble.members=6", "ensemble.chunk_members=2", "time.t_end=6",
            "time.spinup=2", "learner.d_model=8", "learner.n_layers=1", "data.context=4", "data.stride=4",
            "data.split.train=0.5", "data.split.val=0.25", "data.split.test=0.25",
            "loss.one_step_steps=2", "loss.horizon.max=3", "train.steps=4", "train.batch_size=4",
            "train.val_every=2", "train.val_windows=8", "evaluate.eval.horizon=8",
            "evaluate.eval.starts_per_member=2", "evaluate.eval.lyapunov_exponents=0",
            "evaluate.eval.long_rollout=40", "evaluate.eval.plots=false",
            f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "progress=false", *extra]


def test_experiments_compose_with_their_systems_and_learners():
    assert {"quickstart", "lorenz96_mamba", "lorenz96_two_scale", "lorenz63_hippo"} <= set(group_options("experiment"))
    q = compose("run", ["experiment=quickstart"])
    assert (q.system.name, q.system.K, q.system.F, q.learner.name) == ("lorenz96", 40, 8.0, "s4d")
    assert q.learner.spatial_encoder == "periodic_conv" and q.time.save_every == 0.05
    assert q.run_dir == "runs/quickstart" and q.evaluate.run == "runs/quickstart"
    assert compose("run", ["experiment=lorenz96_mamba"]).learner.name == "mamba"
    two = compose("run", ["experiment=lorenz96_two_scale"])
    assert two.system.name == "lorenz96_two_scale" and list(two.data.variables) == ["X"]
    hippo = compose("run", ["experiment=lorenz63_hippo"])
    assert (hippo.system.name, hippo.learner.name) == ("lorenz63", "hippo")
    # simulate's own keys keep working at the top level of a run
    assert compose("run", ["experiment=quickstart", "ensemble.members=7"]).ensemble.members == 7
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; available: .*quickstart"):
        compose("run", ["experiment=nope"])


def test_tiny_experiment_end_to_end_and_cached(tmp_path, capsys):
    logs: list[str] = []
    printed: list[str] = []
    result = run(compose("run", tiny(tmp_path)), log=logs.append, echo=printed.append)
    store, run_dir = result.store, result.run_dir
    assert store.parent == tmp_path / "cache" and store.name.startswith("lorenz96-") and store.is_dir()
    for name in ("config.yaml", "split.json", "metrics.jsonl", "done.json", "summary.json", "report.md"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "metrics.zarr").is_dir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["learner"] == "s4d" and list(summary["baselines"]) == list(DEFAULT_BASELINES)
    # every learner ranked, with bootstrap intervals around its numbers and paired differences
    assert sorted(summary["ranking"]) == sorted(["s4d", *DEFAULT_BASELINES]) and 1 <= summary["rank"] <= 9
    lo, hi = summary["intervals"]["rmse_lead1"]
    assert lo <= summary["rmse_lead1"] <= hi and set(summary["differences"]) == set(DEFAULT_BASELINES)
    text = printed[-1]
    assert text.startswith("quickstart: s4d vs " + ", ".join(DEFAULT_BASELINES))
    assert "VPT median" in text and "RMSE lead 1" in text and f"report: {run_dir / 'report.md'}" in text
    assert set(result.summary["beats_baselines_until_vpt"]) == set(DEFAULT_BASELINES)
    # a second run reuses the store and the trained model, and evaluates again
    logs.clear()
    again = run(compose("run", tiny(tmp_path)), log=logs.append, echo=printed.append)
    assert again.store == store
    assert any("already complete" in line and "nothing to do" in line for line in logs)
    assert any("already trained with this config; nothing to do" in line for line in logs)


def test_cli_run_reports_bad_input_in_one_line(tmp_path, capsys):
    code = cli_main(["run", *tiny(tmp_path, "loss.horizon.max=200")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == ("dynlab: error: window context + horizon = 4 + 200 = 204 steps is longer than the trajectories "
                   "this config simulates (121 times)")
    assert not list((tmp_path / "cache").glob("*.zarr"))  # refused before simulating
    code = cli_main(["run", *tiny(tmp_path, "learner.name=nope")])
    assert code == 2 and capsys.readouterr().err.strip().startswith("dynlab: error: learner='nope' is invalid")


@pytest.mark.slow
def test_quickstart_meets_its_targets(tmp_path):
    """The full quickstart from an empty cache: quality targets of the issue (wall time is printed, not asserted)."""
    printed: list[str] = []
    start = time.perf_counter()
    result = run(compose("run", ["experiment=quickstart", f"cache_dir={tmp_path / 'cache'}",
                                 f"run_dir={tmp_path / 'run'}", "progress=false"]),
                 log=lambda msg: None, echo=printed.append)
    print(f"quickstart wall time {time.perf_counter() - start:.1f} s", printed[-1], sep="\n")
    s = result.summary
    assert s["n_forecasts"] >= 200 and s["vpt_median_lyapunov"] >= 1.0, s["vpt_median_lyapunov"]
    beats = s["beats_baselines_until_vpt"]
    assert all(beats[b] for b in ("persistence", "damped_persistence", "climatology", "linear", "euler")), beats
    # between the Euler and the RK4 steppers of the true equations, with intervals that say so
    assert s["differences"]["euler"]["vpt_median_eps0.5"]["low"] > 0
    assert s["differences"]["rk4"]["vpt_median_eps0.5"]["high"] < 0
    assert s["wasserstein_mean"] < s["baselines"]["linear"]["wasserstein_mean"]
    assert s["long_rollout_finite"] == 1.0
