r"""The training loop: AdamW with parameter groups, cosine schedule, checkpoints, DDP.

One optimiser step per global batch of G windows ``(G, W, D)``. Under DDP each of
the R ranks computes the loss of its G/R windows and gradients are averaged, so
the step equals the single-process step up to the order of floating-point sums.

* **Optimiser**: AdamW. Parameters with an ``_optim`` attribute (a dict such as
  ``{"weight_decay": 0.0, "lr": 1e-3}``, set by the SSM layers) go into one group per
  distinct dict, with those settings over the defaults; the rest use the defaults.
* **Learning rate**: linear warm-up over ``warmup`` steps, then cosine decay to
  ``min_lr_ratio`` times the base rate at ``steps``:
  :math:`\eta(s) = \eta_0\,[r + (1 - r)\,\tfrac12(1 + \cos(\pi\,\tfrac{s - s_w}{S - s_w}))]`.
  The factor applies to every group's own base rate.
* **Gradient clipping** of the global norm at ``grad_clip``; optional AMP on CUDA
  (``amp_dtype`` bfloat16, or float16 with a gradient scaler).
* **Checkpoints** every ``checkpoint_every`` steps and at the end (or at
  ``max_steps``): model, optimiser, scheduler, scaler, objective schedule, RNG
  states and the data position, so a resumed run repeats the uninterrupted one
  exactly in float64 on CPU.
* **Non-finite** loss or gradient norm: training stops with
  :class:`NonFiniteLossError` naming the step, before the optimiser step, so the
  parameters and the last checkpoint stay good.

Only rank 0 writes (metrics, checkpoints, the progress bar).
"""
from __future__ import annotations

import json
import math
import sys
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.windows import ChunkBatchSampler, WindowDataset, make_loader
from ..errors import ConfigError, DynlabError
from ..schema import check, option
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import DistContext
from .losses import AbstractObjective

__all__ = ["TrainConfig", "Trainer", "TrainResult", "NonFiniteLossError", "param_groups", "cosine_warmup"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
METRICS_FILE = "metrics.jsonl"


class NonFiniteLossError(DynlabError):
    """The loss (or gradient) became NaN or infinite; the message names the step."""


@dataclass
class TrainConfig:
    """The ``train`` section of ``configs/train.yaml``: its schema (defaults, ranges, help)."""

    steps: int = option(1000, "optimiser steps in all (the cosine schedule ends here)", ge=0)
    max_steps: int | None = option(None, "stop this invocation at this step (resume=true continues)", ge=0)
    batch_size: int = option(32, "global batch (split across torchrun processes)", ge=1)
    lr: float = option(3e-3, "peak learning rate of AdamW", ge=0)
    weight_decay: float = option(0.01, "AdamW weight decay", ge=0)
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas", ge=0, lt=1)
    warmup: int = option(50, "linear warm-up steps, then cosine decay", ge=0)
    min_lr_ratio: float = option(0.05, "final lr / lr", ge=0, le=1)
    grad_clip: float | None = option(1.0, "global gradient-norm clip (null: none)", ge=0)
    dtype: str = option("float32", "parameter and data dtype", choices=tuple(DTYPES))
    amp: bool = option(False, "automatic mixed precision (CUDA only)")
    amp_dtype: str = option("bfloat16", "AMP dtype (float16 adds a gradient scaler)", choices=tuple(AMP_DTYPES))
    checkpoint_every: int = option(200, "steps between checkpoints", ge=1)
    keep_checkpoints: int | None = option(2, "newest checkpoints kept (null: all)", ge=1)
    log_every: int = option(10, "training records in metrics.jsonl every N steps", ge=1)
    val_every: int = option(100, "validation (and the horizon curriculum) every N steps", ge=1)
    val_windows: int = option(256, "validation windows (evenly spread over the val members)", ge=1)
    find_unused_parameters: bool = option(False, "DDP option for learners with parameters a loss does not use")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "TrainConfig":
        """Check ``cfg`` against the schema (one-line :class:`ConfigError`) and build the config."""
        checked = check(cfg, cls, "train")
        return cls(**{k: (tuple(v) if k == "betas" else v) for k, v in checked.items()})

    def validate(self) -> None:
        """Re-check the fields of a config built in Python."""
        TrainConfig.from_dict(dataclasses.asdict(self))

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def stop(self) -> int:
        """The step this invocation stops at: ``min(steps, max_steps)``."""
        return self.steps if self.max_steps is None else min(self.steps, self.max_steps)


@dataclass
class TrainResult:
    """What a training run did: where it wrote, how far it got, the loss of every step run now."""

    run_dir: Path
    step: int
    complete: bool
    losses: list[float] = field(default_factory=list)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def param_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups from the parameters' ``_optim`` dicts.

    Parameters without ``_optim`` form the first group (``lr``, ``weight_decay``);
    each distinct ``_optim`` dict forms one more group, its keys over the defaults.
    Frozen parameters (``requires_grad=False``) are left out. Group order follows
    the first appearance in ``module.named_parameters()``, so it is deterministic.
    """
    plain: list[nn.Parameter] = []
    special: dict[tuple, dict[str, Any]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        opts = getattr(p, "_optim", None)
        if not opts:
            plain.append(p)
            continue
        if not isinstance(opts, Mapping):
            raise ConfigError(f"parameter {name}: _optim must be a dict of optimiser settings, got {opts!r}")
        key = tuple(sorted(opts.items()))
        group = special.setdefault(key, {"params": [], "lr": lr, "weight_decay": weight_decay, **dict(opts)})
        group["params"].append(p)
    groups = [{"params": plain, "lr": lr, "weight_decay": weight_decay}] if plain else []
    return groups + list(special.values())


def cosine_warmup(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """LR factor of step s: ``s/warmup`` while warming up, then cosine from 1 to ``min_ratio`` at ``total``."""
    def factor(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        span = max(1, total - warmup)
        progress = min(1.0, (s - warmup) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


class _LossModule(nn.Module):
    """Holds the emulator so that DDP sees the objective's whole computation as one forward."""

    def __init__(self, emulator: nn.Module):
        super().__init__()
        self.emulator = emulator

    def forward(self, objective: AbstractObjective, x, forcing, step: int):
        return objective.loss(self.emulator, x, forcing, step)


def _to_float(value: Any) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


class Trainer:
    """Train ``emulator`` with ``objective`` on ``train_set``; log, validate, checkpoint to ``run_dir``.

    Args:
        emulator: the model (already on ``dist.device`` and in the training dtype).
        objective: the loss and its schedules (its ``scale`` set).
        train_set, val_set: window datasets (``val_set`` may be None).
        cfg: the ``train`` section.
        run_dir: the run directory (rank 0 writes it).
        dist: the process group context.
        seed: seeds the data order.
        num_workers: DataLoader workers (spawned).
        progress: show a tqdm bar (rank 0).
        checkpoint_extra: entries added to every checkpoint (learner, codec, dt, system, identity, ...).
        hooks: callables ``hook(step, record)`` run after every optimiser step (``record`` has the loss);
            an exception from a hook stops training like a crash would (used in tests).
    """

    def __init__(self, emulator: nn.Module, objective: AbstractObjective, train_set: WindowDataset,
                 val_set: WindowDataset | None, cfg: TrainConfig, run_dir: Path, dist: DistContext, *,
                 seed: int = 0, num_workers: int = 0, progress: bool = True, group_chunks: int = 1,
                 checkpoint_extra: Mapping[str, Any] | None = None,
                 hooks: Sequence[Callable[[int, dict], None]] = ()):
        self.emulator, self.objective = emulator, objective
        self.train_set, self.val_set = train_set, val_set
        self.cfg, self.run_dir, self.dist = cfg, Path(run_dir), dist
        self.seed, self.num_workers, self.progress = seed, num_workers, progress
        self.group_chunks = group_chunks
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.hooks = list(hooks)
        self.device = dist.device
        self.trainable = bool(getattr(emulator, "trainable", True)) and any(
            p.requires_grad for p in emulator.parameters())
        if cfg.amp and self.device.type != "cuda":
            raise ConfigError("train.amp=true needs device=cuda (automatic mixed precision runs on CUDA only)")
        self.step = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.scaler = None
        if self.trainable:
            self.optimizer = torch.optim.AdamW(param_groups(emulator, cfg.lr, cfg.weight_decay), lr=cfg.lr,
                                               betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, cosine_warmup(cfg.warmup, cfg.steps, cfg.min_lr_ratio))
            if cfg.amp and cfg.amp_dtype == "float16":
                self.scaler = torch.amp.GradScaler("cuda")
        self.loss_module = _LossModule(emulator)
        self.model: nn.Module = self.loss_module
        if dist.distributed and self.trainable:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.loss_module, device_ids=ids,
                             find_unused_parameters=cfg.find_unused_parameters)
        causal = getattr(objective, "causal", None)
        if causal is not None:
            causal.reduce = dist.all_reduce_mean  # causal weights from the global batch's losses
        self.last_checkpoint: Path | None = None
        self._metrics_file = self.run_dir / METRICS_FILE

    # -- logging ----------------------------------------------------------------------
    def _write_metrics(self, record: Mapping[str, Any]) -> None:
        if not self.dist.is_main:
            return
        with open(self._metrics_file, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines after ``step`` (they belong to the part of the run being redone)."""
        if not self.dist.is_main or not self._metrics_file.exists():
            return
        kept = [line for line in self._metrics_file.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self._metrics_file.write_text("".join(line + "\n" for line in kept))

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            **self.checkpoint_extra,
            "step": self.step,
            "data_position": self.step,  # global batches consumed
            "state_dict": self.emulator.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "objective": self.objective.state_dict(),
            "rng": rng_state(),
        }

    def save(self) -> Path | None:
        if self.dist.is_main:
            self.last_checkpoint = save_checkpoint(self.run_dir, self.step, self.state_dict(),
                                                   keep=self.cfg.keep_checkpoints)
        self.dist.barrier()
        return self.last_checkpoint

    def load(self, path: Path) -> None:
        """Restore everything from checkpoint ``path`` (the caller checked compatibility)."""
        ckpt = load_checkpoint(path, map_location="cpu")  # RNG states must stay on the CPU
        try:
            self.emulator.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            raise ConfigError(f"checkpoint {path} does not fit this learner config: "
                              f"{str(err).splitlines()[0]}") from None
        if self.optimizer is not None and ckpt.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except ValueError as err:
                raise ConfigError(f"checkpoint {path}: the optimiser state does not fit this model: {err}") from None
            # restores the step count and base rates; the factor function (a closure, not
            # saved) comes from this config, so an extended train.steps stretches the cosine
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.objective.load_state_dict(ckpt["objective"])
        set_rng_state(ckpt["rng"])
        self.step = int(ckpt["step"])
        self.last_checkpoint = Path(path)

    # -- validation -------------------------------------------------------------------
    def _val_indices(self) -> np.ndarray:
        n = len(self.val_set)
        if n <= self.cfg.val_windows:
            return np.arange(n)
        return np.unique(np.linspace(0, n - 1, self.cfg.val_windows).round().astype(np.int64))

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Mean one-step loss and per-step rollout losses over the validation windows (all ranks)."""
        if self.val_set is None:
            return {}
        idx = self._val_indices()[self.dist.rank::self.dist.world_size]
        bs = max(1, self.cfg.batch_size // self.dist.world_size)
        horizon = self.val_set.horizon
        self.emulator.eval()
        one = torch.zeros((), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        roll = torch.zeros(horizon, dtype=torch.float64, device=self.device)
        try:
            for start in range(0, len(idx), bs):
                items = [self.val_set[int(i)] for i in idx[start:start + bs]]
                x = torch.stack([it["x"] for it in items]).to(self.device)
                f = torch.stack([it["forcing"] for it in items]).to(self.device) if "forcing" in items[0] else None
                with self._autocast():
                    sums = self.objective.validation_sums(self.emulator, x, f, horizon)
                one += sums["one_step"].double()
                count += sums["count"].double()
                if "rollout" in sums:
                    roll += sums["rollout"].double()
        finally:
            self.emulator.train()
        totals = self.dist.all_reduce_sum(torch.cat([one[None], count[None], roll]))
        n = max(float(totals[1]), 1.0)
        out: dict[str, Any] = {"val/one_step": float(totals[0]) / n}
        if horizon > 0:
            steps = (totals[2:] / n).tolist()
            out["val/rollout_steps"] = steps
            out["val/rollout"] = sum(steps) / len(steps)
        return out

    def _autocast(self):
        if self.cfg.amp:
            return torch.autocast("cuda", dtype=AMP_DTYPES[self.cfg.amp_dtype])
        import contextlib

        return contextlib.nullcontext()

    # -- the loop ---------------------------------------------------------------------
    def _progress_bar(self, stop: int):
        if not (self.progress and self.dist.is_main and self.trainable and stop > self.step):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=stop, initial=self.step, unit="step", desc="train", file=sys.stderr, dynamic_ncols=True)

    def _batches(self) -> Iterable[dict[str, torch.Tensor]]:
        sampler = ChunkBatchSampler(self.train_set.window_chunks(), self.cfg.batch_size, seed=self.seed,
                                    group_chunks=self.group_chunks, rank=self.dist.rank,
                                    world_size=self.dist.world_size, start=self.step)
        return make_loader(self.train_set, sampler, self.num_workers)

    def _reduce_logs(self, loss: torch.Tensor, logs: Mapping[str, Any]) -> dict[str, float]:
        """Global-batch means of the loss and the logged values (one all-reduce)."""
        keys = list(logs)
        vec = torch.stack([loss.detach().double().reshape(())] +
                          [torch.as_tensor(logs[k], dtype=torch.float64, device=self.device).reshape(()) for k in keys])
        vec = self.dist.all_reduce_mean(vec).tolist()
        return {"loss": vec[0], **dict(zip(keys, vec[1:]))}

    def fit(self) -> TrainResult:
        """Train from ``self.step`` to ``cfg.stop``; returns what happened.

        Raises :class:`NonFiniteLossError` if the loss or gradient norm becomes NaN/inf.
        """
        cfg = self.cfg
        start_time = time.perf_counter()
        stop = cfg.stop if self.trainable else self.step
        losses: list[float] = []
        last: dict[str, Any] = {}
        self.emulator.train()
        bar = self._progress_bar(stop)
        loader = None
        try:
            if self.step < stop:
                loader = self._batches()
                batches = iter(loader)
            while self.step < stop:
                batch = next(batches)
                x = batch["x"].to(self.device)
                forcing = batch["forcing"].to(self.device) if "forcing" in batch else None
                with self._autocast():
                    loss, logs = self.model(self.objective, x, forcing, self.step)
                record = self._reduce_logs(loss, logs)
                if not math.isfinite(record["loss"]):
                    raise NonFiniteLossError(self._nonfinite_message("loss", record["loss"]))
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    loss.backward()
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                # with max_norm=inf this only measures the global gradient norm
                norm = float(torch.nn.utils.clip_grad_norm_(
                    params, cfg.grad_clip if cfg.grad_clip is not None else math.inf))
                if not math.isfinite(norm) and self.scaler is None:
                    raise NonFiniteLossError(self._nonfinite_message("gradient norm", norm))
                lr = self.optimizer.param_groups[0]["lr"]
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.scheduler.step()
                events = self.objective.after_step(self.step)
                self.step += 1
                losses.append(record["loss"])
                record = {"step": self.step, **record, "lr": lr, "grad_norm": norm, **self.objective.state()}
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                if self.step % cfg.log_every == 0 or self.step == stop:
                    self._write_metrics({**record, "time": round(time.perf_counter() - start_time, 3)})
                for message in events:
                    self._write_metrics({"step": self.step, "event": message})
                if self.step % cfg.val_every == 0 or self.step == stop:
                    metrics = self.validate()
                    if metrics:
                        events = self.objective.on_validation({"step": self.step, **metrics})
                        last = {"step": self.step, **metrics}
                        self._write_metrics(last)
                        for message in events:
                            self._write_metrics({"step": self.step, "event": message})
                        if bar is not None:
                            bar.set_postfix(loss=f"{record['loss']:.4g}", val=f"{metrics['val/one_step']:.4g}",
                                            refresh=False)
                for hook in self.hooks:
                    hook(self.step, record)
                if self.step % cfg.checkpoint_every == 0 and self.step < stop:
                    self.save()
            if not last and not self.trainable:
                last = self.validate()
                if last:
                    last = {"step": self.step, **last}
                    self._write_metrics(last)
            self.save()
        finally:
            if bar is not None:
                bar.close()
            del loader
        return TrainResult(self.run_dir, self.step, self.step >= cfg.steps or not self.trainable, losses, last,
                           time.perf_counter() - start_time)

    def _nonfinite_message(self, what: str, value: float) -> str:
        where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
            "; no checkpoint was written yet"
        return (f"non-finite {what} ({value}) at step {self.step + 1}: training stopped{where} "
                "(try a lower train.lr, train.grad_clip, or train.dtype=float64)")
