"""Integrators by name: ``make_integrator("rk4")``, ``make_integrator("dopri5", rtol=1e-8)``."""
from .base import (INTEGRATORS, AbstractFixedStepIntegrator, AbstractIntegrator,
                   make_integrator, register_integrator)
from .dopri5 import Dopri5
from .euler_maruyama import EulerMaruyama
from .rk4 import RK4
from .symplectic import ImplicitMidpoint, Leapfrog, Yoshida4  # noqa: F401

__all__ = ["INTEGRATORS", "AbstractIntegrator", "AbstractFixedStepIntegrator", "make_integrator",
           "register_integrator", "RK4", "Dopri5", "EulerMaruyama"]
