"""The dataset store: one Zarr (format 3) group per dataset.

Layout (DESIGN.md, Datasets):

* data variables on ``(member, time, *system dims)`` (or the system's own
  dims after ``member``), chunked by whole members, each chunk about
  ≥ 1 MiB where the data allows;
* coordinates ``member``, ``time`` and the system's dims;
* store attributes: the resolved config (YAML), its hash, seed, integrator,
  time grid and versions;
* a completion record ``_dynlab/chunk_done`` with one element per member
  chunk, each element in its own Zarr chunk, so writers of different blocks
  (processes, dask workers) never touch the same object.

Blocks of members are written straight into their region with zarr; xarray
only lays out the metadata and coordinates.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import StoreError

__all__ = ["VariableSpec", "STORE_FORMAT", "member_chunk_size", "create_store", "store_attrs", "consolidate",
           "chunks_done", "write_region", "mark_chunks_done", "open_dataset", "remove_store"]

STORE_FORMAT = "dynlab-dataset/1"
DONE_GROUP = "_dynlab"
DONE_ARRAY = "chunk_done"
TARGET_CHUNK_BYTES = 1 << 20
#: crc32c checksums on every chunk of new stores (False reproduces a store from before them)
CHUNK_CHECKSUMS = True


@dataclass(frozen=True)
class VariableSpec:
    """A data variable of the store: dims start with ``member``."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: Mapping[str, str]


def member_chunk_size(bytes_per_member: int, members: int, target: int = TARGET_CHUNK_BYTES) -> int:
    """Whole members per chunk so that a chunk holds at least ``target`` bytes."""
    if bytes_per_member <= 0:
        return members
    return max(1, min(members, math.ceil(target / bytes_per_member)))


def create_store(path: Path, variables: Sequence[VariableSpec], coords: Mapping[str, tuple[tuple[str, ...], Any, Mapping[str, str]]],
                 attrs: Mapping[str, Any], member_chunk: int) -> None:
    """Lay out an empty store at ``path``: metadata, coordinates, completion record."""
    import dask.array as da
    import xarray as xr
    import zarr

    members = variables[0].shape[0]
    data_vars = {}
    encoding = {}
    from zarr.codecs import Crc32cCodec, ZstdCodec

    for v in variables:
        chunks = (member_chunk, *v.shape[1:])
        data_vars[v.name] = xr.Variable(v.dims, da.zeros(v.shape, chunks=chunks, dtype=v.dtype), dict(v.attrs))
        # a crc32c checksum on every chunk: damage is detected on read (dynlab verify)
        encoding[v.name] = {"chunks": chunks,
                            "compressors": [ZstdCodec(), Crc32cCodec()] if CHUNK_CHECKSUMS else [ZstdCodec()]}
    ds = xr.Dataset(data_vars, coords={name: xr.Variable(dims, np.asarray(values), dict(a))
                                       for name, (dims, values, a) in coords.items()})
    ds.attrs.update(attrs)
    ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding)
    n_chunks = math.ceil(members / member_chunk)
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    done_group = group.require_group(DONE_GROUP)
    done_group.create_array(DONE_ARRAY, shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
    # the format attribute goes last: a store without it was never finished laying out
    group.attrs.update({"dynlab_format": STORE_FORMAT})


def consolidate(path: Path) -> None:
    """Write consolidated metadata, so that a plain ``xarray.open_zarr(path)`` opens the
    finished store quietly and fast. (Zarr format 3 has no consolidated metadata in its
    specification yet; zarr-python's extension is what xarray reads, and its warning
    about that is silenced here.)"""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def remove_store(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def store_attrs(path: Path) -> dict[str, Any] | None:
    """The root attributes of a Zarr store at ``path``, or None if it is not one."""
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:
        return None


def chunks_done(path: Path) -> np.ndarray | None:
    """Completion record (bool per member chunk), or None if the store has none."""
    import zarr

    try:
        arr = zarr.open_array(str(path), path=f"{DONE_GROUP}/{DONE_ARRAY}", mode="r")
    except Exception:
        return None
    return np.asarray(arr[:]).astype(bool)


def write_region(path: Path, start: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Write member rows ``start : start + len`` of each variable (chunk-aligned)."""
    import zarr

    for name, values in arrays.items():
        # every chunk is written, even one equal to the fill value: an absent chunk file is a lost chunk
        arr = zarr.open_array(str(path), path=name, mode="r+", config={"write_empty_chunks": True})
        arr[start:start + values.shape[0]] = values


def mark_chunks_done(path: Path, chunk_ids: Sequence[int]) -> None:
    import zarr

    arr = zarr.open_array(str(path), path=f"{DONE_GROUP}/{DONE_ARRAY}", mode="r+")
    for i in chunk_ids:
        arr[i] = 1


def _ranges(ids: Sequence[int]) -> str:
    """Compact ``0-3, 7, 9-10`` rendering of sorted integers."""
    out, start, prev = [], None, None
    for i in list(ids) + [None]:
        if start is None:
            start = prev = i
        elif i is not None and i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    return ", ".join(out)


def missing_members(path: Path, done: np.ndarray, attrs: Mapping[str, Any]) -> list[int]:
    chunk = int(attrs.get("member_chunk", 1))
    members = int(attrs.get("members", len(done) * chunk))
    return [m for c in np.flatnonzero(~done) for m in range(c * chunk, min((c + 1) * chunk, members))]


def open_dataset(path: str | Path, *, allow_incomplete: bool = False):
    """Open a dataset written by ``dynlab simulate`` as a lazy, dask-backed ``xarray.Dataset``.

    The store is checked first: a missing path, a Zarr store that dynlab did not
    write, or an incomplete one (an interrupted run) raise :class:`StoreError`
    saying what is wrong. ``allow_incomplete=True`` opens an incomplete store
    anyway (missing members read as NaN).
    """
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise StoreError(f"no dataset at {p}: the path does not exist")
    attrs = store_attrs(p)
    if attrs is None:
        raise StoreError(f"{p} is not a Zarr store (no readable zarr.json group metadata)")
    if attrs.get("dynlab_format") != STORE_FORMAT:
        what = "its layout was interrupted before it finished" if "dynlab_config_hash" in attrs else \
            "it lacks the dynlab_format attribute"
        raise StoreError(f"{p} is not a complete dynlab dataset: {what} (expected dynlab_format={STORE_FORMAT!r})")
    done = chunks_done(p)
    if done is None:
        raise StoreError(f"{p} has no completion record ({DONE_GROUP}/{DONE_ARRAY}); it was not written by dynlab simulate")
    if not done.all() and not allow_incomplete:
        missing = missing_members(p, done, attrs)
        raise StoreError(
            f"{p} is incomplete: {int((~done).sum())} of {done.size} member chunks are missing "
            f"(members {_ranges(missing)}); run the same `dynlab simulate` command again to finish it")
    from .integrity import guard_dataset

    ds = xr.open_zarr(p, consolidated=False, decode_timedelta=False, zarr_format=3, chunks=None)
    ds = guard_dataset(ds, p)  # a damaged chunk is one line naming the store, variable and members
    ds.encoding["source"] = str(p)  # ds.dynlab.completion reads the record from here
    return ds
