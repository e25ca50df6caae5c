"""What dynlab owns on disk, and checks made before any compute.

dynlab deletes or overwrites only what it created:

* a **run directory** holds the marker file ``.dynlab-run`` (JSON: dynlab version and
  creation time), written when the run starts; a run directory from before the marker
  counts as dynlab's when it holds both ``config.yaml`` and ``checkpoints/``;
* a **store** is dynlab's when its root attributes carry ``dynlab_format`` or
  ``dynlab_config_hash`` (:func:`is_dynlab_store`).
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import ConfigError

__all__ = ["RUN_MARKER", "is_dynlab_run", "mark_run_dir", "remove_run_dir", "is_dynlab_store", "remove_dynlab_store",
           "check_writable_dir", "check_run_dir", "check_device", "is_inside"]

RUN_MARKER = ".dynlab-run"


def is_dynlab_run(path: str | Path) -> bool:
    """Whether ``path`` is a run directory dynlab created (marker, or the pre-marker layout)."""
    path = Path(path)
    if (path / RUN_MARKER).is_file():
        return True
    return (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()


def mark_run_dir(path: str | Path) -> None:
    """Write the marker into a run directory dynlab is creating (kept if already there)."""
    from . import __version__

    marker = Path(path) / RUN_MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"created_by": "dynlab", "version": __version__,
                                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
                          + "\n")


def remove_run_dir(path: str | Path) -> None:
    """Delete a run directory, only if dynlab created it (``ConfigError`` otherwise)."""
    path = Path(path)
    if not is_dynlab_run(path):
        raise ConfigError(f"refusing to delete {str(path)!r}: it is not a run directory dynlab created "
                          f"(no {RUN_MARKER} marker)")
    shutil.rmtree(path)


def is_dynlab_store(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr store written by dynlab (its format or config-hash attribute)."""
    from .data.store import store_attrs

    attrs = store_attrs(Path(path))
    return bool(attrs) and ("dynlab_format" in attrs or "dynlab_config_hash" in attrs)


def remove_dynlab_store(path: str | Path) -> None:
    """Delete a store, only if dynlab wrote it (``ConfigError`` otherwise)."""
    path = Path(path)
    if not is_dynlab_store(path):
        raise ConfigError(f"refusing to delete {str(path)!r}: it is not a store dynlab wrote "
                          "(no dynlab_format / dynlab_config_hash attribute)")
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (after resolving both)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return p == f or f in p.parents


def check_writable_dir(key: str, path: str | Path) -> None:
    """Refuse a folder that cannot be created or written (root ignores permission bits and
    /proc lies, so a probe file is written and removed), before any compute."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={str(path)!r} exists and is not a directory")
    target = path
    while not target.exists():
        target = target.parent
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".dynlab-probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"{key}={str(path)!r} is not writable: cannot create files in {str(target)!r} "
                          f"({err.strerror or err})") from None


def check_run_dir(run_dir: str | Path, stores: Iterable[str | Path] = ()) -> None:
    """Refuse a run directory that is (or lies inside) one of ``stores``, or holds one of them,
    or cannot be written."""
    run_dir = Path(run_dir).expanduser()
    for store in stores:
        if is_inside(run_dir, store):
            raise ConfigError(f"run_dir={str(run_dir)!r} is inside the dataset store {str(store)!r}; "
                              "choose a run_dir outside it")
        if is_inside(store, run_dir) and Path(store).expanduser().resolve() != run_dir.resolve():
            raise ConfigError(f"the dataset store {str(store)!r} lies inside run_dir={str(run_dir)!r}; keep stores "
                              "outside run directories (overwriting the run would delete the data)")
    check_writable_dir("run_dir", run_dir)


def check_device(value: str, key: str = "device") -> None:
    """Refuse a device torch cannot use here (``cuda`` without a GPU, ``cuda:3`` of 1 GPU)."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={value!r} but CUDA is not available on this machine (use {key}=cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={value!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{key}={value!r} but MPS is not available on this machine (use {key}=cpu)")
