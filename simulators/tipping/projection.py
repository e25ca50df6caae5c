"""Compatibility name: the projected integrator lives in :mod:`simulators.integrators.projected`;
systems ask for it through the ``has_projection``/``project`` hooks of the driver."""
from __future__ import annotations

from ..integrators.projected import ProjectedIntegrator

__all__ = ["ProjectedIntegrator"]
