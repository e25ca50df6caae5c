"""The trainer: optimiser groups, schedule, exact resume, non-finite stop, run directory, bad inputs."""
from __future__ import annotations

import json
import math

import pytest
import torch

import dynlab
from dynlab.errors import ConfigError, StoreError
from dynlab.pipeline.train import train
from dynlab.train import NonFiniteLossError, cosine_warmup, latest_checkpoint, load_checkpoint, param_groups
from dynlab.train.checkpoint import list_checkpoints
from test_trainer_support import TinyRecurrentEmulator, make_cfg, make_store, tiny_builder

QUIET = {"log": lambda msg: None}


@pytest.fixture(scope="module")
def l96(tmp_path_factory):
    return make_store(tmp_path_factory.getbasetemp() / "stores")


def metric_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(run_dir):
    return {r["step"]: r["loss"] for r in metric_lines(run_dir) if "loss" in r}


def test_param_groups_follow_optim_attributes():
    em = TinyRecurrentEmulator(4, hidden=3, lr_u=5e-4)
    em.inp.bias.requires_grad_(False)
    groups = param_groups(em, lr=1e-2, weight_decay=0.1)
    assert len(groups) == 2
    plain, special = groups
    assert plain["lr"] == 1e-2 and plain["weight_decay"] == 0.1
    assert special["lr"] == 5e-4 and special["weight_decay"] == 0.0
    assert [p is em.rec for p in special["params"]] == [True]
    ids = {id(p) for p in plain["params"]}
    assert id(em.inp.bias) not in ids and id(em.rec) not in ids
    assert ids == {id(em.inp.weight), id(em.out.weight), id(em.out.bias)}
    # an `_optim` dict without lr keeps the default lr
    em.out.bias._optim = {"weight_decay": 0.0}
    groups = param_groups(em, lr=1e-2, weight_decay=0.1)
    assert len(groups) == 3 and groups[2]["lr"] == 1e-2 and groups[2]["weight_decay"] == 0.0


def test_cosine_warmup_schedule():
    f = cosine_warmup(warmup=4, total=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(14) == pytest.approx(0.1) and f(20) == pytest.approx(0.1)


def test_run_directory_and_optimizer_groups(l96, tmp_path):
    run_dir = tmp_path / "run"
    cfg = make_cfg(l96, run_dir, learner={"name": "tiny", "hidden": 6, "lr_u": 2e-3})
    result = train(cfg, builder=tiny_builder, **QUIET)
    assert result.complete and result.step == 12 and len(result.losses) == 12
    assert all(math.isfinite(v) for v in result.losses)
    for name in ("config.yaml", "split.json", "dataset.json", "metrics.jsonl", "done.json"):
        assert (run_dir / name).is_file(), name
    split = json.loads((run_dir / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(10))
    assert [len(split[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert "learner:\n  name: tiny" in (run_dir / "config.yaml").read_text()
    assert [s for s, _ in list_checkpoints(run_dir)] == [10, 12]  # every 5 steps, the newest 2 kept
    ckpt = load_checkpoint(latest_checkpoint(run_dir))
    lrs = sorted(g["initial_lr"] for g in ckpt["optimizer"]["param_groups"])
    assert lrs == [2e-3, 1e-2]
    assert ckpt["data_position"] == 12 and set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    records = metric_lines(run_dir)
    assert [r["step"] for r in records if "val/one_step" in r] == [4, 8, 12]
    assert records[0]["lr"] == pytest.approx(5e-3)  # warm-up: step 1 of 2
    # the rebuilt emulator predicts like the trained one
    em = dynlab.load_emulator(run_dir, builder=tiny_builder)
    assert not em.training and em.rec.dtype == torch.float64
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    trained = tiny_builder(cfg["learner"], _codec(run_dir), None).double()
    trained.load_state_dict(ckpt["state_dict"])
    torch.testing.assert_close(em(x), trained.eval()(x))
    # a rerun with the same config does nothing; another config is refused without resume/overwrite
    again = train(cfg, builder=tiny_builder, **QUIET)
    assert again.complete and again.losses == []
    with pytest.raises(ConfigError, match="holds a finished run with a different config.*resume=true"):
        train(make_cfg(l96, run_dir, train={"lr": 5e-3}), builder=tiny_builder, **QUIET)


def _codec(run_dir):
    from dynlab.emulators.codec import StateCodec

    return StateCodec.from_dict(json.loads((run_dir / "dataset.json").read_text())["codec"])


def test_interrupted_and_resumed_run_repeats_the_uninterrupted_one(l96, tmp_path):
    """float64 on CPU, dropout on (RNG state), a rollout curriculum (objective state), a real crash."""
    sections = dict(learner={"name": "tiny", "hidden": 8, "dropout": 0.2},
                    loss={"name": "rollout", "one_step_steps": 3,
                          "horizon": {"start": 1, "max": 3, "grow": 1, "threshold": 10.0}})
    straight = train(make_cfg(l96, tmp_path / "a", **sections), builder=tiny_builder, **QUIET)

    class Crash(RuntimeError):
        pass

    def crash_at_7(step, record):
        if step == 7:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        train(make_cfg(l96, tmp_path / "b", **sections), builder=tiny_builder, hooks=[crash_at_7], **QUIET)
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [5]
    with pytest.raises(ConfigError, match="holds an unfinished run.*pass resume=true"):
        train(make_cfg(l96, tmp_path / "b", **sections), builder=tiny_builder, **QUIET)
    resumed = train(make_cfg(l96, tmp_path / "b", resume=True, **sections), builder=tiny_builder, **QUIET)
    assert len(resumed.losses) == 7 and resumed.complete
    assert resumed.losses == straight.losses[5:]  # bit-identical
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")
    steps = [r["step"] for r in metric_lines(tmp_path / "b") if "loss" in r]
    assert steps == list(range(1, 13))  # the crashed steps 6-7 were logged once, then redone
    assert any(r.get("event") == "resumed from step_00000005.pt" for r in metric_lines(tmp_path / "b"))
    a = load_checkpoint(latest_checkpoint(tmp_path / "a"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["objective"] == b["objective"]
    # stopping on purpose (train.max_steps) and resuming gives the same losses too
    first = train(make_cfg(l96, tmp_path / "c", train={"max_steps": 4}, **sections), builder=tiny_builder, **QUIET)
    assert first.step == 4 and not first.complete and not (tmp_path / "c" / "done.json").exists()
    rest = train(make_cfg(l96, tmp_path / "c", resume=True, **sections), builder=tiny_builder, **QUIET)
    assert first.losses + rest.losses == straight.losses


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(l96, tmp_path):
    built = []

    def builder(*args, **kwargs):
        built.append(tiny_builder(*args, **kwargs))
        return built[-1]

    def poison(step, record):
        if step == 6:
            with torch.no_grad():
                built[0].out.bias.fill_(float("nan"))

    run_dir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 7: training stopped; the last "
                                                 r"good checkpoint is .*step_00000005.pt"):
        train(make_cfg(l96, run_dir), builder=builder, hooks=[poison], **QUIET)
    assert "\n" not in str(NonFiniteLossError("x"))
    em = dynlab.load_emulator(run_dir, builder=tiny_builder)
    assert all(torch.isfinite(p).all() for p in em.parameters())
    y = em(torch.randn(1, 3, 8, dtype=torch.float64))
    assert torch.isfinite(y).all()


def test_untrainable_learner_writes_the_run_directory(l96, tmp_path):
    run_dir = tmp_path / "frozen"
    result = train(make_cfg(l96, run_dir, learner={"name": "frozen"}), builder=tiny_builder, **QUIET)
    assert result.step == 0 and result.complete and result.losses == []
    assert [s for s, _ in list_checkpoints(run_dir)] == [0]
    assert (run_dir / "done.json").is_file() and (run_dir / "split.json").is_file()
    assert "val/one_step" in result.last_metrics
    em = dynlab.load_emulator(run_dir, builder=tiny_builder)
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(em(x), x)


def test_causal_rollout_trains_and_logs_stages(l96, tmp_path):
    run_dir = tmp_path / "causal"
    cfg = make_cfg(l96, run_dir, loss={"name": "causal_rollout",
                                       "horizon": {"start": 2, "max": 3, "grow": 1, "threshold": 10.0},
                                       "causal": {"eps": [0.1, 1.0], "tol": 0.99, "max_stage_steps": 2}},
                   train={"steps": 12})
    result = train(cfg, builder=tiny_builder, **QUIET)
    events = [r["event"] for r in metric_lines(run_dir) if "event" in r]
    assert "causal stage eps=0.1 ended at step 1 (eps=1)" in events
    assert any(e.startswith("rollout horizon 2 -> 3") for e in events)
    last = [r for r in metric_lines(run_dir) if "loss" in r][-1]
    assert last["horizon"] == 3 and "causal/eps" in last and 0 < last["causal/min_weight"] <= 1
    assert result.complete


# --- bad input: one line naming the problem ----------------------------------------------------

def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no dataset at .*nowhere.zarr: the path does not exist"):
        train(make_cfg(tmp_path / "nowhere.zarr", tmp_path / "run"), builder=tiny_builder, **QUIET)


def test_unknown_learner(l96, tmp_path):
    with pytest.raises(ConfigError, match="learner='nope' is invalid: expected one of .*s4d"):
        train(make_cfg(l96, tmp_path / "run", learner={"name": "nope"}), **QUIET)


def test_horizon_longer_than_the_trajectories(l96, tmp_path):
    cfg = make_cfg(l96, tmp_path / "run", loss={"name": "rollout", "horizon": {"start": 1, "max": 100}})
    with pytest.raises(ConfigError, match=r"context \+ horizon = 4 \+ 100 = 104 steps is longer than the stored "
                                          r"trajectories \(81 times"):
        train(cfg, builder=tiny_builder, **QUIET)


def test_incompatible_checkpoint_on_resume(l96, tmp_path):
    run_dir = tmp_path / "run"
    train(make_cfg(l96, run_dir, train={"max_steps": 5}), builder=tiny_builder, **QUIET)
    with pytest.raises(ConfigError, match=r"cannot resume .* from step_00000005.pt: the config differs from the "
                                          r"checkpoint's in learner.hidden: 8 -> 16"):
        train(make_cfg(l96, run_dir, resume=True, learner={"name": "tiny", "hidden": 16}), builder=tiny_builder,
              **QUIET)
    with pytest.raises(ConfigError, match="train.dtype: 'float64' -> 'float32'"):
        train(make_cfg(l96, run_dir, resume=True, train={"dtype": "float32"}), builder=tiny_builder, **QUIET)


@pytest.mark.parametrize("section, match", [
    ({"train": {"lr": -1.0}}, r"train.lr=-1.0 is invalid: expected a finite number >= 0"),
    ({"train": {"dtype": "float16"}}, "train.dtype='float16' is invalid: expected one of float32, float64"),
    ({"train": {"stepz": 3}}, r"unknown config key 'train.stepz'; train accepts: "),
    ({"train": {"amp": True}}, "train.amp=true needs device=cuda"),
    ({"data": {"strid": 3}}, r"unknown config key 'data.strid'; data accepts: "),
    ({"train": {"batch_size": 7}}, None),
])
def test_bad_train_values(l96, tmp_path, section, match):
    cfg = make_cfg(l96, tmp_path / "run", **section)
    if match is None:  # odd batch sizes are fine in one process
        train(dict(cfg, train={**cfg["train"], "steps": 1}), builder=tiny_builder, **QUIET)
        return
    with pytest.raises(ConfigError, match=match):
        train(cfg, builder=tiny_builder, **QUIET)


def test_threads_setting_is_scoped():
    from dynlab.pipeline.train import set_threads

    before = torch.get_num_threads()
    with set_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with set_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads must be a positive integer or null, got 0"):
        with set_threads(0):
            pass


@pytest.mark.gpu
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_training_with_amp(l96, tmp_path, amp_dtype):
    """On CUDA with autocast (float16 also with a gradient scaler): training runs, stops and resumes."""
    sections = dict(device="cuda", train={"dtype": "float32", "amp": True, "amp_dtype": amp_dtype, "max_steps": 6},
                    loss={"name": "rollout", "one_step_steps": 3, "horizon": {"start": 2, "max": 2}})
    first = train(make_cfg(l96, tmp_path / "run", **sections), builder=tiny_builder, **QUIET)
    assert first.step == 6 and all(math.isfinite(v) for v in first.losses)
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert (ckpt["scaler"] is not None) == (amp_dtype == "float16")
    sections["train"] = {**sections["train"], "max_steps": None}
    rest = train(make_cfg(l96, tmp_path / "run", resume=True, **sections), builder=tiny_builder, **QUIET)
    assert rest.complete and rest.step == 12 and all(math.isfinite(v) for v in rest.losses)
    em = dynlab.load_emulator(tmp_path / "run", device="cuda", builder=tiny_builder)
    assert next(em.parameters()).is_cuda
