"""torchrun / DDP plumbing: one script, single- or multi-process.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`init_distributed`
joins the process group (``gloo`` on CPU, ``nccl`` on CUDA) and every process
trains on its share of each global batch; without it the same code runs as one
process and every collective is the identity. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["DistContext", "init_distributed"]


@dataclass
class DistContext:
    """Where this process stands: rank, world size, its device, whether it owns the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over ranks (a new tensor; the input is unchanged)."""
        if not self.distributed:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
        return out

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return tensor
        return self.all_reduce_sum(tensor) / self.world_size

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False


def _device(value: Any, local_rank: int) -> torch.device:
    try:
        device = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={value!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={value!r} but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device: Any = "cpu") -> DistContext:
    """Join the torchrun process group if there is one; pick this rank's device.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun). An already
    initialised group is used as it is (and not closed by :meth:`DistContext.close`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local_rank)
    if world <= 1:
        return DistContext(device=dev)
    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        owns = True
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       device=dev, owns_group=owns)
