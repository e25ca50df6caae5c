r"""What the climate systems share: constants, the slab heat capacity, scenario parameters.

Time in the climate systems is in years (CF units ``"year"``); fluxes are in
W m⁻². A slab of water of depth ``h`` has heat capacity :math:`C = ρ_w c_w h`
(J m⁻² K⁻¹), 4.18 MJ m⁻² K⁻¹ per metre with :math:`c_w` = 4181.3 J kg⁻¹ K⁻¹
(climlab's value) and :math:`ρ_w` = 1000 kg m⁻³. With time in years the
tendency is :math:`dT/dt = \text{flux} / C_{yr}`, :math:`C_{yr} = C / s_{yr}`
(W yr m⁻² K⁻¹), :math:`s_{yr}` = :data:`SECONDS_PER_YEAR`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..core import Params, Variable, check_finite_parameter
from ..members import check_member_values, check_randomize, draw_member_parameters
from .insolation import DAYS_PER_YEAR
from .scenarios import MYHRE_FORCING_SCALE, PREINDUSTRIAL_CO2, AbstractScenario, co2_forcing, make_scenario

if TYPE_CHECKING:
    from ..random import CounterRNG

__all__ = ["SECONDS_PER_YEAR", "WATER_DENSITY", "WATER_HEAT_CAPACITY", "TIME_UNITS", "slab_heat_capacity",
           "ForcingParams", "ScenarioForcing"]

SECONDS_PER_YEAR = DAYS_PER_YEAR * 86400.0
WATER_DENSITY = 1000.0        # kg m⁻³
WATER_HEAT_CAPACITY = 4181.3  # J kg⁻¹ K⁻¹ (climlab)
#: CF units of model time in the climate systems (not decoded into timedeltas by xarray)
TIME_UNITS = "year"


def slab_heat_capacity(mixed_layer_depth: float) -> float:
    """:math:`C = ρ_w c_w h` in J m⁻² K⁻¹ for a mixed layer ``h`` metres deep."""
    return WATER_DENSITY * WATER_HEAT_CAPACITY * mixed_layer_depth


@dataclass(frozen=True)
class ForcingParams(Params):
    """Parameters of the CO₂ scenario and its forcing, shared by the climate systems.

    ``scenario`` names a scenario of :data:`simulators.climate.SCENARIOS`
    (``constant``, ``abrupt``, ``abrupt_2x``, ``abrupt_4x``, ``ramp_1pct``,
    ``ramp_2pct``, ``path``, ``csv``) or is an
    :class:`~simulators.climate.AbstractScenario`; ``co2_reference`` is C₀ (ppm),
    ``co2_multiple`` the multiple of C₀ for ``constant``/``abrupt``, ``co2_path``
    a list of [year, ppm] for ``path``, ``co2_csv`` a CSV file for ``csv``;
    ``co2_forcing_scale`` the W m⁻² per e-folding of CO₂ (5.35, Myhre 1998).
    ``randomize``: ``None`` or ``{"co2_multiple": [low, high]}``, the CO₂ level drawn
    per member uniformly on ``(low, high]`` (scenarios ``constant`` and ``abrupt``,
    which read ``co2_multiple``), so one store holds several CO₂ levels.
    """

    scenario: Any = "constant"
    co2_reference: float = PREINDUSTRIAL_CO2
    co2_multiple: float = 1.0
    co2_path: Any = None
    co2_csv: Any = None
    co2_forcing_scale: float = MYHRE_FORCING_SCALE
    randomize: Any = field(default=None, metadata={
        "help": "CO2 level drawn per member: {co2_multiple: [low, high]} (scenario constant or abrupt), or null"})

    #: names of the parameters that ``randomize`` may draw per member
    randomizable = ("co2_multiple",)

    def validate(self) -> None:
        if not isinstance(self.scenario, (str, AbstractScenario)):
            raise ValueError(f"parameter scenario must be a scenario name or a Scenario, got {self.scenario!r}")
        if self.co2_path is not None and not isinstance(self.co2_path, tuple):
            try:  # a list of [year, ppm] from a config: frozen as tuples
                frozen = tuple(tuple(p) for p in self.co2_path)
            except TypeError:
                raise ValueError(f"parameter co2_path must be a list of [year, ppm] pairs, "
                                 f"got {self.co2_path!r}") from None
            object.__setattr__(self, "co2_path", frozen)
        if self.co2_csv is not None and not isinstance(self.co2_csv, str):
            raise ValueError(f"parameter co2_csv must be a file path, got {self.co2_csv!r}")
        check_finite_parameter("co2_reference", self.co2_reference, positive=True)
        check_finite_parameter("co2_multiple", self.co2_multiple, positive=True)
        self.make_scenario()  # raises ValueError naming a bad scenario option
        if self.randomize is not None and not isinstance(self.scenario, str):
            raise ValueError("parameter randomize needs a scenario given by name (constant or abrupt)")
        object.__setattr__(self, "randomize", check_randomize(self, self.randomize, self.randomizable))

    def make_scenario(self) -> AbstractScenario:
        return make_scenario(self.scenario, co2_reference=self.co2_reference, co2_multiple=self.co2_multiple,
                             co2_path=self.co2_path, co2_csv=self.co2_csv)


class ScenarioForcing:
    r"""The CO₂ forcing of a climate system, shared by the 0-D and 1-D models: the
    scenario's concentration :math:`C(t)` and forcing :math:`F(t) = s \ln(C(t)/C_0)`,
    the time-output hook (``co2``, ``forcing``) and the per-member CO₂ level.

    With ``randomize={"co2_multiple": [a, b]}`` each member m draws its multiple
    :math:`k_m` (:mod:`simulators.members`) and, where the scenario is raised
    (always for ``constant``, from the onset for ``abrupt``), has
    :math:`C_m = k_m C_0`, :math:`F_m = s \ln k_m`. A system bound to the drawn
    values returns :meth:`forcing_like` as ``(M, 1)`` tensors and its ``co2`` and
    ``forcing`` outputs as ``(M, T)``; unbound, the forcing is a float and the
    outputs ``(T,)``.
    """

    params: ForcingParams
    scenario: AbstractScenario
    _member_values: dict[str, torch.Tensor]

    def _init_forcing(self) -> None:
        self.scenario = self.params.make_scenario()
        self._member_values = {}
        self._probe = None
        if self.params.randomize:  # the same scenario at a level of 2: tells when it is raised
            p = self.params
            self._probe = make_scenario(p.scenario, co2_reference=p.co2_reference, co2_multiple=2.0,
                                        co2_path=p.co2_path, co2_csv=p.co2_csv)

    @property
    def time_dependent(self) -> bool:
        """Whether the tendency depends on model time over ``t ≥ 0``: a CO₂ path that changes
        after t = 0 (ramps, paths, files, a step after t = 0); a constant level or a step at or
        before t = 0 is constant there. :class:`~dynlab.emulators.reference.ReferenceEmulator`
        carries a clock for such systems instead of restarting each step at t = 0."""
        from .scenarios import AbruptCO2, ConstantCO2

        s = self.scenario
        return not (isinstance(s, ConstantCO2) or (isinstance(s, AbruptCO2) and s.onset <= 0.0))

    def forcing(self, t: float) -> float:
        """CO₂ forcing :math:`F(t)` in W m⁻² at model time ``t`` (years) of the configured level."""
        p = self.params
        return co2_forcing(self.scenario.co2(float(t)), p.co2_reference, p.co2_forcing_scale)

    def _raised(self, t: float) -> bool:
        return self._probe.co2(float(t)) != self.params.co2_reference

    def forcing_like(self, t: float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
        """:math:`F(t)`: a float, or ``(M, 1)`` on ``x``'s dtype and device for per-member levels."""
        multiple = self._member_values.get("co2_multiple")
        if multiple is None:
            return self.forcing(float(t))
        if not self._raised(float(t)):
            return 0.0
        return (self.params.co2_forcing_scale * torch.log(multiple)).to(dtype=x.dtype, device=x.device)[:, None]

    def co2_forcing_series(self, times: torch.Tensor, dtype: torch.dtype = torch.float64
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """``co2`` (ppm) and ``forcing`` (W m⁻²) at ``times`` ``(T,)``: each ``(T,)``, or
        ``(M, T)`` for a system bound to per-member levels."""
        p = self.params
        multiple = self._member_values.get("co2_multiple")
        if multiple is None:
            co2 = self.scenario.co2_series(times.cpu()).to(dtype=dtype, device=times.device)
            forcing = torch.tensor([self.forcing(float(t)) for t in times.cpu()], dtype=dtype, device=times.device)
            return co2, forcing
        raised = torch.tensor([self._raised(float(t)) for t in times.cpu()], device=times.device)
        k = multiple.to(dtype=torch.float64, device=times.device)[:, None]
        co2 = torch.where(raised, p.co2_reference * k, torch.full_like(k, p.co2_reference))
        forcing = torch.where(raised, p.co2_forcing_scale * torch.log(k), torch.zeros_like(k))
        return co2.to(dtype), forcing.to(dtype)

    def time_outputs(self, times, dtype=torch.float64):
        """The scenario's ``co2`` (ppm) and its ``forcing`` (W m⁻²) at the saved times."""
        co2, forcing = self.co2_forcing_series(times, dtype)
        return {"co2": co2, "forcing": forcing}

    # -- per-member CO₂ levels -------------------------------------------------------------
    def member_parameters(self, rng: "CounterRNG", dtype=torch.float64, device="cpu") -> dict[str, torch.Tensor]:
        """The drawn ``co2_multiple`` per member, ``(M,)`` (nothing without ``randomize``
        or for a system already bound)."""
        if self._member_values:
            return {}
        return draw_member_parameters(rng, self.params.randomizable, self.params.randomize, dtype, device)

    def bind(self, values: Mapping[str, torch.Tensor]):
        """A copy of this system with per-member ``co2_multiple`` values ``(M,)``."""
        if values and self._probe is None:
            p = self.params
            if not (isinstance(p.scenario, str) and p.scenario in ("constant", "abrupt")):
                raise ValueError(f"per-member co2_multiple needs scenario constant or abrupt, got {p.scenario!r}")
            self._probe = make_scenario(p.scenario, co2_reference=p.co2_reference, co2_multiple=2.0)
        bound = copy.copy(self)
        bound._member_values = check_member_values(self.params, self.name, values, self.params.randomizable)
        return bound

    def forcing_variables(self) -> tuple[Variable, ...]:
        """The scenario's outputs (role ``forcing``) and the drawn level, if any."""
        out = (Variable("co2", ("time",), "ppm", "atmospheric CO2 concentration", role="forcing"),
               Variable("forcing", ("time",), "W m-2", "CO2 radiative forcing 5.35 ln(co2/co2_reference)",
                        role="forcing"))
        if self.params.randomize:
            out += (Variable("co2_multiple", (), "1", "CO2 level as a multiple of co2_reference (drawn per member)",
                             role="forcing"),)
        return out
