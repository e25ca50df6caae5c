"""Slab-ocean climate under CO₂ scenarios: a 0-D energy balance and a latitudinal EBM.

* :class:`SlabOcean0D` (``slab_ocean_0d``): :math:`C\\,dT/dt = F(t) + λT (+ σξ)`.
* :class:`EnergyBalance1D` (``ebm_1d``): the diffusive latitudinal energy-balance
  model with ice-albedo feedback, seasonal or annual insolation, q-flux, weather
  noise and a closed heat budget.
* Scenarios (:mod:`.scenarios`): CO₂ concentration paths passed into a system.
* Insolation (:mod:`.insolation`): daily means from orbital geometry, annual means.

>>> from simulators import make_system
>>> ebm = make_system("ebm_1d", insolation="annual_p2", scenario="abrupt_2x", n_lat=30)
>>> ebm.forcing(1.0)  # W m-2
3.708...
"""
from .common import SECONDS_PER_YEAR, TIME_UNITS, slab_heat_capacity
from .ebm1d import INSOLATIONS, EnergyBalance1D, LatitudeGrid, ice_edge_latitude
from .insolation import (DAYS_PER_YEAR, EARTH_ORBIT_1950, annual_mean_insolation, daily_insolation, declination,
                         legendre_p2, p2_insolation, solar_longitude)
from .scenarios import (MYHRE_FORCING_SCALE, PREINDUSTRIAL_CO2, SCENARIOS, AbruptCO2, AbstractScenario, CO2Path,
                        CompoundRampCO2, ConstantCO2, co2_forcing, make_scenario)
from .slab0d import SlabOcean0D

__all__ = [
    "SlabOcean0D", "EnergyBalance1D", "LatitudeGrid", "ice_edge_latitude", "INSOLATIONS",
    "AbstractScenario", "ConstantCO2", "AbruptCO2", "CompoundRampCO2", "CO2Path", "SCENARIOS", "make_scenario",
    "co2_forcing", "PREINDUSTRIAL_CO2", "MYHRE_FORCING_SCALE",
    "daily_insolation", "annual_mean_insolation", "p2_insolation", "solar_longitude", "declination", "legendre_p2",
    "DAYS_PER_YEAR", "EARTH_ORBIT_1950", "SECONDS_PER_YEAR", "TIME_UNITS", "slab_heat_capacity",
]
