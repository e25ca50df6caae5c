r"""The system abstraction: a batched vector field plus metadata.

A system is the right-hand side of

.. math::  dx = f(t, x)\,dt \;+\; g(t, x)\,dW_t

on a state tensor ``x`` of shape ``(*batch, *state_shape)``: leading dimensions
are ensemble members (or parameter samples), the system's own dimensions come
last. ``g`` is ``None`` for an ODE. The integrator is chosen separately
(:mod:`simulators.integrators`).

Each system declares

* its parameters: a frozen dataclass that validates itself (:class:`Params`);
* its output variables: :class:`Variable` (name, dims, units, long_name);
* a seeded initial-condition sampler, one reproducible stream per member;
* its invariants and budgets where they exist.

Nothing here knows about files, configs or xarray.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch

if TYPE_CHECKING:  # type-only: the driver and the integrators import this module, not the reverse
    from .integrators.base import AbstractIntegrator
    from .random import CounterRNG

__all__ = [
    "AbstractSystem",
    "Params",
    "TimeGrid",
    "Variable",
    "VARIABLE_ROLES",
    "SYSTEMS",
    "register_system",
    "make_system",
    "check_finite_parameter",
]


VARIABLE_ROLES = ("state", "forcing", "diagnostic")


@dataclass(frozen=True)
class Variable:
    """Metadata of one output variable.

    ``dims`` are the variable's dimensions after ``member`` (for a time-stepped
    system they start with ``time``); ``units`` follow CF conventions (``"1"``
    for non-dimensional quantities).
    """

    name: str
    dims: tuple[str, ...]
    units: str
    long_name: str
    #: storage dtype; None stores the simulation's floating dtype (config ``dtype``)
    dtype: str | None = None
    #: ``state`` (integrated and learned), ``forcing`` (an input the user prescribes:
    #: CO₂, a ramped parameter) or ``diagnostic`` (a function of the state: N_toa, H)
    role: str = "state"

    def __post_init__(self) -> None:
        if self.role not in VARIABLE_ROLES:
            raise ValueError(f"variable {self.name!r}: role must be one of {', '.join(VARIABLE_ROLES)}, "
                             f"got {self.role!r}")


def check_finite_parameter(name: str, value: Any, *, positive: bool = False,
                           non_negative: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite real."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"parameter {name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"parameter {name} must be > 0, got {value!r}")
    if non_negative and value < 0:
        raise ValueError(f"parameter {name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class Params:
    """Base of the parameter dataclasses: every field must be a finite number
    unless a subclass says otherwise in :meth:`validate`."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # F=8 means F=8.0
                object.__setattr__(self, field.name, value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                check_finite_parameter(field.name, value)
        self.validate()

    def validate(self) -> None:
        """Extra checks of a subclass; raise ``ValueError`` naming the value."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _whole_steps(name: str, interval: float, dt: float, *, allow_zero: bool) -> int:
    """``interval / dt`` as an integer, checked with a floating-point tolerance."""
    ratio = interval / dt
    n = round(ratio)
    if abs(ratio - n) > 1e-9 * max(1.0, abs(ratio)):
        raise ValueError(
            f"time.{name}={interval!r} is not a whole number of steps of time.dt={dt!r} "
            f"({name}/dt = {ratio!r})")
    if n < 0 or (n == 0 and not allow_zero):
        raise ValueError(f"time.{name}={interval!r} must be {'>= 0' if allow_zero else '> 0'}")
    return int(n)


@dataclass(frozen=True)
class TimeGrid:
    """Model-time grid of a simulation.

    The state is integrated with step ``dt``; the first ``spinup`` time units are
    discarded; states are saved every ``save_every`` from the end of the spin-up
    (time 0) to ``t_end`` inclusive. All four are in model time and the three
    intervals must be whole multiples of ``dt``.
    """

    dt: float
    save_every: float
    t_end: float
    spinup: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dt", "save_every", "t_end", "spinup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"time.{name} must be a finite number, got {value!r}")
        if self.dt <= 0:
            raise ValueError(f"time.dt must be > 0, got {self.dt!r}")
        if self.save_every <= 0:
            raise ValueError(f"time.save_every must be > 0, got {self.save_every!r}")
        if self.t_end < 0:
            raise ValueError(f"time.t_end must be >= 0, got {self.t_end!r}")
        if self.spinup < 0:
            raise ValueError(f"time.spinup must be >= 0, got {self.spinup!r}")
        steps = _whole_steps("save_every", self.save_every, self.dt, allow_zero=False)
        _whole_steps("spinup", self.spinup, self.dt, allow_zero=True)
        total = _whole_steps("t_end", self.t_end, self.dt, allow_zero=True)
        if total % steps:
            raise ValueError(
                f"time.t_end={self.t_end!r} is not a whole number of save intervals "
                f"time.save_every={self.save_every!r}")

    @property
    def steps_per_save(self) -> int:
        return round(self.save_every / self.dt)

    @property
    def spinup_steps(self) -> int:
        return round(self.spinup / self.dt)

    @property
    def n_saves(self) -> int:
        """Number of saved states, the state at time 0 included."""
        return round(self.t_end / self.dt) // self.steps_per_save + 1

    @property
    def times(self) -> torch.Tensor:
        """Saved model times (float64), ``0, save_every, …, t_end``."""
        return torch.arange(self.n_saves, dtype=torch.float64) * (self.steps_per_save * self.dt)


class AbstractSystem(ABC):
    """A dynamical system: ``dx = f(t, x) dt + g(t, x) dW`` on ``(*batch, *state_shape)``.

    Subclasses set ``name``, ``Params`` and implement :meth:`vector_field`,
    :meth:`sample_initial` and :meth:`observables`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    #: physical units of time (CF units string; "1" for non-dimensional models)
    time_units: ClassVar[str] = "1"
    #: integrator used when the config says ``integrator=auto``
    default_integrator: ClassVar[str] = "rk4"
    #: bumped when the bytes this system generates for a given config change; a version
    #: above 0 enters the dataset identity, so stale cached stores are never reused
    generator_version: ClassVar[int] = 0

    def __init__(self, params: Params | None = None, **kwargs: Any):
        if params is None:
            params = self.Params(**kwargs)
        elif kwargs:
            raise TypeError("pass either a Params instance or keyword parameters, not both")
        if not isinstance(params, self.Params):
            raise TypeError(f"{type(self).__name__} needs {self.Params.__name__}, got {type(params).__name__}")
        self.params = params

    # -- dynamics ---------------------------------------------------------------------
    @property
    @abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one member's state (the trailing dimensions of ``x``)."""

    @abstractmethod
    def vector_field(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Drift ``f(t, x)``, same shape as ``x`` (any leading batch dims)."""

    def diffusion(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """Diagonal noise amplitude ``g(t, x)`` (same shape as ``x``) or ``None`` for an ODE."""
        return None

    def noise_term(self, t: float | torch.Tensor, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """The noise's action on standard normals ``xi`` (shaped like ``x``): ``g(t, x) ξ``.

        The default is the diagonal product ``diffusion(t, x) * xi``; a system whose
        noise enters several components at once (an accumulated budget term that
        integrates the same noise as the state) overrides it. Stochastic integrators
        call this instead of multiplying by :meth:`diffusion` themselves."""
        g = self.diffusion(t, x)
        if g is None:
            raise ValueError(f"{self.name} has no noise (diffusion is None)")
        return g * xi

    @property
    def is_stochastic(self) -> bool:
        return False

    # -- sampling ---------------------------------------------------------------------
    @abstractmethod
    def sample_initial(self, rng: "CounterRNG", dtype: torch.dtype = torch.float64,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """Initial states, shape ``(M, *state_shape)``, one per member of ``rng``."""

    # -- metadata ---------------------------------------------------------------------
    @property
    @abstractmethod
    def variables(self) -> tuple[Variable, ...]:
        """Output variables; their dims start with ``time`` for time-stepped output."""

    @property
    def dim_sizes(self) -> dict[str, int]:
        """Sizes of the system's own dimensions (not ``member`` or ``time``)."""
        return {}

    def coords(self) -> dict[str, tuple[tuple[str, ...], Any, dict[str, str]]]:
        """Coordinates of the system's own dims: name -> (dims, values, attrs)."""
        return {name: ((name,), torch.arange(size).numpy(), {"long_name": f"{name} index", "units": "1"})
                for name, size in self.dim_sizes.items()}

    @abstractmethod
    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split states ``(..., *state_shape)`` into the output variables (without
        the ``time`` dim, which the caller stacks)."""

    def invariants(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Conserved or budgeted quantities of states ``(..., *state_shape)``."""
        return {}

    # -- hooks of the one driver (:func:`simulators.run_members`) ----------------------
    #: True when :meth:`project` must be applied after every step (a fixed-step integrator only)
    has_projection: ClassVar[bool] = False
    #: bumped when the bytes this system generates for a given config change
    generator_version: ClassVar[int] = 0

    def time_outputs(self, times: torch.Tensor, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
        """Output variables that depend on model time only (a prescribed forcing: CO₂,
        a ramped parameter): ``name -> (T,)`` in ``dtype`` at the saved ``times``
        ``(T,)`` (float64). The driver broadcasts each to ``(M, T)``. Default: none."""
        return {}

    def diagnostics(self, times: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output variables computed from the saved trajectory ``x`` ``(M, T, *state_shape)``
        at ``times`` ``(T,)`` (N_toa, T_global, H, a budget residual): ``name -> (M, T, ...)``.
        Default: none."""
        return {}

    def member_parameters(self, rng: "CounterRNG", dtype: torch.dtype = torch.float64,
                          device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Parameters drawn per member from each member's own stream: ``name -> (M,)``;
        the driver binds them (:meth:`bind`) and returns them as variables on ``member``.
        Default: none."""
        return {}

    def bind(self, values: Mapping[str, torch.Tensor]) -> "AbstractSystem":
        """This system with the per-member ``values`` (each ``(M,)``) of
        :meth:`member_parameters`; the default has none to bind."""
        if values:
            raise ValueError(f"{self.name} has no per-member parameters, got {', '.join(values)}")
        return self

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Map a state back into the model's domain after each step (e.g. reflection at 0);
        called only when :attr:`has_projection` is True. Default: the identity."""
        return x

    def simulate(self, integrator: "AbstractIntegrator", grid: "TimeGrid", *, seed: int, members: Any,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
        """Output variables of the given members: ``name -> (M, *dims)`` with the
        dims of :attr:`variables`, computed by the one driver
        :func:`simulators.run_members` through the hooks above. Time-stepped
        systems never override it (path-sampled systems have their own driver).
        ``progress(n)`` reports integration steps done. The result for a member
        may depend only on ``(seed, member index)`` and the configuration."""
        from .ensemble import run_members  # deferred: ensemble imports this module

        return run_members(self, integrator, grid, seed=seed, members=members, dtype=dtype,
                           device=device, progress=progress)

    def check_grid(self, grid: "TimeGrid", integrator: Any) -> None:
        """Refuse a time grid or integrator this system cannot run with (``ValueError``
        naming the value), before any compute. The default accepts everything."""

    def progress_total(self, grid: "TimeGrid") -> int:
        """Steps per member that :meth:`simulate` reports through ``progress``."""
        return grid.spinup_steps + (grid.n_saves - 1) * grid.steps_per_save

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.as_dict().items())
        return f"{type(self).__name__}({args})"


SYSTEMS: dict[str, type[AbstractSystem]] = {}


def register_system(cls: type[AbstractSystem]) -> type[AbstractSystem]:
    """Class decorator: make ``cls`` available as ``make_system(cls.name, ...)``."""
    if cls.name in SYSTEMS and SYSTEMS[cls.name] is not cls:
        raise ValueError(f"a system named {cls.name!r} is already registered")
    SYSTEMS[cls.name] = cls
    return cls


def make_system(name: str, **params: Any) -> AbstractSystem:
    """Build a registered system by name, e.g. ``make_system("lorenz96", K=40, F=8.0)``."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(sorted(SYSTEMS))}")
    cls = SYSTEMS[name]
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for system {name!r}; "
                         f"expected some of {', '.join(sorted(fields))}")
    return cls(cls.Params(**params))


VectorField = Callable[[float, torch.Tensor], torch.Tensor]
