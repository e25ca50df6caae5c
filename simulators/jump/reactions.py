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
from dataclasses import dataclass, field
import torch

__all__ = ["ReactionNetwork"]


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
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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

    def _terms(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Sparse reactant terms (reaction, species, order) and the rate constants on ``device``."""
        key = str(device)
        if key not in self._cache:
            terms = [(r, s, v) for r, row in enumerate(self.reactants) for s, v in enumerate(row) if v > 0]
            reaction = torch.tensor([t[0] for t in terms], dtype=torch.int64, device=device)
            species = torch.tensor([t[1] for t in terms], dtype=torch.int64, device=device)
            order = torch.tensor([t[2] for t in terms], dtype=torch.float64, device=device)
            rate = torch.tensor(self.rate_constants, dtype=torch.float64, device=device)
            self._cache[key] = (reaction, species, order, rate, self.net_change(torch.float64, device))
        return self._cache[key]

    @property
    def max_order(self) -> int:
        """Largest reactant coefficient of any species (2 for ``2X → …``)."""
        return max(max(row) for row in self.reactants)

    def propensity(self, counts: torch.Tensor) -> torch.Tensor:
        r"""Propensities :math:`a_r(x) = c_r \prod_s \binom{x_s}{ν^-_{rs}}`.

        ``counts`` is ``(..., S)`` (float, non-negative integers); result ``(..., R)`` float64.
        """
        reaction, species, order, rate, _ = self._terms(counts.device)
        lead = counts.shape[:-1]
        x = counts.reshape(-1, self.n_species).to(torch.float64)
        a = rate.expand(x.shape[0], -1)
        if reaction.numel():
            xs = x.index_select(1, species)  # (B, terms)
            binom = xs
            for j in range(1, self.max_order):  # C(x, ν) = Π_{i<ν} (x − i)/(i + 1); clamp: no −0.0
                binom = torch.where(order > j, binom * (xs - j).clamp_(min=0.0) / (j + 1), binom)
            a = a.scatter_reduce(1, reaction.expand(x.shape[0], -1), binom, reduce="prod")
        return a.reshape(*lead, self.n_reactions)
