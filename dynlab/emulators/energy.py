r"""Energy-based predictor (learner ``energy_based``): an SSM encodes the past, an energy scores the next state.

With states standardised as :math:`z_t = (x_t − μ)/σ` and a candidate next state
:math:`\hat x` written as its normalised increment
:math:`u = (\hat x − x_t − μ_δ)/σ_δ`, the model is

.. math::
    h_t = \mathrm{SSM}(\mathrm{enc}(z_{\le t}))_t, \qquad
    E_θ(h_t, u) = \mathrm{MLP}([h_t, u]) + \tfrac c2 \lVert u\rVert^2
                  \;[+\; \tfrac{w}{2D}\lVert u − u^{\rm phys}_t\rVert^2],

and the prediction is :math:`\hat x_{t+1} = x_t + μ_δ + σ_δ ⊙ u_K` after ``K`` steps of
:func:`~dynlab.models.energy.descend` on :math:`E_θ(h_t, ·)` with a learned step size
α = exp(log α), from :math:`u_0` = persistence (:math:`x̂ = x_t`) or a learned initial
guess :math:`u_0 = W h_t`. The optional physics term (weight ``w``, off by default)
pulls toward :math:`u^{\rm phys}_t`, the increment of one cheap step of the true
system's integrator over the save interval.

Training (module in ``train()`` mode) goes *through* the unrolled descent with, per
batch, ``K`` drawn uniformly from ``[train_steps_min, train_steps_max]``, α jittered
per row by a factor :math:`e^{U(−j, j)}`, optional Gaussian noise on each step
(Langevin-like) and an optional replay buffer of past final candidates as initial
guesses (Energy-Based Transformers, Gladstone et al. 2025, arXiv:2507.02092). The defaults (K up to 8,
noise 0.05, a replay buffer) are the ones under which more inference steps converge instead of drifting
on Lorenz96 (benchmarks/bench_energy_inference.py): without noise and replay the learned descent is only
good for the trained range of K and gets worse beyond it.
Whatever loss the trainer uses (one-step or rollout) applies unchanged.

Inference compute is a knob (:meth:`EnergyBasedEmulator.set_inference`): ``K`` steps and
best-of-``N`` candidates (the plain start plus ``N − 1`` fixed, seeded perturbations of
size ``candidate_noise``), the one with the lowest final energy kept. The final energy is
returned by :meth:`EnergyBasedEmulator.predict_with_energy` for use as an uncertainty.

**Lattice option** (``spatial_encoder="periodic_conv"``, as the SSM emulators of
:mod:`dynlab.emulators.ssm`): for fields on a periodic dimension (``k`` of Lorenz96,
``C`` variables per site) a circular convolution encodes every site, the backbone runs on
one sequence per site with weights shared over sites (``(B·K, L, d_model)``), and the energy
is a sum of per-site terms (:class:`~dynlab.models.energy.PeriodicEnergyHead`)

.. math::  E_θ(h_t, u) = \sum_k g_θ\big(h_{t,k}, u_{k-r..k+r}\big) + \tfrac c2 \lVert u\rVert^2,

so the descent direction :math:`−∇_u E` is local and the whole predictor commutes with
rolling the lattice (normalising statistics pooled over sites; the learned initial guess
is a 1×1 map of :math:`h_{t,k}` per site).

``forward`` is teacher forcing through the backbone's parallel mode; ``step`` its
recurrent mode; in ``eval()`` mode the descent is deterministic, so the two agree
to round-off (the Emulator contract).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.energy import EnergyHead, PeriodicEnergyHead, ReplayBuffer, best_of_n, descend
from ..models.neural_ode import no_autocast
from .base import AbstractEmulator, Normalizer, features_of
from .codec import StateCodec
from .ssm import SPATIAL_ENCODERS, PeriodicConv, SiteLayout, check_spatial_options, fit_state_and_increments

__all__ = ["EnergyBasedEmulator", "EnergyBasedOptions", "INITIAL_GUESSES"]

INITIAL_GUESSES = ("persistence", "learned")
_CANDIDATE_SEED = 20250702  # fixed: best-of-N candidates are the same in forward and step


def _opt(default, help: str, **bounds):
    return field(default=default, metadata={"help": help, **bounds})


@dataclass
class EnergyBasedOptions:
    """Hyperparameters of learner ``energy_based`` (``configs/learner/energy_based.yaml``)."""

    d_model: int = _opt(32, "SSM backbone width (the context vector h_t)", ge=1)
    n_layers: int = _opt(2, "SSM backbone depth", ge=1)
    block: str = _opt("s4d", "SSM block of the context encoder", choices=("s4d", "mamba"))
    backbone: dict = _opt(None, "extra SSMBackbone keyword arguments (e.g. d_state)")
    energy_width: int = _opt(64, "hidden width of the energy MLP", ge=1)
    energy_depth: int = _opt(2, "hidden layers of the energy MLP", ge=1)
    confine: float = _opt(0.01, "c of the confining term c/2 |u|^2 (keeps the energy bounded below)", ge=0)
    init: str = _opt("persistence", "initial guess: persistence (x_t) or learned (linear in h_t)",
                     choices=INITIAL_GUESSES)
    step_size: float = _opt(0.5, "initial value of the learned descent step size alpha", gt=0)
    train_steps_min: int = _opt(1, "fewest descent steps K drawn per training batch", ge=0)
    train_steps_max: int = _opt(8, "most descent steps K drawn per training batch", ge=1)
    step_size_jitter: float = _opt(0.3, "training draws alpha * exp(U(-j, j)) per row; j", ge=0)
    langevin_noise: float = _opt(0.05, "std of Gaussian noise added per descent step in training", ge=0)
    replay_capacity: int = _opt(4096, "replay buffer size of past final candidates (0: off)", ge=0)
    replay_fraction: float = _opt(0.25, "fraction of training initial guesses drawn from the buffer", ge=0, le=1)
    infer_steps: int = _opt(None, "descent steps K at inference (null: train_steps_max)", ge=0)
    candidates: int = _opt(1, "best-of-N candidates at inference, lowest final energy kept", ge=1)
    candidate_noise: float = _opt(0.5, "size of the N-1 perturbed starts (normalised increment units)", ge=0)
    physics_weight: float = _opt(0.0, "w of the physics term w/2D |u - u_phys|^2 (0: off; needs the system)",
                                 ge=0)
    physics_integrator: str = _opt("rk4", "integrator of the physics term's one cheap step over the save "
                                          "interval")
    spatial_encoder: str | None = _opt(None, "null: dense encoder and energy; periodic_conv: per-site encoder, "
                                             "backbone and a sum of per-site energies on a periodic lattice",
                                       choices=SPATIAL_ENCODERS)
    kernel_size: int = _opt(5, "odd window of sites of the periodic_conv encoder and energy", ge=1)
    spatial_dim: str = _opt("k", "the periodic dimension (every codec variable must lie on it first)")


def _positive_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _number(name: str, value, low: float = 0.0, strict: bool = False, high: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}{'' if high is None else f' and <= {high}'}, "
                         f"got {value!r}")
    return float(value)


class EnergyBasedEmulator(AbstractEmulator):
    """SSM context encoder + energy head, predicting by descent (module docstring).

    Args:
        codec: the state codec or the number of features ``D``.
        options: an :class:`EnergyBasedOptions` (or None for the defaults).
        physics: optional module whose ``advance(x)`` maps states ``(N, D)`` one save interval
            ahead under the true system (a :class:`~dynlab.emulators.reference.ReferenceEmulator`),
            used when ``options.physics_weight > 0``.

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``; ``step`` ``(B, D) -> (B, D)``.
    """

    trainable = True

    def __init__(self, codec: StateCodec | int, options: EnergyBasedOptions | None = None,
                 physics: nn.Module | None = None):
        n_features, codec = features_of(codec)
        super().__init__(n_features)
        o = options if options is not None else EnergyBasedOptions()
        if not isinstance(o, EnergyBasedOptions):
            raise ValueError(f"options must be EnergyBasedOptions, got {type(o).__name__}")
        for name in ("d_model", "n_layers", "energy_width", "energy_depth", "train_steps_max", "candidates"):
            _positive_int(name, getattr(o, name))
        for name in ("train_steps_min", "replay_capacity"):
            _positive_int(name, getattr(o, name), 0)
        if o.train_steps_min > o.train_steps_max:
            raise ValueError(f"train_steps_min={o.train_steps_min} must be <= train_steps_max={o.train_steps_max}")
        if o.infer_steps is not None:
            _positive_int("infer_steps", o.infer_steps, 0)
        if o.block not in ("s4d", "mamba"):
            raise ValueError(f"block must be 's4d' or 'mamba', got {o.block!r}")
        if o.init not in INITIAL_GUESSES:
            raise ValueError(f"init must be one of {list(INITIAL_GUESSES)}, got {o.init!r}")
        _number("step_size", o.step_size, strict=True)
        for name in ("confine", "step_size_jitter", "langevin_noise", "candidate_noise", "physics_weight"):
            _number(name, getattr(o, name))
        _number("replay_fraction", o.replay_fraction, high=1.0)
        check_spatial_options(o.spatial_encoder, o.kernel_size, codec)
        if o.physics_weight > 0 and physics is None:
            raise ValueError("physics_weight > 0 needs the true system's one-step map (learner energy_based "
                             "builds it from the dataset's system and dt)")
        from ..models.ssm import SSMBackbone

        self.options = o
        self.codec = codec
        self.normalizer = Normalizer(n_features)
        self.increment_normalizer = Normalizer(n_features)
        # modules built in the same order with either encoder (the same seed gives the same dense model as before)
        if o.spatial_encoder == "periodic_conv":
            self.layout = SiteLayout(codec, o.spatial_dim)
            self.n_sites, C = self.layout.n_sites, self.layout.n_channels
            self.encoder = PeriodicConv(C, o.d_model, o.kernel_size)
        else:
            self.layout, self.n_sites = None, 1
            self.encoder = nn.Linear(n_features, o.d_model)
        self.backbone = SSMBackbone(o.d_model, o.n_layers, block=o.block, **dict(o.backbone or {}))
        if self.layout is not None:
            self.energy_head = PeriodicEnergyHead(o.d_model, C, o.energy_width, o.energy_depth, o.confine,
                                                  o.kernel_size)
            guess = lambda: nn.Conv1d(o.d_model, C, 1)  # u0_k = W h_k, per site
        else:
            self.energy_head = EnergyHead(o.d_model, n_features, o.energy_width, o.energy_depth, o.confine)
            guess = lambda: nn.Linear(o.d_model, n_features)
        self.log_step_size = nn.Parameter(torch.tensor(math.log(o.step_size)))
        self.log_step_size._optim = {"weight_decay": 0.0}  # the trainer's AdamW would pull alpha toward 1
        self.initial_guess = guess() if o.init == "learned" else None
        if self.initial_guess is not None:
            with torch.no_grad():
                self.initial_guess.weight.mul_(0.1)
                self.initial_guess.bias.zero_()
        self.replay = ReplayBuffer(o.replay_capacity, n_features) if o.replay_capacity > 0 else None
        self.physics = physics
        self.infer_steps = o.infer_steps if o.infer_steps is not None else o.train_steps_max
        self.candidates = o.candidates

    # -- knobs and normalisation ----------------------------------------------------------
    def set_inference(self, steps: int | None = None, candidates: int | None = None) -> "EnergyBasedEmulator":
        """Set the inference compute: descent steps ``K`` and best-of-``N`` candidates (None: unchanged)."""
        if steps is not None:
            self.infer_steps = _positive_int("steps", steps, 0)
        if candidates is not None:
            self.candidates = _positive_int("candidates", candidates)
        return self

    @property
    def step_size(self) -> torch.Tensor:
        """The learned α = exp(log α)."""
        return self.log_step_size.exp()

    @torch.no_grad()
    def fit_normalizers(self, x: torch.Tensor) -> "EnergyBasedEmulator":
        """State and increment statistics from training windows ``x`` ``(N, L >= 2, D)``
        (each channel's pooled over sites with periodic_conv)."""
        self.check_windows(x, 2)
        fit_state_and_increments(x, self.normalizer, self.increment_normalizer, self.layout)
        return self

    def _param_dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    # -- lattice layout (periodic_conv) -----------------------------------------------------
    def _encode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised states ``(N, D)`` → backbone inputs ``(N·K, d_model)`` (``K = 1`` when dense)."""
        if self.layout is None:
            return self.encoder(z)
        h = self.encoder(self.layout.to_sites(z))  # (N, d_model, K)
        return h.transpose(1, 2).reshape(z.shape[0] * self.n_sites, -1)

    def _site_contexts(self, h: torch.Tensor) -> torch.Tensor:
        """Backbone outputs ``(N·K, d)`` → the energy's contexts: ``(N, d)`` dense, ``(N, d, K)`` on the lattice."""
        if self.layout is None:
            return h
        return h.reshape(-1, self.n_sites, h.shape[-1]).transpose(1, 2)

    # -- the descent ------------------------------------------------------------------------
    def _energy_fn(self, h: torch.Tensor, u_phys: torch.Tensor | None, repeat: int = 1):
        """E(h, ·) on candidates ``(repeat·M, D)`` (candidate-major) for contexts ``h`` ``(M, d)``
        (``(M, d, K)`` on the lattice)."""
        if repeat > 1:
            h = h.repeat(repeat, *[1] * (h.ndim - 1))
            u_phys = None if u_phys is None else u_phys.repeat(repeat, 1)
        w = self.options.physics_weight
        layout = self.layout

        def energy(u: torch.Tensor) -> torch.Tensor:
            e = self.energy_head(h, u if layout is None else layout.to_sites(u))
            if u_phys is not None:
                e = e + (0.5 * w / self.n_features) * (u - u_phys).square().sum(-1)
            return e

        return energy

    def _to_increment(self, x_t: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        return self.increment_normalizer.normalize(x_next - x_t)

    def _descend(self, h: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts ``h`` ``(M, d)`` (``(M, d, K)`` on the lattice), states ``x_t`` ``(M, D)`` → predictions
        ``(M, D)`` and final energies ``(M,)``.

        The descent runs in the parameters' precision (AMP applies to the backbone only)."""
        with no_autocast(x_t):
            return self._descend_full_precision(h.to(self._param_dtype()), x_t)

    def _descend_full_precision(self, h: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self._param_dtype()
        M = x_t.shape[0]
        if self.initial_guess is not None:
            u0 = self.initial_guess(h)
            u0 = u0 if self.layout is None else self.layout.from_sites(u0)
        else:  # persistence: x̂ = x_t
            u0 = self._to_increment(x_t, x_t).to(dtype)
        u_phys = None
        if self.options.physics_weight > 0:
            with torch.no_grad():
                u_phys = self._to_increment(x_t, self.physics.advance(x_t)).to(dtype)
        alpha = self.step_size.to(dtype)
        o = self.options
        if self.training:
            K = int(torch.randint(o.train_steps_min, o.train_steps_max + 1, ()).item())
            if o.step_size_jitter > 0:
                factor = torch.empty(M, 1, dtype=dtype, device=h.device).uniform_(-o.step_size_jitter,
                                                                                 o.step_size_jitter).exp()
                alpha = alpha * factor
            if self.replay is not None and o.replay_fraction > 0:
                u0 = self.replay.mix(u0, o.replay_fraction)
            energy = self._energy_fn(h, u_phys)
            u = descend(energy, u0, K, alpha, noise=o.langevin_noise)
            if self.replay is not None:
                self.replay.push(u)
            e = energy(u)
        else:
            N = self.candidates
            if N > 1:
                g = torch.Generator().manual_seed(_CANDIDATE_SEED)
                offsets = torch.randn(N, 1, self.n_features, generator=g, dtype=torch.float64)
                offsets[0] = 0.0
                starts = u0[None] + (o.candidate_noise * offsets).to(device=u0.device, dtype=u0.dtype)
                u, e = best_of_n(self._energy_fn(h, u_phys, repeat=N), starts, self.infer_steps, alpha)
            else:
                energy = self._energy_fn(h, u_phys)
                u = descend(energy, u0, self.infer_steps, alpha)
                e = energy(u)
        return x_t + self.increment_normalizer.denormalize(u.to(x_t.dtype)), e

    # -- contract -------------------------------------------------------------------------
    def _contexts(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher-forced contexts of windows ``x`` ``(B, L, D)``, one row per position: ``(B·L, d_model)``
        (``(B·L, d_model, K)`` on the lattice, the backbone run on ``(B·K, L, d_model)``)."""
        B, L, D = x.shape
        K, d = self.n_sites, self.options.d_model
        z = self.normalizer.normalize(x).to(self._param_dtype())
        inputs = self._encode(z.reshape(B * L, D)).reshape(B, L, K, d).transpose(1, 2).reshape(B * K, L, d)
        h, _ = self.backbone(inputs)  # (B·K, L, d)
        if self.layout is None:
            return h.reshape(B * L, d)
        return h.reshape(B, K, L, d).permute(0, 2, 3, 1).reshape(B * L, d, K)

    def predict_with_energy(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced predictions ``(B, L, D)`` and their final energies ``(B, L)``."""
        self.check_input(x, "x")
        B, L, D = x.shape
        h = self._contexts(x)
        pred, e = self._descend(h, x.reshape(B * L, D))
        return pred.reshape(B, L, D), e.reshape(B, L)

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        return self.predict_with_energy(x)[0]

    def initial_state(self, batch: int, device=None, dtype=None) -> Any:
        self.check_batch(batch)
        return self.backbone.default_state(batch * self.n_sites, device=device, dtype=self._param_dtype())

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        self.check_step_input(x_t, forcing_t)
        z = self.normalizer.normalize(x_t).to(self._param_dtype())
        h, state = self.backbone.step(self._encode(z), state)  # (B·K, d)
        pred, _ = self._descend(self._site_contexts(h), x_t)
        return pred, state

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, init={self.options.init!r}, infer_steps={self.infer_steps}, "
                f"candidates={self.candidates}, physics_weight={self.options.physics_weight}, "
                f"spatial_encoder={self.options.spatial_encoder!r}")


def options_from_mapping(opts: dict[str, Any]) -> EnergyBasedOptions:
    """An :class:`EnergyBasedOptions` from a plain mapping (unknown keys raise ``ValueError``)."""
    known = {f.name for f in dataclasses.fields(EnergyBasedOptions)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unknown energy_based option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return EnergyBasedOptions(**opts)
