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

import contextlib
import hashlib
import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ...storage.checksums import CorruptFile
from ...weights.load import SHARDED_WEIGHTS as SHARDS, model_kind_and_config
from ..compute import distributed
from .checkpoints import HEADERS, CheckpointManager, load_training_state
from ...storage.disk import disk_full, free_bytes, reporting_full_disk
from ..compute.fsdp import local


@contextlib.contextmanager
def _quiet_single_process():
    """DCP warns on every single-process call that it assumes one process, as intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is .*assuming the intent")
        yield


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
    with _quiet_single_process(), reporting_full_disk(checkpoints.directory, needed, what):
        dcp.save({"model": model_state, "optim": optim_state["state"]}, no_dist=not env.distributed,
                 storage_writer=HuggingFaceStorageWriter(str(parts), save_distributed=True))
    distributed.barrier(env)  # every part is written and synced
    final = None
    if env.is_main:
        kind, config = model_kind_and_config(model)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(parts.iterdir())}
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def check_parts(path: Path) -> dict:
    """The checkpoint's record of its parts, after checking that each one is there, unchanged
    (size and SHA-256 as recorded when it was written); CorruptFile naming the part if not."""
    record = load_training_state(path)["sharded"]
    for name, expected in record["files"].items():
        part = path / SHARDS / name
        if not part.is_file() or part.stat().st_size != expected["bytes"]:
            found = f"{part.stat().st_size} bytes" if part.is_file() else "missing"
            raise CorruptFile(f"sharded checkpoint {path} is damaged: {SHARDS}/{name} should have "
                              f"{expected['bytes']} bytes ({found}); resume from another checkpoint")
        if _sha256(part) != expected["sha256"]:
            raise CorruptFile(f"sharded checkpoint {path} is damaged: {SHARDS}/{name} changed since it was "
                              "written (SHA-256 differs); resume from another checkpoint")
    return record


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, env: distributed.DistEnv) -> None:
    """Weights and optimizer moments of a sharded checkpoint into `model` and `optimizer`,
    sharded or not, on any number of processes (call it in all of them)."""
    check_parts(path)
    model_state, optim_state = get_state_dict(model, optimizer)  # creates the moments to fill in
    target = {"model": model_state, "optim": optim_state["state"]}
    with _quiet_single_process():
        dcp.load(target, storage_reader=HuggingFaceStorageReader(str(path / SHARDS)), no_dist=not env.distributed)
    groups = load_training_state(path)["optimizer"]["param_groups"]
    set_state_dict(model, optimizer, model_state_dict=target["model"],
                   optim_state_dict={"state": target["optim"], "param_groups": groups})


def read_model_state(path: str | Path) -> dict:
    """The full weights of a sharded checkpoint, in this process alone (no process group)."""
    path = Path(path)
    check_parts(path)
    reader = HuggingFaceStorageReader(str(path / SHARDS))
    shapes = reader.read_metadata().state_dict_metadata
    weights = {key.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
               for key, meta in shapes.items() if key.startswith("model.")}
    with _quiet_single_process():
        dcp.load({"model": weights}, storage_reader=HuggingFaceStorageReader(str(path / SHARDS)), no_dist=True)
    return weights


def model_metadata(path: str | Path) -> tuple[str, dict]:
    """(kind, constructor config) of the model in a sharded checkpoint."""
    record = load_training_state(path)["sharded"]
    return record["kind"], record["config"]
