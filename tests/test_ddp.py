"""DDP under torchrun (2 CPU processes, gloo) against the single-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynlab.pipeline.train import train
from dynlab.train.checkpoint import latest_checkpoint, load_checkpoint
from test_trainer_support import make_cfg, make_store, tiny_builder

TESTS = Path(__file__).resolve().parent

WORKER = """
import json, os, sys
sys.path.insert(0, {tests!r})
from test_trainer_support import make_cfg, tiny_builder
from dynlab.pipeline.train import train
cfg = json.loads({cfg!r})
result = train(cfg, builder=tiny_builder, log=lambda msg: None)
with open(os.path.join({out!r}, "rank%s.json" % os.environ["RANK"]), "w") as fh:
    json.dump({{"losses": result.losses, "world": int(os.environ["WORLD_SIZE"]), "step": result.step}}, fh)
"""


def _losses(run_dir: Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


def test_torchrun_two_processes_match_one(tmp_path_factory, tmp_path):
    store = make_store(tmp_path_factory.getbasetemp() / "stores")
    sections = dict(loss={"name": "causal_rollout", "one_step_steps": 2,
                          "horizon": {"start": 2, "max": 3, "grow": 1, "threshold": 10.0},
                          "causal": {"eps": [0.1, 1.0], "max_stage_steps": 3}},
                    train={"steps": 8, "batch_size": 8, "val_every": 4, "checkpoint_every": 4})
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    cfg = make_cfg(store, ddp_dir, **sections)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS), cfg=json.dumps(cfg), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [8, 8]
    assert ranks[0]["losses"] == ranks[1]["losses"]  # every rank logs the global-batch loss

    single = train(make_cfg(store, single_dir, **sections), builder=tiny_builder, log=lambda msg: None)
    np.testing.assert_allclose(ranks[0]["losses"], single.losses, rtol=1e-9, atol=0)
    assert _losses(ddp_dir).keys() == _losses(single_dir).keys()
    a, b = load_checkpoint(latest_checkpoint(ddp_dir)), load_checkpoint(latest_checkpoint(single_dir))
    for key in a["state_dict"]:
        np.testing.assert_allclose(a["state_dict"][key].numpy(), b["state_dict"][key].numpy(), rtol=1e-8, atol=1e-12)
    assert a["objective"] == b["objective"]  # the curriculum and the causal stages agree
    # rank 0 alone wrote the run directory: one record per step, no stray files
    steps = [json.loads(x).get("step") for x in (ddp_dir / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(x)]
    assert steps == list(range(1, 9))
    assert sorted(p.name for p in ddp_dir.iterdir()) == sorted(p.name for p in single_dir.iterdir())


def test_module_entry_point_runs():
    """``python -m dynlab.cli`` is what torchrun -m runs."""
    proc = subprocess.run([sys.executable, "-m", "dynlab.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "train" in proc.stdout


def test_batch_must_split_evenly_across_ranks(tmp_path_factory, tmp_path, monkeypatch):
    """The global batch is split across ranks; an uneven split is refused before any work."""
    from dynlab.data.windows import ChunkBatchSampler
    from dynlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.batch_size=9 must be divisible by the number of processes \(2\)"):
        ChunkBatchSampler(np.zeros(20, dtype=int), 9, world_size=2, rank=1)
