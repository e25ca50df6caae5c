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

Everything in a checkpoint is a tensor or a plain container (dicts, lists, numbers,
strings): numpy's RNG state is stored as its key array (a tensor) and integers.
Checkpoints are read with ``torch.load(weights_only=True)``, which runs no code; a
file that needs anything else is refused as possibly unsafe. Checkpoints written
before this format (numpy's state as a pickled ndarray) load with exactly the
numpy reconstruction globals they need allowed, and nothing else.

Files are written to a temporary name, flushed to disk (fsync) and renamed, so a
crash while saving never leaves a half-written checkpoint; the newest ``keep`` are
kept. A truncated or unreadable newest checkpoint is named and skipped for the
previous complete one (:func:`load_latest_checkpoint`).
"""
from __future__ import annotations

import os
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, DynlabError

__all__ = ["CHECKPOINT_DIR", "checkpoint_path", "list_checkpoints", "latest_checkpoint", "save_checkpoint",
           "load_checkpoint", "load_latest_checkpoint", "UnsafeCheckpointError", "UnreadableCheckpointError",
           "rng_state", "set_rng_state", "load_emulator"]

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


class UnsafeCheckpointError(DynlabError):
    """The file needs more than tensors and plain containers to load: it may run code."""


class UnreadableCheckpointError(DynlabError):
    """The file is truncated, damaged or not a checkpoint."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (temp file, fsync, rename) and prune to the newest ``keep``."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if keep is not None:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _legacy_numpy_globals() -> list[Any]:
    """The globals a pre-weights-only checkpoint needs for numpy's RNG state, and nothing else."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    found: list[Any] = [_reconstruct, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "UInt32DType"):
        found.append(dtypes.UInt32DType)
    return found


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code runs).

    Raises :class:`UnsafeCheckpointError` for a file that would need other globals
    (it is never loaded unsafely) and :class:`UnreadableCheckpointError` for a
    truncated or damaged file.
    """
    path = Path(path)
    if not path.is_file():
        raise DynlabError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err) and "Unsupported global" not in str(err):
            raise UnreadableCheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
        try:  # a checkpoint of the previous format: numpy's RNG state as an ndarray
            with torch.serialization.safe_globals(_legacy_numpy_globals()):
                ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise UnsafeCheckpointError(
                f"refusing checkpoint {path}: it needs more than tensors and plain data to load, so it may be "
                "unsafe (it could run code); dynlab never loads such files") from None
        except Exception as err2:
            raise UnreadableCheckpointError(f"cannot read checkpoint {path}: {type(err2).__name__}: "
                                            f"{str(err2).splitlines()[0] if str(err2) else ''}") from None
    except Exception as err:  # truncated or foreign file
        text = str(err).splitlines()[0] if str(err) else ""
        raise UnreadableCheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {text}") from None
    if not isinstance(ckpt, dict):
        raise UnreadableCheckpointError(f"{path} is not a dynlab checkpoint (a {type(ckpt).__name__}, not a dict)")
    return ckpt


def load_latest_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu",
                           log: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest *readable* checkpoint of a run: ``(path, state)``, or None if the run has none.

    A truncated or unreadable newer checkpoint is named (through ``log``, default a warning)
    and skipped for the previous one; an unsafe one stops the search with
    :class:`UnsafeCheckpointError`.
    """
    say = log or (lambda msg: warnings.warn(msg, stacklevel=3))
    found = list_checkpoints(run_dir)
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path, map_location)
        except UnreadableCheckpointError as err:
            say(f"{err}; falling back to the previous checkpoint")
    if found:
        raise UnreadableCheckpointError(f"no readable checkpoint in {Path(run_dir) / CHECKPOINT_DIR} "
                                        f"({len(found)} found, all truncated or damaged)")
    return None


def rng_state() -> dict[str, Any]:
    """The global random states as tensors and plain types: torch (CPU and every CUDA
    device), numpy (MT19937 key array and integers), python."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": [int(version), [int(v) for v in internal], gauss]}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (also the previous format with numpy's tuple state)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npstate = state["numpy"]
    if isinstance(npstate, dict):
        key = np.asarray(npstate["key"].numpy() if isinstance(npstate["key"], torch.Tensor) else npstate["key"],
                         dtype=np.uint32)
        np.random.set_state((npstate["kind"], key, npstate["pos"], npstate["has_gauss"], npstate["cached_gaussian"]))
    else:
        np.random.set_state(npstate)
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


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
                  builder: Callable[..., Any] | None = None, log: Callable[[str], None] | None = None):
    """Rebuild the trained emulator of a run directory (in eval mode).

    Args:
        run_dir: a directory written by ``dynlab train``.
        checkpoint: a checkpoint file (default: the run's newest).
        device: where to put the emulator.
        builder: ``build_emulator``-like function (default
            :func:`dynlab.emulators.registry.build_emulator`).
        log: where a skipped (truncated) newest checkpoint is reported (default: a warning).

    Raises :class:`DynlabError` when the run has no checkpoint or it does not fit
    the learner it names.
    """
    from ..emulators.codec import StateCodec

    run_dir = Path(run_dir)
    if checkpoint is None:
        if not run_dir.is_dir():
            raise DynlabError(f"no run directory at {run_dir}")
        found = load_latest_checkpoint(run_dir, log=log)
        if found is None:
            raise DynlabError(f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/step_*.pt); was it trained?")
        checkpoint, ckpt = found
    else:
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
