"""One table of every learner: declared sweeps, the comparison rows, and a tiny end-to-end table."""
from __future__ import annotations

import json
import math
import statistics

import pytest

from dynlab.cli import main as cli_main
from dynlab.compare import comparison_markdown, comparison_rows
from dynlab.errors import ConfigError
from dynlab.sweep import plan_sweep


def _job(learner, seed, vpt, lo, hi, rmse, deterministic=False, steps=10, seconds=2.0):
    return {"job": f"learner={learner},seed={seed}", "overrides": {"learner": learner, "seed": str(seed)},
            "deterministic": deterministic, "seconds": {"evaluate": 1.0},
            "train": {"steps": steps, "n_parameters": 100, "train_seconds": seconds},
            "summary": {"learner": learner, "vpt_median_lyapunov": vpt, "rmse_lead1": rmse,
                        "intervals": {"vpt_median_lyapunov": [lo, hi]}, "lyapunov_emulator": [1.5, 0.2],
                        "physics_energy_mse": 0.1 * seed, "physics_intervals": {"energy_mse": [0.0, 0.2 * seed]},
                        "climate_acf_ratio": 1.0 + seed, "climate_intervals": {"acf_ratio": [0.5, 2.0 + seed]}}}


def test_rows_average_seeds_and_their_intervals():
    jobs = [_job("s4d", 0, 1.0, 0.8, 1.2, 0.1), _job("s4d", 1, 2.0, 1.6, 2.4, 0.3, seconds=4.0),
            _job("s4d", 2, 3.0, 2.4, 3.6, 0.2), _job("persistence", 0, 0.1, 0.05, 0.15, 0.9, deterministic=True)]
    rows = {r["learner"]: r for r in comparison_rows(jobs)}
    assert list(rows) == ["s4d", "persistence"]  # sweep order
    vpt = rows["s4d"]["metrics"]["vpt_median_lyapunov"]
    assert vpt["mean"] == pytest.approx(2.0) and vpt["n"] == 3
    assert (vpt["low"], vpt["high"]) == (pytest.approx((0.8 + 1.6 + 2.4) / 3), pytest.approx((1.2 + 2.4 + 3.6) / 3))
    assert vpt["sd"] == pytest.approx(1.0)
    assert rows["s4d"]["metrics"]["rmse_lead1"]["sd"] == pytest.approx(statistics.stdev([0.1, 0.3, 0.2]))
    assert rows["s4d"]["metrics"]["rmse_lead1"]["low"] is None  # no interval reported: none invented
    assert rows["s4d"]["metrics"]["lyapunov_1"]["mean"] == pytest.approx(1.5)
    assert rows["s4d"]["metrics"]["physics_energy_mse"]["high"] == pytest.approx(0.2)
    acf = rows["s4d"]["metrics"]["climate_acf_ratio"]
    assert (acf["mean"], acf["low"], acf["high"]) == (pytest.approx(2.0), pytest.approx(0.5), pytest.approx(3.0))
    assert rows["s4d"]["cost"]["train_seconds"] == pytest.approx(8 / 3)
    assert rows["persistence"]["n"] == 1 and rows["persistence"]["cost"]["steps"] == 0
    assert rows["persistence"]["metrics"]["vpt_median_lyapunov"]["sd"] is None
    text = comparison_markdown(list(rows.values()), name="t", system_lyapunov=[1.68, 1.5])
    assert "| s4d | 3 | 2 [1.6, 2.4] ±1 |" in text and "energy mse" in text and "1.68, 1.5" in text
    narrow = comparison_markdown(list(rows.values()), columns=["rmse_lead1"])
    assert "| learner | n | RMSE lead 1 | steps |" in narrow and "VPT" not in narrow
    with pytest.raises(ValueError, match="no_such"):
        comparison_markdown(list(rows.values()), columns=["no_such"])
    with pytest.raises(ValueError, match="summary"):
        comparison_rows([{"job": "x"}])


def test_declared_sweeps_expand_and_validate():
    plan = plan_sweep(["experiment=compare_lorenz96"])
    learners = [dict(job)["learner"] for job, *_ in plan.jobs]
    assert {"persistence", "climatology", "linear", "rk4", "hippo", "s4d", "mamba", "neural_ode",
            "energy_based"} <= set(learners)
    # trained learners run three seeds, learners without parameters one (same result for every seed)
    assert learners.count("s4d") == 3 and learners.count("persistence") == 1
    assert len(plan.skipped) == 2 * sum(1 for *_, det in plan.jobs if det)
    s4d = next(cfg for job, _, cfg, _ in plan.jobs if dict(job)["learner"] == "s4d")
    assert s4d.learner.d_model == 32 and s4d.learner.spatial_encoder == "periodic_conv"  # per-value overrides
    assert not s4d.sweep
    # a command-line value replaces the declared axis
    plan = plan_sweep(["experiment=compare_hamiltonian", "learner=hnn,linear", "seed=5"])
    assert [(dict(j)["learner"], cfg.seed) for j, _, cfg, _ in plan.jobs] == [("hnn", 5), ("linear", 5)]
    assert plan.sweep_dir.name == "compare_hamiltonian"
    with pytest.raises(ConfigError, match="sweep.axes.learner"):
        plan_sweep(["experiment=compare_lorenz96", "sweep.axes.learner=[]"])


@pytest.fixture
def tiny(tmp_path):
    return ["experiment=compare_lorenz96", "ensemble.members=10", "time.spinup=1.0", "time.t_end=4.0",
            "train.steps=4", "loss.one_step_steps=2", "train.val_every=2", "train.val_windows=4",
            "train.checkpoint_every=2", "evaluate.eval.horizon=8", "evaluate.eval.starts_per_member=2",
            "evaluate.eval.long_rollout=20", "evaluate.eval.climate_transient=4", "evaluate.eval.n_boot=50",
            "evaluate.eval.lyapunov_steps=10", "evaluate.eval.lyapunov_exponents=2",
            f"cache_dir={tmp_path / 'cache'}", f"sweep_dir={tmp_path / 'cmp'}"]


def test_comparison_table_end_to_end(tiny, tmp_path, capsys):
    argv = ["run", "-m", *tiny, "learner=persistence,climatology,s4d", "seed=0,1"]
    assert cli_main(argv) == 0
    out = tmp_path / "cmp"
    table = (out / "compare.md").read_text()
    rows = {r["learner"]: r for r in json.loads((out / "compare.json").read_text())["rows"]}
    assert [r for r in rows] == ["persistence", "climatology", "s4d"]
    assert rows["s4d"]["n"] == 2 and rows["persistence"]["n"] == 1
    assert rows["s4d"]["cost"]["steps"] == 4 and rows["s4d"]["cost"]["n_parameters"] > 0
    # persistence forecasts x_t at lead 1: its RMSE is the mean one-step change, > the trained model's at
    # lead 1 is not guaranteed after 4 steps, but both are finite and positive
    for name in rows:
        assert 0 < rows[name]["metrics"]["rmse_lead1"]["mean"] < math.inf
    # a constant forecast annihilates every direction: Lyapunov exponents of -inf, dimension 0
    assert rows["climatology"]["metrics"]["kaplan_yorke_emulator"]["mean"] == 0
    assert "| s4d | 2 |" in table and (out / "compare.png").exists()
    assert (out / "learner-s4d__seed-1" / "report.md").exists()
    assert not (out / "learner-persistence__seed-1").exists()
    # the job folders need no quoting on the command line
    assert cli_main(["evaluate", f"run={out / 'learner-persistence__seed-0'}", "eval.horizon=4",
                     "eval.starts_per_member=1", "eval.long_rollout=0", "eval.n_boot=20"]) == 0
    # rerunning the finished sweep reuses every job instead of redoing it
    capsys.readouterr()
    assert cli_main(argv) == 0
    assert capsys.readouterr().err.count("finished before: reused") == 4
    # the experiment is a sweep: a plain run is refused with the command to use
    assert cli_main(["run", *tiny[:1], f"cache_dir={tmp_path / 'cache'}"]) == 2
    assert "dynlab run -m experiment=compare_lorenz96" in capsys.readouterr().err
