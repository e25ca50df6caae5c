r"""An individual-based population with an Allee effect, simulated exactly (Gillespie).

Individuals ``n`` in a habitat of size N (densities :math:`x = n/N`) are born
and die with propensities

.. math::
    a_+(n) = β\,\frac{n^2}{A N + n} \quad (n \to n+1), \qquad
    a_−(t, n) = μ(t)\,n + ν\,\frac{n^2}{N} \quad (n \to n-1),

so the per-capita birth rate :math:`β n/(AN + n)` grows with density (mates
are easier to find: the Allee effect, A the density at which it is half
saturated), deaths are density-independent at rate μ(t) plus competition ν.
The death rate is a forcing time series, :math:`μ(t) = μ_0 + \dot μ \max(t, 0)`
(:class:`~simulators.tipping.ramp.LinearRamp`, :math:`\dot μ \ge 0`).

The mean-field (N → ∞) rate equation is

.. math:: \dot x = β\frac{x^2}{A + x} − μ x − ν x^2,

with the extinct state x = 0 always stable and, for :math:`μ < μ_c`, a stable
upper equilibrium and an unstable threshold, the positive roots of
:math:`νx^2 + (μ + νA − β)x + μA = 0`. They meet in a saddle-node at

.. math:: μ_c = (\sqrt β − \sqrt{νA})^2, \qquad x_c = \sqrt{μ_c A/ν}

(:meth:`AlleeBirthDeath.fold`; β=4, A=1, ν=1 gives μ_c = 1, x_c = 1).
Ramping μ past μ_c collapses the population. With :math:`\dot μ = 0` and a
small habitat, runs still go extinct now and then by demographic noise alone:
the stationary control of the prosecutor's fallacy (Boettiger & Hastings 2012)
— runs selected for having collapsed, with no bifurcation approached.

Events are simulated exactly by the one SSA engine (:func:`simulators.jump.engine.ssa`
with :func:`~simulators.jump.ramped.ramped_birth_death`: the ramp makes the death propensity grow linearly
between events, handled by the integrated hazard, with the kink where the ramp starts),
batched over members with no per-member Python loop; the spin-up (μ held) and the saved
run are one path from ``-spinup`` to ``t_end``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from ..core import Params, Variable, check_finite_parameter, register_system
from ..jump.engine import SSAOptions, path_keys, ssa
from ..jump.ramped import ramped_birth_death
from ..path import AbstractPathSystem
from ..random import CounterRNG
from .ramp import LinearRamp

__all__ = ["AlleeBirthDeath"]

@register_system
class AlleeBirthDeath(AbstractPathSystem):
    r"""Birth–death population with an Allee effect and a ramped death rate (module docstring).

    Parameters: ``N`` habitat size (an integer ≥ 1; counts scale as N), ``beta``
    maximal per-capita birth rate, ``A`` Allee half-saturation density, ``nu``
    competition, ``mu`` death rate at t ≤ 0 (held during the spin-up),
    ``mu_rate`` ≥ 0 its ramp rate, ``n0`` initial count (``None``: N times the
    upper equilibrium density at ``mu``, rounded).

    State: the count, shape ``(..., 1)`` (float, integer-valued). Output on
    ``(member, time)``: the population ``n`` and the driver ``mu``; on
    ``member``: ``extinction_time``, the exact time of the death that emptied
    the habitat (NaN if the population survived to t_end; negative if it died
    out during the spin-up). ``vector_field`` is the mean-field drift in counts,
    for reference; the data come from the exact SSA (``gillespie_ramp``, the one engine).
    """

    name = "allee"
    default_integrator = "gillespie_ramp"

    @dataclass(frozen=True)
    class Params(Params):
        N: int = 10
        beta: float = 4.0
        A: float = 1.0
        nu: float = 1.0
        mu: float = 0.4
        mu_rate: float = 0.0
        n0: int | None = None

        def validate(self):
            if isinstance(self.N, bool) or not isinstance(self.N, int) or self.N < 1:
                raise ValueError(f"parameter N must be an integer >= 1, got {self.N!r}")
            for name in ("beta", "A", "nu"):
                check_finite_parameter(name, getattr(self, name), positive=True)
            check_finite_parameter("mu", self.mu, non_negative=True)
            if self.mu_rate < 0:
                raise ValueError(f"parameter mu_rate must be >= 0 (the death rate ramps up towards the "
                                 f"collapse; exact event times need non-decreasing rates), got {self.mu_rate!r}")
            if self.n0 is not None:
                if isinstance(self.n0, bool) or not isinstance(self.n0, int) or self.n0 < 0:
                    raise ValueError(f"parameter n0 must be an integer >= 0 or null, got {self.n0!r}")
            else:
                has_fold = self.beta > self.nu * self.A
                mu_c = (math.sqrt(self.beta) - math.sqrt(self.nu * self.A)) ** 2 if has_fold else 0.0
                if self.mu >= mu_c:
                    raise ValueError(f"parameter mu={self.mu!r} is at or past the fold mu_c={mu_c:.6g}: there is "
                                     "no upper equilibrium to start from; lower mu or give n0")

    # -- physics ----------------------------------------------------------------------
    @cached_property
    def death_rate(self) -> LinearRamp:
        """μ(t) as a forcing time series (held at ``mu`` during the spin-up)."""
        return LinearRamp(self.params.mu, self.params.mu_rate)

    def fold(self) -> tuple[float, float]:
        r"""The mean-field saddle-node :math:`(μ_c, x_c) = ((\sqrt β − \sqrt{νA})^2, \sqrt{μ_c A/ν})`.

        Raises ``ValueError`` when β ≤ νA: births never outpace deaths, there is no upper branch.
        """
        p = self.params
        if p.beta <= p.nu * p.A:
            raise ValueError(f"no fold: beta={p.beta!r} <= nu*A={p.nu * p.A!r}, the population always dies out")
        mu_c = (math.sqrt(p.beta) - math.sqrt(p.nu * p.A)) ** 2
        return mu_c, math.sqrt(mu_c * p.A / p.nu)

    def equilibria(self, mu: float | None = None) -> tuple[float, ...]:
        """Positive mean-field equilibrium densities at death rate ``mu`` (default the
        initial one), increasing: (threshold, upper), or () past the fold."""
        p = self.params
        mu = p.mu if mu is None else mu
        b = mu + p.nu * p.A - p.beta
        disc = b * b - 4.0 * p.nu * mu * p.A
        if b >= 0 or disc < 0:
            return ()
        root = math.sqrt(disc)
        # product of the roots is μA/ν: the small one without cancellation
        upper = (-b + root) / (2.0 * p.nu)
        return (mu * p.A / (p.nu * upper), upper) if mu > 0 else (0.0, upper)

    def birth_death_propensities(self, t: torch.Tensor, n: torch.Tensor):
        r"""Propensities of birth and death at ``t`` and their time slopes after the ramp
        starts (t = 0), each ``(M,)`` (:func:`~simulators.jump.ramped.ramped_birth_death`).

        ``t``, ``n``: ``(M,)``. Only μ(t) depends on time: :math:`∂_t a_− = \dot μ\, n` from t = 0 on
        (μ is held before: the engine's holding time has its kink there).
        """
        p = self.params
        n2 = n * n
        birth = p.beta * n2 / (p.A * p.N + n)
        death = self.death_rate(t) * n + (p.nu / p.N) * n2
        death_slope = p.mu_rate * n if p.mu_rate else 0.0
        return birth, death, 0.0, death_slope

    @property
    def state_shape(self):
        return (1,)

    def vector_field(self, t, x):
        """Mean-field drift of the count, :math:`a_+(n) − a_−(t, n)` (same shape as ``x``)."""
        p = self.params
        return p.beta * x * x / (p.A * p.N + x) - self.death_rate(t) * x - p.nu * x * x / p.N

    def initial_count(self) -> int:
        p = self.params
        if p.n0 is not None:
            return p.n0
        return max(1, round(p.N * self.equilibria()[-1]))

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        return torch.full((len(rng.members), 1), float(self.initial_count()), dtype=dtype, device=device)

    # -- output -----------------------------------------------------------------------
    @property
    def variables(self):
        return (Variable("n", ("time",), "1", "population size n (individuals)"),
                Variable("mu", ("time",), "1", "per-capita death rate mu(t)", role="forcing"),
                Variable("extinction_time", (), self.time_units,
                         "time at which the population died out (NaN: survived to the end)", role="diagnostic"))

    def observables(self, x):
        return {"n": x[..., 0]}

    def simulate_paths(self, grid, *, seed, members, device="cpu", max_iterations=100_000_000):
        """Exact SSA from ``-grid.spinup`` (μ held at ``mu``) through the ramp to ``t_end``:
        ``{"n", "mu"}`` ``(M, T)`` on the save grid and ``extinction_time`` ``(M,)``."""
        members = torch.as_tensor(members, dtype=torch.int64).cpu()
        M = members.shape[0]
        times = grid.times.to(device=device, dtype=torch.float64)
        n0 = torch.full((M,), float(self.initial_count()), dtype=torch.float64, device=device)
        options = SSAOptions(t_end=grid.t_end, obs_times=times, t_start=-grid.spinup, max_iterations=max_iterations)
        result = ssa((n0,), ramped_birth_death(self.birth_death_propensities), keys=path_keys(members, 1)[:, 0],
                     seed=seed, options=options)
        return {"n": result.observed[0], "mu": self.death_rate.series(times, M),
                "extinction_time": result.absorbed_at}
