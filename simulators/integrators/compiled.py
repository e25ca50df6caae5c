r"""Many steps in one call: the step loop inside one compiled graph.

Small ensembles (one to a few dozen members) are dispatch-bound: an RK4 step of
one Lorenz96 member is ~40 tensor operations of 40 numbers each, so eager torch
spends ~99 % of its time in per-operation overhead, and ``torch.compile`` of a
single step (``compile=True``) still pays one Python call per step.

Here the loops themselves become part of the graph, written with torch's
control-flow operators (``torch._higher_order_ops``):

* ``while_loop`` over the steps between two saved states (the trip count is a
  tensor, so one compiled graph serves every ``save_every`` and ``n_steps``);
* ``scan`` over a chunk of :data:`CHUNK_SAVES` saved states, which stacks them.

One call integrates a whole chunk of saves; Inductor turns both loops into C++
(``cpp_wrapper``), so a step costs a few kernel launches and allocations instead
of ~40 Python dispatches. The same functions also run eagerly (the operators
have eager implementations), which the tests use as a cheap check of the code
path and which is the fallback when compilation is unavailable.

The operations inside a step are the step's own, in the same order, so for
element-wise systems the result is bit-identical to the eager per-step loop.
Because a compiler can be wrong (Inductor mis-fuses some unrolled stencil
steps), :class:`CompiledFunction` checks its first result against the eager
function and falls back to eager mode, with a warning, if they disagree beyond
rounding.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import torch

__all__ = ["CHUNK_SAVES", "CompiledFunction", "fixed_step_chunk", "integrate_fixed_step_in_chunks"]

#: saved states per compiled call (padded with empty saves at the end of a run)
CHUNK_SAVES = 32


def _control_flow() -> tuple[Callable, Callable]:
    from torch._higher_order_ops.scan import scan
    from torch._higher_order_ops.while_loop import while_loop

    return scan, while_loop


def _own_code(fn: Callable) -> Callable:
    """A copy of the function ``fn`` with its own code object.

    Dynamo caches compiled graphs per code object and stops recompiling (here:
    falls back to eager) after ``recompile_limit`` entries; every chunk function
    shares one code object, so each :class:`CompiledFunction` compiles a copy
    to keep its cache (one entry per input signature) to itself."""
    import types

    if not isinstance(fn, types.FunctionType):
        return fn
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__,
                             fn.__closure__)
    own.__kwdefaults__ = fn.__kwdefaults__
    return own


def _signature(args: tuple) -> tuple:
    return tuple((tuple(a.shape), a.dtype, a.device.type) if isinstance(a, torch.Tensor) else a
                 for a in args)


def _close(a: Any, b: Any) -> bool:
    """Whether two (nested tuples of) tensors agree to rounding (1e4 ulp of the scale)."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if not isinstance(a, torch.Tensor) or not a.is_floating_point():
        return bool(torch.equal(a, b)) if isinstance(a, torch.Tensor) else a == b
    if a.shape != b.shape:
        return False
    finite = torch.isfinite(b)
    if not bool(torch.equal(finite, torch.isfinite(a))):
        return False
    scale = 1.0 + float(b[finite].abs().max()) if bool(finite.any()) else 1.0
    tol = 1e4 * torch.finfo(a.dtype).eps * scale
    return bool(((a - b)[finite].abs() <= tol).all())


class CompiledFunction:
    """``fn`` compiled by ``torch.compile`` (``fullgraph``, static shapes, C++ wrapper).

    ``eager`` (default ``fn``) is the same computation for eager mode (e.g. with
    Python loops instead of ``scan``/``while_loop``, which are slow eagerly).
    With ``compile=False`` it simply calls ``eager``. The first call for each input
    signature compiles; its wall time is added to :attr:`compile_seconds` and its
    result on ``probe(args)`` (cheap inputs of the same signature; default: ``args``)
    is checked against eager ``fn`` on the same inputs (see :func:`_close`).
    If compiling or running fails, or the check fails, it warns once and calls
    ``fn`` eagerly from then on (``fallback`` is then True).
    """

    def __init__(self, fn: Callable, label: str, compile: bool = True,
                 probe: Callable[[tuple], tuple] | None = None, eager: Callable | None = None):
        if not callable(fn) or (eager is not None and not callable(eager)):
            raise ValueError(f"CompiledFunction needs callables, got {fn!r} and {eager!r}")
        self.graph_fn = fn
        self.fn = fn if eager is None else eager
        self.label = label
        self.compile = bool(compile)
        self.compile_seconds = 0.0
        self.fallback = False
        self.probe = probe
        self._compiled: Callable | None = None
        self._checked: set[tuple] = set()

    def _give_up(self, why: str) -> None:
        warnings.warn(f"{self.label}: {why}; integrating in eager mode", RuntimeWarning, stacklevel=3)
        self.fallback = True

    def __call__(self, *args: Any) -> Any:
        if not self.compile or self.fallback:
            return self.fn(*args)
        if self._compiled is None:
            try:
                self._compiled = torch.compile(_own_code(self.graph_fn), fullgraph=True, dynamic=False,
                                               options={"cpp_wrapper": True})
            except Exception as err:  # pragma: no cover - depends on the toolchain
                self._give_up(f"torch.compile unavailable ({type(err).__name__}: {err})")
                return self.fn(*args)
        sig = _signature(args)
        try:
            if sig not in self._checked:
                probe = self.probe(args) if self.probe is not None else args
                start = time.perf_counter()
                out = self._compiled(*probe)
                self.compile_seconds += time.perf_counter() - start
                if not _close(out, self.fn(*probe)):
                    self._give_up("the compiled result disagrees with eager mode beyond rounding "
                                  "(a compiler bug)")
                    return self.fn(*args)
                self._checked.add(sig)
            return self._compiled(*args)
        except Exception as err:
            self._give_up(f"compiled call failed ({type(err).__name__}: {str(err)[:300]})")
            return self.fn(*args)


def fixed_step_chunk(step: Callable, system: Any, dt: float, *, graph: bool = True) -> Callable:
    r"""A function integrating one chunk of saves with the one-step method ``step``.

    ``chunk(x, t0, i0, counts) -> ys``: starting from state ``x`` (``(M, *S)``) at
    step index ``i0`` (0-d int64), make ``counts[s]`` steps before saving state
    ``s`` (``counts``: ``(C,)`` int64; 0 saves the current state again). Step
    ``i`` starts at time ``t0 + i·dt`` (``t0``: 0-d float64), the same float
    arithmetic as :meth:`AbstractFixedStepIntegrator.integrate`. Returns ``ys``,
    shape ``(C, M, *S)``. ``graph=True`` writes the loops with ``scan`` and
    ``while_loop`` (for ``torch.compile``), ``graph=False`` as Python loops
    (eager mode: the reference and the fallback).
    """
    def python_chunk(x, t0, i0, counts):
        ys = []
        i = i0
        for n in counts.tolist():
            for _ in range(n):
                x = step(system, t0 + i.to(t0.dtype) * dt, x, dt)
                i = i + 1
            ys.append(x)
        return torch.stack(ys)

    if not graph:
        return python_chunk
    scan, while_loop = _control_flow()

    def chunk(x: torch.Tensor, t0: torch.Tensor, i0: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        def body(j, i, x):
            t = t0 + i.to(t0.dtype) * dt
            return j + 1, i + 1, step(system, t, x, dt)

        def one_save(carry, n):
            i, x = carry
            _, i, x = while_loop(lambda j, i, x: j < n, body, (torch.zeros_like(n), i, x))
            return (i, x), x.clone()

        _, ys = scan(one_save, (i0, x), counts)
        return ys

    return chunk


def integrate_fixed_step_in_chunks(runner: Callable, x0: torch.Tensor, *, t0: float, n_steps: int,
                                   save_every: int, callback: Callable[[int], None] | None = None
                                   ) -> torch.Tensor:
    """Drive a :func:`fixed_step_chunk` runner over ``n_steps`` steps, saving every
    ``save_every``; returns ``(n_steps // save_every, *x0.shape)`` like
    :meth:`AbstractIntegrator.integrate`."""
    n_saves = n_steps // save_every
    out = x0.new_empty((n_saves, *x0.shape))
    t0_t = torch.tensor(float(t0), dtype=torch.float64, device=x0.device)
    x, i = x0, 0
    for s0 in range(0, n_saves, CHUNK_SAVES):
        c = min(CHUNK_SAVES, n_saves - s0)
        counts = torch.zeros(CHUNK_SAVES, dtype=torch.int64, device=x0.device)
        counts[:c] = save_every
        ys = runner(x, t0_t, torch.tensor(i, dtype=torch.int64, device=x0.device), counts)
        out[s0:s0 + c] = ys[:c]
        x, i = ys[c - 1], i + c * save_every
        if callback is not None:
            for k in range(s0 + 1, s0 + c + 1):
                callback(k)
    return out
