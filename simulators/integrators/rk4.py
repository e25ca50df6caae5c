"""Classical fourth-order Runge–Kutta (fixed step)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import AbstractFixedStepIntegrator, register_integrator
from .compiled import CompiledFunction, fixed_step_chunk, integrate_fixed_step_in_chunks


@dataclass(frozen=True)
class RK4Options:
    """The config keys of ``integrator=rk4`` (schema; validated in :class:`RK4`)."""

    compile: bool = field(default=False, metadata={
        "help": "torch.compile the step (or, with blocks, the chunk); eager fallback with a warning"})
    blocks: bool = field(default=False, metadata={
        "help": "loops over steps and saves in one call per 32 saves (with compile: the 1-64 member fast path)"})


@register_integrator
class RK4(AbstractFixedStepIntegrator):
    r"""Classical RK4, global error :math:`O(\Delta t^4)`.

    .. math::
        k_1 = f(t, x),\; k_2 = f(t + \tfrac{h}{2}, x + \tfrac{h}{2} k_1),\;
        k_3 = f(t + \tfrac{h}{2}, x + \tfrac{h}{2} k_2),\; k_4 = f(t + h, x + h k_3),
        \qquad x_{n+1} = x_n + \tfrac{h}{6}(k_1 + 2k_2 + 2k_3 + k_4).

    Noise, if the system has any, is ignored: use ``euler_maruyama`` for SDEs.

    ``blocks=True`` integrates whole chunks of saved states per call, the loops
    over steps and saves inside one graph (:mod:`.compiled`); with
    ``compile=True`` that graph is compiled by ``torch.compile`` (the fast path
    for small ensembles), otherwise it runs eagerly (same numbers, slower). The
    steps are the same operations in the same order as the default path.
    """

    name = "rk4"
    Options = RK4Options

    def __init__(self, compile: bool = False, blocks: bool = False):
        super().__init__(compile=compile)
        if not isinstance(blocks, bool):
            raise ValueError(f"integrator.blocks must be true or false, got {blocks!r}")
        self.blocks = blocks
        self._runners: dict[tuple, CompiledFunction] = {}

    def options(self):
        opts = super().options()
        if self.blocks:
            opts["blocks"] = True
        return opts

    @property
    def compile_seconds(self) -> float:
        """Wall time spent compiling chunk graphs so far (``blocks=True``)."""
        return sum(r.compile_seconds for r in self._runners.values())

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"rk4 cannot integrate the stochastic system {system.name}; "
                             "use integrator=euler_maruyama")

    def step(self, system, t, x, dt, noise=None):
        f = system.vector_field
        half = 0.5 * dt
        k1 = f(t, x)
        k2 = f(t + half, x + half * k1)
        k3 = f(t + half, x + half * k2)
        k4 = f(t + dt, x + dt * k3)
        return x + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)

    def _runner(self, system, dt: float) -> CompiledFunction:
        key = (id(system), float(dt))
        if key not in self._runners:
            def probe(args):  # one step per save: a cheap check of the compiled graph
                x, t0, i0, counts = args
                return x, t0, i0, counts.clamp(max=1)

            step = RK4.step.__get__(self)
            self._runners[key] = CompiledFunction(
                fixed_step_chunk(step, system, float(dt)), f"rk4 blocks ({system.name})",
                compile=self.compile, probe=probe, eager=fixed_step_chunk(step, system, float(dt), graph=False))
        return self._runners[key]

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        if not self.blocks:
            return super().integrate(system, x0, t0=t0, dt=dt, n_steps=n_steps, save_every=save_every,
                                     step0=step0, rng=rng, callback=callback)
        if n_steps % save_every:
            raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
        return integrate_fixed_step_in_chunks(self._runner(system, dt), x0, t0=t0, n_steps=n_steps,
                                              save_every=save_every, callback=callback)
