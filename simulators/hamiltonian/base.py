r"""Hamiltonian systems in canonical coordinates, with optional linear friction.

A system with ``dof`` degrees of freedom has a Hamiltonian :math:`H(q, p)` and
evolves by

.. math::
    \dot q = \frac{\partial H}{\partial p}, \qquad
    \dot p = -\frac{\partial H}{\partial q} - \gamma\,\frac{\partial H}{\partial p},

where :math:`\gamma \ge 0` is the friction coefficient (``friction``). Along a
solution :math:`\dot H = -\gamma\,\lVert \partial H/\partial p \rVert^2`
exactly (shared/PHYSICS.md), so with :math:`\gamma = 0` the energy is
conserved.

State layout: one flat tensor ``(..., 2·dof)`` holding ``q`` then ``p``.
:meth:`AbstractHamiltonianSystem.split` returns ``q`` and ``p`` in the
system's natural shape :attr:`~AbstractHamiltonianSystem.q_shape`
(``(dof,)`` for the mechanical systems, ``(body, axis)`` for gravitating
bodies) and :meth:`~AbstractHamiltonianSystem.join` flattens them back.

Per-member parameters. ``randomize={name: [low, high]}`` draws that parameter
uniformly on ``(low, high]`` for every member from the member's own
counter-based stream (``STREAM_PARAMS``), so a member's value depends only on
``(seed, member index)``. The system is then *bound* to the drawn values
(:meth:`~AbstractHamiltonianSystem.bind`): its coefficients become tensors of
shape ``(M, 1, ...)`` that broadcast against states whose **last batch
dimension is the member** (``(M, *state)`` or ``(T, M, *state)``). The drawn
values are returned as dataset variables on ``member``.
"""
from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..core import AbstractSystem, Params, Variable, check_finite_parameter
from ..members import check_member_values, check_randomize, check_range, draw_member_parameters
from ..random import CounterRNG

__all__ = ["HamiltonianParams", "AbstractHamiltonianSystem", "check_range"]  # check_range: from ..members

#: long names of parameters, for the per-member variables of randomised runs
PARAMETER_LONG_NAMES = {
    "friction": "friction coefficient gamma",
    "k": "spring constant",
    "m": "mass",
    "g": "gravitational acceleration",
    "l": "pendulum length",
    "m1": "mass of body 1",
    "m2": "mass of body 2",
    "l1": "length of the upper rod",
    "l2": "length of the lower rod",
    "G": "gravitational constant",
    "mass": "mass of each body",
    "softening": "gravitational softening length",
}


@dataclass(frozen=True)
class HamiltonianParams(Params):
    """Parameters common to all Hamiltonian systems.

    ``friction``: the coefficient γ ≥ 0 of :math:`-\\gamma\\,\\partial H/\\partial p`.
    ``randomize``: ``None`` or a mapping ``{name: [low, high]}`` of parameters
    drawn per member, uniform on ``(low, high]``; allowed names are the
    subclass's :attr:`randomizable`. Each end of a range must itself be a valid
    value of that parameter.
    """

    friction: float = 0.0
    randomize: Any = None

    #: names of the parameters that ``randomize`` may draw per member
    randomizable = ("friction",)

    def validate(self) -> None:
        check_finite_parameter("friction", self.friction, non_negative=True)
        self.validate_physics()
        object.__setattr__(self, "randomize", check_randomize(self, self.randomize, self.randomizable))

    def validate_physics(self) -> None:
        """Checks of a subclass's own parameters; raise ``ValueError`` naming the value."""


class AbstractHamiltonianSystem(AbstractSystem):
    r"""A system :math:`\dot q = \partial_p H,\ \dot p = -\partial_q H - \gamma\,\partial_p H`.

    Subclasses set ``name``, ``Params`` (a :class:`HamiltonianParams`),
    ``separable`` and implement :attr:`q_shape`, :meth:`hamiltonian`,
    :meth:`dH_dq`, :meth:`dH_dp`, :meth:`sample_initial` and the metadata.
    ``q`` and ``p`` passed to the Hamiltonian and its gradients have shape
    ``(..., *q_shape)``; the results have shape ``(...)`` for ``H`` and
    ``(..., *q_shape)`` for the gradients.

    Symplectic splitting integrators (``leapfrog``, ``yoshida4``) use
    :meth:`dH_dq` and :meth:`dH_dp` directly and need ``separable`` (``H =
    T(p) + V(q)``, so :math:`\partial_q H` depends on ``q`` only and
    :math:`\partial_p H` on ``p`` only) and no friction.
    """

    #: True when H = T(p) + V(q)
    separable: ClassVar[bool] = True
    time_units = "1"

    def __init__(self, params: Params | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._member_values: dict[str, torch.Tensor] = {}
        drawn = (self.params.randomize or {}).get("friction")
        self._has_friction = self.params.friction > 0 or (drawn is not None and drawn[1] > 0)

    # -- layout -----------------------------------------------------------------------
    @property
    @abstractmethod
    def q_shape(self) -> tuple[int, ...]:
        """Shape of one member's coordinates ``q`` (and momenta ``p``)."""

    @property
    def dof(self) -> int:
        """Number of degrees of freedom (the size of ``q``)."""
        return math.prod(self.q_shape)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2 * self.dof,)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat state ``(..., 2·dof)`` → ``q``, ``p`` each ``(..., *q_shape)``."""
        if x.shape[-1] != 2 * self.dof:
            raise ValueError(f"{self.name} states have a last dimension of {2 * self.dof}, got shape {tuple(x.shape)}")
        n = self.dof
        q, p = x[..., :n], x[..., n:]
        if len(self.q_shape) == 1:
            return q, p
        lead = x.shape[:-1]
        return q.reshape(*lead, *self.q_shape), p.reshape(*lead, *self.q_shape)

    def join(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``q``, ``p`` each ``(..., *q_shape)`` → flat state ``(..., 2·dof)``."""
        k = len(self.q_shape)
        return torch.cat((q.flatten(-k) if k > 1 else q, p.flatten(-k) if k > 1 else p), dim=-1)

    # -- physics ----------------------------------------------------------------------
    @abstractmethod
    def hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The energy :math:`H(q, p)`, shape ``(...)``."""

    @abstractmethod
    def dH_dq(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        r""":math:`\partial H/\partial q`, shape ``(..., *q_shape)``."""

    @abstractmethod
    def dH_dp(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        r""":math:`\partial H/\partial p`, shape ``(..., *q_shape)``."""

    def coef(self, name: str, trailing: int | None = None) -> float | torch.Tensor:
        """A parameter's value: a float, or for a system bound to per-member values a
        tensor ``(M, 1, …)`` with ``trailing`` ones (default ``len(q_shape)``) that
        broadcasts against ``(..., M, *q_shape)``."""
        value = self._member_values.get(name)
        if value is None:
            return getattr(self.params, name)
        if trailing is None:
            trailing = len(self.q_shape)
        return value.reshape(value.shape[0], *([1] * trailing))

    @property
    def has_friction(self) -> bool:
        """True when γ > 0 for some member (a fixed γ > 0, or a drawn range reaching above 0)."""
        return self._has_friction

    def vector_field(self, t, x):
        r""":math:`(\partial_p H,\; -\partial_q H - \gamma\,\partial_p H)` on flat states ``(..., 2·dof)``."""
        q, p = self.split(x)
        dq = self.dH_dp(q, p)
        dp = -self.dH_dq(q, p)
        if self.has_friction:
            dp = dp - self.coef("friction") * dq
        return self.join(dq, dp)

    def energy_tendency(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        r""":math:`\dot H = -\gamma\,\lVert\partial H/\partial p\rVert^2`, shape ``(...)``."""
        v = self.dH_dp(q, p)
        k = len(self.q_shape)
        return -self.coef("friction", trailing=0) * (v * v).sum(dim=tuple(range(-k, 0)))

    @property
    def default_integrator(self) -> str:  # type: ignore[override]
        """``leapfrog`` for a separable system without friction, else ``rk4``."""
        return "leapfrog" if self.separable and not self.has_friction else "rk4"

    # -- per-member parameters --------------------------------------------------------
    def member_parameters(self, rng: CounterRNG, dtype: torch.dtype = torch.float64,
                          device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The driver's per-member-parameter hook: :meth:`sample_parameters`, or nothing
        for a system already bound to per-member values."""
        if self._member_values:
            return {}
        return self.sample_parameters(rng, dtype=dtype, device=device)

    def sample_parameters(self, rng: CounterRNG, dtype: torch.dtype = torch.float64,
                          device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Draw the ``randomize`` parameters: ``name -> (M,)``, uniform on ``(low, high]``.

        Parameter ``randomizable[i]`` uses element ``i`` of one uniform draw of the
        member's ``STREAM_PARAMS`` stream, so adding or removing another drawn
        parameter does not change it."""
        return draw_member_parameters(rng, self.params.randomizable, self.params.randomize, dtype, device)

    def bind(self, values: Mapping[str, torch.Tensor]) -> "AbstractHamiltonianSystem":
        """A copy of this system whose parameters ``values`` (each ``(M,)``) differ per member.

        The copy's coefficients broadcast against states whose last batch
        dimension is the member (``(M, 2·dof)`` or ``(T, M, 2·dof)``)."""
        bound = copy.copy(self)
        bound._member_values = check_member_values(self.params, self.name, values, self.params.randomizable)
        return bound

    @property
    def members_bound(self) -> int | None:
        """Number of members the system is bound to, or ``None``."""
        for value in self._member_values.values():
            return int(value.shape[0])
        return None

    def _member_last(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Apply ``fn`` (flat states → ``(...)`` or ``(..., k)``) to states ``(M, ..., 2·dof)``
        of a bound system by moving the member dimension next to the state."""
        if not self._member_values or x.ndim <= 2:
            return fn(x)
        member_at = x.ndim - 2  # where the member dim lands: (..., M, 2·dof) -> (..., M[, k])
        return fn(x.movedim(0, -2)).movedim(member_at, 0)

    # -- outputs ----------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`H` of flat states ``(..., 2·dof)`` (member first for a bound system)."""
        return self._member_last(x, lambda y: self.hamiltonian(*self.split(y)))

    def _parameter_variables(self) -> tuple[Variable, ...]:
        ranges = self.params.randomize or {}
        return tuple(Variable(name, (), "1", f"{PARAMETER_LONG_NAMES.get(name, name)} (drawn per member)",
                              role="forcing")
                     for name in self.params.randomizable if name in ranges)

    def invariants(self, x):
        """``energy`` H and its tendency :math:`\\dot H = -\\gamma\\lVert\\partial_p H\\rVert^2`."""
        return {"energy": self.energy(x),
                "energy_tendency": self._member_last(x, lambda y: self.energy_tendency(*self.split(y)))}

    def __repr__(self) -> str:
        text = super().__repr__()
        if self._member_values:
            text += f" bound to {self.members_bound} members"
        return text
