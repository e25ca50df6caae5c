r"""Neural-ODE emulator (learner ``neural_ode``): a learned vector field integrated over one save interval.

With states standardised as :math:`z = (x − μ)/σ` and time measured in save
intervals :math:`τ = t/Δ`, the model is :math:`dz/dτ = f_θ(z)` and

.. math::  \hat x_{t+1} = μ + σ ⊙ \mathrm{Flow}_{f_θ}^{τ=1}\big((x_t − μ)/σ\big),

so the learned field in physical units is :math:`\dot x = σ ⊙ f_θ((x − μ)/σ)/Δ`
(:meth:`NeuralODEEmulator.vector_field`). The model is Markov: ``forward`` maps every
position independently and ``step`` carries no state. Train it on short rollouts
(``loss=rollout``): gradients flow through the solver (or the adjoint ODE with
``adjoint: true``). With ``hidden: []`` the field is affine (a linear ODE).

Two fields, as the SSM emulators' ``spatial_encoder`` (:mod:`dynlab.emulators.ssm`):

* ``spatial_encoder=None``: a dense MLP of the flat state ``(N, D) -> (N, D)``.
* ``spatial_encoder="periodic_conv"``: for fields on a periodic dimension (``k`` of
  Lorenz96) the state is laid out as ``(N, C, K)`` (``C`` variables per site,
  :class:`~dynlab.emulators.ssm.SiteLayout`) and the field is the same MLP at every
  site of the window :math:`z_{k-r..k+r}` (:class:`~dynlab.models.neural_ode.PeriodicConvVectorField`):
  translation-equivariant, with the normalising statistics pooled over sites so
  that the whole one-step map commutes with rolling the lattice. Lorenz96's field
  lies in this class for ``kernel_size`` 5.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.neural_ode import (ACTIVATIONS, ADAPTIVE_METHODS, FIXED_STEP_METHODS, MLPVectorField, ODEFlow,
                                 PeriodicConvVectorField, no_autocast)
from .base import AbstractMarkovEmulator, Normalizer, features_of
from .codec import StateCodec
from .ssm import SPATIAL_ENCODERS, SiteLayout, check_spatial_options

__all__ = ["NeuralODEEmulator", "NeuralODEOptions"]


def _opt(default, help: str, **bounds):
    return field(default=default, metadata={"help": help, **bounds})


@dataclass
class NeuralODEOptions:
    """Hyperparameters of learner ``neural_ode`` (``configs/learner/neural_ode.yaml``)."""

    hidden: list = _opt((64, 64), "hidden widths of the MLP vector field ([]: an affine field A z + b)")
    activation: str = _opt("tanh", "activation of the MLP", choices=tuple(ACTIVATIONS))
    method: str = _opt("rk4", "torchdiffeq solver", choices=FIXED_STEP_METHODS + ADAPTIVE_METHODS)
    substeps: int = _opt(2, "solver steps per save interval (fixed-step methods)", ge=1)
    rtol: float = _opt(1e-6, "relative tolerance (adaptive methods)", gt=0)
    atol: float = _opt(1e-8, "absolute tolerance (adaptive methods)", gt=0)
    adjoint: bool = _opt(False, "gradients by the adjoint method (memory independent of solver steps)")
    out_scale: float = _opt(0.1, "initial scale of the field's last layer (an untrained model is near persistence)",
                            ge=0)
    spatial_encoder: str | None = _opt(None, "null: a dense MLP field; periodic_conv: the same MLP at every "
                                             "site of a periodic lattice, of a window of kernel_size sites",
                                       choices=SPATIAL_ENCODERS)
    kernel_size: int = _opt(5, "odd window of sites of the periodic_conv field", ge=1)
    spatial_dim: str = _opt("k", "the periodic dimension (every codec variable must lie on it first)")


class NeuralODEEmulator(AbstractMarkovEmulator):
    """Learned vector field + ODE solver over one save interval (module docstring).

    Args:
        codec: the state codec or the number of features ``D``.
        options: a :class:`NeuralODEOptions`.
        save_interval: Δ, the model time between saved states (only scales :meth:`vector_field`).

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``; ``step`` ``(B, D) -> (B, D)``.
    """

    trainable = True

    def __init__(self, codec: StateCodec | int, options: NeuralODEOptions | None = None, save_interval: float = 1.0):
        n_features, codec = features_of(codec)
        super().__init__(n_features)
        o = options if options is not None else NeuralODEOptions()
        if isinstance(o.hidden, (str, bytes)) or not hasattr(o.hidden, "__iter__"):
            raise ValueError(f"hidden must be a list of widths, got {o.hidden!r}")
        if isinstance(save_interval, bool) or not isinstance(save_interval, (int, float)) \
                or not (math.isfinite(save_interval) and save_interval > 0):
            raise ValueError(f"save_interval must be a finite number > 0, got {save_interval!r}")
        if not (isinstance(o.out_scale, (int, float)) and math.isfinite(o.out_scale) and o.out_scale >= 0):
            raise ValueError(f"out_scale must be a finite number >= 0, got {o.out_scale!r}")
        check_spatial_options(o.spatial_encoder, o.kernel_size, codec)
        self.options, self.codec = o, codec
        self.save_interval = float(save_interval)
        self.normalizer = Normalizer(n_features)
        if o.spatial_encoder == "periodic_conv":
            self.layout = SiteLayout(codec, o.spatial_dim)
            self.field = PeriodicConvVectorField(self.layout.n_channels, list(o.hidden), o.activation, o.out_scale,
                                                 o.kernel_size)
        else:
            self.layout = None
            self.field = MLPVectorField(n_features, list(o.hidden), o.activation, o.out_scale)
        self.flow = ODEFlow(self.field, o.method, o.substeps, o.rtol, o.atol, o.adjoint)

    @torch.no_grad()
    def fit_normalizers(self, x: torch.Tensor) -> "NeuralODEEmulator":
        """State statistics from training windows ``x`` ``(N, L, D)`` (pooled over sites with periodic_conv)."""
        self.check_windows(x)
        x = x.detach().to("cpu", torch.float64)
        if self.layout is not None:
            self.layout.pool(self.normalizer, x.reshape(-1, self.n_features))
        else:
            self.normalizer.fit(x)
        return self

    def _dtype(self) -> torch.dtype:
        return next(self.field.parameters()).dtype

    def _field_flat(self, z: torch.Tensor) -> torch.Tensor:
        """The normalised field at normalised states ``z`` ``(N, D)`` → ``(N, D)``."""
        if self.layout is None:
            return self.field(None, z)
        return self.layout.from_sites(self.field(None, self.layout.to_sites(z)))

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        r"""The learned :math:`\dot x` in physical units at states ``x`` ``(..., D)``."""
        z = self.normalizer.normalize(x).to(self._dtype())
        f = self._field_flat(z.reshape(-1, self.n_features)).reshape(z.shape)
        return (f.to(x.dtype) * self.normalizer.std.to(x.dtype)) / self.save_interval

    def advance(self, x: torch.Tensor) -> torch.Tensor:
        """States ``(N, D)`` one save interval ahead (in the parameters' precision, also under AMP).

        With periodic_conv the solver integrates the lattice layout ``(N, C, K)`` directly."""
        with no_autocast(x):
            z = self.normalizer.normalize(x).to(self._dtype())
            if self.layout is None:
                z1 = self.flow(z, 1.0)
            else:
                z1 = self.layout.from_sites(self.flow(self.layout.to_sites(z).contiguous(), 1.0))
            return self.normalizer.denormalize(z1.to(x.dtype))

    def extra_repr(self) -> str:
        o = self.options
        return (f"n_features={self.n_features}, hidden={list(o.hidden)}, method={o.method!r}, "
                f"substeps={o.substeps}, adjoint={o.adjoint}, spatial_encoder={o.spatial_encoder!r}")


def neural_ode_options(opts: dict[str, Any]) -> NeuralODEOptions:
    """A :class:`NeuralODEOptions` from a plain mapping (unknown keys raise ``ValueError``)."""
    known = {f.name for f in dataclasses.fields(NeuralODEOptions)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unknown neural_ode option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return NeuralODEOptions(**opts)
