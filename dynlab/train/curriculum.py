r"""Rollout-horizon curriculum: lengthen H as the validation error allows.

The free-running rollout loss over H steps is hard to fit from scratch for large H
(errors grow like :math:`e^{\lambda_1 t}` in a chaotic system), so training starts
with a short horizon and lengthens it. After each validation with rollout loss
:math:`\ell` at the current H, the horizon grows, :math:`H \leftarrow \min(H +
\text{grow}, H_{\max})`, when either

* :math:`\ell < \text{threshold}` (the short horizon is learnt), or
* :math:`\ell` has not improved on its best value at this H by a relative
  ``min_delta`` for ``patience`` validations (a plateau),

and the caller allows it (with causal weighting, only once the ε schedule is
exhausted; see :mod:`dynlab.train.losses`). The best value resets at each growth.

**At least one validation period at each horizon.** A horizon's training period
opens at the validation where it was set: for a grown horizon, the validation that
grew it (training at the new H starts right after); for the first horizon, the first
validation that reaches the curriculum, which may come before any step at H (e.g.
right at the end of a one-step warm start). H may grow only at a later validation,
so every horizon is trained for at least ``val_every`` steps before it grows.
"""
from __future__ import annotations

from numbers import Real
from typing import Any

from ..errors import ConfigError

__all__ = ["HorizonCurriculum"]


def _int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"loss.horizon.{name} must be an integer >= {low}, got {value!r}")
    return value


class HorizonCurriculum:
    """The horizon H and the rule that grows it (see the module docstring).

    Args:
        start: the first horizon (≥ 1).
        max: the last horizon (≥ start).
        grow: steps added at each growth (≥ 1).
        threshold: grow when the validation rollout loss is below it (None: never by threshold).
        patience: grow after this many validations without improvement (None: never by plateau).
        min_delta: relative improvement that counts as one.
    """

    def __init__(self, start: int = 1, max: int = 1, grow: int = 1, threshold: float | None = None,
                 patience: int | None = None, min_delta: float = 0.01):
        self.start = _int(start, "start", 1)
        self.max = _int(max, "max", 1)
        if self.max < self.start:
            raise ConfigError(f"loss.horizon.max={max} must be >= loss.horizon.start={start}")
        self.grow = _int(grow, "grow", 1)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, Real) or threshold <= 0):
            raise ConfigError(f"loss.horizon.threshold must be a positive number or null, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)
        self.patience = None if patience is None else _int(patience, "patience", 1)
        if isinstance(min_delta, bool) or not isinstance(min_delta, Real) or min_delta < 0:
            raise ConfigError(f"loss.horizon.min_delta must be a number >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.horizon = self.start
        self.best: float | None = None
        self.stale = 0
        self.opened = False  # has a validation opened the training period at the current H?

    @property
    def at_max(self) -> bool:
        return self.horizon >= self.max

    def update(self, val_loss: float, allowed: bool = True) -> bool:
        """Record a validation rollout loss at the current H; return True if H grew.

        The first call at the first horizon only opens its training period (module docstring).
        """
        if self.best is None or val_loss < self.best * (1.0 - self.min_delta):
            self.best, self.stale = float(val_loss), 0
        else:
            self.stale += 1
        if not self.opened:
            self.opened = True
            return False
        if self.at_max or not allowed:
            return False
        learnt = self.threshold is not None and val_loss < self.threshold
        plateau = self.patience is not None and self.stale >= self.patience
        if not (learnt or plateau):
            return False
        self.horizon = min(self.horizon + self.grow, self.max)
        self.best, self.stale = None, 0
        self.opened = True  # the new horizon's period opens now
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "best": self.best, "stale": self.stale, "opened": self.opened}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.horizon, self.best, self.stale = int(state["horizon"]), state["best"], int(state["stale"])
        # checkpoints written before "opened" existed: a recorded loss or a grown horizon means it was open
        self.opened = bool(state.get("opened", state["best"] is not None or self.horizon != self.start))
