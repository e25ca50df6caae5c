r"""Intra-op threads for step-heavy loops on CPU.

A recurrent rollout is a long chain of small operations (one step of a few thousand
to a few million numbers per call). Splitting such an operation over several threads
costs synchronisation on every call, and on a busy machine a second thread stalls the
chain behind other processes. :func:`step_threads` runs a step loop on
``SMALL_STEP_THREADS`` (= 1) intra-op thread when its work per step (numbers in the
state, :func:`state_numel`) is below ``SMALL_STEP_ELEMENTS`` (10⁸), and leaves the
thread count alone otherwise (steps larger than any measured, or a non-CPU device).

Measured with ``benchmarks/bench_rollout.py --sections threads`` (2-core x86_64 VM
shared with other jobs, load 10–14, torch 2.13, float32, quickstart-sized S4D and
Mamba emulators, 1 / 64 / 1024 forecasts of 40 sites, state 4·10⁴ to 6·10⁷ numbers):
two threads took 5.6× / 7.5× / 2.4× (S4D) and 4.9× / 9.9× / 1.9× (Mamba) the wall
time of one. The threshold sits above the largest state measured; on an idle machine
with many cores large batches may gain from threads: the environment variable
``DYNLAB_STEP_THREADS`` overrides the choice (a positive integer is used for every
step loop, ``0`` leaves the thread count untouched).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch

__all__ = ["step_threads", "SMALL_STEP_THREADS", "SMALL_STEP_ELEMENTS", "state_numel"]

SMALL_STEP_THREADS = 1
SMALL_STEP_ELEMENTS = 100_000_000  # state numbers per step below which one thread is used (measured range)
_ENV = "DYNLAB_STEP_THREADS"


def state_numel(tree: Any) -> int:
    """Total number of elements of the tensors in a pytree (tuples, lists, dicts, tensors, None)."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * (2 if tree.is_complex() else 1)
    if isinstance(tree, dict):
        return sum(state_numel(v) for v in tree.values())
    if isinstance(tree, (tuple, list)):
        return sum(state_numel(v) for v in tree)
    return 0


def _threads_for(work: int | None, device) -> int | None:
    """The thread count to use, or None to leave the current one."""
    env = os.environ.get(_ENV)
    if env is not None:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{_ENV} must be an integer >= 0, got {env!r}") from None
        if n < 0:
            raise ValueError(f"{_ENV} must be an integer >= 0, got {env!r}")
        return n or None
    if device is not None and torch.device(device).type != "cpu":
        return None
    if work is not None and work >= SMALL_STEP_ELEMENTS:
        return None
    return SMALL_STEP_THREADS


@contextmanager
def step_threads(work: int | None = None, device=None) -> Iterator[int]:
    """Run a step loop with the measured default number of intra-op threads; restore after.

    Args:
        work: numbers touched per step (e.g. :func:`state_numel` of the state); None
            counts as small.
        device: where the loop runs; nothing changes off the CPU.

    Yields the thread count in effect. Only ever lowers the count (never raises it
    above what the process had).
    """
    if work is not None and (isinstance(work, bool) or not isinstance(work, int) or work < 0):
        raise ValueError(f"work must be an integer >= 0 or None, got {work!r}")
    previous = torch.get_num_threads()
    wanted = _threads_for(work, device)
    if wanted is None or wanted >= previous:
        yield previous
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
