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
  The warm-up is :meth:`AbstractEmulator.warm_up` (recurrent by default; parallel
  for learners with an exact parallel mode); ``compile=True`` (or the attribute
  ``rollout_compile``) compiles the step loop.

Learners normalise internally; :class:`Normalizer` keeps the statistics as
buffers so they travel in checkpoints.
"""
from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import torch
from torch import nn

from ..threads import state_numel, step_threads

__all__ = ["features_of", "AbstractMarkovEmulator", "AbstractEmulator", "Normalizer"]


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

    def check_step_input(self, x_t: torch.Tensor, forcing_t: torch.Tensor | None = None) -> None:
        """Validate one step's ``x_t`` ``(B, D)`` of an emulator without forcing inputs."""
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 2 or x_t.shape[-1] != self.n_features:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must have shape (B, {self.n_features}), got {shape}")
        if forcing_t is not None:
            raise ValueError(f"{type(self).__name__} takes no forcing, got a forcing tensor")

    @staticmethod
    def check_batch(batch: int) -> int:
        """Validate the ``batch`` of :meth:`initial_state` (a positive integer)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        return batch

    def check_windows(self, x: torch.Tensor, min_length: int = 1, *, finite: bool = False) -> None:
        """Validate training windows ``x`` ``(N, L >= min_length, D)`` (and, with ``finite``, their values)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.n_features \
                or x.shape[1] < min_length:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            length = "L" if min_length <= 1 else f"L >= {min_length}"
            raise ValueError(f"training windows must have shape (N, {length}, {self.n_features}), got {shape}")
        if finite and not bool(torch.isfinite(x).all()):
            raise ValueError("training windows contain non-finite values")

    #: compile the step loop of :meth:`rollout` with ``torch.compile`` (eager fallback with a warning)
    rollout_compile: bool = False
    #: keyword arguments of ``torch.compile`` for the step (e.g. ``{"mode": "max-autotune-no-cudagraphs"}``,
    #: or ``{"backend": "eager"}`` to check the graph capture alone); read when the step is first compiled
    rollout_compile_options: dict[str, Any] = {}

    def rollout(self, context: torch.Tensor, steps: int, forcing: torch.Tensor | None = None, *,
                compile: bool | None = None) -> torch.Tensor:
        """Warm up on ``context`` ``(B, C, D)`` and forecast ``steps`` states: ``(B, steps, D)``.

        The warm-up is :meth:`warm_up` (parallel where the learner has an exact parallel
        mode); then ``steps − 1`` recurrent steps feed predictions back. All forecasts of
        the batch run in one loop. ``compile`` (default: the attribute
        ``rollout_compile``) runs the steps through ``torch.compile`` (see
        :meth:`compiled_step`). On CPU, small steps run on the measured default
        number of intra-op threads (:func:`dynlab.threads.step_threads`).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[1] < 1:
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise ValueError(f"context must have shape (B, C >= 1, D), got {shape}")
        if compile is not None and not isinstance(compile, bool):
            raise ValueError(f"compile must be True, False or None, got {compile!r}")
        B, C, _ = context.shape
        self.check_input(context, "context", forcing, length=C + steps if forcing is not None else None)
        use_compile = self.rollout_compile if compile is None else compile
        with self.rollout_scope():
            y, state = self.warm_up(context, None if forcing is None else forcing[:, :C])
            step = self.compiled_step() if use_compile else self.step
            out = [y]
            with step_threads(state_numel((y, state)), device=context.device):
                for t in range(C, C + steps - 1):
                    f_t = forcing[:, t] if forcing is not None else None
                    y, state = step(y, state, f_t)
                    out.append(y)
        return torch.stack(out, dim=1)

    def warm_up(self, context: torch.Tensor, forcing: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Feed the context ``(B, C, D)`` (forcing ``(B, C, F)``): the prediction of
        :math:`x_{C+1}` ``(B, D)`` and the state after the context.

        Default: ``C`` recurrent steps from :meth:`initial_state`. Learners with an exact
        parallel mode override it (one teacher-forced pass that returns the final state).
        """
        B, C, _ = context.shape
        state = self.initial_state(B, device=context.device, dtype=context.dtype)
        y = None
        with step_threads(state_numel(state) + context[:, 0].numel(), device=context.device):
            for t in range(C):
                f_t = forcing[:, t] if forcing is not None else None
                y, state = self.step(context[:, t], state, f_t)
        return y, state

    def rollout_scope(self) -> AbstractContextManager:
        """A context around one rollout (warm-up and steps); learners that memoise
        per-rollout work (discretisations) return theirs. Default: nothing."""
        return nullcontext()

    def compiled_step(self) -> Callable[..., tuple[torch.Tensor, Any]]:
        """:meth:`step` through ``torch.compile`` (made once per emulator and kept).

        Options are ``rollout_compile_options``. The first call compiles (the returned
        callable's ``compile_seconds`` is that call's wall time); if compiling or running
        the compiled step fails, a warning names the error, ``failed`` holds it, and this
        emulator runs eager :meth:`step` from then on. With CUDA tensors the compiled step
        may be captured as a CUDA graph (``{"mode": "reduce-overhead"}``); its outputs are
        then cloned before they are kept.
        """
        fn = self.__dict__.get("_compiled_step")
        if fn is None:
            fn = _CompiledStep(self)
            self.__dict__["_compiled_step"] = fn
        return fn


class _CompiledStep:
    """``emulator.step`` compiled with ``torch.compile``, with an eager fallback."""

    def __init__(self, emulator: AbstractEmulator):
        self.eager = emulator.step
        self.failed: str | None = None
        self.compile_seconds: float | None = None
        options = dict(emulator.rollout_compile_options)
        # CUDA graphs reuse their output buffers at the next replay: keep copies
        self.cudagraphs = options.get("mode") in ("reduce-overhead", "max-autotune")
        try:
            self.compiled = torch.compile(emulator.step, **options)
        except Exception as err:  # torch.compile unavailable (e.g. unsupported Python)
            self._fail(err)

    def _fail(self, err: Exception) -> None:
        self.failed = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        warnings.warn(f"torch.compile of the rollout step failed ({self.failed}); running the steps eagerly",
                      RuntimeWarning, stacklevel=3)

    def __call__(self, x_t, state, forcing_t=None):
        if self.failed is None:
            start = time.perf_counter() if self.compile_seconds is None else None
            try:
                if self.cudagraphs:
                    torch.compiler.cudagraph_mark_step_begin()
                    out = _clone_tree(self.compiled(x_t, state, forcing_t))
                else:
                    out = self.compiled(x_t, state, forcing_t)
            except Exception as err:  # noqa: BLE001 - any compiler failure falls back; eager re-raises real errors
                self._fail(err)
            else:
                if start is not None:
                    self.compile_seconds = time.perf_counter() - start
                return out
        return self.eager(x_t, state, forcing_t)


def _clone_tree(tree: Any) -> Any:
    """Copies of the tensors of a pytree of tuples (named tuples too), lists and tensors."""
    if isinstance(tree, torch.Tensor):
        return tree.clone()
    if isinstance(tree, tuple):
        items = [_clone_tree(t) for t in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [_clone_tree(t) for t in tree]
    return tree


def features_of(codec: Any) -> tuple[int, Any]:
    """``(n_features, codec or None)`` from a :class:`~dynlab.emulators.codec.StateCodec` or a feature count."""
    from .codec import StateCodec

    if isinstance(codec, StateCodec):
        return codec.n_features, codec
    if isinstance(codec, int) and not isinstance(codec, bool):
        return codec, None
    raise ValueError(f"codec must be a StateCodec or a number of features, got {type(codec).__name__}")


class AbstractMarkovEmulator(AbstractEmulator):
    r"""An emulator without memory: a learned one-step map :math:`x_{t+1} = \Phi(x_t)`.

    Subclasses implement :meth:`advance` ``(B, D) -> (B, D)``; teacher-forced ``forward``,
    ``initial_state`` (None) and ``step`` follow from it. No forcing inputs.
    """

    @abstractmethod
    def advance(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction of the next state for states ``x`` ``(B, D)``."""

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        B, L, D = x.shape
        return self.advance(x.reshape(B * L, D)).reshape(B, L, D)

    def initial_state(self, batch: int, device=None, dtype=None) -> Any:
        self.check_batch(batch)
        return None

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        self.check_step_input(x_t, forcing_t)
        return self.advance(x_t), None
