r"""Jump processes as dynlab systems: abstract bases that run the observation layer.

A member of a dataset is one process (one rate matrix, or one reaction network
with its parameters) observed along ``n_paths`` independent paths at ``n_obs``
times in ``[0, t_end]``, ``t_end`` being ``time.t_end`` of the pipeline's grid
(``grid.spinup`` > 0 starts the paths that long before time 0 and discards it;
``time.dt`` and ``time.save_every`` play no part: the simulation is exact).

Variables (dims after ``member``; no ``time`` dim: ``time`` is a data variable):

* MJPs: ``state``, ``time`` on ``(path, obs)``; ``true_state`` (before
  mislabelling, only when ``mislabel_rate > 0``); ``rate_matrix`` on
  ``(from_state, to_state)``; ``initial_distribution`` on ``(from_state,)``;
  ``n_states`` per member;
* reaction networks: ``counts`` on ``(path, obs, species)``, ``time`` on ``(path, obs)``;
* with ``keep_jumps``: ``jump_time`` on ``(path, event)`` and ``jump_state``
  (``(path, event)``) or ``jump_counts`` (``(path, event, species)``), padded
  with NaN / −1 up to ``max_events`` entries, and ``n_events`` on ``(path,)``:
  entry 0 is time 0, entry e the e-th jump; ``n_events > max_events`` means the
  record was cut short.

Randomness: the process of a member depends on (seed, member); each path's
initial state, grid, jumps and label noise on (seed, member, path) only
(:func:`~simulators.jump.engine.path_keys`).
"""
from __future__ import annotations

import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from ..core import Params, Variable
from ..path import AbstractPathSystem
from ..random import STREAM_INITIAL, CounterRNG
from .engine import MAX_PATHS, path_keys
from .mjp import simulate_mjp
from .observe import GRIDS, check_mislabel_rate, mislabel, observation_times
from .prior import INITIAL_DISTRIBUTIONS, initial_distribution
from .paths import JumpPaths
from .reactions import ReactionNetwork, simulate_reactions

__all__ = ["PathParams", "MJPParams", "AbstractJumpSystem", "AbstractMarkovJumpSystem", "AbstractReactionSystem",
           "sample_states"]


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"parameter {name} must be an integer {bound}, got {value!r}")


@dataclass(frozen=True)
class PathParams(Params):
    """The observation layer's settings (``system.n_paths`` etc. in a config)."""

    n_paths: int = 100       # independent paths per member (process)
    n_obs: int = 101         # observation times per path
    grid: str = "regular"    # regular | irregular
    keep_jumps: bool = False  # also store the exact jump record
    max_events: int = 1000   # entries of the jump record (time 0 included)

    def validate(self) -> None:
        _check_int("n_paths", self.n_paths, 1, MAX_PATHS)
        _check_int("n_obs", self.n_obs, 1)
        _check_int("max_events", self.max_events, 1)
        if self.grid not in GRIDS:
            raise ValueError(f"parameter grid must be one of {', '.join(GRIDS)}, got {self.grid!r}")
        if not isinstance(self.keep_jumps, bool):
            raise ValueError(f"parameter keep_jumps must be true or false, got {self.keep_jumps!r}")


@dataclass(frozen=True)
class MJPParams(PathParams):
    """Observation layer of a finite-state MJP: adds label noise and the initial law."""

    mislabel_rate: float = 0.0   # probability that an observed state is replaced by another
    initial: str = "stationary"  # stationary | uniform | dirichlet

    def validate(self) -> None:
        super().validate()
        check_mislabel_rate(self.mislabel_rate)
        if self.initial not in INITIAL_DISTRIBUTIONS:
            raise ValueError(f"parameter initial must be one of {', '.join(INITIAL_DISTRIBUTIONS)}, "
                             f"got {self.initial!r}")


def sample_states(probabilities: torch.Tensor, keys: torch.Tensor, seed: int) -> torch.Tensor:
    r"""One state per path by inverse CDF: ``probabilities`` ``(M, N)``, ``keys`` ``(M, P)``
    → ``(M, P)`` int64; path p of member m uses its own uniform (stream ``STREAM_INITIAL``)."""
    M, P = keys.shape
    u = 1.0 - CounterRNG(seed, keys.reshape(-1).cpu()).uniform((1,), stream=STREAM_INITIAL).reshape(M, P)
    cdf = probabilities.to(torch.float64).cpu().cumsum(1)
    cdf = cdf / cdf[:, -1:]
    last = (probabilities.cpu() > 0).to(torch.int64).cumsum(1).argmax(1)  # the last state with mass
    state = torch.searchsorted(cdf, u, right=True)  # first state whose cdf exceeds u ∈ [0, 1)
    return torch.minimum(state, last[:, None])


class AbstractJumpSystem(AbstractPathSystem):
    """A jump process: simulated exactly by ``gillespie`` (:func:`simulators.path.run_paths`),
    observed by the observation layer on ``[0, grid.t_end]``."""

    def _jump_record(self, paths: JumpPaths, prefix: str) -> dict[str, torch.Tensor]:
        p = self.params
        if not p.keep_jumps:
            return {}
        cut = int((paths.n_events > p.max_events).sum())
        if cut:
            warnings.warn(f"{self.name}: {cut} path(s) needed more than max_events={p.max_events} jump-record "
                          f"entries (up to {int(paths.n_events.max())}); their records are cut short "
                          "(n_events holds the full count)", RuntimeWarning, stacklevel=3)
        return {"jump_time": paths.jump_time, prefix: paths.jump_state, "n_events": paths.n_events}


class AbstractMarkovJumpSystem(AbstractJumpSystem):
    """Finite-state MJPs: subclasses give one rate matrix per member."""

    Params = MJPParams

    @property
    @abstractmethod
    def max_states(self) -> int:
        """Size of the state dims (``from_state``, ``to_state``)."""

    @abstractmethod
    def rate_matrices(self, members: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rate_matrix (M, N, N) float64, n_states (M,) int64)`` on the CPU."""

    @property
    def state_shape(self):
        return (self.params.n_paths,)

    @property
    def dim_sizes(self):
        p = self.params
        sizes = {"path": p.n_paths, "obs": p.n_obs, "from_state": self.max_states, "to_state": self.max_states}
        if p.keep_jumps:
            sizes["event"] = p.max_events
        return sizes

    @property
    def variables(self):
        u = self.time_units
        rate_units = "1" if u == "1" else f"{u}-1"
        out = [Variable("state", ("path", "obs"), "1", "observed state (after mislabelling)", dtype="int64"),
               Variable("time", ("path", "obs"), u, "observation time")]
        if self.params.mislabel_rate > 0:
            out.append(Variable("true_state", ("path", "obs"), "1", "state of the process at the observation time", dtype="int64"))
        out += [Variable("rate_matrix", ("from_state", "to_state"), rate_units,
                         "rate matrix Q (off-diagonal: jump rates; rows sum to zero)"),
                Variable("initial_distribution", ("from_state",), "1", "distribution of the state at time 0"),
                Variable("n_states", (), "1", "number of states of the process (the rest is padding)", dtype="int64")]
        if self.params.keep_jumps:
            out += [Variable("jump_time", ("path", "event"), u, "time of the jump (entry 0: time 0; padding NaN)"),
                    Variable("jump_state", ("path", "event"), "1", "state entered at jump_time (padding -1)", dtype="int64"),
                    Variable("n_events", ("path",), "1", "entries of the full jump record (1 + jumps)", dtype="int64")]
        return tuple(out)

    def initial_distributions(self, rate_matrix: torch.Tensor, n_states: torch.Tensor, members: torch.Tensor,
                              seed: int) -> torch.Tensor:
        """``(M, N)`` laws of the state at time 0 (``params.initial``)."""
        return initial_distribution(self.params.initial, rate_matrix, n_states, members, seed)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        """Initial states of every path, ``(M, n_paths)`` int64 (uses ``rng``'s seed and members)."""
        Q, n = self.rate_matrices(rng.members.cpu(), rng.seed)
        p0 = self.initial_distributions(Q, n, rng.members.cpu(), rng.seed)
        return sample_states(p0, path_keys(rng.members.cpu(), self.params.n_paths), rng.seed).to(device)

    def observables(self, x):
        return {"state": x}

    def simulate_paths(self, grid, *, seed, members, device="cpu", max_iterations=100_000_000):
        p = self.params
        t_end, t_start = grid.t_end, -grid.spinup
        members = torch.as_tensor(members, dtype=torch.int64).cpu()
        Q, n_states = self.rate_matrices(members, seed)
        p0 = self.initial_distributions(Q, n_states, members, seed)
        keys = path_keys(members, p.n_paths)  # (M, P)
        x0 = sample_states(p0, keys, seed)
        obs = observation_times(p.grid, keys, seed, p.n_obs, t_end)
        paths = simulate_mjp(Q.to(device), x0.to(device), obs.to(device), t_end=t_end, seed=seed,
                             members=members, t_start=t_start, max_iterations=max_iterations,
                             record_events=p.max_events if p.keep_jumps else 0)
        true_state = paths.observed
        state = mislabel(true_state, n_states[:, None], p.mislabel_rate, keys, seed)
        M = members.shape[0]
        out = {"state": state, "time": obs.expand(M, p.n_paths, p.n_obs).to(device),
               "rate_matrix": Q.to(device), "initial_distribution": p0.to(device),
               "n_states": n_states.to(device)}
        if p.mislabel_rate > 0:
            out["true_state"] = true_state
        out.update(self._jump_record(paths, "jump_state"))
        return out


class AbstractReactionSystem(AbstractJumpSystem):
    """Mass-action reaction networks: subclasses give the network and initial counts."""

    Params = PathParams

    @property
    @abstractmethod
    def network(self) -> ReactionNetwork:
        """The reaction network (built from the parameters)."""

    @property
    @abstractmethod
    def initial_counts(self) -> tuple[int, ...]:
        """Counts of every species at time 0 (the same for every path)."""

    @property
    def state_shape(self):
        return (self.params.n_paths, self.network.n_species)

    @property
    def dim_sizes(self):
        p = self.params
        sizes = {"path": p.n_paths, "obs": p.n_obs, "species": self.network.n_species}
        if p.keep_jumps:
            sizes["event"] = p.max_events
        return sizes

    def coords(self):
        out = super().coords()
        # integer index: string coordinates have no stable Zarr v3 encoding yet
        out["species"] = (("species",), torch.arange(self.network.n_species).numpy(),
                          {"long_name": "chemical species index", "units": "1",
                           "species_names": " ".join(self.network.species)})
        return out

    @property
    def variables(self):
        u = self.time_units
        out = [Variable("counts", ("path", "obs", "species"), "1", "molecule counts at the observation time", dtype="int64"),
               Variable("time", ("path", "obs"), u, "observation time")]
        if self.params.keep_jumps:
            out += [Variable("jump_time", ("path", "event"), u, "time of the reaction (entry 0: time 0; padding NaN)"),
                    Variable("jump_counts", ("path", "event", "species"), "1",
                             "counts right after the reaction (padding -1)", dtype="int64"),
                    Variable("n_events", ("path",), "1", "entries of the full jump record (1 + reactions)", dtype="int64")]
        return tuple(out)

    def sample_initial(self, rng: CounterRNG, dtype=torch.float64, device="cpu"):
        """The initial counts of every path, ``(M, n_paths, S)`` (deterministic)."""
        M = rng.members.shape[0]
        x0 = torch.tensor(self.initial_counts, dtype=dtype, device=device)
        return x0.expand(M, self.params.n_paths, -1).clone()

    def observables(self, x):
        return {"counts": x}

    def simulate_paths(self, grid, *, seed, members, device="cpu", max_iterations=100_000_000):
        p = self.params
        t_end, t_start = grid.t_end, -grid.spinup
        members = torch.as_tensor(members, dtype=torch.int64).cpu()
        M = members.shape[0]
        keys = path_keys(members, p.n_paths)
        obs = observation_times(p.grid, keys, seed, p.n_obs, t_end)
        x0 = torch.tensor(self.initial_counts, dtype=torch.float64).expand(M, p.n_paths, -1)
        paths = simulate_reactions(self.network, x0.to(device), obs.to(device), t_end=t_end, seed=seed,
                                   members=members, t_start=t_start, max_iterations=max_iterations,
                                   record_events=p.max_events if p.keep_jumps else 0)
        out = {"counts": paths.observed.to(torch.int64), "time": obs.expand(M, p.n_paths, p.n_obs).to(device)}
        record = self._jump_record(paths, "jump_counts")
        if record:
            record["jump_counts"] = record["jump_counts"].to(torch.int64)
        out.update(record)
        return out
