r"""Training losses for emulators: one-step, free-running rollout, causal rollout.

All losses are mean squared errors in *scaled* units: with a per-feature scale
:math:`s \in \mathbb{R}^D` (the training data's standard deviation), the error of a
prediction :math:`\hat x` of :math:`x` is :math:`\lVert(\hat x - x)/s\rVert^2 / D`,
so variables of different sizes weigh alike and a loss of 1 is the size of the
climatological variance. A batch is a window ``x`` of shape ``(B, W, D)`` with
W = C + H_max (C context steps) and optional forcing ``(B, W, F)``.

* **One-step** (teacher forced, :meth:`Emulator.forward`):
  :math:`\mathcal L_1 = \frac{1}{B(W-1-b)D}\sum_{t \ge b} \lVert(\hat x_{t+1} - x_{t+1})/s\rVert^2`
  with :math:`\hat x_{t+1} = f(x_{\le t})` and ``burn_in`` b.
* **Rollout** over H (:meth:`Emulator.rollout` from the context :math:`x_{<C}`):
  per-step losses :math:`L_h = \frac{1}{BD}\sum \lVert(\hat x_{C+h} - x_{C+h})/s\rVert^2`,
  h = 0 … H−1, and :math:`\mathcal L_R = \frac1H \sum_h L_h`.
* **Causal rollout**: :math:`\mathcal L_R` with causal weights
  :math:`w_h = e^{-\varepsilon \sum_{k<h} L_k}` (:class:`~dynlab.train.causal.CausalWeighting`).

**Horizon curriculum and causal weighting compose this way:** H grows only after the
ε schedule is exhausted (every stage ended) *and* the curriculum's validation rule
fires; when H grows, the ε schedule restarts from its first ε, because the newly
added late steps have large losses and must be marched in again. Without causal
weighting H grows on the validation rule alone.

Objectives (what the trainer calls) are built from a ``loss`` config by
:func:`build_objective` through the registry :data:`LOSSES`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping

import torch

from ..errors import ConfigError
from .causal import CausalWeighting
from .curriculum import HorizonCurriculum

__all__ = ["one_step_mse", "rollout_step_losses", "AbstractObjective", "OneStepObjective", "RolloutObjective",
           "LOSSES", "build_objective"]


def _scaled_sq_error(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    err = pred - target
    if scale is not None:
        err = err / scale.to(err.dtype)
    return err.square()


def one_step_mse(emulator, x: torch.Tensor, forcing: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None, burn_in: int = 0) -> torch.Tensor:
    """Teacher-forced one-step MSE of ``emulator`` on windows ``x`` ``(B, W, D)``; a scalar.

    Predictions of positions 1 … W−1 from ``emulator(x[:, :-1], forcing[:, :-1])``,
    scored from position ``burn_in + 1`` on.
    """
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError(f"x must have shape (B, W >= 2, D), got {tuple(x.shape)}")
    if not 0 <= burn_in < x.shape[1] - 1:
        raise ConfigError(f"loss.burn_in={burn_in} leaves no step to score in windows of {x.shape[1]} steps")
    pred = emulator(x[:, :-1], None if forcing is None else forcing[:, :-1])  # (B, W-1, D)
    return _scaled_sq_error(pred[:, burn_in:], x[:, 1 + burn_in:], scale).mean()


def rollout_step_losses(emulator, x: torch.Tensor, context: int, horizon: int,
                        forcing: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                        reduce_batch: bool = True) -> torch.Tensor:
    """Per-step losses ``(H,)`` of a free rollout from ``x[:, :context]`` (``(B, H)`` if not reduced).

    :math:`L_h` compares :math:`\\hat x_{C+h}` with ``x[:, C+h]``, h < H. The rollout is
    :meth:`~dynlab.emulators.base.AbstractEmulator.rollout`: the context goes through the
    learner's parallel mode where it has one (SSM emulators: one teacher-forced pass that
    returns the exact final state; gradients flow through it), the discretisations are
    shared by all steps of the rollout, and small steps run on the measured default number
    of CPU threads (:func:`dynlab.threads.step_threads`).
    """
    if context < 1 or horizon < 1 or context + horizon > x.shape[1]:
        raise ConfigError(f"context + horizon = {context} + {horizon} does not fit windows of {x.shape[1]} steps")
    f = None if forcing is None else forcing[:, :context + horizon]
    pred = emulator.rollout(x[:, :context], horizon, f)  # (B, H, D)
    err = _scaled_sq_error(pred, x[:, context:context + horizon], scale).mean(-1)  # (B, H)
    return err.mean(0) if reduce_batch else err


class AbstractObjective(ABC):
    """What the trainer optimises: a loss of a batch, plus its schedule state.

    ``scale`` ``(D,)`` is set by the trainer (:meth:`set_scale`) before use.
    """

    name: str = "abstract"

    def __init__(self, context: int):
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ConfigError(f"data.context must be an integer >= 1, got {context!r}")
        self.context = context
        self.scale: torch.Tensor | None = None

    def set_scale(self, scale: torch.Tensor) -> None:
        self.scale = scale

    @property
    @abstractmethod
    def max_horizon(self) -> int:
        """The longest rollout horizon this objective ever asks for (0: none)."""

    @abstractmethod
    def loss(self, emulator, x: torch.Tensor, forcing: torch.Tensor | None, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss of a batch ``x`` ``(B, W, D)`` at optimiser step ``step`` and values to log."""

    def after_step(self, step: int) -> list[str]:
        """Advance per-step schedules; returns messages about changes (for the log)."""
        return []

    def on_validation(self, metrics: Mapping[str, Any]) -> list[str]:
        """React to validation metrics (curriculum); returns messages about changes.

        ``metrics`` holds ``step``, ``val/one_step`` and, when the windows have a
        horizon, ``val/rollout_steps`` (the per-step rollout losses, a list).
        """
        return []

    def state(self) -> dict[str, float]:
        """Schedule values to log (horizon, ε, ...)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    @torch.no_grad()
    def validation_sums(self, emulator, x: torch.Tensor, forcing: torch.Tensor | None,
                        data_horizon: int) -> dict[str, torch.Tensor]:
        """Sums over a validation batch: one-step squared error and per-step rollout errors.

        Returns ``{"one_step": sum over windows of the window's one-step MSE,
        "rollout": (H_data,) sums over windows of L_h, "count": number of windows}``
        so that ranks can add them up.
        """
        pred = emulator(x[:, :-1], None if forcing is None else forcing[:, :-1])
        one = _scaled_sq_error(pred, x[:, 1:], self.scale).mean(dim=(1, 2)).sum()
        out = {"one_step": one, "count": torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device)}
        if data_horizon > 0:
            out["rollout"] = rollout_step_losses(emulator, x, self.context, data_horizon, forcing, self.scale,
                                                 reduce_batch=False).sum(0)
        return out


class OneStepObjective(AbstractObjective):
    """Teacher-forced one-step MSE (:func:`one_step_mse`)."""

    name = "one_step"

    def __init__(self, context: int, burn_in: int = 0):
        super().__init__(context)
        if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
            raise ConfigError(f"loss.burn_in must be an integer >= 0, got {burn_in!r}")
        self.burn_in = burn_in

    @property
    def max_horizon(self) -> int:
        return 0

    def loss(self, emulator, x, forcing, step):
        value = one_step_mse(emulator, x, forcing, self.scale, self.burn_in)
        return value, {"loss/one_step": value.detach()}


class RolloutObjective(AbstractObjective):
    """Free-running rollout loss with a horizon curriculum, optional causal weights,
    and an optional teacher-forced warm start.

    For steps < ``one_step_steps`` the loss is the one-step MSE only. After that it is
    :math:`\\mathcal L_R + \\alpha \\mathcal L_1` with α = ``one_step_weight`` and
    :math:`\\mathcal L_R` plain or causally weighted (see the module docstring for how
    the ε schedule and the horizon curriculum interact).
    """

    name = "rollout"

    def __init__(self, context: int, horizon: HorizonCurriculum, causal: CausalWeighting | None = None,
                 one_step_steps: int = 0, one_step_weight: float = 0.0, burn_in: int = 0):
        super().__init__(context)
        for key, value in (("one_step_steps", one_step_steps), ("burn_in", burn_in)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"loss.{key} must be an integer >= 0, got {value!r}")
        if isinstance(one_step_weight, bool) or not isinstance(one_step_weight, (int, float)) or one_step_weight < 0:
            raise ConfigError(f"loss.one_step_weight must be a number >= 0, got {one_step_weight!r}")
        self.curriculum = horizon
        self.causal = causal
        self.one_step_steps = one_step_steps
        self.one_step_weight = float(one_step_weight)
        self.burn_in = burn_in

    @property
    def max_horizon(self) -> int:
        return self.curriculum.max

    @property
    def horizon(self) -> int:
        return self.curriculum.horizon

    def in_warm_start(self, step: int) -> bool:
        return step < self.one_step_steps

    def loss(self, emulator, x, forcing, step):
        logs: dict[str, Any] = {}
        if self.in_warm_start(step):
            value = one_step_mse(emulator, x, forcing, self.scale, self.burn_in)
            return value, {"loss/one_step": value.detach()}
        per_step = rollout_step_losses(emulator, x, self.context, self.horizon, forcing, self.scale)  # (H,)
        logs["loss/rollout"] = per_step.detach().mean()
        if self.causal is not None:
            total = self.causal.weighted(per_step)
            logs["causal/min_weight"] = self.causal.last_weights.min()
        else:
            total = per_step.mean()
        if self.one_step_weight > 0:
            one = one_step_mse(emulator, x, forcing, self.scale, self.burn_in)
            logs["loss/one_step"] = one.detach()
            total = total + self.one_step_weight * one
        return total, logs

    def after_step(self, step: int) -> list[str]:
        if self.causal is None or self.in_warm_start(step) or self.causal.exhausted:
            return []
        eps = self.causal.epsilon
        if self.causal.update():
            nxt = "exhausted" if self.causal.exhausted else f"eps={self.causal.epsilon:g}"
            return [f"causal stage eps={eps:g} ended at step {step} ({nxt})"]
        return []

    def on_validation(self, metrics: Mapping[str, Any]) -> list[str]:
        if self.in_warm_start(int(metrics.get("step", 0))):
            return []
        steps = metrics.get("val/rollout_steps")
        if steps is None or len(steps) < self.horizon:
            return []
        value = sum(steps[:self.horizon]) / self.horizon  # val rollout loss at the current H
        allowed = self.causal is None or self.causal.exhausted
        old = self.horizon
        if self.curriculum.update(value, allowed=allowed):
            if self.causal is not None:
                self.causal.reset()
            return [f"rollout horizon {old} -> {self.horizon}"]
        return []

    def state(self) -> dict[str, float]:
        out: dict[str, float] = {"horizon": self.horizon}
        if self.causal is not None:
            out["causal/eps"] = self.causal.epsilon
            out["causal/stage"] = self.causal.stage
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict(),
                "causal": None if self.causal is None else self.causal.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        if self.causal is not None and state.get("causal") is not None:
            self.causal.load_state_dict(state["causal"])


# --- registry ---------------------------------------------------------------------------

def _check_keys(cfg: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known: {sorted(allowed)}")


def _one_step(cfg: Mapping[str, Any], context: int) -> OneStepObjective:
    _check_keys(cfg, {"name", "burn_in"}, f"loss={cfg.get('name')!r}")
    return OneStepObjective(context, burn_in=cfg.get("burn_in", 0))


def _rollout(cfg: Mapping[str, Any], context: int, require_causal: bool = False) -> RolloutObjective:
    name = cfg.get("name")
    _check_keys(cfg, {"name", "horizon", "causal", "one_step_steps", "one_step_weight", "burn_in"}, f"loss={name!r}")
    hcfg = dict(cfg.get("horizon") or {})
    _check_keys(hcfg, {"start", "max", "grow", "threshold", "patience", "min_delta"}, "loss.horizon")
    curriculum = HorizonCurriculum(**hcfg)
    causal_cfg = cfg.get("causal")
    causal = None
    if causal_cfg:
        causal_cfg = dict(causal_cfg)
        _check_keys(causal_cfg, {"eps", "tol", "max_stage_steps", "eps_scale"}, "loss.causal")
        if "eps" not in causal_cfg:
            raise ConfigError("loss.causal needs eps, the increasing list of causality parameters")
        causal = CausalWeighting(None, **causal_cfg)
    elif require_causal:
        raise ConfigError(f"loss={name!r} needs a causal section with eps (the causality schedule)")
    return RolloutObjective(context, curriculum, causal, one_step_steps=cfg.get("one_step_steps", 0),
                            one_step_weight=cfg.get("one_step_weight", 0.0), burn_in=cfg.get("burn_in", 0))


#: loss name -> builder ``(loss_cfg, context) -> AbstractObjective``
LOSSES: dict[str, Callable[[Mapping[str, Any], int], AbstractObjective]] = {
    "one_step": _one_step,
    "rollout": _rollout,
    "causal_rollout": lambda cfg, context: _rollout(cfg, context, require_causal=True),
}


def build_objective(loss_cfg: Mapping[str, Any], context: int) -> AbstractObjective:
    """The objective for a ``loss`` config (``name`` picks the builder in :data:`LOSSES`)."""
    name = loss_cfg.get("name")
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](loss_cfg, context)
