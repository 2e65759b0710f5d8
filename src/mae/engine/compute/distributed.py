"""Data-parallel training under torchrun: one process per device, gloo on CPU, NCCL on GPU.

    torchrun --nproc_per_node 8 -m mae.cli pretrain ...    (or the `mae` script path)

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) everything runs as a single
process and the helpers below are no-ops.
"""

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> this process's GPU if there is one, else the CPU; otherwise a checked name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device name (cpu, cuda, cuda:N, auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def setup(device: str = "auto") -> DistEnv:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(minutes=30))
    return DistEnv(rank, world_size, local_rank, chosen)


def teardown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def main_only(env: DistEnv, action) -> None:
    """`action()` in rank 0 alone; a ValueError or OSError it raises there (a locked run
    directory, a full disk) is raised in every process, with rank 0's message, so that no
    process is left waiting for one that has stopped."""
    error = None
    if env.is_main:
        try:
            action()
        except (ValueError, OSError) as err:
            error = err
    if env.distributed:
        shared = [error]
        dist.broadcast_object_list(shared, src=0)
        error = shared[0] if error is None else error  # rank 0 keeps its own, with its traceback
    if error is not None:
        raise error


def all_reduce_mean(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean over processes (in place on a copy); the tensor itself if single-process."""
    if not env.distributed:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor / env.world_size


def _all_reduce(tensor: torch.Tensor, env: DistEnv, op) -> torch.Tensor:
    if not env.distributed:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=op)
    return tensor


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    return _all_reduce(tensor, env, dist.ReduceOp.SUM)


def all_reduce_max(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    return _all_reduce(tensor, env, dist.ReduceOp.MAX)


def wrap(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel over the process group; the model itself when single-process."""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def sync_gradients(model: torch.nn.Module, sync: bool):
    """Context for a backward pass: skip DDP's gradient all-reduce (FSDP's reduce-scatter) when
    `sync` is False (the accumulation micro-steps before an optimizer step)."""
    sharded = getattr(model, "_orig_mod", model)  # through torch.compile
    if isinstance(sharded, FSDPModule):
        sharded.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    if sync or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()
