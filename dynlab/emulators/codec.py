"""State codec: dataset variables ⇄ a flat feature vector.

A dataset's state variables on ``(member, time, *dims)`` map to ``(member, time, D)``
with ``D = Σ_v prod(dims_v)`` (C order within each variable, variables in a fixed
order), and back, so a forecast becomes an ``xarray.Dataset`` with the truth's
variables, dims, coordinates and units. Forcing variables (inputs, not targets)
get their own codec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["StateCodec", "FieldSpec"]


@dataclass(frozen=True)
class FieldSpec:
    """One variable of the codec: its name, the dims after (member, time), their sizes, attrs."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class StateCodec:
    """Flatten/unflatten a set of ``(member, time, *dims)`` variables."""

    fields: tuple[FieldSpec, ...]
    coords: dict[str, Any] = field(default_factory=dict)  # dim -> (values list, attrs)

    @classmethod
    def from_dataset(cls, ds, variables: Sequence[str] | None = None) -> "StateCodec":
        """Codec over ``variables`` (default: every data variable on (member, time, ...), in the
        order the system declares them when the store records it, else sorted by name: a Zarr v3
        store lists its arrays in no fixed order)."""
        if variables is None:
            variables = [n for n, v in ds.data_vars.items() if v.dims[:2] == ("member", "time")]
            order = {}
            if "dynlab_config" in ds.attrs:
                try:
                    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

                    order = ds.dynlab._order
                except Exception:  # a store whose system cannot be rebuilt: fall back to names
                    order = {}
            variables = sorted(variables, key=lambda n: (order.get(n, len(order)), n))
        if not variables:
            raise ValueError("the dataset has no variables on (member, time, ...) to encode")
        fields, coords = [], {}
        for name in variables:
            if name not in ds.data_vars:
                raise ValueError(f"variable {name!r} is not in the dataset; it has {sorted(ds.data_vars)}")
            var = ds[name]
            if var.dims[:2] != ("member", "time"):
                raise ValueError(f"variable {name!r} has dims {var.dims}; expected (member, time, ...)")
            dims = tuple(var.dims[2:])
            fields.append(FieldSpec(name, dims, tuple(int(ds.sizes[d]) for d in dims),
                                    {k: v for k, v in var.attrs.items() if isinstance(v, (str, int, float))}))
            for d in dims:
                if d in ds.coords:
                    coords[d] = (np.asarray(ds[d].values).tolist(), dict(ds[d].attrs))
        return cls(tuple(fields), coords)

    @property
    def n_features(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def feature_names(self) -> list[str]:
        """A label per feature, e.g. ``X[3]`` or ``Y[2,5]``."""
        out = []
        for f in self.fields:
            if not f.shape:
                out.append(f.name)
            else:
                out += [f"{f.name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*f.shape)]
        return out

    def encode(self, ds) -> np.ndarray:
        """``ds`` (any member/time selection) → array ``(member, time, D)`` (loads the data)."""
        parts = []
        for f in self.fields:
            a = np.asarray(ds[f.name].transpose("member", "time", *f.dims).values)
            parts.append(a.reshape(a.shape[0], a.shape[1], f.size))
        return np.concatenate(parts, axis=-1)

    def decode(self, array, *, member=None, time=None, name_suffix: str = ""):
        """Array ``(member, time, D)`` → ``xarray.Dataset`` with the codec's variables."""
        import xarray as xr

        array = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
        if array.ndim != 3 or array.shape[-1] != self.n_features:
            raise ValueError(f"array must have shape (member, time, {self.n_features}), got {array.shape}")
        M, T, _ = array.shape
        coords: dict[str, Any] = {"member": np.arange(M) if member is None else np.asarray(member),
                                  "time": np.arange(T) if time is None else np.asarray(time)}
        for d, (values, attrs) in self.coords.items():
            coords[d] = xr.Variable((d,), np.asarray(values), attrs)
        data, start = {}, 0
        for f in self.fields:
            block = array[..., start:start + f.size].reshape(M, T, *f.shape)
            data[f.name + name_suffix] = xr.Variable(("member", "time", *f.dims), block, dict(f.attrs))
            start += f.size
        return xr.Dataset(data, coords=coords)

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [{"name": f.name, "dims": list(f.dims), "shape": list(f.shape), "attrs": dict(f.attrs)}
                           for f in self.fields],
                "coords": {d: [list(v), dict(a)] for d, (v, a) in self.coords.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StateCodec":
        return cls(tuple(FieldSpec(f["name"], tuple(f["dims"]), tuple(f["shape"]), dict(f["attrs"])) for f in d["fields"]),
                   {k: (list(v[0]), dict(v[1])) for k, v in d.get("coords", {}).items()})
