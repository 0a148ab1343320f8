"""One code path for one process and for ``torchrun``: DistributedDataParallel when launched.

``torchrun --nproc-per-node N`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
then a process group is created (NCCL on CUDA, gloo on CPU) and trainable modules are wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`. With world size 1 nothing is initialised and
every helper here is a no-op. Rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from napari_cliprl.devices import resolve_device


@dataclass
class DistContext:
    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (selects the GPU)
    device: torch.device = torch.device("cpu")  # where this process computes
    initialised: bool = False  # True when this module created the process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device | None = "auto") -> DistContext:
    """Read the torchrun environment; create the process group when world size > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    ctx = DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        ctx.initialised = True
    return ctx


def cleanup_distributed(ctx: DistContext) -> None:
    """Destroy the process group this module created (others are left alone)."""
    if ctx.initialised and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        ctx.initialised = False


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(module)`` under torchrun; the module itself otherwise."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of a float over ranks (for logged losses)."""
    if not ctx.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device(ctx))
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def _collective_device(ctx: DistContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")


def shard(items: list[Any], ctx: DistContext) -> list[Any]:
    """This rank's share of ``items`` (round robin; every rank gets at least one item)."""
    if not ctx.distributed:
        return list(items)
    mine = items[ctx.rank :: ctx.world_size]
    return mine or [items[ctx.rank % len(items)]]


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision (a no-op context) everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Run the body on rank 0 first (e.g. to create folders), then on the others."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)
