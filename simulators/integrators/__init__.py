"""Integrators by name: ``make_integrator("rk4")``, ``make_integrator("dopri5", rtol=1e-8)``,
``make_integrator("imex")`` for split systems."""
import importlib.util as _util

from .base import (INTEGRATORS, AbstractFixedStepIntegrator, AbstractIntegrator,
                   make_integrator, register_integrator)
from .dopri5 import Dopri5
from .euler_maruyama import EulerMaruyama
from .imex import IMEXARS222, IMEXEuler
from .projected import ProjectedIntegrator
from .rk4 import RK4
from .symplectic import ImplicitMidpoint, Leapfrog, Yoshida4  # noqa: F401

# exponential integrators on the split-system interface (ETDRK4) register themselves when present
if _util.find_spec(f"{__name__}.etdrk4") is not None:
    from . import etdrk4  # noqa: F401

__all__ = ["INTEGRATORS", "AbstractIntegrator", "AbstractFixedStepIntegrator", "make_integrator",
           "register_integrator", "RK4", "Dopri5", "EulerMaruyama", "IMEXARS222", "IMEXEuler",
           "ProjectedIntegrator"]
