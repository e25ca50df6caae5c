"""Datasets: Zarr (format 3) stores that open as lazy xarray datasets."""
from .store import open_dataset

__all__ = ["open_dataset"]
