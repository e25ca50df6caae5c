r"""Zero-dimensional slab-ocean energy balance under a CO₂ scenario.

.. math::  C\,\frac{dT}{dt} = F(t) + λ T \;(+\; σ\,ξ(t)),

with :math:`T` the global-mean temperature anomaly (K), :math:`C = ρ_w c_w h`
the heat capacity of a mixed layer ``h`` = ``mixed_layer_depth`` metres deep,
:math:`F(t) = 5.35 \ln(C_{O_2}(t)/C_0)` W m⁻² the CO₂ forcing of the scenario
and the climate feedback parameter :math:`λ < 0` (W m⁻² K⁻¹). The equilibrium
response is :math:`ΔT = -F/λ`, reached with the relaxation time :math:`C/|λ|`.
To a step :math:`F` at t = 0 from T = 0 it responds
:math:`T(t) = -\frac{F}{λ}(1 - e^{λ t / C})`.

With ``noise`` σ > 0 the model is Hasselmann's stochastic climate model, an
Ornstein–Uhlenbeck SDE: :math:`dT = \frac{F + λT}{C_{yr}} dt + \frac{σ}{C_{yr}} dW`
with time in years and :math:`C_{yr} = C / s_{yr}`. σ is in W m⁻² yr^½: the
standard deviation of the year-mean stochastic forcing. Stationary variance
:math:`σ^2 / (2 |λ| C_{yr})`.

Time unit: year. State shape ``(..., 1)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import AbstractSystem, Variable, register_system
from ..random import STREAM_INITIAL, CounterRNG
from .common import SECONDS_PER_YEAR, TIME_UNITS, ForcingParams, ScenarioForcing, slab_heat_capacity

__all__ = ["SlabOcean0D"]


@register_system
class SlabOcean0D(ScenarioForcing, AbstractSystem):
    r"""Global slab ocean :math:`C\,dT/dt = F(t) + λT + σξ`; see the module docstring.

    Parameters (:class:`SlabOcean0D.Params`): ``feedback`` λ (W m⁻² K⁻¹, < 0;
    −1.24 gives 3.0 K per CO₂ doubling), ``mixed_layer_depth`` (m),
    ``noise`` σ (W m⁻² yr^½), ``initial_temperature`` (K anomaly at the start
    of the spin-up), ``initial_spread`` (K, standard deviation of a per-member
    perturbation of it) and the scenario options of
    :class:`~simulators.climate.common.ForcingParams`.

    Output: ``T`` (K, state), ``forcing`` and ``N_toa`` (W m⁻²; :math:`N = F + λT`,
    net downward top-of-atmosphere flux, a diagnostic), ``co2`` (ppm), all on
    (member, time); with ``randomize={"co2_multiple": [a, b]}`` the drawn level on
    ``member`` (:class:`~simulators.climate.common.ScenarioForcing`).
    """

    name = "slab_ocean_0d"
    time_units = TIME_UNITS

    @dataclass(frozen=True)
    class Params(ForcingParams):
        feedback: float = -1.24
        mixed_layer_depth: float = 50.0
        noise: float = 0.0
        initial_temperature: float = 0.0
        initial_spread: float = 0.0

        def validate(self):
            if self.feedback >= 0:
                raise ValueError(f"parameter feedback (λ, W m-2 K-1) must be < 0 for a stable climate, "
                                 f"got {self.feedback!r}")
            if self.mixed_layer_depth <= 0:
                raise ValueError(f"parameter mixed_layer_depth (m) must be > 0, got {self.mixed_layer_depth!r}")
            if self.noise < 0:
                raise ValueError(f"parameter noise (W m-2 yr^1/2) must be >= 0, got {self.noise!r}")
            if self.initial_spread < 0:
                raise ValueError(f"parameter initial_spread (K) must be >= 0, got {self.initial_spread!r}")
            super().validate()

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._init_forcing()

    # -- physics ------------------------------------------------------------------------
    @property
    def heat_capacity(self) -> float:
        """:math:`C = ρ_w c_w h` in J m⁻² K⁻¹."""
        return slab_heat_capacity(self.params.mixed_layer_depth)

    @property
    def heat_capacity_years(self) -> float:
        """:math:`C_{yr} = C / s_{yr}` in W yr m⁻² K⁻¹ (time in years)."""
        return self.heat_capacity / SECONDS_PER_YEAR

    @property
    def relaxation_time(self) -> float:
        """:math:`C / |λ|` in years."""
        return self.heat_capacity_years / -self.params.feedback

    def equilibrium_response(self, forcing: float) -> float:
        """:math:`ΔT = -F/λ` (K)."""
        return -forcing / self.params.feedback

    @property
    def state_shape(self):
        return (1,)

    @property
    def is_stochastic(self) -> bool:
        return self.params.noise > 0

    @property
    def default_integrator(self) -> str:  # type: ignore[override]
        return "euler_maruyama" if self.is_stochastic else "rk4"

    def vector_field(self, t, x):
        return (self.forcing_like(t, x) + self.params.feedback * x) / self.heat_capacity_years

    def diffusion(self, t, x):
        if not self.is_stochastic:
            return None
        return torch.full_like(x, self.params.noise / self.heat_capacity_years)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        p = self.params
        x = torch.full((len(rng.members), 1), p.initial_temperature, dtype=torch.float64)
        if p.initial_spread > 0:
            x = x + p.initial_spread * rng.normal((1,), stream=STREAM_INITIAL, dtype=torch.float64)
        return x.to(dtype=dtype, device=device)

    # -- output ---------------------------------------------------------------------------
    @property
    def variables(self):
        return (Variable("T", ("time",), "K", "global-mean surface temperature anomaly"),
                Variable("N_toa", ("time",), "W m-2", "net downward top-of-atmosphere energy flux (F + feedback*T)",
                         role="diagnostic")) + self.forcing_variables()

    def observables(self, x):
        return {"T": x[..., 0]}

    def diagnostics(self, times, x):
        """The TOA imbalance :math:`N = F + λT` of the saved states, ``(M, T)``."""
        _, forcing = self.co2_forcing_series(times, x.dtype)
        return {"N_toa": forcing + self.params.feedback * x[..., 0]}
