"""Safe by construction: bad inputs and faults give one-line errors (exit 2) before any file is
written; dynlab deletes only what it created; checkpoints never run code; dataset hashes stay put."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dynlab.cli import main as cli_main
from dynlab.config import compose
from dynlab.errors import ConfigError
from dynlab.pipeline.run import run
from dynlab.pipeline.simulate import plan_simulation
from dynlab.runs import RUN_MARKER, is_dynlab_run
from dynlab.train.checkpoint import (UnsafeCheckpointError, list_checkpoints, load_checkpoint,
                                     load_latest_checkpoint, set_rng_state)

QUIET = {"log": lambda msg: None, "echo": lambda msg: None}


def tiny_run(root: Path, *extra: str) -> list[str]:
    """The quickstart cut down to seconds (one S4D layer, 4 optimiser steps)."""
    return ["experiment=quickstart", "ensemble.members=6", "ensemble.chunk_members=2", "time.t_end=6",
            "time.spinup=2", "learner.d_model=8", "learner.n_layers=1", "data.context=4", "data.stride=4",
            "data.split.train=0.5", "data.split.val=0.25", "data.split.test=0.25", "loss.one_step_steps=2",
            "loss.horizon.max=3", "train.steps=4", "train.batch_size=4", "train.val_every=2",
            "train.val_windows=8", "train.checkpoint_every=2", "train.keep_checkpoints=null",
            "evaluate.eval.horizon=8", "evaluate.eval.starts_per_member=2",
            "evaluate.eval.long_rollout=0", "evaluate.eval.lyapunov_exponents=0",
            "evaluate.eval.plots=false", "evaluate.eval.lyapunov=false",
            f"cache_dir={root / 'cache'}", f"run_dir={root / 'run'}", "progress=false", *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run: (root, store, run_dir)."""
    root = tmp_path_factory.mktemp("safety")
    result = run(compose("run", tiny_run(root)), **QUIET)
    return root, result.store, result.run_dir


def snapshot(root: Path) -> dict[str, float]:
    """Every file under root with its mtime (what a refused command must leave alone)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def refused(capsys, argv: list[str], *, alone: bool = True) -> str:
    """Run the CLI, expect exit 2 and a one-line error without a traceback; return the message.
    ``alone``: the error is all that was printed (otherwise it is the last line)."""
    code = cli_main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert "Traceback" not in captured.err + captured.out
    last = err.splitlines()[-1]
    assert last.startswith("dynlab: error: "), err
    if alone:
        assert "\n" not in err, err
    return last[len("dynlab: error: "):]


# (command line, what the first line must name) — refused before any file is written
BAD_INPUTS = [
    (["simulate", "system.F=eight"], "system.F"),
    (["simulate", "system.F=true"], "system.F"),
    (["simulate", "overwrite=no"], "overwrite"),
    (["simulate", "overwrite='false'"], "overwrite"),
    (["simulate", "progress=1"], "progress"),
    (["simulate", "progress=maybe"], "progress"),
    (["simulate", "ensemble.members=1e12"], "ensemble.members"),
    (["simulate", "ensemble.members=1000000000000"], "ensemble.members=1000000000000"),
    (["simulate", "time.dt=1e-300"], "time."),
    (["simulate", "time.dt=1e-8", "time.t_end=20", "time.spinup=0", "time.save_every=10"], "steps per member"),
    (["simulate", "~system"], "system"),
    (["simulate", "system=null"], "system"),
    (["simulate", "=5"], "'=5'"),
    (["simulate", "device=tpu"], "device"),
    (["simulate", "device=cuda:7"], "device"),
    (["simulate", "+foo=1"], "'foo'"),
    (["simulate", "dtype=float16"], "dtype"),
    (["simulate", "time.t_end=nan"], "time.t_end"),
    (["simulate", "out=/proc/dynlab_x.zarr"], "out"),
    (["simulate", "system=lorenz96", "system.K=2"], "K"),
    (["simulate", "system.G=1"], "system.G"),
    (["simulate", "integrator.compile=no"], "integrator"),
    (["simulate", "parallel=dask", "parallel.n_workers=0"], "parallel.n_workers"),
    (["train"], "data.store"),
    (["train", "data.store=x.zarr", "train.lr=inf"], "train.lr"),
    (["train", "data.store=x.zarr", "train.betas=[0.9,1.5]"], "train.betas"),
    (["train", "data.store=x.zarr", "resume=yes"], "resume"),
    (["train", "data.store=x.zarr", "learner.d_model=abc"], "learner.d_model"),
    (["train", "data.store=x.zarr", "+learner.nope=1"], "learner.nope"),
    (["train", "data.store=x.zarr", "data.split.train=0.5"], "data.split"),
    (["evaluate"], "run"),
    (["evaluate", "run=r", "device=tpu"], "device"),
    (["evaluate", "run=r", "eval.horizon=0"], "eval.horizon"),
    (["run", "name=.."], "name"),
    (["run", "name="], "name"),
    (["run", "name=../x"], "name"),
    (["run", "name=a/b"], "name"),
    (["run", "experiment=../../x"], "experiment"),
    (["run", "experiment=quickstart", "evaluate.eval.horizon=0"], "evaluate.eval.horizon"),
    (["run", "experiment=quickstart", "evaluate.eval.baseline_members=0"], "evaluate.eval.baseline_members"),
    (["run", "experiment=quickstart", "evaluate.eval.horizon=5000"], "evaluate.eval.horizon"),
    (["run", "experiment=quickstart", "evaluate.device=tpu"], "evaluate.device"),
    (["run", "experiment=quickstart", "train.lr=inf"], "train.lr"),
    (["run", "experiment=quickstart", "data_seed=-1"], "data_seed"),
    (["run", "experiment=quickstart", "run_dir=/proc/dynlab_x"], "run_dir"),
]


@pytest.mark.parametrize("argv, names", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_before_any_file(argv, names, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    message = refused(capsys, argv)
    assert names in message.split(";")[0], message
    assert snapshot(tmp_path) == {}, "a refused command wrote files"


def test_help_lists_each_commands_keys_with_defaults(capsys):
    for command, key in (("simulate", "ensemble.members"), ("train", "train.lr"), ("evaluate", "eval.horizon"),
                         ("run", "data_seed")):
        assert cli_main([command, "--help"]) == 0
        out = capsys.readouterr().out
        line = next(line for line in out.splitlines() if line.strip().startswith(key + " "))
        assert len(line.split()) >= 3, line  # key, default, help text


def test_shipped_dataset_hashes_are_unchanged():
    """Config hashes of shipped presets, as before the schema (computed at 7f8c4d4)."""
    pinned = {"lorenz96": "f44350198f15be1a", "lorenz63": "43f4501b652ea3c8",
              "lorenz96_two_scale": "fad5aea7d86c1a54", "mass_spring": "29279485cf986264",
              "kepler": "ed541dc2bf007703", "henon_heiles": "5872f75c5fd5c8f4",
              "may_grazing_ramp": "341ab5c3e1273aea", "ou": "c595f4eaa68714f7"}
    for name, expected in pinned.items():
        plan = plan_simulation(compose("simulate", [f"system={name}", "out=/tmp/dynlab-hash-probe.zarr"]))
        assert plan.config_hash == expected, name
    run_cfg = compose("run", ["experiment=quickstart", "ensemble.members=40"])  # the quickstart before issue 10
    sim = {k: run_cfg[k] for k in ("system", "integrator", "parallel", "ensemble", "time", "dtype", "device",
                                   "progress", "overwrite")}
    plan = plan_simulation({**sim, "seed": run_cfg.data_seed, "out": "/tmp/dynlab-hash-probe.zarr"})
    assert plan.config_hash == "3093ebcf7e344191"


# ------------------------------------------------------------------------ deletion
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    return folder


def test_train_never_deletes_a_users_folder(finished, tmp_path, capsys):
    root, store, _ = finished
    folder = user_folder(tmp_path)
    for flag in ("resume=true", "overwrite=true"):
        message = refused(capsys, ["train", f"data.store={store}", f"run_dir={folder}", flag, "progress=false"])
        assert str(folder) in message and "did not create" in message
        assert (folder / "thesis.tex").read_text() == "precious" and not (folder / RUN_MARKER).exists()


def test_simulate_never_replaces_a_foreign_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = user_folder(tmp_path)
    message = refused(capsys, ["simulate", f"out={folder}", "overwrite=true", "ensemble.members=2"])
    assert str(folder) in message and "did not write" in message
    assert (folder / "thesis.tex").read_text() == "precious"


def test_run_dir_and_store_never_nest(finished, tmp_path, capsys):
    root, store, run_dir = finished
    before = snapshot(root)
    message = refused(capsys, ["train", f"data.store={store}", f"run_dir={store / 'run'}", "progress=false"])
    assert "inside the dataset store" in message
    message = refused(capsys, ["train", f"data.store={store}", f"run_dir={store}", "overwrite=true",
                               "progress=false"])
    assert "inside the dataset store" in message
    message = refused(capsys, ["train", f"data.store={store}", f"run_dir={root}", "overwrite=true", "progress=false"])
    assert "lies inside run_dir" in message
    assert snapshot(root) == before


def test_run_directories_carry_a_marker_and_old_ones_count(finished, tmp_path):
    _, _, run_dir = finished
    assert (run_dir / RUN_MARKER).is_file() and is_dynlab_run(run_dir)
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.yaml").write_text("learner: {}\n")
    assert is_dynlab_run(old)
    (old / "config.yaml").unlink()
    assert not is_dynlab_run(old)


def test_new_model_seed_reuses_the_dataset(finished):
    root, store, _ = finished
    plan = plan_simulation(compose("simulate", ["system=lorenz96", "out=/tmp/probe.zarr"]))
    cfg = compose("run", tiny_run(root, "seed=3", f"run_dir={root / 'run_seed3'}"))
    logs: list[str] = []
    result = run(cfg, log=logs.append, echo=lambda m: None)
    assert result.store == store and any("already complete" in line for line in logs)
    other = run(compose("run", tiny_run(root, "data_seed=1", "train.steps=0", f"run_dir={root / 'run_d1'}")),
                **QUIET)
    assert other.store != store and plan.config_hash  # another data seed is another dataset


# ------------------------------------------------------------------------ checkpoints
class Payload:
    """Unpickling this creates a folder: the stand-in for arbitrary code."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (str(self.target),))


def test_crafted_checkpoint_runs_no_code(finished, tmp_path, capsys):
    root, store, run_dir = finished
    run_copy = tmp_path / "shared_run"
    shutil.copytree(run_dir, run_copy)
    target = tmp_path / "pwned"
    newest = list_checkpoints(run_copy)[-1][1]
    state = load_checkpoint(newest)
    state["optimizer"] = {"payload": Payload(target)}
    torch.save(state, newest)
    with pytest.raises(UnsafeCheckpointError, match="may be unsafe"):
        load_checkpoint(newest)
    import dynlab

    with pytest.raises(UnsafeCheckpointError):
        dynlab.load_emulator(run_copy)
    message = refused(capsys, ["evaluate", f"run={run_copy}", "eval.plots=false", "eval.long_rollout=0",
                               "eval.lyapunov=false", "eval.horizon=8"])
    assert str(newest) in message and "unsafe" in message
    (run_copy / "done.json").unlink()
    argv = [a for a in tiny_run(root) if not a.startswith(("run_dir=", "train.steps="))]
    message = refused(capsys, ["run", *argv, f"run_dir={run_copy}", "train.steps=8"], alone=False)  # resume
    assert "unsafe" in message
    assert not target.exists()


def test_old_format_checkpoint_still_loads(finished, tmp_path):
    _, _, run_dir = finished
    newest = list_checkpoints(run_dir)[-1][1]
    state = load_checkpoint(newest)
    np.random.seed(7)
    legacy_numpy = np.random.get_state()  # the tuple with an ndarray inside, as the old code saved it
    state["rng"]["numpy"] = legacy_numpy
    state["rng"]["python"] = __import__("random").getstate()
    old = tmp_path / "step_00000001.pt"
    torch.save(state, old)
    loaded = load_checkpoint(old)
    np.random.seed(0)
    set_rng_state(loaded["rng"])
    np.random.seed(7)
    expected = np.random.rand(3)
    set_rng_state(loaded["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_truncated_newest_checkpoint_falls_back(finished, tmp_path):
    _, _, run_dir = finished
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    found = list_checkpoints(run_copy)
    assert len(found) >= 2
    newest = found[-1][1]
    newest.write_bytes(newest.read_bytes()[:1000])
    said: list[str] = []
    path, _ = load_latest_checkpoint(run_copy, log=said.append)
    assert path == found[-2][1]
    assert len(said) == 1 and str(newest) in said[0] and "falling back" in said[0]
    import dynlab

    emulator = dynlab.load_emulator(run_copy, log=said.append)
    assert emulator is not None and len(said) == 2


def test_checkpoints_hold_only_tensors_and_plain_data(finished):
    _, _, run_dir = finished
    newest = list_checkpoints(run_dir)[-1][1]
    torch.load(newest, weights_only=True)  # no allow-listed globals needed

    def plain(value, where="ckpt"):
        if isinstance(value, dict):
            for k, v in value.items():
                plain(v, f"{where}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                plain(v, f"{where}[{i}]")
        else:
            assert value is None or isinstance(value, (bool, int, float, str, torch.Tensor)), (where, type(value))

    plain(load_checkpoint(newest))


def test_config_error_for_unknown_eval_key():
    with pytest.raises(ConfigError, match="unknown config key 'eval.nope'"):
        from dynlab.schemas import validate_command

        validate_command("evaluate", {"run": "r", "eval": {"nope": 1}})
