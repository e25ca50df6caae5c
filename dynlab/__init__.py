"""dynlab: a workbench for learning dynamical systems.

Reference simulators (:mod:`simulators`) write Zarr datasets that open as
xarray; learners train on them and are tested against the reference physics.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "open_dataset", "simulate", "load_emulator"]


def __getattr__(name: str):
    # Lazy: `import dynlab` stays cheap and does not pull in xarray/zarr/hydra.
    if name == "open_dataset":
        from .data.store import open_dataset
        return open_dataset
    if name == "simulate":
        from .pipeline.simulate import simulate
        return simulate
    if name == "load_emulator":
        from .train.checkpoint import load_emulator
        return load_emulator
    raise AttributeError(f"module 'dynlab' has no attribute {name!r}")
