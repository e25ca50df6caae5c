"""Store integrity: crc32c checksums on every chunk, damaged and missing chunks, guarded reads.

New stores carry a crc32c checksum on every chunk (zarr v3's ``Crc32cCodec`` after the
compressor) and write every chunk, even one equal to the fill value, so that a chunk
file that is absent is a lost chunk. :func:`scan_store` reads every chunk of every
member-chunked variable and lists the damaged (checksum or decompression failure) and
missing ones by variable and member range; stores written before checksums get the
missing-chunk check only. :func:`guard_dataset` makes reads through
:func:`dynlab.open_dataset` (and so ``train`` and ``evaluate``) fail on a damaged chunk
with one line naming the store, the variable, the members and the repair command.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError

__all__ = ["DamagedChunkError", "ChunkProblem", "StoreScan", "has_checksums", "scan_store", "guard_dataset",
           "repair_command"]


class DamagedChunkError(StoreError):
    """A chunk of a dataset store failed its checksum or could not be decoded."""


def repair_command(path: str | Path) -> str:
    return f"dynlab verify store={path} repair=true"


@dataclass(frozen=True)
class ChunkProblem:
    """One bad chunk: the variable, the member chunk index, its members and what is wrong."""

    variable: str
    chunk: int
    members: tuple[int, int]  # first, last (inclusive)
    kind: str                 # "damaged" or "missing"
    detail: str = ""

    def __str__(self) -> str:
        a, b = self.members
        return f"{self.variable}: members {a}-{b} {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class StoreScan:
    """What :func:`scan_store` found."""

    path: Path
    checksums: bool
    problems: list[ChunkProblem] = field(default_factory=list)
    chunks_read: int = 0

    @property
    def bad_chunks(self) -> list[int]:
        """Member-chunk indices that need recomputing."""
        return sorted({p.chunk for p in self.problems})


def has_checksums(arr: Any) -> bool:
    return any(type(c).__name__ == "Crc32cCodec" for c in arr.metadata.codecs)


def _member_arrays(path: Path):
    import zarr

    group = zarr.open_group(str(path), mode="r")
    for name, arr in group.arrays():
        dims = arr.metadata.dimension_names or ()
        if dims and dims[0] == "member" and name != "member":
            yield name, arr


def _chunk_file(path: Path, name: str, arr: Any, chunk: int) -> Path:
    key = arr.metadata.chunk_key_encoding.encode_chunk_key((chunk,) + (0,) * (arr.ndim - 1))
    return path / name / key


def scan_store(path: str | Path, *, read: bool = True, chunks: list[int] | None = None) -> StoreScan:
    """Check every chunk of the member-chunked variables of a store.

    Args:
        path: the store.
        read: decode every chunk (checksums, decompression); ``False`` only checks that
            each chunk file exists (cheap: what a rerun of ``simulate`` does).
        chunks: only these member-chunk indices (default: all).
    """
    path = Path(path)
    scan = StoreScan(path, checksums=True)
    for name, arr in _member_arrays(path):
        scan.checksums &= has_checksums(arr)
        step = arr.chunks[0]
        n_chunks = -(-arr.shape[0] // step)
        for c in (range(n_chunks) if chunks is None else chunks):
            members = (c * step, min((c + 1) * step, arr.shape[0]) - 1)
            if not _chunk_file(path, name, arr, c).is_file():
                scan.problems.append(ChunkProblem(name, c, members, "missing"))
                continue
            if read:
                try:
                    np.asarray(arr[c * step:(c + 1) * step])
                    scan.chunks_read += 1
                except Exception as err:  # checksum mismatch, truncated or corrupt compressed data
                    scan.problems.append(ChunkProblem(name, c, members, "damaged",
                                                      f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"))
    return scan


class _GuardedArray:
    """Array-like over a lazy xarray variable whose reads name the store, variable and members
    of a chunk that fails to decode."""

    def __init__(self, variable: Any, name: str, path: Path):
        self.variable = variable
        self.name = name
        self.path = path
        self.shape = variable.shape
        self.dtype = variable.dtype
        self.ndim = variable.ndim

    def __getitem__(self, key):
        try:
            return np.asarray(self.variable[key].values)
        except Exception as err:
            rows = key[0] if isinstance(key, tuple) else key
            if isinstance(rows, slice):
                start, stop, _ = rows.indices(self.shape[0])
            else:
                start, stop = int(np.min(rows)), int(np.max(rows)) + 1
            text = str(err).splitlines()[0][:100] if str(err) else type(err).__name__
            raise DamagedChunkError(
                f"{self.path}: variable {self.name}, members {start}-{stop - 1}: a chunk is damaged ({text}); "
                f"repair it with: {repair_command(self.path)}") from None


def guard_dataset(ds: Any, path: Path) -> Any:
    """Replace the member-chunked variables of a lazily opened (``chunks=None``) dataset by
    dask arrays whose chunk reads raise :class:`DamagedChunkError` on damage."""
    import dask.array as da

    out = ds.copy()
    for name, var in ds.data_vars.items():
        if not var.dims or var.dims[0] != "member":
            continue
        chunks = var.encoding.get("chunks") or var.shape
        guarded = da.from_array(_GuardedArray(var.variable, str(name), path), chunks=tuple(chunks),
                                name=f"dynlab-{path.name}-{name}-{id(ds)}", asarray=False, fancy=False)
        out[name] = var.copy(data=guarded)
        out[name].encoding = dict(var.encoding)
    return out
