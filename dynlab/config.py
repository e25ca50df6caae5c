"""Hydra configs: where they live, composing them, and a dataset's identity.

The configs are the top-level ``configs/`` folder of a checkout; an installed
dynlab carries the same files as the data package ``dynlab.configs``.
"""
from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

__all__ = ["config_dir", "compose", "group_options", "dataset_identity", "config_hash", "to_container"]


def config_dir() -> Path:
    """The folder that holds the hydra configs (checkout first, then the installed package)."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if (checkout / "simulate.yaml").is_file():
        return checkout
    packaged = Path(str(resources.files("dynlab.configs")))
    if (packaged / "simulate.yaml").is_file():
        return packaged
    raise FileNotFoundError("dynlab's hydra configs are missing: neither ./configs nor dynlab.configs holds simulate.yaml")


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (``system`` → ``lorenz63``, ...)."""
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))


def _explain_composition_error(err: Exception, overrides: Sequence[str]) -> str:
    text = str(err)
    for group in ("system", "integrator", "parallel", "experiment", "learner", "loss"):
        if f"'{group}/" in text or f"{group}/" in text.split("\n")[0]:
            chosen = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == group), None)
            return (f"unknown {group} {chosen!r}; available: {', '.join(group_options(group))}"
                    if chosen else text.splitlines()[0])
    first = text.splitlines()[0] if text else type(err).__name__
    if first.startswith("Could not override"):
        key = first.split("'")[1] if "'" in first else first
        return f"unknown config key {key!r}; check the spelling, or add a new key with +{key}=..."
    return first


#: config groups every command that has them needs
REQUIRED_GROUPS = ("system", "integrator", "parallel", "learner", "loss")
_OPTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _check_group_overrides(overrides: Sequence[str]) -> None:
    """A config group option is a plain name found in the config search path: no paths
    (``experiment=../../x`` would read a YAML file outside ``configs/``)."""
    groups = {p.name for p in config_dir().iterdir() if p.is_dir() and not p.name.startswith("_")}
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"override {item!r} is not a string")
        key, sep, value = item.partition("=")
        if not key.strip("+~"):
            raise ConfigError(f"override {item!r} has no key: write key=value, e.g. system.F=8")
        group = key.lstrip("+~").split("@", 1)[0]
        if group in REQUIRED_GROUPS and (key.startswith("~") or value == "null"):
            raise ConfigError(f"{group} cannot be removed: choose one with {group}=<name>; available: "
                              f"{', '.join(group_options(group))}")
        if not sep or group not in groups or value in ("null", ""):
            continue
        if not _OPTION_NAME.match(value) or ".." in value:
            raise ConfigError(f"{group}={value!r} is invalid: expected one of "
                              f"{', '.join(group_options(group))} (a plain name, no path)")


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with command-line style overrides.

    The schema defaults (:mod:`dynlab.schemas`) are registered first. Raises
    :class:`ConfigError` with a one-line message for unknown groups, options or
    malformed overrides; the composed config is validated by the command that uses it.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .schemas import register_schemas

    overrides = list(overrides)
    _check_group_overrides(overrides)
    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None, job_name="dynlab"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(_explain_composition_error(err, overrides)) from None
    return cfg


def to_container(cfg: DictConfig | dict) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except Exception as err:
            raise ConfigError(f"cannot resolve the config: {err}".splitlines()[0]) from None
    return dict(cfg)


def dataset_identity(cfg: DictConfig | dict) -> dict[str, Any]:
    """What changes a dataset's bytes: system and parameters, time grid, integrator,
    dtype, seed and number of members (not ``out``, block size, workers, device,
    progress)."""
    c = to_container(cfg)
    return {
        "system": c["system"],
        "time": {k: c["time"][k] for k in ("dt", "save_every", "spinup", "t_end")},
        "integrator": c["integrator"],
        "dtype": c["dtype"],
        "seed": c["seed"],
        "members": c["ensemble"]["members"],
    }


def config_hash(identity: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``identity``."""
    def normalise(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): normalise(v) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            return [normalise(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)  # F=8 and F=8.0 are the same dataset
        return value

    text = json.dumps(normalise(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
