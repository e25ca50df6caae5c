r"""Hamiltonian systems: :math:`\dot q = \partial_p H,\ \dot p = -\partial_q H - \gamma\,\partial_p H`.

Registered systems: ``mass_spring``, ``pendulum``, ``double_pendulum``,
``henon_heiles``, ``kepler``, ``three_body`` and ``n_body``. Each exposes
``hamiltonian(q, p)``, ``dH_dq(q, p)``, ``dH_dp(q, p)``, ``split``/``join``
of the flat state ``(..., 2·dof)`` and a ``separable`` flag, which the
symplectic integrators (``leapfrog``, ``yoshida4``,
``implicit_midpoint``; :mod:`simulators.integrators.symplectic`) use.

>>> from simulators import make_system, make_integrator, TimeGrid, run_members
>>> spring = make_system("mass_spring")
>>> out = run_members(spring, make_integrator("leapfrog"), TimeGrid(dt=0.01, save_every=0.1, t_end=1.0),
...                   seed=0, members=range(3))
>>> sorted(out), tuple(out["q"].shape)
(['H', 'p', 'q'], (3, 11, 1))
"""
from .base import AbstractHamiltonianSystem, HamiltonianParams, check_range
from .n_body import (FIGURE_EIGHT_PERIOD, FIGURE_EIGHT_POSITIONS, FIGURE_EIGHT_VELOCITIES,
                     AbstractGravitatingBodies, Kepler, NBody, ThreeBody)
from .systems import HENON_HEILES_ESCAPE_ENERGY, DoublePendulum, HenonHeiles, MassSpring, Pendulum

__all__ = [
    "AbstractHamiltonianSystem", "HamiltonianParams", "AbstractGravitatingBodies", "check_range",
    "MassSpring", "Pendulum", "DoublePendulum", "HenonHeiles", "Kepler", "ThreeBody", "NBody",
    "HENON_HEILES_ESCAPE_ENERGY", "FIGURE_EIGHT_POSITIONS", "FIGURE_EIGHT_VELOCITIES", "FIGURE_EIGHT_PERIOD",
]
