"""Tipping-point models: critical transitions, their null models and the SDE test bed.

* :class:`MayGrazing` (``may_grazing``): May's grazing model, constant or ramped
  grazing through the fold, reflected at 0.
* :class:`OrnsteinUhlenbeck` (``ou``): the null model, with its exact transition law.
* :class:`LinearisedSaddleNode` (``lsn``): Boettiger & Hastings' linearised
  saddle-node with R(t) = R0 + m t and its moment equations.
* :class:`AlleeBirthDeath` (``allee``): an individual-based Allee population,
  simulated exactly (``gillespie_ramp``: the one SSA engine, :mod:`simulators.jump.engine`)
  with a ramped or constant death rate.
* :class:`GeometricBrownianMotion` (``gbm``): the multiplicative-noise test SDE
  with its exact solution (Euler–Maruyama order checks).

Equations and reference numbers: ``shared/PHYSICS.md`` (Critical transitions;
Stochastic integration).
"""
from ..jump.ramped import ramped_birth_death
from .allee import AlleeBirthDeath
from .gbm import GeometricBrownianMotion, gbm_exact
from .lsn import LinearisedSaddleNode, lsn_moments
from .may import (Fold, MayGrazing, may_drift, may_drift_derivative, may_equilibria, may_folds,
                  may_potential)
from .ou import OrnsteinUhlenbeck, ou_exact_paths, ou_transition
from .projection import ProjectedIntegrator
from .ramp import LinearRamp

__all__ = [
    "MayGrazing", "OrnsteinUhlenbeck", "LinearisedSaddleNode", "AlleeBirthDeath", "GeometricBrownianMotion",
    "Fold", "may_drift", "may_drift_derivative", "may_potential", "may_equilibria", "may_folds",
    "ou_transition", "ou_exact_paths", "lsn_moments", "gbm_exact",
    "LinearRamp", "ProjectedIntegrator", "ramped_birth_death",
]
