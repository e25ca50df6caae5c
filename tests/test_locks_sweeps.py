"""Locks on stores and run directories, hydra-style sweeps, an unreachable dask scheduler."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dynlab.cli import main as cli_main
from dynlab.errors import ConfigError
from dynlab.locks import FolderLock, LockedError, lock_path
from dynlab.sweep import expand_sweep
from test_safety import tiny_run

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, pid: int) -> None:
    import socket

    lock_path(folder).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))


def test_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path):
    folder = tmp_path / "store.zarr"
    write_lock(folder, dead_pid())
    said: list[str] = []
    with FolderLock(folder, what="store", log=said.append) as lock:
        assert lock.held and json.loads(lock_path(folder).read_text())["pid"] == os.getpid()
        assert len(said) == 1 and "stale lock" in said[0]
    assert not lock_path(folder).exists()
    write_lock(folder, os.getppid())  # a live process
    with pytest.raises(LockedError, match=f"being written by pid {os.getppid()}"):
        FolderLock(folder, what="store", log=said.append).acquire()
    assert lock_path(folder).exists()  # the holder's lock is left alone


def test_wait_true_waits_for_the_holder(tmp_path):
    folder = tmp_path / "run"
    write_lock(folder, os.getppid())
    releaser = threading.Timer(0.4, lambda: lock_path(folder).unlink())
    releaser.start()
    start = time.perf_counter()
    with FolderLock(folder, what="run directory", wait=True, poll=0.05, log=lambda m: None):
        assert time.perf_counter() - start >= 0.3


def simulate_cmd(out: Path, members: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dynlab.cli", "simulate", "system=lorenz63", f"ensemble.members={members}",
            "ensemble.chunk_members=1", "time.t_end=40", "time.spinup=1", "progress=false", f"out={out}", *extra]


def test_two_writers_one_refused_and_the_data_whole(tmp_path, capsys):
    out = tmp_path / "l63.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(simulate_cmd(out, 24), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not lock_path(out).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first writer finished before the test could start the second"
    code = cli_main(simulate_cmd(out, 24)[3:])  # the second writer, while the first one runs
    second_err = capsys.readouterr().err.strip()
    first_err = first.communicate(timeout=300)[1]
    assert first.returncode == 0, first_err
    assert code == 2 and f"being written by pid {first.pid}" in second_err and "\n" not in second_err, second_err
    assert not lock_path(out).exists()
    single = tmp_path / "single.zarr"
    assert cli_main(simulate_cmd(single, 24, "ensemble.block_size=24")[3:]) == 0
    import dynlab

    a, b = dynlab.open_dataset(out), dynlab.open_dataset(single)
    assert np.array_equal(a.x.values, b.x.values)


def test_expand_sweep():
    fixed, jobs = expand_sweep(["experiment=quickstart", "seed=0,1", "learner=s4d,mamba"])
    assert fixed == ["experiment=quickstart"]
    assert jobs == [[("seed", "0"), ("learner", "s4d")], [("seed", "0"), ("learner", "mamba")],
                    [("seed", "1"), ("learner", "s4d")], [("seed", "1"), ("learner", "mamba")]]
    assert expand_sweep(["seed=range(0,3)"])[1] == [[("seed", "0")], [("seed", "1")], [("seed", "2")]]


def test_tiny_sweep_shares_the_dataset_and_writes_a_table(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a for a in tiny_run(tmp_path) if not a.startswith("run_dir=")]
    code = cli_main(["run", "-m", *argv, "train.steps=2", "seed=0,1", f"sweep_dir={tmp_path / 'sweep'}"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [j["job"] for j in record["jobs"]] == ["seed=0", "seed=1"]
    assert len({j["store"] for j in record["jobs"]}) == 1  # one dataset for both model seeds
    assert len(list((tmp_path / "cache").glob("*.zarr"))) == 1
    for j in record["jobs"]:
        assert (Path(j["run_dir"]) / "report.md").is_file() and Path(j["run_dir"]).parent == tmp_path / "sweep"
    (group,) = record["groups"]
    metric = next(iter(group["metrics"].values()))
    assert metric["n"] == 2
    table = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "| seed=0 |" in table and "Mean ± standard deviation over seed" in table
    assert cli_main(["run", "-m", *argv, f"run_dir={tmp_path / 'x'}", "seed=0,1"]) == 2
    assert "set sweep_dir instead" in capsys.readouterr().err


def test_unreachable_dask_scheduler_is_one_line(tmp_path, capsys):
    out = tmp_path / "x.zarr"
    code = cli_main(["simulate", "parallel=dask", "parallel.address=tcp://127.0.0.1:1", "parallel.timeout=2",
                     "ensemble.members=2", "time.t_end=1", "progress=false", f"out={out}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "no dask scheduler answered within parallel.timeout=2 s" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match="parallel.timeout"):
        from dynlab.schemas import validate_command

        validate_command("simulate", {"system": {"name": "lorenz63"}, "integrator": {"name": "auto"},
                                      "parallel": {"name": "dask", "timeout": 0}, "out": "x.zarr"})
