r"""Markov jump processes: exact, batched stochastic simulation (Gillespie).

* Finite-state MJPs from a rate matrix Q (:mod:`.rate_matrix`, :func:`simulate_mjp`)
  and mass-action reaction networks (:class:`ReactionNetwork`, :func:`simulate_reactions`),
  both advanced event by event with all paths together as tensors (CPU or CUDA).
* An observation layer (:mod:`.observe`): regular or irregular grids, mislabelling.
* Systems for ``dynlab simulate`` (:mod:`.presets`): ``flashing_ratchet``,
  ``mjp_prior``, ``birth_death``, ``lotka_volterra``, ``schlogl``, simulated by the
  ``gillespie`` integrator (:mod:`simulators.path`) through the one engine (:mod:`.engine`).

>>> import torch
>>> from simulators.jump import flashing_ratchet_rate_matrix, stationary_distribution, simulate_mjp
>>> Q = flashing_ratchet_rate_matrix()
>>> stationary_distribution(Q).round(decimals=3)
tensor([0.3010, 0.1370, 0.0620, 0.2000, 0.1590, 0.1410], dtype=torch.float64)
>>> paths = simulate_mjp(Q[None], torch.zeros(1, 4, dtype=torch.int64), torch.linspace(0, 1, 11), t_end=1.0)
>>> paths.observed.shape
torch.Size([1, 4, 11])
"""
from ..path import Gillespie
from .engine import EVENTS_PER_DRAW, MAX_PATHS, STREAM_JUMP, SSAOptions, SSAResult, holding_time, path_keys, ssa
from .paths import JumpPaths
from .mjp import jump_tables, simulate_mjp
from .observe import irregular_grid, mislabel, observation_times, regular_grid
from .presets import BirthDeath, FlashingRatchet, LotkaVolterra, MJPPrior, Schlogl
from .prior import initial_distribution, sample_rate_matrices
from .rate_matrix import (check_rate_matrix, entropy_production, flashing_ratchet_rate_matrix, rate_matrix_from_rates,
                          stationary_distribution, transition_probabilities)
from .ramped import ramped_birth_death
from .reactions import ReactionNetwork, simulate_reactions
from .systems import AbstractJumpSystem, AbstractMarkovJumpSystem, AbstractReactionSystem, sample_states

__all__ = [
    "Gillespie", "ssa", "SSAOptions", "SSAResult", "holding_time", "JumpPaths", "path_keys", "EVENTS_PER_DRAW", "MAX_PATHS", "STREAM_JUMP",
    "simulate_mjp", "jump_tables", "simulate_reactions", "ReactionNetwork", "ramped_birth_death",
    "observation_times", "regular_grid", "irregular_grid", "mislabel",
    "sample_rate_matrices", "initial_distribution", "sample_states",
    "check_rate_matrix", "rate_matrix_from_rates", "stationary_distribution", "transition_probabilities",
    "entropy_production", "flashing_ratchet_rate_matrix",
    "AbstractJumpSystem", "AbstractMarkovJumpSystem", "AbstractReactionSystem",
    "FlashingRatchet", "MJPPrior", "BirthDeath", "LotkaVolterra", "Schlogl",
]
