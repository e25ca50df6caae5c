"""Shared pieces of the trainer tests: a tiny recurrent emulator, a builder, configs.

Also imported by the torchrun worker script of ``test_ddp.py``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from dynlab.emulators.base import AbstractEmulator, Normalizer


class TinyRecurrentEmulator(AbstractEmulator):
    r"""A small residual RNN: :math:`h_t = \tanh(W z_t + U h_{t-1})`,
    :math:`\hat x_{t+1} = x_t + s ⊙ (V\,\mathrm{drop}(h_t))` with :math:`z = (x − μ)/s`.

    ``U`` carries ``_optim = {"weight_decay": 0.0, "lr": lr_u}`` like the SSM layers'
    parameters. Shapes: forward ``(B, L, D) -> (B, L, D)``.
    """

    trainable = True

    def __init__(self, n_features: int, hidden: int = 8, dropout: float = 0.0, lr_u: float = 1e-3):
        super().__init__(n_features)
        self.normalizer = Normalizer(n_features)
        self.inp = nn.Linear(n_features, hidden)
        self.rec = nn.Parameter(torch.zeros(hidden, hidden))
        self.rec._optim = {"weight_decay": 0.0, "lr": lr_u}
        self.out = nn.Linear(hidden, n_features)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
        self.drop = nn.Dropout(dropout)
        self.hidden = hidden

    def initial_state(self, batch, device=None, dtype=None):
        return torch.zeros(batch, self.hidden, device=device or self.rec.device, dtype=self.rec.dtype)

    def step(self, x_t, state, forcing_t=None):
        z = self.normalizer.normalize(x_t)
        h = torch.tanh(self.inp(z) + state @ self.rec)
        return x_t + self.normalizer.std * self.out(self.drop(h)), h

    def forward(self, x, forcing=None):
        self.check_input(x, "x", forcing)
        state = self.initial_state(x.shape[0], x.device, x.dtype)
        out = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            out.append(y)
        return torch.stack(out, 1)


class FrozenEmulator(AbstractEmulator):
    """Persistence with a buffer and no parameters: a learner trained by 0 steps."""

    trainable = False

    def __init__(self, n_features: int):
        super().__init__(n_features)
        self.register_buffer("offset", torch.zeros(n_features))

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        return x_t + self.offset.to(x_t.dtype), None

    def forward(self, x, forcing=None):
        return x + self.offset.to(x.dtype)


def tiny_builder(learner_cfg, codec, train_data, *, dt=None, system=None):
    """``build_emulator`` stand-in: ``{"name": "tiny", "hidden": .., "dropout": ..}`` or ``{"name": "frozen"}``."""
    opts = dict(learner_cfg)
    name = opts.pop("name")
    if name == "frozen":
        return FrozenEmulator(codec.n_features)
    if name != "tiny":
        raise ValueError(f"unknown learner {name!r}; known learners: frozen, tiny")
    em = TinyRecurrentEmulator(codec.n_features, **opts)
    if train_data is not None:
        em.normalizer.fit(train_data.float())
    return em


BASE_CFG: dict[str, Any] = {
    "data": {"store": None, "variables": None, "forcing": [], "context": 4, "horizon": None, "stride": 8,
             "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0}, "num_workers": 0, "cache_mb": 256,
             "stats_members": 4},
    "learner": {"name": "tiny", "hidden": 8},
    "loss": {"name": "one_step", "burn_in": 0},
    "train": {"steps": 12, "batch_size": 8, "lr": 1e-2, "warmup": 2, "checkpoint_every": 5, "log_every": 1,
              "val_every": 4, "val_windows": 16, "dtype": "float64"},
    "run_dir": None, "resume": False, "overwrite": False, "seed": 0, "device": "cpu", "progress": False,
}


def make_cfg(store, run_dir, **sections) -> dict[str, Any]:
    """A copy of :data:`BASE_CFG` with the store, run_dir and section updates (dicts merge one level)."""
    cfg = copy.deepcopy(BASE_CFG)
    cfg["data"]["store"] = str(store)
    cfg["run_dir"] = str(run_dir)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def make_store(folder, *, members: int = 10, chunk_members: int = 2, t_end: float = 4.0, K: int = 8):
    """A small Lorenz96 store (cached per folder: a complete store with the same config is reused)."""
    from pathlib import Path

    from dynlab.config import compose
    from dynlab.pipeline.simulate import simulate

    out = Path(folder) / f"l96_K{K}_m{members}_c{chunk_members}_t{t_end:g}.zarr"
    simulate(compose("simulate", [f"ensemble.members={members}", f"ensemble.chunk_members={chunk_members}",
                                  f"time.t_end={t_end}", "time.spinup=2", f"system.K={K}", f"out={out}",
                                  "progress=false"]), log=lambda msg: None)
    return out
