"""The ``pinn:`` config section as dataclasses (every field: ``help``, bounds, choices).

``PinnConfig.from_dict(section)`` validates keys, types, bounds and choices and
raises :class:`~dynlab.errors.ConfigError` with a one-line message. YAML files
hold only what differs from these defaults.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from ..schema import check, option

__all__ = ["NetworkConfig", "CausalConfig", "BalanceConfig", "PinnConfig"]


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    """Check ``data`` against the schema ``cls`` (:func:`dynlab.schema.check`: unknown keys, types,
    bounds, choices; one-line ``ConfigError``), build it with its nested sections, and run each
    section's own ``check(path)`` for constraints between keys."""
    checked = check(data, cls, path)
    hints = typing.get_type_hints(cls)
    values = {name: _build(hints[name], value, f"{path}.{name}")
              if dataclasses.is_dataclass(hints[name]) else value for name, value in checked.items()}
    out = cls(**values)
    own_check = getattr(out, "check", None)
    if own_check is not None:
        own_check(path)
    return out


@dataclass
class NetworkConfig:
    arch: str = option("modified_mlp", "network: plain MLP or the modified MLP of Wang, Teng & Perdikaris (2021)",
                       choices=("mlp", "modified_mlp"))
    width: int = option(64, "hidden units per layer", ge=1)
    depth: int = option(4, "hidden layers", ge=1)
    activation: str = option("tanh", "activation function", choices=("tanh", "gelu", "sin"))
    x_modes: int = option(4, "periodic features cos/sin(m k0 x), m = 1..x_modes (exact periodicity in x)", ge=1)
    time_features: int = option(0, "extra time features sin/cos(2 pi m tau), m = 1..time_features (0: tau only)",
                                ge=0)
    fourier_features: int = option(0, "random Fourier features of the embedded input (0: off)", ge=0)
    fourier_scale: float = option(1.0, "standard deviation of the random Fourier feature frequencies", gt=0)


@dataclass
class CausalConfig:
    enabled: bool = option(True, "causal weights w_i = exp(-eps sum_{k<i} L_k) over time chunks (Wang et al. 2022)")
    chunks: int = option(16, "temporal chunks per window", ge=1)
    eps: list[float] = option([1.0e-2, 1.0e-1, 1.0, 10.0], "increasing eps ladder (absolute eps)", ge=0)
    tol: float = option(0.99, "a stage ends when min_i w_i > tol", gt=0, lt=1)
    max_stage_steps: int | None = option(None, "a stage also ends after this many steps (null: no cap)", ge=1)
    stop_rule: bool = option(True, "end a window early once the last eps reaches min w > tol")

    def check(self, path: str) -> None:
        if any(b <= a for a, b in zip(self.eps, self.eps[1:])) or not self.eps:
            raise ConfigError(f"{path}.eps must be a non-empty increasing list, got {self.eps!r}")


@dataclass
class BalanceConfig:
    enabled: bool = option(True, "gradient-norm balancing of the loss terms (Wang et al. 2023)")
    every: int = option(100, "steps between weight updates", ge=1)
    alpha: float = option(0.9, "moving-average factor of the weights", ge=0, lt=1)


@dataclass
class PinnConfig:
    network: NetworkConfig = option(NetworkConfig(), "the network")
    causal: CausalConfig = option(CausalConfig(), "causal training")
    balance: BalanceConfig = option(BalanceConfig(), "gradient-norm balancing of IC and residual losses")
    exact_ic: bool = option(True, "impose u(t0) = u0 by construction, u = u0 + tau * NN (else an IC loss term)")
    windows: int = option(1, "time-marching windows, each started from the previous window's end", ge=1)
    steps: int = option(2000, "optimiser steps per window (the most: the causal stop rule may end it early)", ge=1)
    points: int = option(2048, "residual collocation points per step", ge=1)
    ic_points: int = option(256, "initial-condition points (IC loss; the next window's IC fit)", ge=4)
    resample: bool = option(True, "draw new collocation points every step (else one fixed set per window)")
    warm_start: bool = option(True, "start each window from the previous window's weights")
    lr: float = option(1.0e-3, "Adam learning rate", gt=0)
    lbfgs_steps: int = option(0, "L-BFGS iterations after Adam in each window, on a fixed point set (0: off)", ge=0)
    lr_decay: bool = option(True, "exponential learning-rate decay")
    decay_rate: float = option(0.9, "lr factor per decay_steps", gt=0, le=1)
    decay_steps: int = option(500, "steps per decay_rate factor", ge=1)
    output_scale: float | None = option(None, "scale of the network output (null: max |u0|, at least 1)", gt=0)
    dtype: str = option("float32", "training precision (TF32 is off on GPU)", choices=("float32", "float64"))
    device: str = option("cpu", "cpu, cuda or cuda:N")
    seed: int = option(0, "seed of the network initialisation and collocation points", ge=0)
    t_end: float | None = option(None, "end of the PINN's time domain (null: time.t_end)", gt=0)
    initial_state: list[float] | None = option(None, "ODE initial state (null: the system's member 0 after spin-up)")
    max_seconds: float | None = option(None, "wall-clock budget of the Adam phase, split evenly over the windows "
                                       "(null: none)", gt=0)
    log_every: int = option(100, "steps between metrics.jsonl lines", ge=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PinnConfig":
        """Validate the ``pinn:`` section (``ConfigError`` naming the bad key)."""
        return _build(cls, data or {}, "pinn")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
