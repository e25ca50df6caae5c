r"""Gravitating point masses: the two-body (Kepler) problem, three bodies, N bodies.

For N bodies in ``dim`` dimensions with masses :math:`m_i`, positions
:math:`q_i` and momenta :math:`p_i`,

.. math::
    H = \sum_i \frac{\lVert p_i\rVert^2}{2 m_i}
        - \sum_{i<j} \frac{G m_i m_j}{\sqrt{\lVert q_i - q_j\rVert^2 + ε^2}},

    \dot q_i = \frac{p_i}{m_i},\qquad
    \dot p_i = -\sum_{j\ne i} \frac{G m_i m_j (q_i - q_j)}{(\lVert q_i - q_j\rVert^2 + ε^2)^{3/2}}
               - γ \frac{p_i}{m_i},

with softening length ε (0 for the Kepler and three-body problems). Without
friction, total momentum :math:`\sum_i p_i` and angular momentum
:math:`\sum_i q_i \times p_i` are conserved as well as H; a splitting method
(leapfrog) conserves both momenta exactly (to round-off), because each kick is
a sum of central pair forces and each drift moves along the momentum.

``q`` and ``p`` have the natural shape ``(..., body, axis)``; the flat state
is ``(..., 2·N·dim)`` = (q flattened, p flattened). Presets: two-body with
G = m = 1 (DeepMind's suite), the Chenciner–Montgomery figure-eight for three
equal masses (Chenciner & Montgomery 2000; initial conditions of Simó).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from ..core import Variable, check_finite_parameter, register_system
from ..random import STREAM_INITIAL
from .base import AbstractHamiltonianSystem, HamiltonianParams, check_range

__all__ = ["AbstractGravitatingBodies", "Kepler", "ThreeBody", "NBody",
           "FIGURE_EIGHT_POSITIONS", "FIGURE_EIGHT_VELOCITIES", "FIGURE_EIGHT_PERIOD"]

#: figure-eight initial positions for G = m = 1 (Chenciner & Montgomery 2000, Simó's digits)
FIGURE_EIGHT_POSITIONS = ((0.97000436, -0.24308753), (-0.97000436, 0.24308753), (0.0, 0.0))
#: figure-eight initial velocities: v3 = (-0.93240737, -0.86473146), v1 = v2 = -v3/2
FIGURE_EIGHT_VELOCITIES = ((0.466203685, 0.43236573), (0.466203685, 0.43236573), (-0.93240737, -0.86473146))
#: period of the figure-eight for G = m = 1 (≈; scales as 1/√(G m))
FIGURE_EIGHT_PERIOD = 6.3259


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class AbstractGravitatingBodies(AbstractHamiltonianSystem):
    """Point masses under Newtonian gravity (see the module docstring).

    Subclasses give :attr:`bodies`, :attr:`spatial_dim`, the masses
    (:meth:`_mass_values`) and the initial-condition sampler.
    """

    separable = True

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._constants: dict[tuple, tuple[torch.Tensor, ...]] = {}

    @property
    @abstractmethod
    def bodies(self) -> int:
        """Number of bodies N."""

    @property
    @abstractmethod
    def spatial_dim(self) -> int:
        """Number of space dimensions d."""

    @abstractmethod
    def _mass_values(self) -> list[float | torch.Tensor]:
        """Mass of each body: a float or per-member values ``(M,)``."""

    def _softening(self) -> float | torch.Tensor:
        return 0.0

    @property
    def q_shape(self):
        return (self.bodies, self.spatial_dim)

    # -- coefficients -----------------------------------------------------------------
    def _fixed(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached (identity (N, N), off-diagonal mask (N, N)) in ``like``'s dtype and device."""
        key = (like.dtype, like.device)
        if key not in self._constants:
            eye = torch.eye(self.bodies, dtype=like.dtype, device=like.device)
            self._constants[key] = (eye, 1.0 - eye)
        return self._constants[key]

    def masses(self, like: torch.Tensor) -> torch.Tensor:
        """Masses in ``like``'s dtype and device: ``(N,)``, or ``(M, N)`` for a system
        bound to per-member masses."""
        values = self._mass_values()
        if all(isinstance(v, float) for v in values):
            key = ("masses", like.dtype, like.device)
            if key not in self._constants:
                self._constants[key] = (torch.tensor(values, dtype=like.dtype, device=like.device),)
            return self._constants[key][0]
        n_members = self.members_bound
        return torch.stack([v.to(dtype=like.dtype, device=like.device) if torch.is_tensor(v)
                            else torch.full((n_members,), v, dtype=like.dtype, device=like.device)
                            for v in values], dim=-1)

    def _pair_terms(self, q: torch.Tensor):
        """``diff`` ``(..., N, N, d)`` = q_i − q_j, ``inv_r`` ``(..., N, N)`` =
        1/√(r² + ε²) off the diagonal (0 on it), and G·m_i·m_j ``(..., N, N)``."""
        eye, off = self._fixed(q)
        diff = q[..., :, None, :] - q[..., None, :, :]
        r2 = (diff * diff).sum(-1) + eye  # the diagonal (a body with itself) is masked below
        soft = self._softening()
        if not isinstance(soft, float):
            r2 = r2 + (soft * soft).reshape(-1, 1, 1)
        elif soft:
            r2 = r2 + soft * soft
        inv_r = torch.rsqrt(r2) * off
        return diff, inv_r, self._gmm(q)

    def _gmm(self, like: torch.Tensor) -> torch.Tensor:
        """G·m_i·m_j: ``(N, N)``, or ``(M, N, N)`` for a bound system."""
        key = ("gmm", like.dtype, like.device)
        if not self._member_values and key in self._constants:  # a bound copy shares the cache: skip it
            return self._constants[key][0]
        m = self.masses(like)
        gmm = self.coef("G", 2) * (m[..., :, None] * m[..., None, :])
        if not self._member_values:
            self._constants[key] = (gmm,)
        return gmm

    # -- physics ----------------------------------------------------------------------
    def kinetic_energy(self, p: torch.Tensor) -> torch.Tensor:
        r""":math:`T = \sum_i \lVert p_i\rVert^2 / 2m_i`, ``(..., N, d)`` → ``(...)``."""
        return ((p * p).sum(-1) / (2.0 * self.masses(p))).sum(-1)

    def potential_energy(self, q: torch.Tensor) -> torch.Tensor:
        r""":math:`V = -\sum_{i<j} G m_i m_j / \sqrt{r_{ij}^2 + ε^2}`, ``(..., N, d)`` → ``(...)``."""
        _, inv_r, gmm = self._pair_terms(q)
        return -0.5 * (gmm * inv_r).sum((-2, -1))

    def hamiltonian(self, q, p):
        return self.kinetic_energy(p) + self.potential_energy(q)

    def dH_dq(self, q, p):
        diff, inv_r, gmm = self._pair_terms(q)
        weight = gmm * inv_r ** 3  # (..., N, N)
        return (weight[..., None] * diff).sum(-2)

    def dH_dp(self, q, p):
        return p / self.masses(p)[..., None]

    def momentum(self, p: torch.Tensor) -> torch.Tensor:
        r"""Total momentum :math:`\sum_i p_i`, ``(..., N, d)`` → ``(..., d)``."""
        return p.sum(-2)

    def angular_momentum(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        r"""Total angular momentum :math:`\sum_i q_i \times p_i` about the origin:
        ``(...)`` in 2-D (the z component), ``(..., 3)`` in 3-D."""
        if self.spatial_dim == 2:
            return (q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0]).sum(-1)
        if self.spatial_dim == 3:
            return torch.linalg.cross(q, p, dim=-1).sum(-2)
        raise ValueError(f"angular momentum needs 2 or 3 dimensions, the system has {self.spatial_dim}")

    def centre_of_mass_frame(self, q: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift positions and velocities ``(..., N, d)`` so that the mass-weighted
        mean position and velocity vanish."""
        m = self.masses(q)[..., None]
        total = m.sum(-2, keepdim=True)
        return (q - (m * q).sum(-2, keepdim=True) / total,
                v - (m * v).sum(-2, keepdim=True) / total)

    def _from_velocities(self, q: torch.Tensor, v: torch.Tensor, dtype, device) -> torch.Tensor:
        q, v = self.centre_of_mass_frame(q, v)
        return self.join(q, self.masses(v)[..., None] * v).to(dtype=dtype, device=device)

    # -- outputs ----------------------------------------------------------------------
    @property
    def dim_sizes(self):
        return {"body": self.bodies, "axis": self.spatial_dim}

    @property
    def variables(self):
        return (Variable("q", ("time", "body", "axis"), "1", "position of each body"),
                Variable("p", ("time", "body", "axis"), "1", "momentum of each body"),
                Variable("H", ("time",), "1", "total energy (Hamiltonian) H", role="diagnostic")) + self._parameter_variables()

    def observables(self, x):
        q, p = self.split(x)
        return {"q": q, "p": p, "H": self.energy(x)}

    def invariants(self, x):
        """Energy and its tendency, total momentum and (2-D, 3-D) angular momentum."""
        out = super().invariants(x)
        out["momentum"] = self.momentum(self.split(x)[1])
        if self.spatial_dim in (2, 3):
            out["angular_momentum"] = self.angular_momentum(*self.split(x))
        return out


@register_system
class Kepler(AbstractGravitatingBodies):
    r"""Two bodies in a plane (the Kepler problem).

    .. math:: H = \frac{p_1^2}{2m_1} + \frac{p_2^2}{2m_2} - \frac{G m_1 m_2}{r}

    A bound orbit with relative separation r and relative speed v has
    semi-major axis :math:`a = -μ/(2ε)`, :math:`ε = v^2/2 - μ/r`,
    :math:`μ = G(m_1 + m_2)`, and period :math:`T = 2π a^{3/2}/\sqrt{μ}`
    (:meth:`orbital_period`). Preset G = m₁ = m₂ = 1.

    Initial states (our choice): separation uniform on ``separation``, a random
    orientation, a relative velocity perpendicular to the separation with speed
    ``speed_ratio`` (uniform on the range) times the circular speed
    :math:`\sqrt{μ/r}` and a random sense of rotation, in the centre-of-mass
    frame. ``speed_ratio`` < √2 keeps every orbit bound.
    """

    name = "kepler"

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        G: float = 1.0
        m1: float = 1.0
        m2: float = 1.0
        separation: Any = (0.5, 1.5)
        speed_ratio: Any = (0.8, 1.2)

        randomizable = ("G", "m1", "m2", "friction")

        def validate_physics(self):
            for name in ("G", "m1", "m2"):
                check_finite_parameter(name, getattr(self, name), positive=True)
            object.__setattr__(self, "separation", check_range("separation", self.separation, low=0.0))
            object.__setattr__(self, "speed_ratio", check_range("speed_ratio", self.speed_ratio, low=0.0,
                                                                high=math.sqrt(2.0)))

    @property
    def bodies(self):
        return 2

    @property
    def spatial_dim(self):
        return 2

    def _mass_values(self):
        return [self._member_values.get(n, getattr(self.params, n)) for n in ("m1", "m2")]

    def orbital_period(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`T = 2π a^{3/2}/\sqrt{G(m_1 + m_2)}` of flat states ``(..., 8)`` → ``(...)``
        (NaN for an unbound state)."""
        q, p = self.split(x)
        m = self.masses(x)
        r = (q[..., 1, :] - q[..., 0, :]).norm(dim=-1)
        v = p[..., 1, :] / m[..., 1, None] - p[..., 0, :] / m[..., 0, None]
        mu = self.coef("G", 0) * m.sum(-1)
        specific_energy = 0.5 * (v * v).sum(-1) - mu / r
        a = -mu / (2.0 * specific_energy)
        return torch.where(specific_energy < 0, 2.0 * math.pi * a.clamp(min=0) ** 1.5 / torch.sqrt(mu),
                           torch.full_like(a, float("nan")))

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        u = rng.uniform((4,), stream=STREAM_INITIAL)  # (M, 4), float64
        (s_lo, s_hi), (v_lo, v_hi) = self.params.separation, self.params.speed_ratio
        r = s_lo + (s_hi - s_lo) * u[:, 0]
        phi = 2.0 * math.pi * u[:, 1]
        sense = torch.where(u[:, 3] > 0.5, 1.0, -1.0).to(torch.float64)
        m = self.masses(u)  # (2,) or (M, 2)
        mu = self.coef("G", 0) * m.sum(-1)
        speed = (v_lo + (v_hi - v_lo) * u[:, 2]) * torch.sqrt(mu / r)
        e_r = torch.stack((torch.cos(phi), torch.sin(phi)), dim=-1)      # (M, 2)
        e_t = torch.stack((-torch.sin(phi), torch.cos(phi)), dim=-1)
        rel_q = r[:, None] * e_r
        rel_v = (sense * speed)[:, None] * e_t
        q = torch.stack((torch.zeros_like(rel_q), rel_q), dim=-2)        # (M, 2 bodies, 2)
        v = torch.stack((torch.zeros_like(rel_v), rel_v), dim=-2)
        return self._from_velocities(q, v, dtype, device)


@register_system
class ThreeBody(AbstractGravitatingBodies):
    r"""Three equal masses in a plane (G = m = 1 by default).

    ``initial="figure_eight"``: the Chenciner–Montgomery figure-eight choreography,
    :math:`q_1 = -q_2 = (0.97000436, -0.24308753)`, :math:`q_3 = 0`,
    :math:`v_3 = (-0.93240737, -0.86473146)`, :math:`v_1 = v_2 = -v_3/2`, with
    velocities scaled by :math:`\sqrt{G m}` (period ≈ 6.3259/√(G m)).

    ``initial="random"`` (our choice): the Lagrange equilateral configuration of
    side s uniform on (0.8, 1.4) at a random orientation, rigidly rotating with
    :math:`ω^2 = 3 G m / s^3`; an unstable equilibrium for equal masses, so the
    perturbations make it break up into chaotic three-body motion.

    ``perturbation``: standard deviation of Gaussian perturbations of positions
    and velocities (relative to the side and the orbital speed for random
    starts); ``None`` means 0.05 for random starts and 0 for the figure-eight.

    Random starts break up into close encounters, which a fixed step resolves
    badly (with leapfrog at dt = 0.001 about a third of the members lose more
    than 1 % of their energy within 10 time units), so ``integrator=auto``
    picks the adaptive ``dopri5`` for them; the figure-eight gets ``leapfrog``.
    """

    name = "three_body"

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        G: float = 1.0
        m: float = 1.0
        initial: str = "random"
        perturbation: Any = None

        randomizable = ("G", "m", "friction")

        def validate_physics(self):
            check_finite_parameter("G", self.G, positive=True)
            check_finite_parameter("m", self.m, positive=True)
            if self.initial not in ("random", "figure_eight"):
                raise ValueError(f"parameter initial must be 'random' or 'figure_eight', got {self.initial!r}")
            if self.perturbation is not None:
                check_finite_parameter("perturbation", self.perturbation, non_negative=True)
                object.__setattr__(self, "perturbation", float(self.perturbation))

    @property
    def default_integrator(self):
        return "dopri5" if self.params.initial == "random" else super().default_integrator

    @property
    def bodies(self):
        return 3

    @property
    def spatial_dim(self):
        return 2

    def _mass_values(self):
        m = self._member_values.get("m", self.params.m)
        return [m, m, m]

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        p = self.params
        z = rng.normal((2, 3, 2), step=1, stream=STREAM_INITIAL)  # (M, q|v, body, axis)
        gm = self.coef("G", 0) * self._mass_values()[0]  # G·m: a float or (M,)
        gm = torch.as_tensor(gm, dtype=torch.float64, device=z.device).reshape(-1, 1, 1)  # (1 or M, 1, 1)
        if p.initial == "figure_eight":
            sigma = 0.0 if p.perturbation is None else p.perturbation
            q0 = torch.tensor(FIGURE_EIGHT_POSITIONS, dtype=torch.float64, device=z.device)
            v0 = torch.tensor(FIGURE_EIGHT_VELOCITIES, dtype=torch.float64, device=z.device)
            q = q0 + sigma * z[:, 0]
            v = v0 * torch.sqrt(gm) + sigma * z[:, 1]
        else:
            sigma = 0.05 if p.perturbation is None else p.perturbation
            u = rng.uniform((2,), step=0, stream=STREAM_INITIAL)
            side = (0.8 + 0.6 * u[:, 1])[:, None, None]
            angle = 2.0 * math.pi * (u[:, :1] + torch.arange(3, dtype=torch.float64, device=u.device) / 3.0)  # (M, 3)
            e_r = torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1)              # (M, 3, 2)
            e_t = torch.stack((-torch.sin(angle), torch.cos(angle)), dim=-1)
            radius = side / math.sqrt(3.0)
            omega = torch.sqrt(3.0 * gm / side ** 3)
            q = radius * e_r + sigma * side * z[:, 0]
            v = omega * radius * (e_t + sigma * z[:, 1])
        return self._from_velocities(q, v, dtype, device)


@register_system
class NBody(AbstractGravitatingBodies):
    r"""N gravitating bodies in ``dim`` dimensions with Plummer softening ε (``softening``).

    Masses: ``mass`` for every body, or a list ``masses`` (one per body).
    Initial states (our choice): standard normal positions and velocities,
    moved to the centre-of-mass frame, with the velocities scaled to virial
    equilibrium 2T = −V.
    """

    name = "n_body"

    @dataclass(frozen=True)
    class Params(HamiltonianParams):
        bodies: int = 5
        dim: int = 3
        G: float = 1.0
        mass: float = 1.0
        masses: Any = None
        softening: float = 0.1

        randomizable = ("G", "mass", "softening", "friction")

        def validate_physics(self):
            if not _is_int(self.bodies) or self.bodies < 2:
                raise ValueError(f"parameter bodies must be an integer >= 2, got {self.bodies!r}")
            if not _is_int(self.dim) or self.dim not in (1, 2, 3):
                raise ValueError(f"parameter dim must be 1, 2 or 3, got {self.dim!r}")
            check_finite_parameter("G", self.G, positive=True)
            check_finite_parameter("mass", self.mass, positive=True)
            check_finite_parameter("softening", self.softening, non_negative=True)
            if self.masses is not None:
                if isinstance(self.masses, (str, bytes)) or not hasattr(self.masses, "__len__") \
                        or len(self.masses) != self.bodies:
                    raise ValueError(f"parameter masses must list {self.bodies} masses (one per body), "
                                     f"got {self.masses!r}")
                for i, value in enumerate(self.masses):
                    check_finite_parameter(f"masses[{i}]", value, positive=True)
                object.__setattr__(self, "masses", tuple(float(v) for v in self.masses))
                if isinstance(self.randomize, dict) and "mass" in self.randomize:
                    raise ValueError("parameter randomize.mass cannot be combined with a masses list "
                                     f"{list(self.masses)}")

    @property
    def bodies(self):
        return self.params.bodies

    @property
    def spatial_dim(self):
        return self.params.dim

    def _mass_values(self):
        if self.params.masses is not None:
            return list(self.params.masses)
        m = self._member_values.get("mass", self.params.mass)
        return [m] * self.params.bodies

    def _softening(self):
        return self._member_values.get("softening", self.params.softening)

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        shape = (self.bodies, self.spatial_dim)
        q = rng.normal(shape, step=0, stream=STREAM_INITIAL)
        v = rng.normal(shape, step=1, stream=STREAM_INITIAL)
        q, v = self.centre_of_mass_frame(q, v)
        p = self.masses(v)[..., None] * v
        kinetic, potential = self.kinetic_energy(p), self.potential_energy(q)
        p = p * torch.sqrt(-potential / (2.0 * kinetic))[:, None, None]
        return self.join(q, p).to(dtype=dtype, device=device)
