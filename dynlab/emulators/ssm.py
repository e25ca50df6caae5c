r"""State-space-model emulator: encoder → :class:`~dynlab.models.ssm.SSMBackbone` → increment decoder.

With states standardised as :math:`z_t = (x_t − μ)/σ` and increments as
:math:`δ_t = (x_{t+1} − x_t − μ_δ)/σ_δ`, the emulator predicts

.. math::  \hat x_{t+1} = x_t + μ_δ + σ_δ ⊙ \mathrm{dec}\big(\mathrm{SSM}(\mathrm{enc}(z_{\le t}))_t\big).

Predicting the increment (a residual) instead of the state is what makes
learned emulators of chaotic ODE data work: the one-step map of a finely
sampled flow is close to the identity, and an untrained model starts near
persistence.

Two encoders:

* ``spatial_encoder=None``: a linear map of the flat state ``D → d_model`` and
  back; one sequence per member, ``(B, L, d_model)`` through the backbone.
* ``spatial_encoder="periodic_conv"``: for fields on a periodic dimension
  (``k`` of Lorenz96), every site is a sequence of its own and the model is the
  same at every site (translation equivariance): a circular 1-D convolution over
  the sites maps the ``C`` channels per site (1 for Lorenz96's ``X``; ``1 + J``
  for the two-scale ``X`` and ``Y``) to ``d_model``, the backbone runs on
  ``(B·K, L, d_model)``, and a second circular convolution maps back to ``C``
  increments per site. The normalising statistics are pooled over sites so they
  do not break the symmetry. With kernel size ``s`` the receptive field is
  ``2(s − 1) + 1`` sites at each step, plus whatever the backbone's memory adds
  over time.

``forward`` is teacher forcing through the backbone's parallel mode; ``step``
uses its recurrent mode; the two agree to round-off (the backbone's contract).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import AbstractEmulator, Normalizer, features_of
from .codec import StateCodec

__all__ = ["SSMEmulator", "SPATIAL_ENCODERS", "periodic_site_index", "PeriodicConv", "SiteLayout",
           "check_spatial_options"]

SPATIAL_ENCODERS = (None, "periodic_conv")


def periodic_site_index(codec: StateCodec, dim: str = "k") -> torch.Tensor:
    """Flat feature indices arranged by site: ``(K, C)``, ``index[k, c]`` is channel ``c`` of site ``k``.

    Every field of the codec must have ``dim`` as its first dimension (e.g.
    ``X`` on ``(k,)`` and ``Y`` on ``(k, j)``); the channels of a site are the
    fields' remaining entries in codec order. Raises ``ValueError`` naming the
    first field that is not on ``dim``.
    """
    if not codec.fields:
        raise ValueError("the codec has no fields")
    sizes = set()
    for f in codec.fields:
        if not f.dims or f.dims[0] != dim:
            raise ValueError(f"spatial_encoder='periodic_conv' needs every variable on the periodic dim {dim!r} first; "
                             f"variable {f.name!r} has dims {f.dims}")
        sizes.add(f.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"variables disagree on the size of dim {dim!r}: {sorted(sizes)}")
    K = sizes.pop()
    blocks, offset = [], 0
    for f in codec.fields:
        per_site = f.size // K
        blocks.append(offset + torch.arange(f.size).reshape(K, per_site))  # C order: site first
        offset += f.size
    return torch.cat(blocks, dim=1)


def check_spatial_options(spatial_encoder, kernel_size, codec=None) -> None:
    """Validate ``spatial_encoder`` / ``kernel_size`` (shared by every learner with the lattice option)."""
    if spatial_encoder not in SPATIAL_ENCODERS:
        raise ValueError(f"spatial_encoder must be one of {list(SPATIAL_ENCODERS)}, got {spatial_encoder!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    if spatial_encoder == "periodic_conv" and codec is None:
        raise ValueError("spatial_encoder='periodic_conv' needs a StateCodec (to find the sites), got a feature count")


class PeriodicConv(nn.Module):
    """Circular 1-D convolution over sites: ``(N, C_in, K) -> (N, C_out, K)``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, self.pad), mode="circular"))


class SiteLayout(nn.Module):
    """The flat features ``(N, D)`` of a lattice field as channels per site ``(N, C, K)`` and back.

    Built from :func:`periodic_site_index`; the index buffers are not saved in checkpoints
    (they follow from the codec). :meth:`pool` sets a :class:`Normalizer` from statistics pooled
    over sites, so normalising keeps translation equivariance.
    """

    def __init__(self, codec: StateCodec, dim: str = "k"):
        super().__init__()
        index = periodic_site_index(codec, dim)  # (K, C)
        self.n_sites, self.n_channels = index.shape
        self.register_buffer("index", index.reshape(-1), persistent=False)
        self.register_buffer("inverse", torch.argsort(index.reshape(-1)), persistent=False)
        # one variable on (k,): features are already site-major, the gathers are identities
        self.in_order = bool(torch.equal(index.reshape(-1), torch.arange(index.numel())))

    def to_sites(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, C, K)``."""
        N = z.shape[0]
        return (z if self.in_order else z[:, self.index]).reshape(N, self.n_sites, self.n_channels).transpose(1, 2)

    def from_sites(self, y: torch.Tensor) -> torch.Tensor:
        """``(N, C, K) -> (N, D)``."""
        out = y.transpose(1, 2).reshape(y.shape[0], self.n_sites * self.n_channels)
        return out if self.in_order else out[:, self.inverse]

    @torch.no_grad()
    def pool(self, normalizer: Normalizer, flat: torch.Tensor) -> None:
        """Set ``normalizer`` from samples ``flat`` ``(N, D)`` with each channel's mean and std pooled over sites."""
        sites = flat[:, self.index.cpu()].reshape(-1, self.n_sites, self.n_channels)
        inverse = self.inverse.cpu()
        per_feature = lambda v: v.expand(self.n_sites, self.n_channels).reshape(-1)[inverse]
        normalizer.mean.copy_(per_feature(sites.mean(dim=(0, 1))))
        normalizer.std.copy_(per_feature(sites.std(dim=(0, 1)).clamp_min(1e-8)))


@torch.no_grad()
def fit_state_and_increments(x: torch.Tensor, normalizer: Normalizer, increments: Normalizer,
                             layout: SiteLayout | None = None) -> None:
    """Set ``normalizer`` from the states of windows ``x`` ``(N, L >= 2, D)`` and ``increments``
    from their one-step differences :math:`x_{t+1} − x_t`; with a ``layout`` each channel's
    statistics are pooled over the lattice sites (translation-equivariant normalisation)."""
    x = x.detach().to("cpu", torch.float64)
    for normalizer_, data in ((normalizer, x), (increments, x[:, 1:] - x[:, :-1])):
        flat = data.reshape(-1, x.shape[-1])
        if layout is not None:
            layout.pool(normalizer_, flat)
        else:
            normalizer_.fit(flat)


class SSMEmulator(AbstractEmulator):
    """Encoder → SSM backbone → decoder of normalised increments (module docstring).

    Args:
        codec: the state codec, or the number of features ``D`` (a codec is
            required for ``spatial_encoder="periodic_conv"``).
        d_model: backbone width.
        n_layers: backbone depth.
        block: ``"s4d"`` or ``"mamba"``.
        spatial_encoder: ``None`` (linear) or ``"periodic_conv"``.
        kernel_size: odd kernel size of the periodic convolutions.
        spatial_dim: the periodic dimension's name.
        backbone: extra keyword arguments of ``SSMBackbone`` (e.g. ``d_state``).
        decoder_init_scale: the decoder's initial weights are scaled by this,
            so an untrained emulator starts close to persistence plus the mean increment.

    Shapes: ``forward`` ``(B, L, D) -> (B, L, D)``; ``step`` ``(B, D) -> (B, D)``.
    """

    trainable = True

    def __init__(self, codec: StateCodec | int, d_model: int = 64, n_layers: int = 4, block: str = "s4d",
                 spatial_encoder: str | None = None, kernel_size: int = 5, spatial_dim: str = "k",
                 backbone: dict[str, Any] | None = None, decoder_init_scale: float = 0.1):
        n_features, codec = features_of(codec)
        super().__init__(n_features)
        for name, value in (("d_model", d_model), ("n_layers", n_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if block not in ("s4d", "mamba"):
            raise ValueError(f"block must be 's4d' or 'mamba', got {block!r}")
        check_spatial_options(spatial_encoder, kernel_size, codec)
        if not (isinstance(decoder_init_scale, (int, float)) and math.isfinite(decoder_init_scale)):
            raise ValueError(f"decoder_init_scale must be a finite number, got {decoder_init_scale!r}")
        from ..models.ssm import SSMBackbone

        self.codec = codec
        self.d_model, self.n_layers, self.block = d_model, n_layers, block
        self.spatial_encoder, self.kernel_size, self.spatial_dim = spatial_encoder, kernel_size, spatial_dim
        self.normalizer = Normalizer(n_features)
        self.increment_normalizer = Normalizer(n_features)
        if spatial_encoder == "periodic_conv":
            self.layout = SiteLayout(codec, spatial_dim)
            self.n_sites, self.n_channels = self.layout.n_sites, self.layout.n_channels
            self.encoder = PeriodicConv(self.n_channels, d_model, kernel_size)
            self.decoder = PeriodicConv(d_model, self.n_channels, kernel_size)
        else:
            self.layout = None
            self.n_sites, self.n_channels = 1, n_features
            self.encoder = nn.Linear(n_features, d_model)
            self.decoder = nn.Linear(d_model, n_features)
        with torch.no_grad():
            for p in self.decoder.parameters():
                p.mul_(decoder_init_scale)
        self.backbone = SSMBackbone(d_model, n_layers, block=block, **dict(backbone or {}))

    # -- normalisation --------------------------------------------------------------------
    @torch.no_grad()
    def fit_normalizers(self, x: torch.Tensor) -> "SSMEmulator":
        """Set state and increment statistics from training windows ``x`` ``(N, L >= 2, D)``.

        With the periodic encoder the statistics of each channel are pooled over sites.
        """
        self.check_windows(x, 2)
        fit_state_and_increments(x, self.normalizer, self.increment_normalizer,
                                 self.layout)
        return self

    # -- layout helpers -------------------------------------------------------------------
    def _param_dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def _encode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised states ``(N, D)`` → backbone inputs ``(N·K, d_model)``."""
        if self.spatial_encoder is None:
            return self.encoder(z)
        h = self.encoder(self.layout.to_sites(z))  # (N, d_model, K)
        return h.transpose(1, 2).reshape(z.shape[0] * self.n_sites, self.d_model)

    def _decode(self, h: torch.Tensor) -> torch.Tensor:
        """Backbone outputs ``(N·K, d_model)`` → normalised increments ``(N, D)``."""
        if self.spatial_encoder is None:
            return self.decoder(h)
        N = h.shape[0] // self.n_sites
        h = h.reshape(N, self.n_sites, self.d_model).transpose(1, 2)  # (N, d_model, K)
        return self.layout.from_sites(self.decoder(h))

    def _increment(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return x + self.increment_normalizer.denormalize(delta.to(x.dtype))

    # -- contract -------------------------------------------------------------------------
    def _parallel(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Backbone's parallel mode on ``x`` ``(B, L, D)``: outputs ``(B·K, L, d)`` and the final state."""
        B, L, D = x.shape
        z = self.normalizer.normalize(x).to(self._param_dtype())
        h = self._encode(z.reshape(B * L, D))  # (B·L·K, d)
        h = h.reshape(B, L, self.n_sites, self.d_model).transpose(1, 2).reshape(B * self.n_sites, L, self.d_model)
        return self.backbone(h)  # (B·K, L, d), state

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, "x", forcing)
        B, L, D = x.shape
        h, _ = self._parallel(x)  # (B·K, L, d)
        h = h.reshape(B, self.n_sites, L, self.d_model).transpose(1, 2).reshape(B * L * self.n_sites, self.d_model)
        delta = self._decode(h).reshape(B, L, D)
        return self._increment(x, delta)

    #: warm rollouts up with the backbone's parallel mode (exact final state); False: step the context
    parallel_warmup: bool = True

    def warm_up(self, context: torch.Tensor, forcing: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One teacher-forced pass over the context ``(B, C, D)``: the prediction of
        :math:`x_{C+1}` ``(B, D)`` and the backbone's exact state after the context
        (the S4D convolution's and the selective scan's final states), the same as
        stepping the context to rounding. ``parallel_warmup = False`` steps it instead."""
        if forcing is not None:
            raise ValueError("SSMEmulator takes no forcing, got a forcing tensor")
        if not self.parallel_warmup:
            return super().warm_up(context, forcing)
        self.check_input(context, "context")
        h, state = self._parallel(context)  # (B·K, C, d)
        return self._increment(context[:, -1], self._decode(h[:, -1])), state

    def rollout_scope(self):
        """Discretise once per rollout: the SSM layers' step tensors are shared by all steps."""
        from ..models.ssm.step_cache import step_cache_scope

        return step_cache_scope()

    def initial_state(self, batch: int, device=None, dtype=None) -> Any:
        self.check_batch(batch)
        return self.backbone.default_state(batch * self.n_sites, device=device, dtype=self._param_dtype())

    def step(self, x_t: torch.Tensor, state: Any, forcing_t: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        self.check_step_input(x_t, forcing_t)
        z = self.normalizer.normalize(x_t).to(self._param_dtype())
        h, state = self.backbone.step(self._encode(z), state)  # (B·K, d)
        return self._increment(x_t, self._decode(h)), state

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, d_model={self.d_model}, n_layers={self.n_layers}, "
                f"block={self.block!r}, spatial_encoder={self.spatial_encoder!r}, n_sites={self.n_sites}")
