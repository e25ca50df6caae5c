"""Evaluation on another store on purpose: compatible shapes, the target store's scales, its own folder."""
from __future__ import annotations

import json

from dynlab.cli import main as cli_main
from test_safety import finished, tiny_run  # noqa: F401  (the module-scoped tiny run)


def test_evaluate_on_a_store_with_another_forcing(finished, tmp_path, capsys):  # noqa: F811
    root, store, run_dir = finished
    report_before = (run_dir / "report.md").read_bytes()
    other = tmp_path / "f10.zarr"
    assert cli_main(["simulate", "system=lorenz96", "system.F=10", "ensemble.members=6", "ensemble.chunk_members=2",
                     "time.t_end=6", "time.spinup=2", "progress=false", f"out={other}"]) == 0
    args = ["evaluate", f"run={run_dir}", f"store={other}", "eval.horizon=8", "eval.starts_per_member=2",
            "eval.long_rollout=0", "eval.plots=false", "eval.lyapunov=false", "eval.baselines=[persistence]"]
    assert cli_main(args) == 0, capsys.readouterr().err
    import dynlab

    other_hash = dynlab.open_dataset(other).attrs["dynlab_config_hash"]
    out = run_dir / f"eval-{other_hash}"
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "report.md").is_file() and (run_dir / "report.md").read_bytes() == report_before
    assert summary["store_hash"] == other_hash and summary["trained_on_hash"] != other_hash
    # another shape: one line naming both shapes
    small = tmp_path / "k8.zarr"
    assert cli_main(["simulate", "system=lorenz96", "system.K=8", "ensemble.members=4", "time.t_end=2",
                     "time.spinup=0", "progress=false", f"out={small}"]) == 0
    capsys.readouterr()
    assert cli_main(["evaluate", f"run={run_dir}", f"store={small}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "shape (8,)" in err and "shape (40,)" in err
