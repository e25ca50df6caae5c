"""Integrators by name: ``make_integrator("rk4")``, ``make_integrator("dopri5", rtol=1e-8)``,
``make_integrator("imex")`` and ``make_integrator("etdrk4")`` for split systems."""
from .base import (INTEGRATORS, AbstractFixedStepIntegrator, AbstractIntegrator,
                   make_integrator, register_integrator)
from .dopri5 import Dopri5
from .etdrk4 import ETDRK4
from .euler_maruyama import EulerMaruyama
from .imex import IMEXARS222, IMEXEuler
from .projected import ProjectedIntegrator
from .rk4 import RK4
from .symplectic import ImplicitMidpoint, Leapfrog, Yoshida4  # noqa: F401

__all__ = ["INTEGRATORS", "AbstractIntegrator", "AbstractFixedStepIntegrator", "make_integrator",
           "register_integrator", "RK4", "Dopri5", "EulerMaruyama", "IMEXARS222", "IMEXEuler",
           "ProjectedIntegrator", "ETDRK4"]
