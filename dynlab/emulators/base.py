r"""The Emulator contract (DESIGN.md, Emulators).

Every learner is an Emulator: a ``torch.nn.Module`` that takes and returns
states in physical units, with a flat feature axis ``D`` given by a
:class:`~dynlab.emulators.codec.StateCodec`.

* ``forward(x, forcing=None)``: teacher-forced, parallel over time. ``x`` is
  ``(B, L, D)``; the output ``(B, L, D)`` at position t is the prediction of
  :math:`x_{t+1}` from :math:`x_{\le t}` (and forcing up to t).
* ``initial_state(batch)`` and ``step(x_t, state, forcing_t=None) -> (y, state)``:
  one differentiable recurrent step; ``y`` is the prediction of the next state.
* ``rollout(context, steps, forcing=None) -> (B, steps, D)``: warm up on the
  context :math:`x_1 … x_C` and forecast :math:`x_{C+1} … x_{C+steps}`, feeding
  predictions back. ``forcing`` is ``(B, C + steps, F)``, aligned with the inputs.

Learners normalise internally; :class:`Normalizer` keeps the statistics as
buffers so they travel in checkpoints.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

__all__ = ["AbstractEmulator", "Normalizer"]


class Normalizer(nn.Module):
    """Affine feature scaling ``z = (x − mean) / std`` with buffers ``mean``, ``std`` of shape ``(D,)``."""

    def __init__(self, n_features: int, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        self.register_buffer("mean", torch.zeros(n_features) if mean is None else torch.as_tensor(mean).float().clone())
        self.register_buffer("std", torch.ones(n_features) if std is None else torch.as_tensor(std).float().clone())
        if self.mean.shape != (n_features,) or self.std.shape != (n_features,):
            raise ValueError(f"mean and std must have shape ({n_features},), got {tuple(self.mean.shape)} and {tuple(self.std.shape)}")

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "Normalizer":
        """Set the statistics from samples ``x`` of shape ``(..., D)``."""
        flat = x.reshape(-1, x.shape[-1]).to(self.mean.dtype)
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-8))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)


class AbstractEmulator(nn.Module, ABC):
    """Base of every emulator. Subclasses implement ``forward``, ``initial_state`` and ``step``;
    ``rollout`` has a default built on ``step``.

    Attributes:
        n_features: ``D``, the flat state size.
        n_forcing: ``F``, the number of forcing features (0 if none).
    """

    def __init__(self, n_features: int, n_forcing: int = 0):
        super().__init__()
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        if not isinstance(n_forcing, int) or n_forcing < 0:
            raise ValueError(f"n_forcing must be a non-negative integer, got {n_forcing!r}")
        self.n_features = n_features
        self.n_forcing = n_forcing

    # -- contract ---------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced next-step predictions: ``(B, L, D) -> (B, L, D)``."""

    @abstractmethod
    def initial_state(self, batch: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> Any:
        """The recurrent state before any input (any pytree of tensors, or None)."""

    @abstractmethod
    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One step: ``x_t`` ``(B, D)`` → prediction of ``x_{t+1}`` ``(B, D)`` and the new state."""

    # -- shared -----------------------------------------------------------------------
    def check_input(self, x: torch.Tensor, name: str = "x", forcing: torch.Tensor | None = None,
                    length: int | None = None) -> None:
        """Validate ``x`` ``(B, L, D)`` and optional ``forcing`` ``(B, length, F)``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.n_features:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (B, L, {self.n_features}), got {shape}")
        if forcing is not None:
            want = (x.shape[0], length if length is not None else x.shape[1], self.n_forcing)
            if forcing.ndim != 3 or tuple(forcing.shape) != want:
                raise ValueError(f"forcing must have shape {want}, got {tuple(forcing.shape)}")
        elif self.n_forcing:
            raise ValueError(f"this emulator needs forcing with {self.n_forcing} features")

    def rollout(self, context: torch.Tensor, steps: int, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """Warm up on ``context`` ``(B, C, D)`` and forecast ``steps`` states: ``(B, steps, D)``."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if context.ndim != 3 or context.shape[1] < 1:
            raise ValueError(f"context must have shape (B, C >= 1, D), got {tuple(context.shape)}")
        B, C, _ = context.shape
        self.check_input(context, "context", forcing, length=C + steps if forcing is not None else None)
        state = self.initial_state(B, device=context.device, dtype=context.dtype)
        y = None
        for t in range(C):
            f_t = forcing[:, t] if forcing is not None else None
            y, state = self.step(context[:, t], state, f_t)
        out = [y]
        for t in range(C, C + steps - 1):
            f_t = forcing[:, t] if forcing is not None else None
            y, state = self.step(y, state, f_t)
            out.append(y)
        return torch.stack(out, dim=1)
