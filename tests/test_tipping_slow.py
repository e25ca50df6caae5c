"""The tipping presets at full length (slow): the May ramp tips after its fold, the
Allee ramp collapses while its stationary control does so only by chance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.pipeline.simulate import simulate
from simulators.tipping import may_folds

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_preset(tmp_path, preset: str, members: int):
    out = tmp_path / f"{preset}.zarr"
    simulate(compose("simulate", [f"system={preset}", f"ensemble.members={members}", f"out={out}",
                                  "progress=false"]), log=lambda msg: None)
    return dynlab.open_dataset(out).load()


def test_may_ramp_preset_tips_after_the_fold(tmp_path):
    ds = run_preset(tmp_path, "may_grazing_ramp", 32)
    t, x, c = ds["time"].values, ds["x"].values, ds["c"].values[0]
    t_fold = t[np.argmax(c >= may_folds()[1].c)]  # ≈ 201
    assert x[:, t < 150].mean() > 5.0 and x[:, -1].mean() < 1.0
    tipped = (x < 2.5).any(axis=1)
    assert tipped.mean() > 0.95
    first_low = t[np.argmax(x < 2.5, axis=1)][tipped]
    assert np.median(first_low) > t_fold - 20, (np.median(first_low), t_fold)


def test_may_constant_preset_stays_on_the_upper_branch(tmp_path):
    x = run_preset(tmp_path, "may_grazing", 16)["x"].values
    assert (x.min(axis=1) > 3.5).mean() > 0.9


def test_allee_ramp_against_its_stationary_control(tmp_path):
    ramp = run_preset(tmp_path, "allee", 128)
    control = run_preset(tmp_path, "allee_stationary", 128)
    t_end = float(ramp["time"][-1])
    ramp_ext = ramp["extinction_time"].values
    control_ext = control["extinction_time"].values
    assert np.isfinite(ramp_ext).mean() > 0.95
    chance = np.isfinite(control_ext).mean()
    assert 0.05 < chance < 0.5, chance  # some collapse by chance alone
    # exponential estimate of the control's mean extinction time (events / exposure)
    exposure = np.where(np.isfinite(control_ext), control_ext, t_end).clip(min=0).sum()
    assert exposure / np.isfinite(control_ext).sum() > 4 * np.nanmean(ramp_ext)
