"""torch.distributed set-up for `torchrun` launches (gloo on CPU, NCCL on GPU) and helpers that are
no-ops in a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialised_here: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> DistContext:
    """Join the process group that torchrun describes in the environment (RANK, WORLD_SIZE, ...);
    a plain launch is one process. `device` overrides the choice of cuda:LOCAL_RANK / cpu."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None:
        dev = torch.device(device)
    elif torch.cuda.is_available():
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialised_here = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
        initialised_here = True
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev,
                       initialised_here=initialised_here)


def teardown(ctx: DistContext) -> None:
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= ctx.world_size
    return tensor
