r"""Keep a state in its domain: apply a projection after every step of a fixed-step integrator.

For an SDE on :math:`x \ge 0` whose drift runs away for :math:`x < 0` (the May
grazing model), reflection at the boundary

.. math::  x_{n+1} = \bigl|\,x_n + f(t_n, x_n)\,h + g(t_n, x_n)\sqrt{h}\,\xi_n\,\bigr|

is the Euler–Maruyama scheme of the SDE with a reflecting barrier at 0. A
system asks for it with ``has_projection = True`` and its ``project`` hook;
the driver (:func:`simulators.run_members`) then wraps the integrator it is
given in :class:`ProjectedIntegrator`. The noise is drawn by the wrapped
integrator's own loop (one counter-based stream per member and global step),
so datasets stay bit-identical whatever the block size.
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import AbstractFixedStepIntegrator, AbstractIntegrator

__all__ = ["ProjectedIntegrator"]


class ProjectedIntegrator(AbstractFixedStepIntegrator):
    """``inner``'s step followed by ``project``: :math:`x_{n+1} = P(Φ_h(t_n, x_n, ξ_n))`.

    Args:
        inner: a fixed-step integrator (``euler_maruyama``, ``rk4``, ...).
        project: a map from states ``(*batch, *state_shape)`` to states of the
            same shape, applied after every step (e.g. ``torch.abs``).
        reason: why the projection is needed (named in the error for an adaptive ``inner``).

    Raises ``ValueError`` naming ``inner`` if it is not a fixed-step method (an
    adaptive solver has no step to project after).
    """

    def __init__(self, inner: AbstractIntegrator, project: Callable[[torch.Tensor], torch.Tensor], *,
                 reason: str = "the state is projected after every step"):
        if not isinstance(inner, AbstractFixedStepIntegrator):
            raise ValueError(f"{reason}, which needs a fixed-step integrator such as euler_maruyama; "
                             f"got {getattr(inner, 'name', type(inner).__name__)!r}")
        if not callable(project):
            raise ValueError(f"project must be callable, got {project!r}")
        super().__init__(compile=inner.compile)
        self.inner = inner
        self.project = project
        # the wrapper behaves as ``inner`` in every respect but the projection
        self.name = inner.name
        self.stochastic = inner.stochastic
        self.batch_independent = inner.batch_independent

    def options(self):
        return self.inner.options()

    def check_system(self, system):
        self.inner.check_system(system)

    def step(self, system, t, x, dt, noise=None):
        return self.project(self.inner.step(system, t, x, dt, noise))
