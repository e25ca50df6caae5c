"""Variable roles end to end: the store records each variable's role, ``ds.dynlab`` reads the
metadata back, and training learns the states with the forcings as inputs by default.

On a slab-ocean store with a CO₂ level drawn per member (``randomize.co2_multiple``), the
default (``data.variables: null``, ``data.forcing: null``) learns T alone; a learner that
takes the forcing inputs predicts it better than one that cannot see them (the members sit
at different CO₂ levels), and neither learns the constant ``co2`` as a state (the
1.7e14 validation loss of the role-blind default)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import dynlab
from dynlab.config import compose
from dynlab.emulators.base import AbstractEmulator, Normalizer
from dynlab.pipeline.simulate import simulate
from dynlab.pipeline.train import train
from test_trainer_support import make_cfg

QUIET = {"log": lambda msg: None}


@pytest.fixture(scope="module")
def slab_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("roles") / "slab.zarr"
    simulate(compose("simulate", ["system=slab_ocean_0d", "system.scenario=abrupt", "system.noise=0.3",
                                  "+system.randomize={co2_multiple:[1.0,4.0]}", "ensemble.members=12",
                                  "ensemble.chunk_members=3", "time.dt=0.05", "time.save_every=1.0",
                                  "time.t_end=40.0", f"out={out}", "progress=false"]), log=lambda m: None)
    return out


def test_store_records_roles_and_the_accessor_reads_them(slab_store):
    ds = dynlab.open_dataset(slab_store)
    roles = {name: ds[name].attrs["dynlab_role"] for name in ds.data_vars}
    assert roles == {"T": "state", "N_toa": "diagnostic", "co2": "forcing", "forcing": "forcing",
                     "co2_multiple": "forcing"}
    acc = ds.dynlab
    assert acc.roles == roles
    assert acc.states == ["T"] and acc.forcings == ["co2", "forcing"] and acc.diagnostics == ["N_toa"]  # declared order
    assert acc.dt == 0.05 and acc.save_every == 1.0
    assert acc.config["system"]["randomize"] == {"co2_multiple": [1.0, 4.0]}
    system = acc.system
    assert system.name == "slab_ocean_0d" and system.params.randomize == {"co2_multiple": (1.0, 4.0)}
    assert acc.integrator.name == "euler_maruyama"  # auto, resolved: noise > 0
    assert acc.completion.complete and acc.completion.total == 4 and acc.completion.missing_members == []
    # per-member levels: one store, several CO₂ levels, each member's co2 and forcing consistent
    k = ds.co2_multiple.values
    assert len(set(k.tolist())) == 12 and ((k > 1) & (k <= 4)).all()
    np.testing.assert_allclose(ds.co2.values[:, -1], 280.0 * k)
    np.testing.assert_allclose(ds.forcing.values[:, -1], 5.35 * np.log(k))
    np.testing.assert_allclose(ds.N_toa.values, ds.forcing.values - 1.24 * ds.T.values)


def test_roles_fall_back_to_the_system_for_stores_without_them(slab_store):
    ds = dynlab.open_dataset(slab_store)
    for name in ds.data_vars:
        del ds[name].attrs["dynlab_role"]
    assert ds.dynlab.states == ["T"] and ds.dynlab.diagnostics == ["N_toa"]
    bare = ds.copy()
    bare.attrs = {}
    assert bare.dynlab.roles["co2"] == "state" and bare.dynlab.save_every == 1.0 and bare.dynlab.dt is None
    with pytest.raises(ValueError, match="no 'dynlab_config'"):
        bare.dynlab.system


class ForcedLinearEmulator(AbstractEmulator):
    """x̂_{t+1} = x_t + s ⊙ (W z_t + V g_t + b), z = normalised state, g = standardised forcing."""

    trainable = True

    def __init__(self, n_features, n_forcing, f_mean, f_std):
        super().__init__(n_features, n_forcing)
        self.normalizer = Normalizer(n_features)
        self.lin = nn.Linear(n_features + n_forcing, n_features)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)
        self.register_buffer("f_mean", torch.as_tensor(f_mean, dtype=torch.float64)[:n_forcing])
        self.register_buffer("f_std", torch.as_tensor(f_std, dtype=torch.float64)[:n_forcing])

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        z = self.normalizer.normalize(x_t)
        if self.n_forcing:
            z = torch.cat((z, (forcing_t - self.f_mean.to(z.dtype)) / self.f_std.to(z.dtype)), dim=-1)
        return x_t + self.normalizer.std.to(x_t.dtype) * self.lin(z), None

    def forward(self, x, forcing=None):
        self.check_input(x, "x", forcing)
        return torch.stack([self.step(x[:, t], None, None if forcing is None else forcing[:, t])[0]
                            for t in range(x.shape[1])], dim=1)


def _builder(n_forcing, ds):
    names = ds.dynlab.forcings
    f_mean = [float(ds[n].mean()) for n in names]
    f_std = [float(ds[n].std()) for n in names]

    def build(learner_cfg, codec, train_data, *, dt=None, system=None):
        em = ForcedLinearEmulator(codec.n_features, n_forcing, f_mean, f_std)
        if train_data is not None:
            em.normalizer.fit(train_data.float())
        return em
    return build


def test_role_aware_training_learns_T_with_co2_as_forcing(slab_store, tmp_path):
    ds = dynlab.open_dataset(slab_store)
    common = dict(data={"variables": None, "forcing": None, "context": 2, "stride": 1},
                  train={"steps": 150, "batch_size": 16, "lr": 3e-2, "warmup": 0, "val_every": 150,
                         "val_windows": 64, "checkpoint_every": 150, "log_every": 50, "dtype": "float64"})
    forced = train(make_cfg(slab_store, tmp_path / "forced", **common), builder=_builder(2, ds), **QUIET)
    info = json.loads((tmp_path / "forced" / "dataset.json").read_text())
    assert info["variables"] == ["T"] and sorted(info["forcing"]) == ["co2", "forcing"]
    messages = []
    blind = train(make_cfg(slab_store, tmp_path / "blind", **common), builder=_builder(0, ds),
                  log=messages.append)
    assert any("not using the forcing variables" in m for m in messages)
    assert json.loads((tmp_path / "blind" / "dataset.json").read_text())["forcing"] == []
    v_forced, v_blind = forced.last_metrics["val/one_step"], blind.last_metrics["val/one_step"]
    print(f"\nval one-step loss: with CO2 forcing {v_forced:.3g}, without {v_blind:.3g}")
    assert math.isfinite(v_forced) and math.isfinite(v_blind)
    assert v_forced < 0.5 * v_blind < 10.0  # sane (not 1e14), and the forcing is used
    # explicit lists still override the roles
    explicit = make_cfg(slab_store, tmp_path / "explicit", **{**common, "data": {**common["data"],
                        "variables": ["T", "N_toa"], "forcing": []}})
    explicit["train"] = {**explicit["train"], "steps": 2, "val_every": 2, "checkpoint_every": 2}
    train(explicit, builder=_builder(0, ds), **QUIET)
    info = json.loads((tmp_path / "explicit" / "dataset.json").read_text())
    assert info["variables"] == ["T", "N_toa"] and info["forcing"] == []


def test_completion_state_of_an_interrupted_store(slab_store, tmp_path):
    """The accessor reports the completion record (what store repair needs): chunk 2 of 4
    marked missing → 3 of 4 done, members 6-8 missing."""
    import shutil

    import zarr

    copy = tmp_path / "partial.zarr"
    shutil.copytree(slab_store, copy)
    zarr.open_array(str(copy), path="_dynlab/chunk_done", mode="r+")[2] = 0
    ds = dynlab.open_dataset(copy, allow_incomplete=True)
    completion = ds.dynlab.completion
    assert (completion.done, completion.total, completion.complete) == (3, 4, False)
    assert completion.missing_members == [6, 7, 8] and not ds.dynlab.complete
