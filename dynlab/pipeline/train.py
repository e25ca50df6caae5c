"""``train(cfg)``: fit an emulator to a stored dataset and write a run directory.

Run directory (``run_dir``, fixed by the config — never a per-process timestamp,
so every torchrun rank agrees on it; only rank 0 writes):

* ``config.yaml``: the resolved config;
* ``split.json``: the member split (train/val/test ids, fractions, seed, store);
* ``dataset.json``: the store, its config hash, the system, the sampling interval
  ``dt``, the state and forcing variables and the codec;
* ``metrics.jsonl``: one JSON object a line — training records (``step``, ``loss``,
  ``lr``, ...), validation records (``val/one_step``, ``val/rollout``, ...) and
  events (``event``: curriculum and causal-stage changes, resumes);
* ``checkpoints/step_<N>.pt``: see :mod:`dynlab.train.checkpoint`;
* ``done.json``: written when the run reached ``train.steps``: the steps, ``n_parameters`` and
  ``train_seconds`` (wall time of the invocation that finished it, data loading included).

A rerun of a finished run with the same training config does nothing; a run
directory that holds another run is refused unless ``resume=true`` (continue from
the newest checkpoint, which must fit the config) or ``overwrite=true``.
"""
from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import to_container
from ..data.windows import WindowDataset, split_members
from ..errors import ConfigError
from ..locks import FolderLock, LockedError
from ..runs import RUN_MARKER, check_device, check_run_dir, is_dynlab_run, mark_run_dir, remove_run_dir
from ..schemas import validate_command
from ..train.checkpoint import latest_checkpoint, load_latest_checkpoint
from ..train.distributed import DistContext, init_distributed
from ..train.losses import build_objective
from ..train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["train", "training_identity", "set_threads"]

DONE_FILE = "done.json"
# keys that change how a run is executed, not what it computes
VOLATILE = {"progress", "resume", "overwrite", "device", "threads", "train.max_steps", "train.checkpoint_every",
            "train.keep_checkpoints", "train.log_every", "data.num_workers", "data.cache_mb", "data.store", "run_dir"}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def training_identity(c: Mapping[str, Any], dataset_hash: str | None) -> dict[str, Any]:
    """What decides a run's result: data (bar the store path), learner, loss, train, seed, dataset hash."""
    ident = {"data": c["data"], "learner": c["learner"], "loss": c["loss"], "train": c["train"], "seed": c["seed"],
             "dataset_hash": dataset_hash}
    return {k: v for k, v in _flatten(ident).items() if k not in VOLATILE}


def _resume_identity(ident: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the identity a checkpoint must share with the config to be resumed."""
    keep = ("learner.", "data.variables", "data.forcing", "data.split", "train.dtype", "dataset_hash")
    return {k: v for k, v in ident.items() if k.startswith(keep)}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    missing = object()
    return [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in keys
            if old.get(k, missing) != new.get(k, missing)]


@contextlib.contextmanager
def set_threads(value: Any):
    """Apply the ``threads`` config key inside the block: torch's intra-op threads
    (null keeps the current setting); the previous setting comes back afterwards.

    Small models gain little from intra-op threads, and on a shared machine busy-waiting
    threads can slow a step down many times over; ``threads=1`` avoids that.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"threads must be a positive integer or null, got {value!r}")
    before = torch.get_num_threads()
    if value is not None:
        torch.set_num_threads(value)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _store_info(store_path: str) -> dict[str, Any]:
    """Store facts the run needs: config hash, system spec, dt (the saved-state interval)."""
    from ..data.store import open_dataset

    ds = open_dataset(store_path)  # StoreError for missing/foreign/incomplete stores
    return {"store": str(Path(store_path).resolve()), "config_hash": ds.attrs.get("dynlab_config_hash"),
            "system": ds.dynlab.system_spec, "dt": ds.dynlab.save_every, "members": int(ds.sizes["member"])}


def _make_system(spec: Mapping[str, Any] | None):
    if not spec:
        return None
    from simulators import make_system

    params = dict(spec)
    try:
        return make_system(params.pop("name"), **params)
    except (ValueError, TypeError):
        return None


def _decide(run_dir: Path, ident: dict[str, Any], resume: bool, overwrite: bool) -> tuple[str, Path | None]:
    """What to do with ``run_dir``: ("fresh" | "overwrite" | "done" | "resume", checkpoint).

    Only a folder dynlab made (:func:`dynlab.runs.is_dynlab_run`) is ever overwritten or resumed.
    """
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return "fresh", None
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir={str(run_dir)!r} exists and is not a directory")
    owned = is_dynlab_run(run_dir)
    not_ours = (f"run_dir={str(run_dir)!r} is a non-empty folder that dynlab did not create (no {RUN_MARKER} "
                "marker); choose another run_dir")
    if overwrite:
        if not owned:
            raise ConfigError(not_ours + " (overwrite=true only replaces dynlab's run directories)")
        return "overwrite", None
    ckpt = latest_checkpoint(run_dir)
    done = run_dir / DONE_FILE
    if owned and done.exists():
        old = json.loads(done.read_text()).get("identity", {})
        if old == ident:
            return "done", None
    if ckpt is None or not owned:
        if resume and owned:
            return "overwrite", None  # dynlab's run with nothing to resume from: start over in place
        if not owned:
            raise ConfigError(not_ours + (" (resume=true only continues dynlab's runs)" if resume else ""))
        raise ConfigError(f"run_dir={str(run_dir)!r} is not empty and holds no checkpoint; "
                          "choose another run_dir or pass overwrite=true to replace it")
    if not resume:
        what = "a finished run with a different config" if done.exists() else "an unfinished run"
        raise ConfigError(f"run_dir={str(run_dir)!r} holds {what} (checkpoint {ckpt.name}); pass resume=true to "
                          "continue it, overwrite=true to start again, or choose another run_dir")
    return "resume", ckpt


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def train(cfg: DictConfig | Mapping[str, Any], *, builder: Callable[..., Any] | None = None,
          hooks: Sequence[Callable[[int, dict], None]] = (), log: Callable[[str], None] | None = None) -> TrainResult:
    """Run a ``train`` config (``configs/train.yaml``): returns a :class:`TrainResult`.

    Args:
        cfg: the composed config (or a plain dict of the same shape).
        builder: ``build_emulator``-like ``(learner_cfg, codec, train_data, *, dt, system)``;
            default :func:`dynlab.emulators.registry.build_emulator`.
        hooks: per-step callables, passed to the :class:`~dynlab.train.trainer.Trainer`.
        log: where one-line messages go (default: stderr, rank 0 only).

    Raises :class:`ConfigError` / :class:`StoreError` (one line, naming the problem) for
    bad configs, a missing store, an unknown learner, a horizon longer than the
    stored trajectories, or a checkpoint that does not fit the config on resume.
    """
    c = validate_command("train", to_container(cfg), registered_learner=builder is None)
    check_device(c["device"])
    with set_threads(c.get("threads")):
        dist = init_distributed(c.get("device", "cpu"))
        try:
            return _train(c, dist, builder, hooks, log)
        finally:
            dist.close()


def _train(c: dict[str, Any], dist: DistContext, builder, hooks, log) -> TrainResult:
    def say(msg: str) -> None:
        if dist.is_main:
            (log or (lambda m: print(f"dynlab: {m}", file=sys.stderr)))(msg)

    start = time.perf_counter()
    tcfg = TrainConfig.from_dict(c["train"])
    data = c["data"]
    seed = c["seed"]
    info = _store_info(str(Path(data["store"]).expanduser()))
    run_dir = Path(c["run_dir"]).expanduser()
    check_run_dir(run_dir, stores=[Path(info["store"])])
    ident = training_identity(c, info["config_hash"])

    decision = None
    lock = FolderLock(run_dir, what="run directory", wait=c["wait"], log=say)
    if dist.is_main:  # rank 0 locks and decides; every rank gets the decision (or the same error)
        try:
            lock.acquire()
            decision = _decide(run_dir, ident, c["resume"], c["overwrite"])
        except (ConfigError, LockedError) as err:
            lock.release()
            decision = ("error", str(err))
    action, ckpt_path = dist.broadcast_object(decision)
    if action == "error":
        raise ConfigError(ckpt_path)
    try:
        return _train_locked(c, dist, builder, hooks, say, info, run_dir, ident, action, ckpt_path, start)
    finally:
        lock.release()


def _train_locked(c, dist, builder, hooks, say, info, run_dir, ident, action, ckpt_path, start) -> TrainResult:
    data = c["data"]
    seed = c["seed"]
    tcfg = TrainConfig.from_dict(c["train"])
    if action == "done":
        say(f"{run_dir} is already trained with this config; nothing to do")
        done = json.loads((run_dir / DONE_FILE).read_text())
        return TrainResult(run_dir, int(done["step"]), True, [], done.get("last_metrics", {}), 0.0)

    # --- split: new, or the run's own when resuming ---------------------------------
    split_cfg = dict(data.get("split") or {})
    split_seed = split_cfg.pop("seed", seed)
    split = split_members(info["members"], split_cfg, split_seed)
    if action == "resume" and (run_dir / "split.json").exists():
        old = json.loads((run_dir / "split.json").read_text())
        if any(old.get(k) != split[k] for k in split):
            raise ConfigError(f"cannot resume {run_dir}: its member split (split.json) differs from the one this "
                              "config makes; keep data.split and the store, or pass overwrite=true")

    # --- data -----------------------------------------------------------------------
    objective = build_objective(c["loss"], data.get("context", 16))
    horizon = data.get("horizon")
    if horizon is None:
        horizon = objective.max_horizon
    elif isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < objective.max_horizon:
        raise ConfigError(f"data.horizon={horizon!r} must be an integer >= the loss's longest horizon "
                          f"({objective.max_horizon})")
    context = data.get("context", 16)
    if context + horizon < 2:
        raise ConfigError(f"windows of data.context + data.horizon = {context} + {horizon} steps leave no target; "
                          "use data.context >= 2 for a one-step loss")
    dtype = tcfg.torch_dtype
    kwargs = dict(context=context, horizon=horizon, stride=data.get("stride", 1), variables=data.get("variables"),
                  forcing=data.get("forcing"), dtype=dtype)  # null: the store's forcing-role variables
    train_set = WindowDataset(info["store"], split["train"], **kwargs)
    chunk_bytes = train_set.member_chunk * train_set.n_times * (train_set.n_features + train_set.n_forcing) * 8
    group = max(1, (int(data.get("cache_mb", 256)) << 20) // max(1, chunk_bytes))
    train_set.cache_chunks = group + 1
    val_set = WindowDataset(info["store"], split["val"], cache_chunks=group + 1, **kwargs) if split["val"] else None
    if tcfg.batch_size % dist.world_size:
        raise ConfigError(f"train.batch_size={tcfg.batch_size} must be divisible by the number of processes "
                          f"({dist.world_size}) so every rank gets the same share")
    if len(train_set) < tcfg.batch_size:
        raise ConfigError(f"train.batch_size={tcfg.batch_size} is larger than the {len(train_set)} training "
                          "windows; lower it, lower data.stride or add members")

    # --- emulator ---------------------------------------------------------------------
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    stats_members = split["train"][:int(data.get("stats_members", 32))]
    train_data = torch.as_tensor(train_set.member_trajectories(stats_members), dtype=torch.float64)
    if builder is None:
        from ..emulators.registry import build_emulator as builder
    system = _make_system(info["system"])
    try:
        emulator = builder(c["learner"], train_set.codec, train_data, dt=info["dt"], system=system)
    except ValueError as err:
        raise ConfigError(f"learner: {err}") from None
    emulator = emulator.to(device=dist.device, dtype=dtype)
    if data.get("forcing") is None and train_set.n_forcing and not getattr(emulator, "n_forcing", 0):
        say(f"learner takes no forcing inputs: not using the forcing variables {train_set.forcing_codec.names}")
        for dataset in (train_set, val_set):
            if dataset is not None:
                dataset.drop_forcing()
    if train_set.n_forcing and getattr(emulator, "n_forcing", 0) != train_set.n_forcing:
        raise ConfigError(f"data.forcing gives {train_set.n_forcing} forcing features but the learner takes "
                          f"{getattr(emulator, 'n_forcing', 0)}")
    flat = train_data.reshape(-1, train_data.shape[-1])
    objective.set_scale(flat.std(0).clamp_min(1e-8 * float(flat.std(0).max().clamp_min(1e-30)))
                        .to(device=dist.device, dtype=dtype))

    learner_cfg = dict(c["learner"])
    extra = {"learner": learner_cfg, "codec": train_set.codec.to_dict(), "dt": info["dt"], "system": info["system"],
             "dtype": tcfg.dtype, "identity": ident}
    trainer = Trainer(emulator, objective, train_set, val_set, tcfg, run_dir, dist, seed=seed,
                      num_workers=data.get("num_workers", 0), progress=bool(c.get("progress", True)),
                      group_chunks=group, checkpoint_extra=extra, hooks=hooks)

    # --- the run directory ---------------------------------------------------------------
    if action == "resume":
        found = load_latest_checkpoint(run_dir, log=say)
        if found is None:  # pragma: no cover - _decide saw a checkpoint
            raise ConfigError(f"cannot resume {run_dir}: its checkpoint disappeared")
        ckpt_path, saved = found
        diff = _diff(_resume_identity(saved.get("identity", {})), _resume_identity(ident))
        if diff:
            raise ConfigError(f"cannot resume {run_dir} from {ckpt_path.name}: the config differs from the "
                              f"checkpoint's in {'; '.join(diff)} (pass overwrite=true to start again)")
        del saved
        trainer.load(ckpt_path)
        trainer._truncate_metrics(trainer.step)
        trainer._write_metrics({"step": trainer.step, "event": f"resumed from {ckpt_path.name}"})
        say(f"resuming {run_dir} at step {trainer.step}")
    if dist.is_main:
        if action == "overwrite":
            remove_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        mark_run_dir(run_dir)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(c)))
        _write_json(run_dir / "split.json", {**split, "fractions": split_cfg, "seed": split_seed,
                                             "store": info["store"], "dataset_hash": info["config_hash"]})
        _write_json(run_dir / "dataset.json", {**info, "variables": train_set.codec.names,
                                               "forcing": [] if train_set.forcing_codec is None
                                               else train_set.forcing_codec.names,
                                               "context": context, "horizon": horizon,
                                               "codec": train_set.codec.to_dict()})
        (run_dir / DONE_FILE).unlink(missing_ok=True)
        if action != "resume":
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    dist.barrier()
    n_params = sum(p.numel() for p in emulator.parameters() if p.requires_grad)
    if not trainer.trainable:
        say(f"learner {learner_cfg.get('name')!r} is not trained by gradient steps; writing {run_dir}")
    else:
        say(f"training {learner_cfg.get('name')!r} ({n_params} parameters) on {len(train_set)} windows "
            f"of {train_set.window} steps from {len(split['train'])} members; {tcfg.stop - trainer.step} steps "
            f"on {dist.world_size} process(es) -> {run_dir}")
    result = trainer.fit()
    result.seconds = time.perf_counter() - start
    if dist.is_main and result.complete:
        _write_json(run_dir / DONE_FILE, {"step": result.step, "steps": tcfg.steps, "identity": ident,
                                          "n_parameters": n_params, "train_seconds": round(result.seconds, 3),
                                          "last_metrics": result.last_metrics,
                                          "checkpoint": str(trainer.last_checkpoint)})
    summary = ", ".join(f"{k}={v:.4g}" for k, v in result.last_metrics.items() if isinstance(v, float))
    say(f"{'trained' if result.complete else 'stopped at'} step {result.step} in {result.seconds:.1f} s"
        f"{'; ' + summary if summary else ''}; run directory {run_dir}")
    return result
