r"""The in-context HiPPO predictor as an Emulator (no training).

:class:`~dynlab.models.hippo_predictor.HiPPOPredictor` extrapolates each feature
from a HiPPO (Legendre) memory of its recent past,
:math:`\hat x_{t+1} = x_t + \sum_{m=1}^{p} \frac{Δt^m}{m!} f^{(m)}(t)`, with
derivatives read off the memory in closed form. It is linear and acts on each
feature separately, and a constant signal is an equilibrium of its memory, so it
commutes with any per-feature affine map :math:`x ↦ a ⊙ x + b`: normalising
the data would not change a single prediction, and this wrapper has no
normaliser.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .base import AbstractEmulator

__all__ = ["HiPPOEmulator"]


class HiPPOEmulator(AbstractEmulator):
    """Wraps ``HiPPOPredictor(measure, N, theta, dt, order)`` behind the Emulator contract.

    Args:
        n_features: ``D``.
        dt: the data's sampling interval (model time between saved states).
        measure: ``"legt"`` (sliding window of length ``theta``) or ``"legs"`` (all history).
        N: memory size (Legendre coefficients per feature).
        theta: LegT window length in model time (default ``theta_steps · dt``).
        theta_steps: window length in samples, used when ``theta`` is None.
        order: Taylor order of the readout, ``1 <= order < N``. The one-step error is
            O(Δt^{order+1}) only with ``theta`` fixed in model time; with the default window
            in samples (``theta = theta_steps · dt``) it is O(Δt²) for every order
            (:mod:`dynlab.models.hippo_predictor`, "Order with a window in samples").

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``; ``step`` ``(B, D) -> (B, D)``.
    """

    trainable = False

    def __init__(self, n_features: int, dt: float, measure: str = "legt", N: int = 8, theta: float | None = None,
                 theta_steps: float = 8.0, order: int = 1, discretization: str = "foh"):
        super().__init__(n_features)
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite number > 0 (the sampling interval), got {dt!r}")
        if theta is None:
            if isinstance(theta_steps, bool) or not isinstance(theta_steps, (int, float)) or theta_steps <= 1:
                raise ValueError(f"theta_steps must be a number > 1, got {theta_steps!r}")
            theta = float(theta_steps) * float(dt)
        from ..models.hippo_predictor import HiPPOPredictor

        self.predictor = HiPPOPredictor(measure=measure, N=N, theta=theta, dt=float(dt), order=order,
                                        discretization=discretization)

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        return self.predictor(x)

    def initial_state(self, batch: int, device=None, dtype=None) -> Any:
        return self.predictor.default_state(batch, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        self.check_step_input(x_t, forcing_t)
        return self.predictor.step(x_t, state)
