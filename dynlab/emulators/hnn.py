r"""Hamiltonian-neural-network emulator (learner ``hnn``): a learned H rolled out with a symplectic integrator.

Coordinates are scaled by one number per block, :math:`q' = (q − μ_q)/s_q`,
:math:`p' = (p − μ_p)/s_p`, and time by the save interval, :math:`τ = t/Δ`; this
map is conformally symplectic, so the scaled dynamics are Hamiltonian with
:math:`H'(q', p') = Δ\,H(q, p)/(s_q s_p)` (per-feature scales would break that).
The model learns :math:`H'_θ` (:mod:`dynlab.models.hnn`) and advances one save
interval with ``substeps`` steps of the chosen integrator from the registry:

* ``hamiltonian: separable`` (:math:`T_θ(p) + V_θ(q)`) with ``leapfrog`` (default) or ``yoshida4``;
* ``hamiltonian: general`` (:math:`H_θ(q, p)`) with ``implicit_midpoint`` (default).

Features: the codec's ``q`` and ``p`` variables (names configurable). Any other
variable of the codec (e.g. the dataset's energy ``H``) is recomputed from the
predicted ``(q, p)`` by the true system's ``observables`` (the registry passes the
dataset's system), so a prediction is a full state in the dataset's layout.
Without a system, the codec must hold only q and p (``data.variables=[q,p]``).
:meth:`HNNEmulator.energy` gives the learned energy in physical units (up to a constant).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.hnn import HAMILTONIANS, LearnedHamiltonianSystem
from ..models.neural_ode import ACTIVATIONS, no_autocast
from .base import AbstractMarkovEmulator
from .codec import StateCodec

__all__ = ["HNNEmulator", "HNNOptions", "HNN_INTEGRATORS"]

#: integrators by Hamiltonian kind (the first is the default)
HNN_INTEGRATORS = {"separable": ("leapfrog", "yoshida4", "implicit_midpoint"), "general": ("implicit_midpoint",)}


def _opt(default, help: str, **bounds):
    return field(default=default, metadata={"help": help, **bounds})


@dataclass
class HNNOptions:
    """Hyperparameters of learner ``hnn`` (``configs/learner/hnn.yaml``)."""

    hamiltonian: str = _opt("separable", "separable H = T(p) + V(q) or general H(q, p)", choices=tuple(HAMILTONIANS))
    hidden: list = _opt((64, 64), "hidden widths of the MLP(s) of H")
    activation: str = _opt("tanh", "activation of the MLP(s)", choices=tuple(ACTIVATIONS))
    integrator: str = _opt(None, "leapfrog, yoshida4 (separable only) or implicit_midpoint (null: leapfrog for "
                                 "separable, implicit_midpoint for general)",
                           choices=(None, "leapfrog", "yoshida4", "implicit_midpoint"))
    substeps: int = _opt(2, "integrator steps per save interval", ge=1)
    q_variable: str = _opt("q", "the codec variable holding the coordinates q")
    p_variable: str = _opt("p", "the codec variable holding the momenta p")


def _field_indices(codec: StateCodec) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for f in codec.fields:
        out[f.name] = torch.arange(offset, offset + f.size)
        offset += f.size
    return out


class HNNEmulator(AbstractMarkovEmulator):
    """Learned Hamiltonian + symplectic integrator over one save interval (module docstring).

    Args:
        codec: the state codec (with ``q`` and ``p`` variables), or ``D`` = 2·dof (q first, then p).
        options: an :class:`HNNOptions`.
        system: the true system, to recompute codec variables other than q and p.
        save_interval: Δ (model time between saved states).

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``; ``step`` ``(B, D) -> (B, D)``.
    """

    trainable = True

    def __init__(self, codec: StateCodec | int, options: HNNOptions | None = None, system=None,
                 save_interval: float = 1.0):
        from simulators import make_integrator

        o = options if options is not None else HNNOptions()
        if isinstance(codec, StateCodec):
            idx = _field_indices(codec)
            for name in (o.q_variable, o.p_variable):
                if name not in idx:
                    raise ValueError(f"learner hnn needs a codec variable {name!r} (coordinates and momenta); "
                                     f"the data has {codec.names}")
            q_idx, p_idx = idx[o.q_variable], idx[o.p_variable]
            if q_idx.numel() != p_idx.numel():
                raise ValueError(f"variables {o.q_variable!r} and {o.p_variable!r} must have the same size, got "
                                 f"{q_idx.numel()} and {p_idx.numel()}")
            extra = [n for n in codec.names if n not in (o.q_variable, o.p_variable)]
            if extra and system is None:
                raise ValueError(f"learner hnn predicts q and p only; the codec also holds {extra}, which need the "
                                 "true system to recompute (or train on data.variables=[q,p])")
            n_features = codec.n_features
        elif isinstance(codec, int) and not isinstance(codec, bool) and codec >= 2 and codec % 2 == 0:
            n_features, extra = codec, []
            q_idx, p_idx = torch.arange(codec // 2), torch.arange(codec // 2, codec)
            codec = None
        else:
            raise ValueError(f"codec must be a StateCodec or an even number of features >= 2, got {codec!r}")
        super().__init__(n_features)
        if o.hamiltonian not in HAMILTONIANS:
            raise ValueError(f"hamiltonian must be one of {sorted(HAMILTONIANS)}, got {o.hamiltonian!r}")
        integrator = o.integrator or HNN_INTEGRATORS[o.hamiltonian][0]
        if integrator not in HNN_INTEGRATORS[o.hamiltonian]:
            raise ValueError(f"hamiltonian={o.hamiltonian!r} rolls out with {list(HNN_INTEGRATORS[o.hamiltonian])}, "
                             f"got integrator={integrator!r} (a splitting method needs H = T(p) + V(q))")
        if isinstance(o.substeps, bool) or not isinstance(o.substeps, int) or o.substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {o.substeps!r}")
        if isinstance(save_interval, bool) or not isinstance(save_interval, (int, float)) \
                or not (math.isfinite(save_interval) and save_interval > 0):
            raise ValueError(f"save_interval must be a finite number > 0, got {save_interval!r}")
        self.options, self.codec, self.system = o, codec, system
        self.extra = extra
        self.dof = int(q_idx.numel())
        self.save_interval = float(save_interval)
        self.register_buffer("q_index", q_idx, persistent=False)
        self.register_buffer("p_index", p_idx, persistent=False)
        self.register_buffer("q_mean", torch.zeros(self.dof))
        self.register_buffer("p_mean", torch.zeros(self.dof))
        self.register_buffer("q_scale", torch.ones(()))
        self.register_buffer("p_scale", torch.ones(()))
        self.hamiltonian = HAMILTONIANS[o.hamiltonian](self.dof, list(o.hidden), o.activation)
        self.learned_system = LearnedHamiltonianSystem(self.hamiltonian)
        self.integrator = make_integrator(integrator)
        self.integrator.check_system(self.learned_system)
        self.integrator_name = integrator

    @torch.no_grad()
    def fit_normalizers(self, x: torch.Tensor) -> "HNNEmulator":
        """Means per coordinate and one pooled scale each for q and p, from windows ``x`` ``(N, L, D)``."""
        self.check_windows(x)
        flat = x.detach().to("cpu", torch.float64).reshape(-1, self.n_features)
        for index, mean, scale in ((self.q_index, self.q_mean, self.q_scale), (self.p_index, self.p_mean, self.p_scale)):
            part = flat[:, index.cpu()]
            mean.copy_(part.mean(0))
            scale.copy_((part - part.mean(0)).square().mean().sqrt().clamp_min(1e-8))
        return self

    def _dtype(self) -> torch.dtype:
        return next(self.hamiltonian.parameters()).dtype

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Physical codec vectors ``(N, D)`` → scaled ``(N, 2·dof)`` = (q', p')."""
        q = (x[..., self.q_index] - self.q_mean.to(x.dtype)) / self.q_scale.to(x.dtype)
        p = (x[..., self.p_index] - self.p_mean.to(x.dtype)) / self.p_scale.to(x.dtype)
        return torch.cat((q, p), dim=-1).to(self._dtype())

    def _features(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Scaled ``(N, 2·dof)`` → physical codec vectors ``(N, D)``."""
        y = y.to(dtype)
        q = y[..., :self.dof] * self.q_scale.to(dtype) + self.q_mean.to(dtype)
        p = y[..., self.dof:] * self.p_scale.to(dtype) + self.p_mean.to(dtype)
        if self.extra:
            from .reference import features_from_state

            return features_from_state(self.system, self.codec, torch.cat((q, p), dim=-1))
        out = torch.empty(*y.shape[:-1], self.n_features, dtype=dtype, device=y.device)
        out[..., self.q_index] = q
        out[..., self.p_index] = p
        return out

    def advance(self, x: torch.Tensor) -> torch.Tensor:
        """States ``(N, D)`` one save interval ahead (``substeps`` integrator steps of 1/substeps in τ),
        in the parameters' precision (also under AMP: a symplectic map in bfloat16 would not conserve much)."""
        with no_autocast(x):
            y = self._scaled(x)
            h = 1.0 / self.options.substeps
            for _ in range(self.options.substeps):
                y = self.integrator.step(self.learned_system, 0.0, y, h)
            return self._features(y, x.dtype)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r"""The learned energy :math:`s_q s_p H'_θ/Δ` of states ``x`` ``(..., D)`` (physical units, up to a constant)."""
        y = self._scaled(x)
        factor = self.q_scale * self.p_scale / self.save_interval
        return self.learned_system.energy(y).to(x.dtype) * factor.to(x.dtype)

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        r"""The learned :math:`(\dot q, \dot p)` in physical units at states ``x`` ``(..., D)``: ``(..., 2·dof)``."""
        f = self.hamiltonian.vector_field(self._scaled(x)).to(x.dtype)
        scale = torch.cat((self.q_scale.expand(self.dof), self.p_scale.expand(self.dof))).to(x.dtype)
        return f * scale / self.save_interval

    def extra_repr(self) -> str:
        return (f"dof={self.dof}, hamiltonian={self.options.hamiltonian!r}, integrator={self.integrator_name!r}, "
                f"substeps={self.options.substeps}, derived={self.extra}")


def hnn_options(opts: dict[str, Any]) -> HNNOptions:
    """An :class:`HNNOptions` from a plain mapping (unknown keys raise ``ValueError``)."""
    known = {f.name for f in dataclasses.fields(HNNOptions)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unknown hnn option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return HNNOptions(**opts)
