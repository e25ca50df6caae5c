r"""Latitudinal diffusive energy-balance model on a slab ocean (Budyko–Sellers–North type).

.. math::
    C\,\frac{\partial T}{\partial t} = \big(1 - α(φ, T)\big)\,S(φ, t) - (A + B T)
      + \frac{1}{\cos φ}\,\frac{\partial}{\partial φ}\Big(\cos φ\, D\,\frac{\partial T}{\partial φ}\Big)
      + F_{CO_2}(t) + q(φ) \;(+\; σ\,ξ(φ, t))

* :math:`T` surface temperature in °C on latitude bands, :math:`C = ρ_w c_w h`
  with :math:`h` = ``mixed_layer_depth`` (4.18 MJ m⁻² K⁻¹ per metre);
* outgoing longwave :math:`A + BT` (A = 210 W m⁻², B = 2 W m⁻² K⁻¹);
* albedo :math:`α = a_0 + a_2 P_2(\sin φ)` (0.3, 0.078) where :math:`T ≥ T_f`
  and the ice albedo :math:`a_i` = 0.62 where :math:`T < T_f` = −10 °C, when
  ``ice_albedo_feedback`` is on (off: :math:`a_0 + a_2 P_2` everywhere);
* insolation :math:`S`: daily means from the orbit (``seasonal``), their exact
  annual mean (``annual``) or :math:`\frac{S_0}{4}(1 + s_2 P_2(\sin φ))`
  (``annual_p2``), see :mod:`simulators.climate.insolation`;
* diffusion :math:`D` = 0.555 W m⁻² K⁻¹ on the unit sphere;
* CO₂ forcing :math:`F = 5.35 \ln(C_{O_2}(t)/C_0)` from the scenario;
* prescribed ocean heat-flux convergence :math:`q(φ) = q_2 P_2(\sin φ) + q_{profile}`
  (W m⁻²; the P2 part has zero global mean);
* optional weather noise: independent white noise of σ W m⁻² yr^½ per band
  (an SDE, integrated with Euler–Maruyama).

Defaults are climlab's EBM (A, B, D, S0, a0, a2, ai, Tf, 10 m slab, initial
state :math:`T = 12 - 40 P_2(\sin φ)` °C); PHYSICS.md gives the checks.

**Grid.** ``n_lat`` equal bands of width Δφ = 180°/n from pole to pole; band
:math:`j` spans :math:`[φ_{j-½}, φ_{j+½}]`, its area fraction is
:math:`w_j = (\sin φ_{j+½} - \sin φ_{j-½})/2` (:math:`\sum_j w_j = 1`).
Diffusion is finite-volume: the flux :math:`\mathcal F_{j+½} = D \cos φ_{j+½}
(T_{j+1} - T_j)/Δφ` through each interior edge, none through the poles, and
the band-mean convergence :math:`(\mathcal F_{j+½} - \mathcal F_{j-½})/(2 w_j)`.
The area-weighted sum of the convergence telescopes to zero, so diffusion
conserves the global heat content :math:`H = C \sum_j w_j T_j` to round-off.

**Split form and budget.** The model is a split system :math:`\dot x = L x + N(t, x)`
(:class:`~simulators.split.AbstractSplitSystem`) so that every integrator of the
registry runs it, the implicit-explicit ``imex`` at climlab's step of 1/90 yr or
larger among them. ``L`` holds the stiff linear terms, diffusion and :math:`-BT`
(a :class:`~simulators.split.TridiagonalOperator`); ``N`` the rest of the column
heating, :math:`(1-α(φ,T))S - A + F + q`. The state carries, after the ``n_lat``
temperatures, the *accumulated heating* :math:`E` (K): the area-weighted column
heating (all terms but diffusion, noise included) divided by :math:`C` and
integrated in time, :math:`\dot E = \sum_j w_j\,(\text{heating}_j + σ ξ_j)/C`.
Its :math:`-BT` part is the last row of ``L`` (a
:class:`~simulators.split.BorderedOperator`), the rest is in ``N`` and the
noise in :meth:`~EnergyBalance1D.noise_term`. Because :math:`C\sum_j w_j T_j - C E`
is a linear invariant of the split equations (diffusion telescopes), any
Runge–Kutta, additive IMEX or Euler–Maruyama step conserves it to rounding:
``budget_residual`` = :math:`ΔH - CΔE` between saved states (J m⁻²) is
round-off for a conservative diffusion and the size of any leak otherwise.

Time unit: year. State shape ``(..., n_lat + 1)``: the temperatures (latitude
ascending, south to north) then :math:`E`; the output ``T`` is the first ``n_lat``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core import Variable, check_finite_parameter, register_system
from ..random import STREAM_INITIAL, CounterRNG
from ..split import AbstractSplitSystem, BorderedOperator, TridiagonalOperator
from .common import SECONDS_PER_YEAR, TIME_UNITS, ForcingParams, ScenarioForcing, slab_heat_capacity
from .insolation import DAYS_PER_YEAR, EARTH_ORBIT_1950, annual_mean_insolation, daily_insolation, legendre_p2

__all__ = ["EnergyBalance1D", "LatitudeGrid", "ice_edge_latitude", "INSOLATIONS", "STABILITY_LIMITS"]

INSOLATIONS = ("seasonal", "annual", "annual_p2")
#: largest |λ Δt| on the negative real axis for which each explicit method is stable
STABILITY_LIMITS = {"rk4": 2.785, "euler_maruyama": 2.0}
# seasonal insolation is cached by phase of year, rounded to 2⁻³² yr (7 ms)
_PHASE_STEPS = 2 ** 32
_CACHE_MAX = 1 << 16


@dataclass(frozen=True)
class LatitudeGrid:
    """``n_lat`` equal latitude bands from the south pole to the north pole.

    Arrays (float64 NumPy): ``edges`` (n+1,) and ``lat`` (n,) in degrees,
    ``area`` (n,) the area fractions :math:`w_j` (sum 1), ``dphi`` the band
    width in radians.
    """

    n_lat: int

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-90.0, 90.0, self.n_lat + 1)

    @property
    def lat(self) -> np.ndarray:
        e = self.edges
        return 0.5 * (e[1:] + e[:-1])

    @property
    def dphi(self) -> float:
        return math.pi / self.n_lat

    @property
    def area(self) -> np.ndarray:
        return 0.5 * np.diff(np.sin(np.radians(self.edges)))

    @property
    def interior_edge_cos(self) -> np.ndarray:
        """cos φ at the n − 1 interior edges (the poles carry no flux)."""
        return np.cos(np.radians(self.edges[1:-1]))


def ice_edge_latitude(T: np.ndarray | torch.Tensor, lat: np.ndarray, Tf: float = -10.0,
                      hemisphere: str = "north") -> np.ndarray:
    """Latitude (degrees, positive) where ``T`` first falls below ``Tf`` going poleward.

    ``T`` ``(..., n_lat)`` on ascending ``lat``; returns ``(...)``. The crossing is
    interpolated linearly between the centres of the last band at or above
    ``Tf`` and the first band below it; 90 when the hemisphere is ice-free, 0
    when its first band from the equator is ice already.
    """
    if hemisphere not in ("north", "south"):
        raise ValueError(f"hemisphere must be 'north' or 'south', got {hemisphere!r}")
    T = T.detach().cpu().numpy() if isinstance(T, torch.Tensor) else np.asarray(T)
    lat = np.asarray(lat, dtype=np.float64)
    sel = lat > 0 if hemisphere == "north" else lat < 0
    order = np.argsort(np.abs(lat[sel]))
    Th = T[..., sel][..., order]
    ph = np.abs(lat[sel])[order]
    flat = Th.reshape(-1, Th.shape[-1])
    out = np.empty(flat.shape[0])
    for i, row in enumerate(flat):
        ice = np.nonzero(row < Tf)[0]
        if len(ice) == 0:
            out[i] = 90.0
        elif ice[0] == 0:
            out[i] = 0.0
        else:
            j = ice[0]
            f = (row[j - 1] - Tf) / (row[j - 1] - row[j])
            out[i] = ph[j - 1] + f * (ph[j] - ph[j - 1])
    return out.reshape(Th.shape[:-1])


@register_system
class EnergyBalance1D(ScenarioForcing, AbstractSplitSystem):
    r"""Diffusive latitudinal energy-balance model on a slab ocean; see the module docstring.

    Parameters (:class:`EnergyBalance1D.Params`): ``n_lat``, ``insolation``
    (seasonal | annual | annual_p2), ``solar_constant`` (W m⁻²), ``s2``,
    ``eccentricity``, ``obliquity`` and ``perihelion_longitude`` (degrees),
    ``day_of_vernal_equinox``, ``A``, ``B``, ``D``, ``a0``, ``a2``, ``ai``,
    ``Tf`` (°C), ``ice_albedo_feedback``, ``mixed_layer_depth`` (m),
    ``qflux_amplitude`` (W m⁻², times :math:`P_2(\sin φ)`), ``qflux_profile``
    (n_lat values, W m⁻²), ``noise`` (W m⁻² yr^½ per band), ``initial_T0``,
    ``initial_T2`` (°C: :math:`T(0) = T_0 + T_2 P_2(\sin φ)`), ``initial_spread``
    (K, per-member perturbation per band) and the scenario options of
    :class:`~simulators.climate.common.ForcingParams`.

    Output: ``T`` (member, time, lat) °C (the state), the diagnostics ``T_global``,
    ``N_toa`` (W m⁻², global net downward TOA flux) and ``budget_residual`` (J m⁻²)
    and the forcings ``co2`` (ppm) and ``forcing`` (W m⁻²) on (member, time); with
    ``randomize={"co2_multiple": [a, b]}`` also the drawn level on ``member``.
    """

    name = "ebm_1d"
    time_units = TIME_UNITS
    #: 1: integrated through the registry with the accumulated heating in the state
    generator_version = 1

    @dataclass(frozen=True)
    class Params(ForcingParams):
        n_lat: int = 90
        insolation: str = "seasonal"
        solar_constant: float = 1365.2
        s2: float = -0.482
        eccentricity: float = EARTH_ORBIT_1950["eccentricity"]
        obliquity: float = EARTH_ORBIT_1950["obliquity"]
        perihelion_longitude: float = EARTH_ORBIT_1950["perihelion_longitude"]
        day_of_vernal_equinox: float = 80.0
        A: float = 210.0
        B: float = 2.0
        D: float = 0.555
        a0: float = 0.3
        a2: float = 0.078
        ai: float = 0.62
        Tf: float = -10.0
        ice_albedo_feedback: bool = True
        mixed_layer_depth: float = 10.0
        qflux_amplitude: float = 0.0
        qflux_profile: Any = None
        noise: float = 0.0
        initial_T0: float = 12.0
        initial_T2: float = -40.0
        initial_spread: float = 0.0

        def validate(self):
            if isinstance(self.n_lat, bool) or not isinstance(self.n_lat, int) or self.n_lat < 2:
                raise ValueError(f"parameter n_lat must be an integer >= 2, got {self.n_lat!r}")
            if self.insolation not in INSOLATIONS:
                raise ValueError(f"parameter insolation must be one of {', '.join(INSOLATIONS)}, "
                                 f"got {self.insolation!r}")
            if not isinstance(self.ice_albedo_feedback, bool):
                raise ValueError(f"parameter ice_albedo_feedback must be true or false, "
                                 f"got {self.ice_albedo_feedback!r}")
            for name in ("solar_constant", "mixed_layer_depth"):
                check_finite_parameter(name, getattr(self, name), positive=True)
            for name in ("B", "D", "noise", "initial_spread"):
                check_finite_parameter(name, getattr(self, name), non_negative=True)
            if not 0 <= self.eccentricity < 1:
                raise ValueError(f"parameter eccentricity must be in [0, 1), got {self.eccentricity!r}")
            if not -90 <= self.obliquity <= 90:
                raise ValueError(f"parameter obliquity (degrees) must be in [-90, 90], got {self.obliquity!r}")
            if not 0 < self.day_of_vernal_equinox < DAYS_PER_YEAR:
                raise ValueError(f"parameter day_of_vernal_equinox must be in (0, {DAYS_PER_YEAR}), "
                                 f"got {self.day_of_vernal_equinox!r}")
            for name in ("a0", "ai"):
                value = getattr(self, name)
                if not 0 <= value <= 1:
                    raise ValueError(f"parameter {name} (an albedo) must be in [0, 1], got {value!r}")
            if not (0 <= self.a0 - 0.5 * self.a2 <= 1 and 0 <= self.a0 + self.a2 <= 1):
                raise ValueError(f"parameters a0={self.a0!r}, a2={self.a2!r} give an albedo a0 + a2 P2 outside [0, 1]")
            if self.qflux_profile is not None:
                try:
                    profile = tuple(float(q) for q in self.qflux_profile)
                except (TypeError, ValueError):
                    raise ValueError(f"parameter qflux_profile must be a list of {self.n_lat} numbers (W m-2), "
                                     f"got {self.qflux_profile!r}") from None
                if len(profile) != self.n_lat:
                    raise ValueError(f"parameter qflux_profile must have n_lat={self.n_lat} values, got {len(profile)}")
                if not all(math.isfinite(q) for q in profile):
                    raise ValueError(f"parameter qflux_profile must be finite, got {self.qflux_profile!r}")
                object.__setattr__(self, "qflux_profile", profile)
            super().validate()

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self.grid = LatitudeGrid(self.params.n_lat)
        self._init_forcing()
        self._operators: dict[tuple, BorderedOperator] = {}
        self._tensors: dict[tuple, dict[str, torch.Tensor]] = {}
        self._seasonal: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._last_tables = None
        self._fixed_insolation = None if self.params.insolation == "seasonal" else self._insolation_numpy(None)

    # -- fields on the grid ---------------------------------------------------------------
    @property
    def heat_capacity(self) -> float:
        """:math:`C = ρ_w c_w h` in J m⁻² K⁻¹."""
        return slab_heat_capacity(self.params.mixed_layer_depth)

    @property
    def heat_capacity_years(self) -> float:
        """:math:`C_{yr} = C / s_{yr}` in W yr m⁻² K⁻¹ (time in years)."""
        return self.heat_capacity / SECONDS_PER_YEAR

    @property
    def lat(self) -> np.ndarray:
        return self.grid.lat

    def warm_albedo(self) -> np.ndarray:
        """:math:`a_0 + a_2 P_2(\\sin φ)`, shape (n_lat,)."""
        p = self.params
        return p.a0 + p.a2 * legendre_p2(np.sin(np.radians(self.lat)))

    def qflux(self) -> np.ndarray:
        """Prescribed ocean heat-flux convergence q(φ) in W m⁻², shape (n_lat,)."""
        p = self.params
        q = p.qflux_amplitude * legendre_p2(np.sin(np.radians(self.lat)))
        if p.qflux_profile is not None:
            q = q + np.asarray(p.qflux_profile, dtype=np.float64)
        return q

    def _insolation_numpy(self, phase: float | None) -> np.ndarray:
        """S(φ) (W m⁻²) at the phase of year ``phase`` ∈ [0, 1) (seasonal) or the annual mean."""
        p = self.params
        if p.insolation == "annual_p2":
            return p.solar_constant / 4.0 * (1.0 + p.s2 * legendre_p2(np.sin(np.radians(self.lat))))
        orbit = dict(solar_constant=p.solar_constant, eccentricity=p.eccentricity, obliquity=p.obliquity,
                     perihelion_longitude=p.perihelion_longitude, day_of_vernal_equinox=p.day_of_vernal_equinox)
        if p.insolation == "annual":
            return annual_mean_insolation(self.lat, **orbit)
        return daily_insolation(self.lat, phase * DAYS_PER_YEAR, **orbit)

    def insolation(self, t: float) -> np.ndarray:
        """TOA insolation S(φ, t) in W m⁻² at model time ``t`` (years), shape (n_lat,)."""
        if self._fixed_insolation is not None:
            return self._fixed_insolation
        return self._insolation_numpy(self._phase_key(t) / _PHASE_STEPS)

    @staticmethod
    def _phase_key(t: float) -> int:
        # phase of the year on a fixed dyadic grid, so S(t) does not depend on cache history
        return round((float(t) % 1.0) * _PHASE_STEPS) % _PHASE_STEPS

    def _consts(self, dtype: torch.dtype, device: torch.device | str) -> dict[str, torch.Tensor]:
        key = (dtype, device)
        consts = self._tensors.get(key)
        if consts is None:
            g, p = self.grid, self.params
            def as_t(a):
                return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype=dtype, device=device)
            consts = self._tensors[key] = {
                "area": as_t(g.area),
                "edge_conductance": as_t(p.D * g.interior_edge_cos / g.dphi),  # D cos φ_e / Δφ
                "inv_band": as_t(1.0 / (2.0 * g.area)),                        # 1 / (sin φ₊ − sin φ₋)
                "qflux": as_t(self.qflux()),
            }
        return consts

    def _heating_tables(self, t: float, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(warm, ice) column heating without the −BT term: :math:`(1 - α)S - A + F + q`
        for the warm and the ice albedo, each (n_lat,)."""
        phase = None if self._fixed_insolation is not None else self._phase_key(t)
        F = 0.0 if self._member_values else self.forcing(t)  # per-member levels are added in absorbed()
        last = self._last_tables
        if last is not None and last[0] == (phase, F, dtype, device):
            return last[1]
        key = (phase, dtype, device)
        base = self._seasonal.get(key)
        if base is None:
            p = self.params
            S = self.insolation(t)
            q = self.qflux()
            warm = (1.0 - self.warm_albedo()) * S - p.A + q
            ice = (1.0 - p.ai) * S - p.A + q if p.ice_albedo_feedback else warm
            if len(self._seasonal) >= _CACHE_MAX:
                self._seasonal.clear()
            base = (torch.as_tensor(warm).to(dtype=dtype, device=device),
                    torch.as_tensor(ice).to(dtype=dtype, device=device))
            self._seasonal[key] = base
        tables = (base[0] + F, base[1] + F)
        self._last_tables = ((phase, F, dtype, device), tables)
        return tables

    # -- tendencies ----------------------------------------------------------------------
    def absorbed(self, t: float, T: torch.Tensor) -> torch.Tensor:
        r"""The column heating of ``N``, W m⁻², same shape as ``T`` (…, n_lat):
        :math:`(1 - α(φ, T))S(φ, t) - A + F(t) + q(φ)`. A new tensor."""
        warm, ice = self._heating_tables(t, T.dtype, T.device)
        p = self.params
        out = torch.where(T < p.Tf, ice, warm) if p.ice_albedo_feedback else warm.expand_as(T).clone()
        if self._member_values:
            out = out + self.forcing_like(t, T)
        return out

    def heating(self, t: float, T: torch.Tensor) -> torch.Tensor:
        r"""Column heating except diffusion, W m⁻², same shape as ``T`` (…, n_lat):
        :math:`(1 - α(φ, T))S(φ, t) - (A + BT) + F(t) + q(φ)`. A new tensor."""
        return self.absorbed(t, T).add_(T, alpha=-self.params.B)

    def diffusive_convergence(self, T: torch.Tensor) -> torch.Tensor:
        r"""Finite-volume :math:`\frac{1}{\cos φ}\partial_φ(\cos φ\,D\,\partial_φ T)` in W m⁻²,
        shape (…, n_lat): edge fluxes :math:`D\cos φ_e ΔT/Δφ`, zero at the poles."""
        c = self._consts(T.dtype, T.device)
        flux = torch.diff(T, dim=-1).mul_(c["edge_conductance"])     # (…, n_lat − 1) interior edges
        flux = torch.constant_pad_nd(flux, (1, 1))                    # (…, n_lat + 1), zero polar flux
        return torch.diff(flux, dim=-1).mul_(c["inv_band"])

    def global_mean(self, field: torch.Tensor) -> torch.Tensor:
        """Area-weighted mean over latitude: (…, n_lat) → (…)."""
        return (field * self._consts(field.dtype, field.device)["area"]).sum(-1)

    def toa_imbalance(self, t: float, T: torch.Tensor) -> torch.Tensor:
        """Global net downward TOA flux N = ⟨(1 − α)S − (A + BT)⟩ + F (W m⁻²), shape (…)."""
        q_mean = self.global_mean(self._consts(T.dtype, T.device)["qflux"])
        return self.global_mean(self.heating(t, T)) - q_mean

    # -- split system -------------------------------------------------------------------
    @property
    def state_shape(self):
        return (self.params.n_lat + 1,)

    @property
    def is_stochastic(self) -> bool:
        return self.params.noise > 0

    @property
    def default_integrator(self) -> str:  # type: ignore[override]
        return "euler_maruyama" if self.is_stochastic else "rk4"

    def linear_operator(self, dtype=torch.float64, device="cpu") -> BorderedOperator:
        r""":math:`L = [[(\mathcal D - B)/C,\ 0], [-B w^\top/C,\ 0]]`: finite-volume diffusion
        :math:`\mathcal D` and :math:`-BT` on the bands, and their area-weighted :math:`-BT`
        for the accumulated heating (diffusion adds none to it)."""
        key = (dtype, str(device))
        op = self._operators.get(key)
        if op is None:
            g, p = self.grid, self.params
            inv_c = 1.0 / self.heat_capacity_years
            cond = p.D * g.interior_edge_cos / g.dphi                   # D cos φ_e / Δφ at the n − 1 edges
            inv_band = 1.0 / (2.0 * g.area)
            below = np.concatenate(([0.0], cond)) * inv_band              # coupling to the band to the south
            above = np.concatenate((cond, [0.0])) * inv_band              # ... and to the north
            def as_t(a):
                return torch.as_tensor(np.asarray(a, dtype=np.float64) * inv_c).to(dtype=dtype, device=device)
            bands = TridiagonalOperator(as_t(below), as_t(-(below + above) - p.B), as_t(above))
            op = self._operators[key] = BorderedOperator(bands, as_t(-p.B * g.area))
        return op

    def nonlinear(self, t, x):
        """``N``: the column heating but −BT over C on the bands, its area-weighted mean for E."""
        T = x[..., :-1]
        heat = self.absorbed(t, T)
        inv_c = 1.0 / self.heat_capacity_years
        total = (heat * self._consts(x.dtype, x.device)["area"]).sum(-1, keepdim=True)
        return torch.cat((heat, total), dim=-1).mul_(inv_c)

    def diffusion(self, t, x):
        """σ/C on the bands and 0 on E (its noise, the bands' area-weighted noise, is in
        :meth:`noise_term`); ``None`` without noise."""
        if not self.is_stochastic:
            return None
        g = torch.full_like(x, self.params.noise / self.heat_capacity_years)
        g[..., -1] = 0.0
        return g

    def noise_term(self, t, x, xi):
        r""":math:`(σ ξ_j / C,\ \sum_j w_j σ ξ_j / C)`: the accumulated heating integrates
        the same weather noise as the bands (the normal drawn for E itself is unused)."""
        bands = xi[..., :-1] * (self.params.noise / self.heat_capacity_years)
        total = (bands * self._consts(x.dtype, x.device)["area"]).sum(-1, keepdim=True)
        return torch.cat((bands, total), dim=-1)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        p = self.params
        T0 = p.initial_T0 + p.initial_T2 * legendre_p2(np.sin(np.radians(self.lat)))
        x = torch.as_tensor(T0, dtype=torch.float64).expand(len(rng.members), -1).clone()
        if p.initial_spread > 0:
            x = x + p.initial_spread * rng.normal((p.n_lat,), stream=STREAM_INITIAL, dtype=torch.float64)
        x = torch.cat((x, torch.zeros(len(rng.members), 1, dtype=torch.float64)), dim=-1)  # E = 0
        return x.to(dtype=dtype, device=device)

    # -- outputs --------------------------------------------------------------------------
    @property
    def variables(self):
        return (Variable("T", ("time", "lat"), "degC", "surface (mixed-layer) temperature"),
                Variable("T_global", ("time",), "degC", "global area-weighted mean surface temperature",
                         role="diagnostic"),
                Variable("N_toa", ("time",), "W m-2", "global net downward top-of-atmosphere energy flux",
                         role="diagnostic"),
                *self.forcing_variables(),
                Variable("budget_residual", ("time",), "J m-2",
                         "change of global heat content since the previous saved state minus the accumulated "
                         "net heating integrated with it in the state (0 at the first time)", role="diagnostic"))

    @property
    def dim_sizes(self):
        return {"lat": self.params.n_lat}

    def coords(self):
        return {"lat": (("lat",), self.lat, {"units": "degrees_north", "long_name": "latitude (band centre)",
                                             "standard_name": "latitude"})}

    def observables(self, x):
        """The temperatures ``T`` of states ``(..., n_lat + 1)``."""
        return {"T": x[..., :-1]}

    def state_from_observables(self, observed) -> torch.Tensor:
        """The inverse of :meth:`observables`: states ``(..., n_lat + 1)`` from the temperatures
        ``observed["T"]`` ``(..., n_lat)``, the accumulated heating :math:`E` restarted at 0 (it
        enters only the stored ``budget_residual``, a difference along one run, not the tendency)."""
        T = observed.get("T") if hasattr(observed, "get") else None
        if not torch.is_tensor(T) or T.ndim < 1 or T.shape[-1] != self.params.n_lat:
            raise ValueError(f"ebm_1d states are built from the temperatures T (..., {self.params.n_lat}), got "
                             f"{tuple(T.shape) if torch.is_tensor(T) else type(T).__name__}")
        return torch.cat((T, torch.zeros_like(T[..., :1])), dim=-1)

    @property
    def time_dependent(self) -> bool:
        """Seasonal insolation or a CO₂ path that changes after t = 0 (see
        :attr:`~simulators.climate.common.ScenarioForcing.time_dependent`)."""
        return self.params.insolation == "seasonal" or super().time_dependent

    def diagnostics(self, times, x):
        """``T_global``, ``N_toa`` and ``budget_residual`` of the saved trajectory ``(M, T, n_lat + 1)``."""
        T, E = x[..., :-1], x[..., -1]
        T_global = self.global_mean(T)
        N = torch.stack([self.toa_imbalance(float(t), T[:, k]) for k, t in enumerate(times.tolist())], dim=1)
        C = self.heat_capacity
        residual = C * (T_global.diff(dim=1) - E.diff(dim=1))
        residual = torch.cat((torch.zeros_like(residual[:, :1]), residual), dim=1)
        return {"T_global": T_global, "N_toa": N, "budget_residual": residual}

    def invariants(self, x):
        """Global heat content :math:`C \\sum_j w_j T_j` (J m⁻², relative to 0 °C) of states
        ``(..., n_lat + 1)`` or temperatures ``(..., n_lat)``."""
        T = x[..., :-1] if x.shape[-1] == self.params.n_lat + 1 else x
        return {"heat_content": self.heat_capacity * self.global_mean(T)}

    # -- explicit stability ---------------------------------------------------------------
    def max_stable_dt(self, method: str = "rk4") -> float:
        """Largest stable step (years) of the explicit ``method``: a Gershgorin bound on
        the spectral radius of the linear part (−B T + diffusion) against
        :data:`STABILITY_LIMITS`. Scales with ``mixed_layer_depth / n_lat²``."""
        if method not in STABILITY_LIMITS:
            raise ValueError(f"max_stable_dt knows the explicit methods {', '.join(STABILITY_LIMITS)}, got {method!r}")
        g, p = self.grid, self.params
        cond = p.D * np.pad(g.interior_edge_cos, 1) / g.dphi       # edge conductances, 0 at the poles
        row = (cond[1:] + cond[:-1]) / (2.0 * g.area)               # |off-diagonal| sum = |diagonal| − B
        radius = (p.B + 2.0 * row.max()) / self.heat_capacity_years
        return STABILITY_LIMITS[method] / radius

    def check_time_step(self, dt: float, method: str) -> None:
        limit = self.max_stable_dt(method)
        if dt > limit:
            p = self.params
            raise ValueError(
                f"time.dt={dt!r} years is above the stability limit {limit:.4g} of explicit {method} for "
                f"ebm_1d with n_lat={p.n_lat}, mixed_layer_depth={p.mixed_layer_depth!r} m, D={p.D!r}; "
                f"use time.dt <= {limit:.4g} or integrator=imex (implicit diffusion, any step)")

    def check_grid(self, grid, integrator) -> None:
        """Refuse an unstable ``time.dt`` for the explicit rk4 and euler_maruyama."""
        if integrator.name in STABILITY_LIMITS:
            self.check_time_step(grid.dt, integrator.name)
