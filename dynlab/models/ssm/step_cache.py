r"""Memo of the input-independent work of recurrent steps (discretisations and the like).

A recurrent ``step`` of an SSM layer needs tensors that depend only on the parameters
and the step size — S4D's :math:`\bar A = e^{\Delta A}` and :math:`\bar B`, Mamba's
:math:`A = -e^{A_{\log}}` — and recomputing them at every step costs more than the
step itself for small batches. :func:`cached` computes them once and reuses them
while they are valid:

* **Outside autograd** (``torch.no_grad()``, inference mode, or parameters that do not
  require grad) entries live on the module and are keyed on every source tensor's
  identity, storage address, dtype, device, shape and in-place version counter
  (``Tensor._version``). An optimiser step, ``load_state_dict``, ``copy_`` under
  ``no_grad`` or ``module.to(...)`` changes one of these and the entry is recomputed.
  (Writing through ``param.data`` bypasses the version counter: call
  :func:`clear_step_cache` after doing that. ``module.train(mode)`` also clears it.)
* **Under autograd** an entry is a node of the current graph, so reusing it in a
  later graph (after its backward freed it) would be wrong. Entries are then kept
  only inside a :func:`step_cache_scope` — one rollout — and dropped when the scope
  ends; the steps of that rollout share one node, and gradients flow through it to
  the parameters exactly as if it were recomputed at every step. Outside a scope
  nothing is cached under autograd.
* **While torch.compile traces**, nothing is cached: the compiled graph recomputes
  (and fuses) the work.

:func:`set_step_cache_enabled` (or the :func:`step_cache_disabled` context) switches
the memo off globally: the uncached path, kept for benchmarks and tests.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, Sequence

import torch
from torch import Tensor, nn

__all__ = ["cached", "step_cache_scope", "step_cache_disabled", "set_step_cache_enabled",
           "step_cache_enabled", "clear_step_cache"]

_MAX_ENTRIES = 16  # per module: a few step sizes (dt values) and dtypes at once
_ATTR = "_step_cache_entries"
_state = threading.local()
_enabled = [True]


def set_step_cache_enabled(enabled: bool) -> None:
    """Switch the memo on or off for the whole process (on by default)."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be a bool, got {enabled!r}")
    _enabled[0] = enabled


def step_cache_enabled() -> bool:
    """Whether :func:`cached` memoises (see :func:`set_step_cache_enabled`)."""
    return _enabled[0]


@contextmanager
def step_cache_disabled() -> Iterator[None]:
    """Run the block with the memo switched off (every step recomputes its discretisation)."""
    previous = _enabled[0]
    _enabled[0] = False
    try:
        yield
    finally:
        _enabled[0] = previous


@contextmanager
def step_cache_scope() -> Iterator[None]:
    """Share step tensors across the steps of one rollout, also under autograd.

    Nested scopes share the outermost scope's entries; they are dropped when it ends.
    """
    outer = getattr(_state, "scope", None)
    if outer is None:
        _state.scope = {}
    try:
        yield
    finally:
        if outer is None:
            _state.scope = None


def clear_step_cache(module: nn.Module) -> None:
    """Drop the persistent entries of ``module`` and all its submodules."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    for m in module.modules():
        m.__dict__.pop(_ATTR, None)


def _tensor_key(t: Tensor) -> tuple:
    # a new tensor (module.to, a replaced Parameter) is allocated while the old one is
    # alive, so its address differs; dtype and device are in the key for safety
    return (t.data_ptr(), t._version, t.dtype, t.device)


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def cached(module: nn.Module, name: str, extra: Hashable, sources: Sequence[Tensor],
           compute: Callable[[], object]) -> object:
    """``compute()``, memoised for ``module`` under ``(name, extra)`` while ``sources`` are unchanged.

    Args:
        module: the owner (persistent entries are stored on it).
        name: what is computed (one module may memoise several things).
        extra: the other inputs of ``compute`` (a step size, a dtype), hashable.
        sources: every tensor ``compute`` reads (parameters, buffers).
        compute: the function to memoise; it must read only ``sources`` and ``extra``.
    """
    if not _enabled[0] or _is_compiling():
        return compute()
    key = (name, extra, torch.is_inference_mode_enabled(), tuple(_tensor_key(t) for t in sources))
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in sources)
    if needs_grad:
        scope = getattr(_state, "scope", None)
        if scope is None:
            return compute()
        key = (id(module),) + key
        if key not in scope:
            scope[key] = (module, compute())  # the module is held so its id is not reused
        return scope[key][1]
    entries = module.__dict__.setdefault(_ATTR, {})
    if key not in entries:
        if len(entries) >= _MAX_ENTRIES:
            entries.clear()
        with torch.no_grad():  # grad is off or not needed: store no graph
            entries[key] = compute()
    return entries[key]
