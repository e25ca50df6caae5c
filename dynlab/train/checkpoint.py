"""Checkpoints of a run directory, and :func:`load_emulator` to rebuild a trained emulator.

A checkpoint ``<run_dir>/checkpoints/step_<N>.pt`` is one ``torch.save`` dict:

* ``learner``, ``codec`` (``StateCodec.to_dict()``), ``dt``, ``system``
  (``{"name", **parameters}``), ``dtype``: enough to rebuild the emulator with
  ``build_emulator(learner, codec, None, dt=dt, system=system)`` and
  ``load_state_dict(state_dict)`` — no config files needed;
* ``state_dict`` (the emulator), ``optimizer``, ``scheduler``, ``scaler`` (AMP),
  ``objective`` (curriculum and causal schedule), ``step`` (optimiser steps done,
  also the data position: the number of global batches consumed), ``rng`` (torch,
  CUDA, numpy and python states), ``identity`` (what must not change on resume).

Files are written to a temporary name and renamed, so a crash while saving never
leaves a half-written checkpoint; the newest ``keep`` are kept.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, DynlabError

__all__ = ["CHECKPOINT_DIR", "checkpoint_path", "list_checkpoints", "latest_checkpoint", "save_checkpoint",
           "load_checkpoint", "rng_state", "set_rng_state", "load_emulator"]

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (atomically) and prune to the newest ``keep``."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    if keep is not None:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files: full unpickling)."""
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise DynlabError(f"no checkpoint at {path}") from None
    except Exception as err:  # truncated or foreign file
        raise DynlabError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}".splitlines()[0]) from None


def rng_state() -> dict[str, Any]:
    """The global random states: torch (CPU and every CUDA device), numpy, python."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _system(spec: dict[str, Any] | None):
    if not spec:
        return None
    from simulators import make_system

    params = dict(spec)
    name = params.pop("name")
    try:
        return make_system(name, **params)
    except ValueError:
        return None


def load_emulator(run_dir: str | Path, *, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                  builder: Callable[..., Any] | None = None):
    """Rebuild the trained emulator of a run directory (in eval mode).

    Args:
        run_dir: a directory written by ``dynlab train``.
        checkpoint: a checkpoint file (default: the run's newest).
        device: where to put the emulator.
        builder: ``build_emulator``-like function (default
            :func:`dynlab.emulators.registry.build_emulator`).

    Raises :class:`DynlabError` when the run has no checkpoint or it does not fit
    the learner it names.
    """
    from ..emulators.codec import StateCodec

    run_dir = Path(run_dir)
    if checkpoint is None:
        if not run_dir.is_dir():
            raise DynlabError(f"no run directory at {run_dir}")
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise DynlabError(f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/step_*.pt); was it trained?")
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    if builder is None:
        from ..emulators.registry import build_emulator as builder
    codec = StateCodec.from_dict(ckpt["codec"])
    try:
        emulator = builder(ckpt["learner"], codec, None, dt=ckpt.get("dt"), system=_system(ckpt.get("system")))
    except ValueError as err:
        raise ConfigError(f"cannot rebuild the emulator of {checkpoint}: {err}") from None
    emulator = emulator.to(DTYPES.get(ckpt.get("dtype", "float32"), torch.float32))
    try:
        emulator.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"checkpoint {checkpoint} does not fit learner {ckpt['learner'].get('name')!r}: {first}") from None
    return emulator.to(device).eval()
