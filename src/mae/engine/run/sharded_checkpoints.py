"""Sharded checkpoints through `torch.distributed.checkpoint` (DCP): each process writes its
own part, any number of processes reads them back (DCP reshards on load).

    OUT/checkpoints/ckpt-000001200/sharded/shard-00001-model-00001-of-00001.safetensors   rank 0's part
                                          /shard-00002-model-00001-of-00001.safetensors   rank 1's part
                                  /state.json, state.safetensors   as for a whole checkpoint

The parts are safetensors files (DCP's Hugging Face storage, every shard's offsets in its
metadata), so loading unpickles nothing, as for every other checkpoint. They hold the model
weights ("model.<key>") and the optimizer moments ("optim.<key>.<moment>", keyed by
parameter name, so that any sharding reads them); state.json holds the optimizer's
param_groups, the model's kind and config, and the name, size and SHA-256 of every part,
checked before any part is read (a damaged part is a CorruptFile naming it, and
`--resume auto` passes over that checkpoint as over any other that does not verify).

Atomic at the directory level: every process writes into the same hidden folder, then rank 0
moves it into a checkpoint folder that `CheckpointManager.save_with` renames into place.
"""

import os
import shutil
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ...storage.checkpoint_folder import SHARDED_WEIGHTS as SHARDS
from ...storage.checkpoint_folder import check_parts, load_training_state, quiet_single_process
from ...storage.checksums import sha256_file
from ...storage.disk import disk_full, free_bytes, reporting_full_disk
from ...weights.format import model_kind_and_config
from ..compute import distributed
from ..compute.fsdp import local
from .checkpoints import HEADERS, CheckpointManager


def save(checkpoints: CheckpointManager, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict, env: distributed.DistEnv) -> Path:
    """Checkpoint `step` written by every process (call it in all of them); `state` is the rest
    of the training state, without the optimizer. Returns the checkpoint folder."""
    parts = checkpoints.directory / f".{checkpoints.name_for(step)}.{SHARDS}"
    model_state, optim_state = get_state_dict(model, optimizer)
    needed, what = _check_room(checkpoints, step, [model_state, optim_state["state"]], env)
    if env.is_main:
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
    distributed.barrier(env)
    with quiet_single_process(), reporting_full_disk(checkpoints.directory, needed, what):
        dcp.save({"model": model_state, "optim": optim_state["state"]}, no_dist=not env.distributed,
                 storage_writer=HuggingFaceStorageWriter(str(parts), save_distributed=True))
    distributed.barrier(env)  # every part is written and synced
    final = None
    if env.is_main:
        kind, config = model_kind_and_config(model)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(parts.iterdir())}
        record = {**state, "optimizer": {"param_groups": optim_state["param_groups"]},
                  "sharded": {"processes": env.world_size, "files": files, "kind": kind, "config": config}}
        final = checkpoints.save_with(step, record, lambda folder: os.replace(parts, folder / SHARDS))
    distributed.barrier(env)
    return final


def _check_room(checkpoints: CheckpointManager, step: int, states: list, env: distributed.DistEnv) -> tuple[int, str]:
    """Refuse (DiskFull, in every process alike) a save whose parts would not fit: each part
    holds its process's shards of `states`. Returns (bytes needed in all, what is written)."""
    mine = sum(local(t).nbytes for state in states for t in _tensors(state))
    needed = HEADERS + int(distributed.all_reduce_sum(torch.tensor(mine), env))
    what = f"checkpoint {checkpoints.name_for(step)} (the parts of {env.world_size} process(es))"
    short = torch.tensor(int(free_bytes(checkpoints.directory) < needed))
    if distributed.all_reduce_max(short, env):
        raise disk_full(checkpoints.directory, needed, what)
    return needed, what


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, env: distributed.DistEnv) -> None:
    """Weights and optimizer moments of a sharded checkpoint into `model` and `optimizer`,
    sharded or not, on any number of processes (call it in all of them)."""
    check_parts(path)
    model_state, optim_state = get_state_dict(model, optimizer)  # creates the moments to fill in
    target = {"model": model_state, "optim": optim_state["state"]}
    with quiet_single_process():
        dcp.load(target, storage_reader=HuggingFaceStorageReader(str(path / SHARDS)), no_dist=not env.distributed)
    groups = load_training_state(path)["optimizer"]["param_groups"]
    set_state_dict(model, optimizer, model_state_dict=target["model"],
                   optim_state_dict={"state": target["optim"], "param_groups": groups})


