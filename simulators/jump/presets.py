r"""Registered jump-process systems: the flashing ratchet, the FIM-style MJP prior,
and the birth–death, Lotka–Volterra and Schlögl reaction networks.

Equations, parameter sets and reference numbers: ``shared/PHYSICS.md``
(Markov jump processes) and the docstrings below.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import check_finite_parameter, register_system
from .prior import sample_rate_matrices
from .rate_matrix import flashing_ratchet_rate_matrix
from .reactions import ReactionNetwork
from .systems import AbstractMarkovJumpSystem, AbstractReactionSystem, MJPParams, PathParams, _check_int

__all__ = ["FlashingRatchet", "MJPPrior", "BirthDeath", "LotkaVolterra", "Schlogl"]


@register_system
class FlashingRatchet(AbstractMarkovJumpSystem):
    r"""The discrete flashing ratchet (FIM; NeuralMJP App. J.1): a 6-state MJP.

    States 0–2: potential on, :math:`V_i = iV`, rates :math:`\exp(−(V_j − V_i)/2)`
    among them; states 3–5: potential off, rate ``b`` among them; switching
    :math:`i \leftrightarrow i+3` at rate ``r``. With V = r = b = 1 the stationary
    distribution is π ≈ (0.301, 0.137, 0.062, 0.200, 0.159, 0.141), the relaxation
    time 0.5 and the entropy production ≈ 0.179 per unit time. Every member is the
    same process (``rate_matrix`` is stored per member all the same).
    """

    name = "flashing_ratchet"

    @dataclass(frozen=True)
    class Params(MJPParams):
        V: float = 1.0   # potential step
        r: float = 1.0   # switching rate on <-> off
        b: float = 1.0   # jump rate with the potential off

        def validate(self):
            super().validate()
            check_finite_parameter("r", self.r, positive=True)  # r = 0 splits the chain in two
            check_finite_parameter("b", self.b, non_negative=True)

    @property
    def max_states(self):
        return 6

    def rate_matrices(self, members, seed):
        p = self.params
        Q = flashing_ratchet_rate_matrix(p.V, p.r, p.b)
        M = len(members)
        return Q.expand(M, 6, 6).clone(), torch.full((M,), 6, dtype=torch.int64)


@register_system
class MJPPrior(AbstractMarkovJumpSystem):
    r"""Random MJPs for synthetic training corpora (FIM style; :mod:`simulators.jump.prior`).

    Each member draws ``n_states`` uniformly in ``[min_states, max_states]`` and
    its off-diagonal rates from ``rate_scale · Beta(alpha, beta)``; rate matrices
    are padded to ``max_states`` (variable ``n_states`` per member). The initial
    law is flat-Dirichlet random by default (``initial``). FIM's corpus mixes
    1–10 % mislabelling, regular and irregular grids of up to 100 points and up
    to 300 paths per process: set ``mislabel_rate``, ``grid``, ``n_obs`` and
    ``n_paths`` per dataset.
    """

    name = "mjp_prior"

    @dataclass(frozen=True)
    class Params(MJPParams):
        min_states: int = 2
        max_states: int = 6
        alpha: float = 1.0       # Beta shape a of the rates
        beta: float = 1.0        # Beta shape b of the rates
        rate_scale: float = 1.0  # rates lie in (0, rate_scale]
        initial: str = "dirichlet"

        def validate(self):
            super().validate()
            _check_int("min_states", self.min_states, 1, 64)
            _check_int("max_states", self.max_states, self.min_states, 64)
            if self.mislabel_rate > 0 and self.min_states < 2:
                raise ValueError(f"mislabel_rate={self.mislabel_rate!r} needs min_states >= 2, "
                                 f"got {self.min_states!r}")
            for label in ("alpha", "beta", "rate_scale"):
                check_finite_parameter(label, getattr(self, label), positive=True)

    @property
    def max_states(self):
        return self.params.max_states

    def rate_matrices(self, members, seed):
        p = self.params
        return sample_rate_matrices(members, seed, min_states=p.min_states, max_states=p.max_states,
                                    alpha=p.alpha, beta=p.beta, rate_scale=p.rate_scale)


def _check_count(name: str, value) -> None:
    _check_int(name, value, 0)


@register_system
class BirthDeath(AbstractReactionSystem):
    r"""Immigration–death: :math:`∅ \xrightarrow{b} X`, :math:`X \xrightarrow{d\,x} ∅`.

    Stationary law Poisson(b/d); started empty, :math:`X(t) \sim \text{Poisson}((b/d)(1 − e^{−dt}))`
    at every t. Preset (the GillesPy2-style benchmark): b = 10, d = 0.1, x(0) = 0,
    observed at 101 times on [0, 100] (about 2,000 reactions per path).
    """

    name = "birth_death"

    @dataclass(frozen=True)
    class Params(PathParams):
        birth: float = 10.0  # immigration rate b
        death: float = 0.1   # death rate d per individual
        x0: int = 0          # initial count

        def validate(self):
            super().validate()
            check_finite_parameter("birth", self.birth, non_negative=True)
            check_finite_parameter("death", self.death, non_negative=True)
            _check_count("x0", self.x0)

    @property
    def network(self):
        p = self.params
        return ReactionNetwork(("X",), ("birth", "death"), ((0,), (1,)), ((1,), (0,)), (p.birth, p.death))

    @property
    def initial_counts(self):
        return (self.params.x0,)


@register_system
class LotkaVolterra(AbstractReactionSystem):
    r"""Stochastic Lotka–Volterra predator–prey (Wilkinson, *Stochastic Modelling for
    Systems Biology*): prey :math:`X \xrightarrow{c_1 x} 2X`, predation
    :math:`X + Y \xrightarrow{c_2 x y} 2Y`, predator death :math:`Y \xrightarrow{c_3 y} ∅`.

    Preset: c1 = 1, c2 = 0.005, c3 = 0.6, (x, y)(0) = (50, 100). Oscillations of
    growing amplitude; either species can die out (prey extinction then predator
    extinction; with no predators the prey grow without bound).
    """

    name = "lotka_volterra"

    @dataclass(frozen=True)
    class Params(PathParams):
        prey_birth: float = 1.0
        predation: float = 0.005
        predator_death: float = 0.6
        prey0: int = 50
        predator0: int = 100

        def validate(self):
            super().validate()
            for label in ("prey_birth", "predation", "predator_death"):
                check_finite_parameter(label, getattr(self, label), non_negative=True)
            _check_count("prey0", self.prey0)
            _check_count("predator0", self.predator0)

    @property
    def network(self):
        p = self.params
        return ReactionNetwork(("prey", "predator"), ("prey_birth", "predation", "predator_death"),
                               reactants=((1, 0), (1, 1), (0, 1)), products=((2, 0), (0, 2), (0, 0)),
                               rate_constants=(p.prey_birth, p.predation, p.predator_death))

    @property
    def initial_counts(self):
        return (self.params.prey0, self.params.predator0)


@register_system
class Schlogl(AbstractReactionSystem):
    r"""The Schlögl model (Schlögl 1972), bistable: with buffered pools A and B,

    :math:`A + 2X \to 3X` (:math:`a_1 = c_1 A\,x(x−1)/2`),
    :math:`3X \to A + 2X` (:math:`a_2 = c_2\,x(x−1)(x−2)/6`),
    :math:`B \to X` (:math:`a_3 = c_3 B`), :math:`X \to B` (:math:`a_4 = c_4 x`).

    Preset (the standard set of Gillespie's and StochKit's examples): c1 = 3e-7,
    c2 = 1e-4, c3 = 1e-3, c4 = 3.5, A = 1e5, B = 2e5, x(0) = 250. The rate
    equation has stable states x ≈ 85 and x ≈ 567 and an unstable one at
    x ≈ 248, so paths from 250 split between the two wells (thousands of
    reactions per unit time in the upper one).
    """

    name = "schlogl"

    @dataclass(frozen=True)
    class Params(PathParams):
        c1: float = 3e-7
        c2: float = 1e-4
        c3: float = 1e-3
        c4: float = 3.5
        A: float = 1e5
        B: float = 2e5
        x0: int = 250

        def validate(self):
            super().validate()
            for label in ("c1", "c2", "c3", "c4", "A", "B"):
                check_finite_parameter(label, getattr(self, label), non_negative=True)
            _check_count("x0", self.x0)

    @property
    def network(self):
        p = self.params
        return ReactionNetwork(("X",), ("A+2X->3X", "3X->A+2X", "B->X", "X->B"),
                               reactants=((2,), (3,), (0,), (1,)), products=((3,), (2,), (1,), (0,)),
                               rate_constants=(p.c1 * p.A, p.c2, p.c3 * p.B, p.c4))

    @property
    def initial_counts(self):
        return (self.params.x0,)
