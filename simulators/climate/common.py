r"""What the climate systems share: constants, the slab heat capacity, scenario parameters.

Time in the climate systems is in years (CF units ``"year"``); fluxes are in
W m⁻². A slab of water of depth ``h`` has heat capacity :math:`C = ρ_w c_w h`
(J m⁻² K⁻¹), 4.18 MJ m⁻² K⁻¹ per metre with :math:`c_w` = 4181.3 J kg⁻¹ K⁻¹
(climlab's value) and :math:`ρ_w` = 1000 kg m⁻³. With time in years the
tendency is :math:`dT/dt = \text{flux} / C_{yr}`, :math:`C_{yr} = C / s_{yr}`
(W yr m⁻² K⁻¹), :math:`s_{yr}` = :data:`SECONDS_PER_YEAR`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core import Params, check_finite_parameter
from .insolation import DAYS_PER_YEAR
from .scenarios import MYHRE_FORCING_SCALE, PREINDUSTRIAL_CO2, AbstractScenario, make_scenario

__all__ = ["SECONDS_PER_YEAR", "WATER_DENSITY", "WATER_HEAT_CAPACITY", "TIME_UNITS", "slab_heat_capacity",
           "ForcingParams"]

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
    """

    scenario: Any = "constant"
    co2_reference: float = PREINDUSTRIAL_CO2
    co2_multiple: float = 1.0
    co2_path: Any = None
    co2_csv: Any = None
    co2_forcing_scale: float = MYHRE_FORCING_SCALE

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

    def make_scenario(self) -> AbstractScenario:
        return make_scenario(self.scenario, co2_reference=self.co2_reference, co2_multiple=self.co2_multiple,
                             co2_path=self.co2_path, co2_csv=self.co2_csv)
