"""Adaptive Dormand–Prince 5(4): torchdiffeq, or dynlab's own loop compiled into one call."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .base import AbstractIntegrator, register_integrator
from .compiled import CHUNK_SAVES, CompiledFunction
from .dormand_prince import dormand_prince_chunk, initial_step


@dataclass(frozen=True)
class Dopri5Options:
    """The config keys of ``integrator=dopri5`` (schema; validated in :class:`Dopri5`)."""

    rtol: float = field(default=1e-7, metadata={"help": "relative tolerance of the error test", "gt": 0})
    atol: float = field(default=1e-9, metadata={"help": "absolute tolerance of the error test", "gt": 0})
    blocks: bool = field(default=False, metadata={
        "help": "dynlab's own Dormand-Prince, exact output times, loops in one call per 32 outputs"})
    compile: bool = field(default=False, metadata={
        "help": "with blocks: torch.compile that call (the one-member fast path); eager fallback with a warning"})


@register_integrator
class Dopri5(AbstractIntegrator):
    r"""Dormand–Prince 5(4) with adaptive steps.

    The step size is controlled by the mixed error test
    :math:`\|e\| \le \text{atol} + \text{rtol}\,|x|` and the solver returns the
    states at the output times (``save_every · dt`` apart; ``dt`` plays no
    other part).

    By default the integration is ``torchdiffeq.odeint`` (its dense output gives
    the states at the output times). ``blocks=True`` uses dynlab's own
    Dormand–Prince (:mod:`.dormand_prince`: same tableau, norm and controller
    family, initial step of Hairer–Nørsett–Wanner, output times hit exactly by
    shortening the step that would pass them), whose loops over step attempts
    and output times run inside one graph per chunk of :data:`CHUNK_SAVES`
    outputs; ``compile=True`` (only with ``blocks``) compiles that graph with
    ``torch.compile`` — the fast path for one or a few members, where eager
    torch is dispatch-bound. The two paths agree to the tolerance, not bit for bit.

    Step-size control uses one norm over the whole batch, so a member's result
    depends on the members integrated with it: ``batch_independent`` is False and
    datasets integrate one storage chunk at a time (always the same members).
    """

    name = "dopri5"
    Options = Dopri5Options
    batch_independent = False
    #: most step attempts per output interval (``blocks=True``)
    max_attempts = 1_000_000

    def __init__(self, rtol: float = 1e-7, atol: float = 1e-9, blocks: bool = False, compile: bool = False):
        for label, value in (("rtol", rtol), ("atol", atol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"integrator.{label} must be a finite number > 0, got {value!r}")
        for label, value in (("blocks", blocks), ("compile", compile)):
            if not isinstance(value, bool):
                raise ValueError(f"integrator.{label} must be true or false, got {value!r}")
        if compile and not blocks:
            raise ValueError("integrator.compile=true for dopri5 needs integrator.blocks=true "
                             "(torchdiffeq's loop is not compiled)")
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.blocks = blocks
        self.compile = compile
        self._runners: dict[int, CompiledFunction] = {}
        #: counts of the last ``blocks=True`` integration: accepted steps, rejected steps, rhs calls
        self.last_stats: dict[str, int] = {}

    def options(self):
        opts = {"rtol": self.rtol, "atol": self.atol}
        if self.blocks:
            opts["blocks"] = True
        if self.compile:
            opts["compile"] = True
        return opts

    @property
    def compile_seconds(self) -> float:
        """Wall time spent compiling chunk graphs so far (``blocks=True, compile=True``)."""
        return sum(r.compile_seconds for r in self._runners.values())

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"dopri5 cannot integrate the stochastic system {system.name}; "
                             "use integrator=euler_maruyama")

    def integrate(self, system, x0, *, t0, dt, n_steps, save_every, step0=0, rng=None, callback=None):
        if n_steps % save_every:
            raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
        n_saves = n_steps // save_every
        if n_saves == 0:
            return x0.new_empty((0, *x0.shape))
        t = t0 + dt * save_every * torch.arange(n_saves + 1, dtype=torch.float64)
        if self.blocks:
            return self._integrate_blocks(system, x0, t.to(x0.device), callback)
        from torchdiffeq import odeint

        t = t.to(device=x0.device, dtype=x0.dtype)
        out = odeint(system.vector_field, x0, t, method="dopri5", rtol=self.rtol, atol=self.atol)
        if callback is not None:
            callback(n_saves)
        return out[1:]

    def _runner(self, system) -> CompiledFunction:
        if id(system) not in self._runners:
            def probe(args):  # the first output interval only: a cheap check of the compiled graph
                *carry, targets = args
                return (*carry, torch.minimum(targets, targets[0]))

            args = (system, self.rtol, self.atol, self.max_attempts)
            self._runners[id(system)] = CompiledFunction(
                dormand_prince_chunk(*args), f"dopri5 blocks ({system.name})", compile=self.compile,
                probe=probe, eager=dormand_prince_chunk(*args, graph=False))
        return self._runners[id(system)]

    def _integrate_blocks(self, system, x0, times, callback):
        """Own Dormand–Prince over the output ``times`` (float64, ``times[0]`` = start)."""
        runner = self._runner(system)
        n_saves = len(times) - 1
        out = x0.new_empty((n_saves, *x0.shape))
        t = times[0].clone()
        k1 = system.vector_field(t, x0)
        h = torch.tensor(initial_step(system.vector_field, float(t), x0, k1, self.rtol, self.atol),
                         dtype=torch.float64, device=x0.device)
        rejected = torch.zeros((), dtype=torch.bool, device=x0.device)
        x, attempts, accepted = x0, 0, 0
        for s0 in range(0, n_saves, CHUNK_SAVES):
            c = min(CHUNK_SAVES, n_saves - s0)
            targets = times[1 + s0:1 + s0 + CHUNK_SAVES]
            if c < CHUNK_SAVES:  # pad with empty intervals (one graph serves every run)
                targets = torch.cat((targets, targets[-1:].expand(CHUNK_SAVES - c)))
            t, x, k1, h, rejected, counts, xs, ts = runner(t, x, k1, h, rejected, targets)
            attempts, accepted = attempts + int(counts[0]), accepted + int(counts[1])
            out[s0:s0 + c] = xs[:c]
            if not bool(torch.equal(ts[:c], targets[:c])):
                first = int((ts[:c] != targets[:c]).nonzero()[0, 0])
                if not bool(torch.isfinite(x).all()):  # blow-up: the driver names the member
                    out[s0 + first:] = float("nan")
                    break
                raise RuntimeError(f"dopri5: step size underflow or more than {self.max_attempts} attempts "
                                   f"before t={float(targets[first]):g} (stuck at t={float(ts[first]):g}); "
                                   "the solution may blow up, or the problem be stiff or the tolerances too tight")
            if callback is not None:
                for k in range(s0 + 1, s0 + c + 1):
                    callback(k)
        self.last_stats = {"steps": accepted, "rejected": attempts - accepted,
                           "rhs_evaluations": 6 * attempts + 2}
        return out
