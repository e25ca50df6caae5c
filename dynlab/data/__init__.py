"""Datasets: Zarr (format 3) stores that open as lazy xarray datasets, with the ``ds.dynlab``
accessor (config, system, time steps, variable roles, completion) registered on import."""
from . import accessor  # noqa: F401  (registers ds.dynlab)
from .store import open_dataset

__all__ = ["open_dataset"]
