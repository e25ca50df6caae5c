"""``ds.dynlab``: what a dataset written by ``dynlab simulate`` says about itself.

Registered as an xarray Dataset accessor when :mod:`dynlab.data` is imported::

    ds = dynlab.open_dataset("data/slab.zarr")
    ds.dynlab.config           # the resolved config (dict) the store was written with
    ds.dynlab.system           # the simulators system rebuilt from it
    ds.dynlab.integrator       # the integrator that wrote it (``auto`` resolved)
    ds.dynlab.dt, ds.dynlab.save_every     # integration step, interval of the saved states
    ds.dynlab.roles            # {"T": "state", "co2": "forcing", "N_toa": "diagnostic", ...}
    ds.dynlab.states, ds.dynlab.forcings, ds.dynlab.diagnostics   # names on (member, time, ...)
    ds.dynlab.completion       # Completion(done=..., total=..., missing_members=[...])

Everything is read from the store attributes (``dynlab_config``, ``dt``,
``save_every``, ``integrator``), each variable's ``dynlab_role`` attribute and
the completion record, so training, evaluation, the reference emulator and
store repair never parse attributes by hand. Stores written before variables
carried roles get them from the rebuilt system's variables (or ``state`` for
every variable on ``(member, time, ...)`` when there is no system).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import xarray as xr

from ..errors import StoreError

if TYPE_CHECKING:
    from simulators import AbstractIntegrator, AbstractSystem

__all__ = ["DynlabAccessor", "Completion", "MetadataError", "ROLES"]

ROLES = ("state", "forcing", "diagnostic")


class MetadataError(StoreError, ValueError):
    """The dataset lacks (or has an unusable) piece of dynlab metadata."""


@dataclass(frozen=True)
class Completion:
    """The completion record of a store: ``done`` of ``total`` member chunks written."""

    done: int
    total: int
    missing_members: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done == self.total


@xr.register_dataset_accessor("dynlab")
class DynlabAccessor:
    """``ds.dynlab``: the config, system, time steps, variable roles and completion of a dataset."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    # -- config and the objects it describes ----------------------------------------------
    @property
    def has_config(self) -> bool:
        return bool(self._ds.attrs.get("dynlab_config"))

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved config the store was written with (``dynlab_config``, YAML)."""
        import yaml

        text = self._ds.attrs.get("dynlab_config")
        if not text:
            raise MetadataError("the dataset has no 'dynlab_config' attribute; it was not written by dynlab simulate")
        config = yaml.safe_load(text)
        if not isinstance(config, dict):
            raise MetadataError(f"the dataset's 'dynlab_config' attribute is not a mapping: {text[:80]!r}")
        return config

    @property
    def system_spec(self) -> dict[str, Any] | None:
        """The config's ``system`` section (``name`` and parameters), or None."""
        if not self.has_config:
            return None
        spec = self.config.get("system")
        return dict(spec) if isinstance(spec, dict) else None

    @property
    def system(self) -> "AbstractSystem":
        """The simulators system rebuilt from the stored config (a new object on each access)."""
        from simulators import make_system

        spec = self.config.get("system")  # MetadataError without a stored config
        if not isinstance(spec, dict) or "name" not in spec:
            raise MetadataError("the dataset's config has no system section with a name")
        params = dict(spec)
        try:
            return make_system(params.pop("name"), **params)
        except (ValueError, TypeError) as err:
            raise MetadataError(f"cannot rebuild system {spec.get('name')!r} from the dataset's config: {err}") from None

    @property
    def integrator(self) -> "AbstractIntegrator":
        """The integrator that wrote the dataset (``auto`` resolved to the one used)."""
        from simulators import make_integrator

        spec = self.config.get("integrator")
        if not isinstance(spec, dict) or "name" not in spec:
            raise MetadataError("the dataset's config has no integrator section with a name")
        options = dict(spec)
        name = options.pop("name")
        if name == "auto":
            name = self._ds.attrs.get("integrator") or self.system.default_integrator
        return make_integrator(name, **options)

    # -- time ----------------------------------------------------------------------------
    @property
    def dt(self) -> float | None:
        """The integration step (model time), or None if the store does not say."""
        value = self._ds.attrs.get("dt")
        return None if value is None else float(value)

    @property
    def save_every(self) -> float | None:
        """Model time between saved states: the ``save_every`` attribute, else the spacing of
        the ``time`` coordinate; None for fewer than two times and no attribute."""
        value = self._ds.attrs.get("save_every")
        if value is not None:
            return float(value)
        ds = self._ds
        if "time" in ds.coords and ds.sizes.get("time", 0) > 1:
            return float(ds["time"][1] - ds["time"][0])
        return None

    # -- variable roles ------------------------------------------------------------------
    @cached_property
    def roles(self) -> dict[str, str]:
        """``name -> role`` of every data variable: its ``dynlab_role`` attribute, else the
        rebuilt system's declaration, else ``state``."""
        declared = {}
        if any("dynlab_role" not in v.attrs for v in self._ds.data_vars.values()) and self.has_config:
            try:
                declared = {v.name: v.role for v in self.system.variables}
            except MetadataError:
                declared = {}
        out = {}
        for name, var in self._ds.data_vars.items():
            role = var.attrs.get("dynlab_role", declared.get(name, "state"))
            if role not in ROLES:
                raise MetadataError(f"variable {name!r} has dynlab_role={role!r}; expected one of {', '.join(ROLES)}")
            out[str(name)] = role
        return out

    @cached_property
    def _order(self) -> dict[str, int]:
        """A fixed order of the variables: the system's declaration order where the system can
        be rebuilt, then by name (a Zarr store lists its arrays in no fixed order)."""
        declared: list[str] = []
        if self.has_config:
            try:
                declared = [v.name for v in self.system.variables]
            except MetadataError:
                declared = []
        rank = {name: i for i, name in enumerate(declared)}
        names = sorted(self._ds.data_vars, key=lambda n: (rank.get(str(n), len(rank)), str(n)))
        return {str(n): i for i, n in enumerate(names)}

    def variables_with_role(self, role: str) -> list[str]:
        """Names of the variables on ``(member, time, ...)`` with ``role``, in the system's
        declaration order (then by name), the same in every process."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        names = [name for name, r in self.roles.items() if r == role and self._ds[name].dims[:2] == ("member", "time")]
        return sorted(names, key=self._order.__getitem__)

    @property
    def states(self) -> list[str]:
        return self.variables_with_role("state")

    @property
    def forcings(self) -> list[str]:
        return self.variables_with_role("forcing")

    @property
    def diagnostics(self) -> list[str]:
        return self.variables_with_role("diagnostic")

    # -- completion ----------------------------------------------------------------------
    @property
    def path(self) -> str | None:
        """The store the dataset was opened from (set by :func:`dynlab.data.open_dataset`)."""
        return self._ds.encoding.get("source")

    @property
    def completion(self) -> Completion:
        """Member chunks written so far, from the store's completion record."""
        from pathlib import Path

        from .store import chunks_done, missing_members

        if self.path is None:
            raise MetadataError("the dataset was not opened from a dynlab store (no encoding['source'])")
        done = chunks_done(Path(self.path))
        if done is None:
            raise MetadataError(f"{self.path} has no completion record; it was not written by dynlab simulate")
        return Completion(int(done.sum()), int(done.size), missing_members(Path(self.path), done, self._ds.attrs))

    @property
    def complete(self) -> bool:
        return self.completion.complete
