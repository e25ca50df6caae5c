r"""Causal temporal weighting of a loss over ordered time chunks.

Implemented from the published formula (Wang, Sankaran & Perdikaris, "Respecting
causality is all you need for training physics-informed neural networks", 2022;
PHYSICS.md, "Causal training"), not from the authors' code, which is
non-commercially licensed (the method is claimed as patented for commercial use).

Given ordered chunk losses :math:`L_0, …, L_{N-1}` (rollout steps, or the time
chunks of a PINN residual), the weights are

.. math::  w_i = \exp\Big(-\varepsilon \sum_{k<i} L_k\Big), \qquad
           \mathcal L = \frac1N \sum_i w_i L_i ,

with the :math:`w_i` held constant for the gradient (computed from detached
losses), so late chunks are not trained before the early ones are fitted. ε runs
through an increasing schedule :math:`\varepsilon_0 < \varepsilon_1 < …`; a stage
ends when :math:`\min_i w_i > \text{tol}` (0.99 in the paper) or after
``max_stage_steps`` optimiser steps, and then the next ε starts. After the last
stage the schedule is *exhausted* and training goes on with the last ε.

:class:`CausalWeighting` is a wrapper: it takes any callable that returns the
``(N,)`` vector of chunk losses and returns the weighted scalar, so a PINN's
residual loss reuses it unchanged.

**Scale of ε** (``eps_scale``). With ``absolute`` (the paper's convention, the
default) ε multiplies the losses as they are, so a useful ε depends on the
loss's units: with normalised rollout losses of order 10⁻², ε ≤ 1 gives weights
near 1 and every stage ends at once. With ``initial_loss`` the schedule is
dimensionless: at the first call of each stage the total :math:`S = \sum_i L_i`
is recorded and the weights use :math:`ε / S`, so that :math:`(ε/S) \sum_i L_i = ε`
at the start of the stage and the last chunk starts near :math:`e^{-ε}`; the stage
ends once training has shrunk the losses enough that :math:`\min_i w_i >` tol.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Sequence

import torch

from ..errors import ConfigError

__all__ = ["causal_weights", "CausalWeighting", "EPS_SCALES"]

#: how ε is scaled (see the module docstring)
EPS_SCALES = ("absolute", "initial_loss")


def causal_weights(chunk_losses: torch.Tensor, eps: float) -> torch.Tensor:
    r"""``w_i = exp(−ε Σ_{k<i} L_k)`` for chunk losses ``(N,)`` (or ``(..., N)``), detached.

    ``w_0 = 1`` always. The result carries no gradient (stop-gradient).
    """
    losses = chunk_losses.detach()
    before = torch.cumsum(losses, dim=-1) - losses  # Σ_{k<i} L_k, exclusive
    return torch.exp(-float(eps) * before)


class CausalWeighting:
    """Wrap a chunk-loss function with causal weights and an ε schedule.

    Args:
        loss_fn: ``loss_fn(*args, **kwargs) -> (N,)`` chunk losses (any callable).
        eps: the increasing ε schedule, e.g. ``[1e-2, 1e-1, 1, 10]``.
        tol: a stage ends when ``min_i w_i > tol`` (paper: 0.99).
        max_stage_steps: a stage also ends after this many steps (None: no cap).
        eps_scale: ``"absolute"`` (ε as given) or ``"initial_loss"`` (ε divided by the
            total chunk loss at the start of each stage; module docstring).

    Call the object like the loss: it returns the scalar ``mean_i w_i L_i``, keeping
    ``last_weights`` and ``last_losses``; then call :meth:`update` once per optimiser
    step to advance the schedule.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor] | None, eps: Sequence[float], tol: float = 0.99,
                 max_stage_steps: int | None = None, eps_scale: str = "absolute"):
        eps = list(eps) if not isinstance(eps, (str, bytes)) else eps
        if not isinstance(eps, list) or not eps or any(isinstance(e, bool) or not isinstance(e, Real) or e < 0
                                                       for e in eps):
            raise ConfigError(f"causal.eps must be a non-empty list of numbers >= 0, got {eps!r}")
        if any(b <= a for a, b in zip(eps, eps[1:])):
            raise ConfigError(f"causal.eps must increase, got {eps!r}")
        if isinstance(tol, bool) or not isinstance(tol, Real) or not 0.0 < tol < 1.0:
            raise ConfigError(f"causal.tol must be in (0, 1), got {tol!r}")
        if max_stage_steps is not None and (isinstance(max_stage_steps, bool) or not isinstance(max_stage_steps, int)
                                            or max_stage_steps < 1):
            raise ConfigError(f"causal.max_stage_steps must be a positive integer or null, got {max_stage_steps!r}")
        if eps_scale not in EPS_SCALES:
            raise ConfigError(f"causal.eps_scale must be one of {list(EPS_SCALES)}, got {eps_scale!r}")
        self.eps_scale = eps_scale
        self.scale: float | None = None  # total chunk loss at the start of the stage (initial_loss)
        self.loss_fn = loss_fn
        self.eps = [float(e) for e in eps]
        self.tol = float(tol)
        self.max_stage_steps = max_stage_steps
        self.stage = 0
        self.stage_steps = 0
        self.last_weights: torch.Tensor | None = None
        self.last_losses: torch.Tensor | None = None
        # maps the detached chunk losses before the weights are formed; data-parallel
        # training sets it to the mean over ranks, so every rank uses the global batch's weights
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def epsilon(self) -> float:
        """ε of the current stage (the last one once exhausted), as configured."""
        return self.eps[min(self.stage, len(self.eps) - 1)]

    def effective_epsilon(self, detached: torch.Tensor | None = None) -> float:
        """The ε the weights use: :attr:`epsilon`, divided by the stage's initial total loss for
        ``eps_scale = initial_loss`` (recorded from ``detached`` chunk losses at the first call)."""
        if self.eps_scale == "absolute":
            return self.epsilon
        if self.scale is None and detached is not None:
            total = float(detached.sum(-1).mean())
            self.scale = total if total > 0 and math.isfinite(total) else None
        return self.epsilon / self.scale if self.scale else self.epsilon

    @property
    def exhausted(self) -> bool:
        """True once every stage has ended."""
        return self.stage >= len(self.eps)

    def weighted(self, chunk_losses: torch.Tensor) -> torch.Tensor:
        """``mean_i w_i L_i`` over the last axis (and the mean over any leading axes)."""
        if chunk_losses.ndim < 1 or chunk_losses.shape[-1] < 1:
            raise ValueError(f"chunk losses must have shape (..., N >= 1), got {tuple(chunk_losses.shape)}")
        detached = chunk_losses.detach()
        if self.reduce is not None:
            detached = self.reduce(detached)
        w = causal_weights(detached, self.effective_epsilon(detached))
        self.last_weights, self.last_losses = w, detached
        return (w * chunk_losses).mean()

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.loss_fn is None:
            raise TypeError("this CausalWeighting has no loss_fn; call weighted(chunk_losses) instead")
        return self.weighted(self.loss_fn(*args, **kwargs))

    def update(self, weights: torch.Tensor | None = None) -> bool:
        """Count one step; end the stage if ``min w > tol`` or the step cap is reached.

        ``weights`` defaults to those of the last call. Returns True when a stage ended.
        """
        if self.exhausted:
            return False
        w = self.last_weights if weights is None else weights
        self.stage_steps += 1
        done = (w is not None and float(w.min()) > self.tol) or \
            (self.max_stage_steps is not None and self.stage_steps >= self.max_stage_steps)
        if done:
            self.stage += 1
            self.stage_steps = 0
            if not self.exhausted:  # after the last stage the last scale stays, like the last ε
                self.scale = None
        return done

    def reset(self) -> None:
        """Restart the schedule at its first ε (e.g. when the rollout horizon grows)."""
        self.stage, self.stage_steps, self.scale = 0, 0, None

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "stage_steps": self.stage_steps, "eps": list(self.eps),
                "eps_scale": self.eps_scale, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage, self.stage_steps = int(state["stage"]), int(state["stage_steps"])
        self.scale = state.get("scale")
