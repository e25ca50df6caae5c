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

**Budget.** :meth:`EnergyBalance1D.simulate` integrates with RK4 or
Euler–Maruyama itself and accumulates, per band, the column heating (all terms
but diffusion) with the method's own stage weights (RK4: Δt/6, Δt/3, Δt/3,
Δt/6; Euler–Maruyama: Δt plus the noise increment). ``budget_residual`` is
:math:`ΔH` between saved states minus the area-weighted accumulated heating
(J m⁻²): round-off for a conservative scheme, and the size of any leak
otherwise.

Time unit: year. State shape ``(..., n_lat)``, latitude ascending (south to north).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..core import AbstractSystem, Variable, check_finite_parameter, register_system
from ..ensemble import BlowUpError
from ..random import STREAM_INITIAL, STREAM_NOISE, CounterRNG
from .common import SECONDS_PER_YEAR, TIME_UNITS, ForcingParams, slab_heat_capacity
from .insolation import DAYS_PER_YEAR, EARTH_ORBIT_1950, annual_mean_insolation, daily_insolation, legendre_p2
from .scenarios import co2_forcing

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
class EnergyBalance1D(AbstractSystem):
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

    Output of :meth:`simulate`: ``T`` (member, time, lat) °C, ``T_global``,
    ``N_toa`` (W m⁻², global net downward TOA flux), ``co2`` (ppm), ``forcing``
    (W m⁻²) and ``budget_residual`` (J m⁻²) on (member, time).
    """

    name = "ebm_1d"
    time_units = TIME_UNITS

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
        self.scenario = self.params.make_scenario()
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
        F = self.forcing(t)
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

    def _prefill_insolation(self, grid, offsets: tuple[float, ...], dtype, device) -> None:
        """Compute the seasonal insolation of every stage time of one year of steps at once
        (vectorised over days): with a step that divides the year, the run then only
        looks its insolation up."""
        if self._fixed_insolation is not None:
            return
        dt = grid.dt
        n = min(math.ceil(1.0 / dt) + 1, grid.spinup_steps + (grid.n_saves - 1) * grid.steps_per_save)
        starts = [0.0] + ([-grid.spinup] if grid.spinup_steps else [])
        keys = {self._phase_key(t0 + i * dt + o) for t0 in starts for i in range(n) for o in offsets}
        missing = sorted(k for k in keys if (k, dtype, device) not in self._seasonal)
        if not missing or len(self._seasonal) + len(missing) > _CACHE_MAX:
            return
        p = self.params
        days = np.asarray(missing, dtype=np.float64) / _PHASE_STEPS * DAYS_PER_YEAR
        S = daily_insolation(self.lat, days, solar_constant=p.solar_constant, eccentricity=p.eccentricity,
                             obliquity=p.obliquity, perihelion_longitude=p.perihelion_longitude,
                             day_of_vernal_equinox=p.day_of_vernal_equinox)  # (n_missing, n_lat)
        q = self.qflux()
        warm = torch.as_tensor((1.0 - self.warm_albedo()) * S - p.A + q).to(dtype=dtype, device=device)
        ice = (torch.as_tensor((1.0 - p.ai) * S - p.A + q).to(dtype=dtype, device=device)
               if p.ice_albedo_feedback else warm)
        for row, key in enumerate(missing):
            self._seasonal[(key, dtype, device)] = (warm[row], ice[row])

    def forcing(self, t: float) -> float:
        """CO₂ forcing F(t) in W m⁻² at model time ``t`` (years)."""
        p = self.params
        return co2_forcing(self.scenario.co2(float(t)), p.co2_reference, p.co2_forcing_scale)

    # -- tendencies ----------------------------------------------------------------------
    def heating(self, t: float, T: torch.Tensor) -> torch.Tensor:
        r"""Column heating except diffusion, W m⁻², same shape as ``T`` (…, n_lat):
        :math:`(1 - α(φ, T))S(φ, t) - (A + BT) + F(t) + q(φ)`. A new tensor."""
        warm, ice = self._heating_tables(t, T.dtype, T.device)
        p = self.params
        if p.ice_albedo_feedback:
            return torch.where(T < p.Tf, ice, warm).add_(T, alpha=-p.B)
        return torch.add(warm, T, alpha=-p.B)

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

    # -- AbstractSystem ------------------------------------------------------------------
    @property
    def state_shape(self):
        return (self.params.n_lat,)

    @property
    def is_stochastic(self) -> bool:
        return self.params.noise > 0

    @property
    def default_integrator(self) -> str:  # type: ignore[override]
        return "euler_maruyama" if self.is_stochastic else "rk4"

    def vector_field(self, t, x):
        return (self.heating(t, x) + self.diffusive_convergence(x)) * (1.0 / self.heat_capacity_years)

    def diffusion(self, t, x):
        if not self.is_stochastic:
            return None
        return torch.full_like(x, self.params.noise / self.heat_capacity_years)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        p = self.params
        T0 = p.initial_T0 + p.initial_T2 * legendre_p2(np.sin(np.radians(self.lat)))
        x = torch.as_tensor(T0, dtype=torch.float64).expand(len(rng.members), -1).clone()
        if p.initial_spread > 0:
            x = x + p.initial_spread * rng.normal((p.n_lat,), stream=STREAM_INITIAL, dtype=torch.float64)
        return x.to(dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("T", ("time", "lat"), "degC", "surface (mixed-layer) temperature"),
                Variable("T_global", ("time",), "degC", "global area-weighted mean surface temperature"),
                Variable("N_toa", ("time",), "W m-2", "global net downward top-of-atmosphere energy flux"),
                Variable("co2", ("time",), "ppm", "atmospheric CO2 concentration"),
                Variable("forcing", ("time",), "W m-2", "CO2 radiative forcing 5.35 ln(co2/co2_reference)"),
                Variable("budget_residual", ("time",), "J m-2",
                         "change of global heat content since the previous saved state minus the net heat "
                         "flux accumulated with the integrator's stage weights (0 at the first time)"))

    @property
    def dim_sizes(self):
        return {"lat": self.params.n_lat}

    def coords(self):
        return {"lat": (("lat",), self.lat, {"units": "degrees_north", "long_name": "latitude (band centre)",
                                             "standard_name": "latitude"})}

    def observables(self, x):
        # the state itself; T_global, N_toa, co2, forcing and the budget need the time or the
        # integrator's stages and come from simulate
        return {"T": x}

    def invariants(self, x):
        """Global heat content :math:`C \\sum_j w_j T_j` (J m⁻², relative to 0 °C)."""
        return {"heat_content": self.heat_capacity * self.global_mean(x)}

    # -- explicit time stepping with the budget ------------------------------------------
    def max_stable_dt(self, method: str = "rk4") -> float:
        """Largest stable step (years) of the explicit ``method``: a Gershgorin bound on
        the spectral radius of the linear part (−B T + diffusion) against
        :data:`STABILITY_LIMITS`. Scales with ``mixed_layer_depth / n_lat²``."""
        if method not in STABILITY_LIMITS:
            raise ValueError(f"ebm_1d integrates itself with {' or '.join(STABILITY_LIMITS)}, got {method!r}")
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
                f"use time.dt <= {limit:.4g} (the limit grows with mixed_layer_depth and shrinks as 1/n_lat^2)")

    def _rk4_step(self, t: float, T: torch.Tensor, dt: float, acc: torch.Tensor | None, noise) -> torch.Tensor:
        # stage tendencies are kept in W m⁻² (heating + convergence); 1/C enters the alphas
        inv_c = 1.0 / self.heat_capacity_years
        k = []
        x = T
        for stage, (offset, weight) in enumerate(((0.0, dt / 6.0), (0.5 * dt, dt / 3.0),
                                                  (0.5 * dt, dt / 3.0), (dt, dt / 6.0))):
            if stage:
                x = torch.add(T, k[-1], alpha=offset * inv_c)
            heat = self.heating(t + offset, x)
            if acc is not None:
                acc.add_(heat, alpha=weight)
            k.append(heat.add_(self.diffusive_convergence(x)))
        incr = k[1].add_(k[2]).mul_(2.0).add_(k[0]).add_(k[3])   # k1 + 2 k2 + 2 k3 + k4
        return torch.add(T, incr, alpha=dt * inv_c / 6.0)

    def _euler_maruyama_step(self, t: float, T: torch.Tensor, dt: float, acc: torch.Tensor | None,
                             noise: torch.Tensor | None) -> torch.Tensor:
        inv_c = 1.0 / self.heat_capacity_years
        heat = self.heating(t, T)
        if noise is not None:
            heat.add_(noise, alpha=self.params.noise / math.sqrt(dt))  # σ ξ √dt / dt: the step's mean noise flux
        if acc is not None:
            acc.add_(heat, alpha=dt)
        return T + dt * inv_c * heat.add_(self.diffusive_convergence(T))

    def check_grid(self, grid, integrator) -> None:
        """Refuse an integrator other than rk4/euler_maruyama and an unstable ``time.dt``."""
        if integrator.name not in STABILITY_LIMITS:
            raise ValueError(f"ebm_1d integrates itself with rk4 or euler_maruyama (to close its heat budget "
                             f"with the stage weights); integrator={integrator.name!r} is not supported")
        self.check_time_step(grid.dt, integrator.name)

    def simulate(self, integrator, grid, *, seed, members, dtype=torch.float64, device="cpu",
                 progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
        """Integrate the given members with RK4 or Euler–Maruyama (the integrator's name),
        keeping the heat budget alongside the state. Returns ``name -> (M, n_saves[, n_lat])``.

        Noise comes from each member's counter-based stream at its global step
        (spin-up included), so a member's path does not depend on its block.
        """
        method = integrator.name
        if method not in STABILITY_LIMITS:
            raise ValueError(f"ebm_1d integrates itself with rk4 or euler_maruyama (to close its heat budget "
                             f"with the stage weights); integrator={method!r} is not supported")
        integrator.check_system(self)
        self.check_time_step(grid.dt, method)
        step = self._rk4_step if method == "rk4" else self._euler_maruyama_step
        stochastic = method == "euler_maruyama" and self.is_stochastic
        members = torch.as_tensor(list(members), dtype=torch.int64)
        rng = CounterRNG(seed, members).to(device)
        T = self.sample_initial(rng, dtype=dtype, device=device)
        device = T.device  # canonical (cuda → cuda:0), the key of the cached tables
        self._prefill_insolation(grid, (0.0, 0.5 * grid.dt, grid.dt) if method == "rk4" else (0.0,), dtype, device)
        dt, every, n = grid.dt, grid.steps_per_save, self.params.n_lat

        def noise_at(global_step: int) -> torch.Tensor | None:
            if not stochastic:
                return None
            return rng.normal((n,), step=global_step, stream=STREAM_NOISE, dtype=dtype).to(device)

        def check(x: torch.Tensor, time: float) -> None:
            bad = ~torch.isfinite(x).all(-1)
            if bool(bad.any()):
                raise BlowUpError(int(members[bad.nonzero()[0, 0]]), time)

        for i in range(grid.spinup_steps):
            T = step(-grid.spinup + i * dt, T, dt, None, noise_at(i))
        if grid.spinup_steps:
            check(T, 0.0)
            if progress:
                progress(grid.spinup_steps)

        times = grid.times.tolist()
        states = [T]
        residuals = [torch.zeros(len(members), dtype=dtype, device=device)]
        c_yr = self.heat_capacity_years
        acc = torch.zeros_like(T)  # Σ stage weight × column heating, W yr m⁻², per band
        for s in range(1, grid.n_saves):
            acc.zero_()
            T_start = T
            first = (s - 1) * every
            for i in range(first, first + every):
                T = step(i * dt, T, dt, acc, noise_at(grid.spinup_steps + i))
            check(T, times[s])
            heat_change = c_yr * (self.global_mean(T) - self.global_mean(T_start))
            residuals.append((heat_change - self.global_mean(acc)) * SECONDS_PER_YEAR)
            states.append(T)
            if progress:
                progress(every)

        traj = torch.stack(states, dim=1)  # (M, n_saves, n_lat)
        co2 = self.scenario.co2_series(grid.times).to(dtype=dtype, device=device)
        forcing = torch.tensor([self.forcing(t) for t in times], dtype=dtype, device=device)
        N = torch.stack([self.toa_imbalance(t, traj[:, k]) for k, t in enumerate(times)], dim=1)
        M = len(members)
        return {"T": traj, "T_global": self.global_mean(traj), "N_toa": N,
                "co2": co2.expand(M, -1).clone(), "forcing": forcing.expand(M, -1).clone(),
                "budget_residual": torch.stack(residuals, dim=1)}
