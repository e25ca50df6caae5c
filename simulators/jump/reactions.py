r"""Mass-action reaction networks: species counts, propensities, stoichiometry.

A network of R reactions among S species is given by its reactant and product
stoichiometric coefficients :math:`ν^-_{rs}, ν^+_{rs} \ge 0` and rate constants
:math:`c_r \ge 0`. In the counts :math:`x \in \mathbb{N}^S`, reaction r fires
with the stochastic mass-action propensity (Gillespie 1977)

.. math::  a_r(x) = c_r \prod_s \binom{x_s}{ν^-_{rs}},

the number of distinct reactant combinations times :math:`c_r` (so
``2X → …`` has :math:`a = c\,x(x−1)/2`), and changes the counts by the net
stoichiometry :math:`ν_r = ν^+_r − ν^-_r`. Species held constant (buffered
pools such as A and B of the Schlögl model) are absorbed into :math:`c_r`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .engine import EventFn, SSAOptions, next_time, path_keys, ssa
from .paths import JumpPaths, flat_obs_times, member_index

__all__ = ["ReactionNetwork", "simulate_reactions"]


@dataclass(frozen=True)
class ReactionNetwork:
    """A mass-action network.

    Args:
        species: names of the S species (the order of the counts' last dim).
        reactions: names of the R reactions.
        reactants: ``(R, S)`` non-negative integers :math:`ν^-`.
        products: ``(R, S)`` non-negative integers :math:`ν^+`.
        rate_constants: ``(R,)`` :math:`c_r \\ge 0` (per unit time, per reactant combination).
    """

    species: tuple[str, ...]
    reactions: tuple[str, ...]
    reactants: tuple[tuple[int, ...], ...]
    products: tuple[tuple[int, ...], ...]
    rate_constants: tuple[float, ...]

    def __post_init__(self) -> None:
        to_tuple = lambda rows: tuple(tuple(int(v) for v in row) for row in rows)  # noqa: E731
        object.__setattr__(self, "species", tuple(str(s) for s in self.species))
        object.__setattr__(self, "reactions", tuple(str(r) for r in self.reactions))
        S, R = len(self.species), len(self.reactions)
        if S < 1 or R < 1:
            raise ValueError(f"a reaction network needs at least one species and one reaction, got {S} and {R}")
        for label in ("reactants", "products"):
            rows = getattr(self, label)
            if len(rows) != R or any(len(row) != S for row in rows):
                raise ValueError(f"{label} must have shape (R, S) = ({R}, {S})")
            for r, row in enumerate(rows):
                for s, v in enumerate(row):
                    if isinstance(v, bool) or not float(v).is_integer() or v < 0:
                        raise ValueError(f"{label} of reaction {self.reactions[r]!r} for species "
                                         f"{self.species[s]!r} must be a non-negative integer, got {v!r}")
            object.__setattr__(self, label, to_tuple(rows))
        if len(self.rate_constants) != R:
            raise ValueError(f"rate_constants must have {R} entries, got {len(self.rate_constants)}")
        for r, c in enumerate(self.rate_constants):
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0:
                raise ValueError(f"rate constant of reaction {self.reactions[r]!r} must be a finite number "
                                 f">= 0, got {c!r}")
        object.__setattr__(self, "rate_constants", tuple(float(c) for c in self.rate_constants))

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_reactions(self) -> int:
        return len(self.reactions)

    def net_change(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """Net stoichiometry :math:`ν = ν^+ − ν^-`, shape ``(R, S)``."""
        return (torch.tensor(self.products, dtype=dtype, device=device)
                - torch.tensor(self.reactants, dtype=dtype, device=device))

    @property
    def max_order(self) -> int:
        """Largest reactant coefficient of any species (2 for ``2X → …``)."""
        return max(max(row) for row in self.reactants)

    def propensity_terms(self, r: int) -> tuple[float, tuple[tuple[int, int], ...]]:
        r"""Reaction r's propensity as ``(k, ((species, order), ...))`` with
        :math:`a_r = k \prod (x_s)_{ν}` over the terms, :math:`k = c_r / \prod ν!` and
        :math:`(x)_ν = x(x−1)\cdots(x−ν+1)` the falling factorial."""
        k = self.rate_constants[r]
        terms = []
        for s, v in enumerate(self.reactants[r]):
            if v > 0:
                k /= math.factorial(v)
                terms.append((s, v))
        return k, tuple(terms)

    def propensity_of(self, r: int, counts: Sequence[torch.Tensor],
                      cache: dict | None = None) -> torch.Tensor | float:
        """:math:`a_r` from per-species counts (a sequence of S float tensors of one shape);
        a Python float for a reaction without reactants. ``cache`` (a dict) shares the
        falling factorials among the reactions of one state."""
        k, terms = self.propensity_terms(r)
        a: torch.Tensor | float = k
        for s, v in terms:
            a = _falling_factorial(counts[s], v, s, {} if cache is None else cache) * a
        return a

    def propensity(self, counts: torch.Tensor) -> torch.Tensor:
        r"""Propensities :math:`a_r(x) = c_r \prod_s \binom{x_s}{ν^-_{rs}}`.

        ``counts`` is ``(..., S)`` (non-negative integers); result ``(..., R)`` float64.
        """
        x = counts.to(torch.float64)
        species = [x[..., s] for s in range(self.n_species)]
        cols = [self.propensity_of(r, species) for r in range(self.n_reactions)]
        cols = [c if isinstance(c, torch.Tensor) else torch.full(x.shape[:-1], c, dtype=torch.float64,
                                                                   device=x.device) for c in cols]
        return torch.stack(cols, dim=-1)

    def event(self) -> EventFn:
        r"""The SSA rule of this network for :func:`~simulators.jump.engine.ssa`.

        With cumulative propensities :math:`A_r = \sum_{q \le r} a_q` and the
        indicators :math:`g_r = [A_r \le W a_0]` (1 for the channels before the one
        chosen), the new counts are :math:`x + ν_0 + \sum_r g_r (ν_{r+1} − ν_r)`
        (a telescoping sum, :math:`ν_R = 0`): only elementwise operations. If no
        reaction without reactants has a positive rate, :math:`a_0` can vanish and
        then :math:`g_{R−1} = 1` selects "no jump" (and the holding time is +inf).
        """
        R, S = self.n_reactions, self.n_species
        nu = [[self.products[r][s] - self.reactants[r][s] for s in range(S)] for r in range(R)] + [[0] * S]
        steps = [[(r, nu[r + 1][s] - nu[r][s]) for r in range(R) if nu[r + 1][s] != nu[r][s]] for s in range(S)]
        never_absorbing = any(c > 0 and not any(row) for c, row in zip(self.rate_constants, self.reactants))
        last = R - 1 if never_absorbing else R  # g_{R-1} matters only where a0 can be 0

        terms = [self.propensity_terms(r) for r in range(R)]

        def event(x, t, e, w, ctx):
            # falling factorials without clamping: for integer counts x < ν one factor is
            # exactly 0, so a propensity is ±0 (the comparisons below treat −0 as 0)
            factorials: dict = {}

            def falling(s: int, order: int) -> torch.Tensor:
                if (s, order) not in factorials:
                    factorials[s, order] = x[s] if order == 1 else falling(s, order - 1) * (x[s] - (order - 1))
                return factorials[s, order]

            cum = []
            total: torch.Tensor | float | None = None
            for k, factors in terms:
                a: torch.Tensor | float = k
                for s, order in factors:
                    a = falling(s, order) * a
                total = a if total is None else total + a
                cum.append(total)
            if not isinstance(total, torch.Tensor):
                total = torch.full_like(w, total)
            elif last == R:
                total = total + 0.0  # −0 (no channel open) must give +inf, not −inf
            target = w * total
            below = [target >= cum[r] for r in range(last)]  # g_r
            x_next = []
            for s in range(S):
                value = x[s] + nu[0][s] if nu[0][s] else x[s]
                for r, d in steps[s]:
                    if r < last:
                        value = torch.add(value, below[r], alpha=d)
                x_next.append(value)
            return next_time(t, e, total), tuple(x_next)

        return event


def _falling_factorial(x: torch.Tensor, order: int, species: int, cache: dict) -> torch.Tensor:
    """:math:`(x)_ν = x(x−1)⋯(x−ν+1)` with each factor clamped at 0 (so x < ν gives +0, not −0.0),
    memoised in ``cache`` under ``(species, order)``."""
    key = (species, order)
    if key not in cache:
        cache[key] = x if order == 1 else _falling_factorial(x, order - 1, species, cache) * (x - (order - 1)).clamp(min=0.0)
    return cache[key]


def simulate_reactions(network: ReactionNetwork, initial_counts: Any, obs_times: Any, *, t_end: float,
                       seed: int = 0, members: Any = None, t_start: float = 0.0, record_events: int = 0,
                       max_iterations: int = 100_000_000,
                       device: torch.device | str | None = None) -> JumpPaths:
    r"""Exact paths of a mass-action network (Gillespie's SSA), P paths for each of M members.

    Args:
        network: the :class:`ReactionNetwork`.
        initial_counts: ``(M, P, S)`` non-negative integer counts at ``t_start``.
        obs_times, t_end, seed, members, t_start, record_events, max_iterations: as
            :func:`~simulators.jump.mjp.simulate_mjp`.
        device: where to simulate (default: that of ``initial_counts``).

    Returns :class:`~simulators.jump.paths.JumpPaths`: float64 counts
    ``observed`` ``(M, P, T, S)``, ``jump_time`` ``(M, P, E)``, ``jump_state``
    ``(M, P, E, S)`` (padding NaN / −1) and ``n_events`` ``(M, P)``.
    """
    if device is None:
        device = initial_counts.device if isinstance(initial_counts, torch.Tensor) else "cpu"
    x0 = torch.as_tensor(initial_counts, dtype=torch.float64, device=device)
    if x0.ndim != 3 or x0.shape[-1] != network.n_species:
        raise ValueError(f"initial_counts must be (M, P, S) with S={network.n_species}, got {tuple(x0.shape)}")
    if x0.numel() and (bool((x0 < 0).any()) or bool((x0 != x0.round()).any())):
        bad = x0[(x0 < 0) | (x0 != x0.round())][0].item()
        raise ValueError(f"initial counts must be non-negative integers, got {bad!r}")
    M, P, S = x0.shape
    keys = path_keys(member_index(members, M), P).to(x0.device).reshape(-1)
    components = tuple(x0[..., s].reshape(-1).contiguous() for s in range(S))
    options = SSAOptions(t_end=t_end, obs_times=flat_obs_times(obs_times, M, P, x0.device), t_start=t_start,
                         record_events=record_events, pad=-1, max_iterations=max_iterations)
    result = ssa(components, network.event(), keys=keys, seed=seed, options=options)
    return JumpPaths.from_result(result, M, P, stack=True)
