"""The schema of every command's config: defaults, ranges, choices and help, once.

``configs/<command>.yaml`` lists these defaults first (``_schema_<command>``, a
node generated from the dataclasses below and registered in hydra's
ConfigStore) and then holds only what differs. After hydra composes a config,
:func:`validate_command` checks the whole resolved config — every section, and
the chosen system, integrator, parallel backend, learner and loss through their
own validation — before any file is written or any compute starts.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError
from .eval.options import EvalOptions
from .schema import REQUIRED, check, check_value, defaults, describe, option
from .train.trainer import TrainConfig

__all__ = ["SimulateSchema", "TrainSchema", "EvaluateSchema", "RunSchema", "COMMAND_SCHEMAS",
           "register_schemas", "validate_command", "command_help", "check_device_name"]

DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def check_device_name(key: str, value: Any) -> str:
    """A torch device name: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (availability is checked later)."""
    if not isinstance(value, str) or not DEVICE_PATTERN.match(value):
        raise ConfigError(f"{key}={value!r} is invalid: expected cpu, cuda, cuda:N or mps")
    return value


# --------------------------------------------------------------------------- simulate
@dataclass
class EnsembleSchema:
    members: int = option(64, "number of ensemble members", ge=1)
    block_size: int | None = option(None, "members per write block (null: automatic; rounded up to whole chunks)",
                                    ge=1)
    chunk_members: int | None = option(None, "members per Zarr chunk (null: enough for >= 1 MiB chunks)", ge=1)


@dataclass
class TimeSchema:
    dt: float = option(0.01, "integration step (model time)", gt=0)
    save_every: float = option(0.05, "saving interval (a whole number of steps)", gt=0)
    spinup: float = option(10.0, "discarded before time 0 (a whole number of steps)", ge=0)
    t_end: float = option(100.0, "last saved time; saved times are 0, save_every, ..., t_end", ge=0)


@dataclass
class SimulateSchema:
    system: dict = option(REQUIRED, "the system: system=<name> (configs/system/), parameters as system.<key>")
    integrator: dict = option(REQUIRED, "integrator=<name> (auto: the system's own choice), options as integrator.<key>")
    parallel: dict = option(REQUIRED, "parallel=serial or parallel=dask (options parallel.<key>)")
    ensemble: EnsembleSchema = option(EnsembleSchema(), "")
    time: TimeSchema = option(TimeSchema(), "")
    dtype: str = option("float64", "floating dtype of the simulation and the store", choices=("float64", "float32"))
    device: str = option("cpu", "torch device: cpu, cuda, cuda:N")
    seed: int = option(0, "seed of the initial states and noise (one stream per member)", ge=0)
    out: str = option(REQUIRED, "the Zarr store to write (default data/<system>.zarr)")
    progress: bool = option(True, "progress bar on stderr")
    overwrite: bool = option(False, "replace an existing dynlab store made from a different config")
    wait: bool = option(False, "wait for another process writing the same store instead of stopping")


# --------------------------------------------------------------------------- train
@dataclass
class SplitSchema:
    train: float = option(0.8, "fraction of members for training", ge=0, le=1)
    val: float = option(0.1, "fraction of members for validation", ge=0, le=1)
    test: float = option(0.1, "fraction of members for testing", ge=0, le=1)
    seed: int | None = option(0, "seed of the member shuffle (null: the model seed)", ge=0)


@dataclass
class DataSchema:
    store: str = option(REQUIRED, "the Zarr store to train on, e.g. data.store=data/lorenz96.zarr")
    variables: list[str] | None = option(None, "state variables to learn (null: the store's state variables)")
    forcing: list[str] | None = option(None, "forcing variables: inputs, not predicted (null: none)")
    context: int = option(16, "C: warm-up steps before a rollout (and teacher-forced steps of a window)", ge=1)
    horizon: int | None = option(None, "H: target steps after the context (null: the loss's longest horizon)", ge=1)
    stride: int = option(1, "steps between window starts", ge=1)
    split: SplitSchema = option(SplitSchema(), "")
    num_workers: int = option(0, "DataLoader workers (spawned: zarr is not fork-safe)", ge=0)
    cache_mb: int = option(256, "member chunks cached per process (MiB)", ge=1)
    stats_members: int = option(32, "training members read to fit the normalisers and the loss scale", ge=1)


@dataclass
class TrainSchema:
    data: DataSchema = option(DataSchema(), "")
    learner: dict = option(REQUIRED, "learner=<name> (configs/learner/), hyperparameters as learner.<key>")
    loss: dict = option(REQUIRED, "loss=<name> (configs/loss/), options as loss.<key>")
    train: TrainConfig = option(TrainConfig(), "")
    run_dir: str = option(REQUIRED, "the run directory (config, checkpoints, metrics)")
    resume: bool = option(False, "continue from the newest checkpoint in run_dir")
    overwrite: bool = option(False, "replace a run_dir (made by dynlab) that holds another run")
    wait: bool = option(False, "wait for another process training in the same run_dir instead of stopping")
    seed: int = option(0, "model seed: initialisation, data order, dropout", ge=0)
    device: str = option("cpu", "torch device: cpu, cuda, cuda:N (under torchrun: the local rank's GPU)")
    threads: int | None = option(None, "torch intra-op CPU threads (null: torch's default)", ge=1)
    progress: bool = option(True, "progress bar on stderr")


# --------------------------------------------------------------------------- evaluate
@dataclass
class EvaluateSchema:
    run: str = option(REQUIRED, "the run directory written by dynlab train")
    checkpoint: str | None = option(None, "a checkpoint file (default: the run's newest)")
    store: str | None = option(None, "the dataset (default: the store the run was trained on)")
    out: str | None = option(None, "where to write the results (default: the run directory)")
    device: str = option("cpu", "torch device: cpu, cuda, cuda:N")
    eval: EvalOptions = option(EvalOptions(), "")


# --------------------------------------------------------------------------- run
@dataclass
class RunDataSchema(DataSchema):
    store: str | None = option(None, "set by run to the simulated store")


@dataclass
class JumpSchema:
    """Jump-process runs (``dynlab run system=flashing_ratchet``; :mod:`dynlab.pipeline.jump`)."""

    n_splits: int = option(4, "random half-splits of each member's paths averaged in the sampling floor", ge=1)
    perturbation: float = option(0.5, "sigma of the control row's rates, each times exp(sigma z)", ge=0)
    n_boot: int = option(1000, "member-bootstrap replicates of the intervals", ge=1)


@dataclass
class RunOnlySchema:
    """The keys ``dynlab run`` adds to those of simulate and train."""

    name: str = option("default", "the experiment's name: a plain name (runs/<name>)")
    data_seed: int = option(0, "seed of the simulated dataset (seed is the model's)", ge=0)
    cache_dir: str = option("data/cache", "where simulated datasets are cached by config hash")
    sweep_dir: str | None = option(None, "with -m: where the jobs' run directories go (null: runs/<name>)")
    jump: JumpSchema = option(JumpSchema(), "")
    sweep: dict = option({}, "the sweep an experiment declares for -m: {axes: {key: [values]}, "
                         "overrides: {key: {value: [overrides]}}} (dynlab/sweep.py)")


def _run_schema() -> type:
    """``dynlab run``'s schema: the keys of simulate and train side by side (the same fields,
    not copies), the run-only keys, the ``evaluate`` section, and the few keys whose meaning
    differs in a run (``out`` may be null, ``data.store`` is set by the run, ``resume`` is on,
    ``seed`` is the model's because ``data_seed`` seeds the data)."""
    hints = {**typing.get_type_hints(SimulateSchema), **typing.get_type_hints(TrainSchema)}
    fields = {f.name: f for schema in (SimulateSchema, TrainSchema) for f in dataclasses.fields(schema)}
    changed = {
        "out": (str | None, option(None, "the store; null: <cache_dir>/<system>-<config hash>.zarr, reused when "
                                   "complete")),
        "data": (RunDataSchema, option(RunDataSchema(), "")),
        "resume": (bool, option(True, "a rerun continues an interrupted training and skips a finished one")),
        "seed": (int, option(0, "model seed: initialisation, data order (data_seed seeds the dataset)", ge=0)),
        "overwrite": (bool, option(False, "replace a dynlab store / run directory that holds something else")),
        "evaluate": (EvaluateSchema, option(EvaluateSchema(), "")),
    }
    spec = []
    for name in [*fields, "evaluate"]:
        if name in changed:
            tp, f = changed[name]
        else:
            f = fields[name]
            tp = hints[name]
            f = dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)
        spec.append((name, tp, f))
    return dataclasses.make_dataclass("RunSchema", spec, bases=(RunOnlySchema,))


RunSchema = _run_schema()


from .ews.config import EWSConfig  # noqa: E402
from .pipeline.verify import VerifySchema  # noqa: E402

COMMAND_SCHEMAS: dict[str, type] = {"simulate": SimulateSchema, "train": TrainSchema, "evaluate": EvaluateSchema,
                                    "run": RunSchema, "verify": VerifySchema, "ews": EWSConfig}

# keys a command's YAML or groups fill (not generated into the defaults node)
_GROUP_KEYS = {"system", "integrator", "parallel", "learner", "loss"}


def _defaults_node(schema: type, skip: set[str]) -> dict[str, Any]:
    return {k: v for k, v in defaults(schema).items() if k not in skip}


def register_schemas() -> None:
    """Register the generated default nodes in hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from .emulators.registry import LEARNERS

    cs = ConfigStore.instance()
    for name in ("simulate", "train", "evaluate", "verify", "ews"):
        cs.store(name=f"_schema_{name}", node=_defaults_node(COMMAND_SCHEMAS[name], _GROUP_KEYS))
    cs.store(name="_schema_run", node=defaults(RunOnlySchema))
    from .pinn.config import PinnConfig

    cs.store(name="_schema_pinn", node=defaults(PinnConfig))  # pinn experiments: `- /_schema_pinn@pinn`
    for name, spec in LEARNERS.items():
        cs.store(group="learner", name=f"_schema_{name}",
                 node={"name": name, "trainable": spec.trainable, **dict(spec.options)})


# --------------------------------------------------------------------------- groups
def _check_system(value: Any, key: str = "system") -> dict[str, Any]:
    from simulators import SYSTEMS

    if not isinstance(value, Mapping) or not value.get("name"):
        raise ConfigError(f"{key} is required: choose one with {key}=<name>; available: {', '.join(sorted(SYSTEMS))}")
    name = value["name"]
    if name not in SYSTEMS:
        raise ConfigError(f"{key}.name={name!r} is invalid: expected one of {', '.join(sorted(SYSTEMS))}")
    params_cls = SYSTEMS[name].Params
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    params = {k: v for k, v in value.items() if k != "name"}
    for k, v in params.items():
        if k not in fields:
            raise ConfigError(f"unknown config key '{key}.{k}' for system {name!r}; it accepts: "
                              f"{', '.join(sorted(fields))}")
        tp = hints[k]
        if tp in (int, float, bool, str) or typing.get_origin(tp) in (typing.Union,) and all(
                a in (int, float, bool, str, type(None)) for a in typing.get_args(tp)):
            check_value(v, tp, fields[k].metadata, f"{key}.{k}")
    try:
        SYSTEMS[name](params_cls(**params))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key} ({name}): {err}".splitlines()[0]) from None
    return dict(value)


def _check_integrator(value: Any, key: str = "integrator") -> dict[str, Any]:
    from simulators.integrators import INTEGRATORS, make_integrator

    if not isinstance(value, Mapping) or not value.get("name"):
        raise ConfigError(f"{key} is required: {key}=auto or one of {', '.join(sorted(INTEGRATORS))}")
    opts = {k: v for k, v in value.items() if k != "name"}
    if value["name"] == "auto":
        if opts:
            raise ConfigError(f"{key}=auto takes no options, got {', '.join(opts)}")
        return dict(value)
    try:
        make_integrator(value["name"], **opts)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key}: {err}".splitlines()[0]) from None
    return dict(value)


@dataclass
class SerialSchema:
    name: str = option("serial", "one process", choices=("serial",))


@dataclass
class DaskSchema:
    name: str = option("dask", "member blocks as dask.distributed tasks", choices=("dask",))
    address: str | None = option(None, "scheduler address (tcp://host:8786); null starts a LocalCluster")
    n_workers: int = option(2, "LocalCluster workers (processes)", ge=1)
    threads_per_worker: int = option(1, "threads per LocalCluster worker", ge=1)
    timeout: float = option(10.0, "seconds to wait for the scheduler at address before giving up", gt=0)


PARALLEL_SCHEMAS = {"serial": SerialSchema, "dask": DaskSchema}


def _check_parallel(value: Any, key: str = "parallel") -> dict[str, Any]:
    name = value.get("name") if isinstance(value, Mapping) else None
    if name not in PARALLEL_SCHEMAS:
        raise ConfigError(f"{key}={name!r} is invalid: expected one of {', '.join(PARALLEL_SCHEMAS)}")
    return check(value, PARALLEL_SCHEMAS[name], key)


def _option_type(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int | None
    if isinstance(default, float):
        return float | None
    if isinstance(default, str):
        return str | None
    if isinstance(default, (list, tuple)):
        return list | None
    if isinstance(default, Mapping):
        return dict | None
    return Any


def _check_learner(value: Any, key: str = "learner") -> dict[str, Any]:
    from .emulators.registry import LEARNERS

    name = value.get("name") if isinstance(value, Mapping) else None
    if name not in LEARNERS:
        raise ConfigError(f"{key}={name!r} is invalid: expected one of {', '.join(sorted(LEARNERS))}")
    spec = LEARNERS[name]
    for k, v in value.items():
        if k == "name":
            continue
        if k == "trainable":
            check_value(v, bool, {}, f"{key}.trainable")
            continue
        if k not in spec.options:
            raise ConfigError(f"unknown config key '{key}.{k}' for learner {name!r}; it accepts: "
                              f"{', '.join(sorted(spec.options)) or 'none'}")
        check_value(v, _option_type(spec.options[k]), {}, f"{key}.{k}")
    return dict(value)


def _check_loss(value: Any, context: Any, key: str = "loss") -> dict[str, Any]:
    from .train.losses import LOSSES, build_objective

    name = value.get("name") if isinstance(value, Mapping) else None
    if name not in LOSSES:
        raise ConfigError(f"{key}={name!r} is invalid: expected one of {', '.join(sorted(LOSSES))}")
    try:
        build_objective(value, context if isinstance(context, int) else 16)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{key}: {err}".splitlines()[0]) from None
    return dict(value)


def _check_name(value: Any) -> None:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value \
            or value.startswith("-"):
        raise ConfigError(f"name={value!r} is invalid: expected a plain name (letters, digits, '_', '-', '.'; "
                          "not empty, '.' or '..', no path separators)")


def validate_command(command: str, cfg: Mapping[str, Any], *, registered_learner: bool = True) -> dict[str, Any]:
    """Check a composed, resolved config of ``command`` against its schema (one-line
    :class:`ConfigError` at the first problem); returns it with the sections checked.

    ``registered_learner=False`` leaves the ``learner`` section to a caller's own
    builder (``train(cfg, builder=...)``)."""
    if command not in COMMAND_SCHEMAS:
        raise ConfigError(f"unknown command {command!r}; known: {', '.join(COMMAND_SCHEMAS)}")
    schema = COMMAND_SCHEMAS[command]
    c = check(cfg, schema)
    for key in ("device",):
        if key in c:
            check_device_name(key, c[key])
    if "system" in c:
        _check_system(c["system"])
        _check_integrator(c["integrator"])
        _check_parallel(c["parallel"])
    if "learner" in c:
        if registered_learner:
            _check_learner(c["learner"])
        elif not isinstance(c["learner"], Mapping):
            raise ConfigError(f"learner must be a mapping with a name, got {c['learner']!r}")
        _check_loss(c["loss"], c["data"]["context"])
        split = c["data"]["split"]
        total = split["train"] + split["val"] + split["test"]
        if abs(total - 1) > 1e-9 or split["train"] <= 0:
            raise ConfigError(f"data.split fractions train={split['train']}, val={split['val']}, "
                              f"test={split['test']} must be >= 0, with train > 0, and sum to 1 (sum {total:g})")
    if command == "run":
        _check_name(c["name"])
        check_device_name("evaluate.device", c["evaluate"]["device"])
    if command == "evaluate":
        check_device_name("device", c["device"])
    return c


def command_help(command: str) -> str:
    """The ``--help`` text of a command: every key with its default and help, from the schema."""
    schema = COMMAND_SCHEMAS[command]
    rows = describe(schema)
    width = min(32, max(len(k) for k, _, _ in rows) + 1)
    lines = [f"usage: dynlab {command} [key=value ...] [--cfg] [--help]", "",
             f"keys of `dynlab {command}` (default, then meaning):"]
    for key, default, text in rows:
        shown = "(required)" if default == REQUIRED else "null" if default is None else \
            str(default).lower() if isinstance(default, bool) else str(default)
        lines.append(f"  {key:<{width}} {shown:<12} {text}")
    if command in ("simulate", "run"):
        lines.append("  system.<param>, integrator.<option>, parallel.<option>: see configs/system/, integrator/")
    if command in ("train", "run"):
        lines.append("  learner.<option>, loss.<option>: see configs/learner/, configs/loss/")
    return "\n".join(lines)
