"""What every training loop derives from its config before it reads data or computes:
device and precision, how the global batch splits, the learning rate, the run directory
and the checkpoint to resume from."""

from pathlib import Path
from typing import NamedTuple

import torch

from . import distributed
from .checkpoint import CheckpointManager
from .optim import resolve_batch, scaled_lr
from .precision import resolve_precision


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the run stopped."""


class RunPlan(NamedTuple):
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    accum: int  # micro-steps per optimizer step
    global_batch: int  # images per optimizer step over all processes
    base_lr: float  # the peak of the schedule
    run_dir: Path
    checkpoints: CheckpointManager
    resume_from: Path | None


def plan_run(config, env: distributed.DistEnv) -> RunPlan:
    """The plan of a pretraining or downstream config (both have the fields read here).

    Refuses a fresh run into a directory that already holds checkpoints: it would mix two
    runs' checkpoints, and `--resume auto` would later continue the wrong one.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    accum, global_batch = resolve_batch(config.batch_size, config.accum_iter, config.effective_batch, env.world_size)
    run_dir = Path(config.output_dir)
    checkpoints = CheckpointManager(run_dir / "checkpoints", config.keep_last)
    resume_from = checkpoints.resolve(config.resume)
    if resume_from is None and checkpoints.latest() is not None:
        raise ValueError(
            f"{run_dir} already holds checkpoints of an earlier run (newest: {checkpoints.latest().name}); "
            "continue it with --resume auto, or choose another --output-dir"
        )
    return RunPlan(
        device=env.device,
        precision=resolve_precision(config.precision, env.device),
        accum=accum,
        global_batch=global_batch,
        base_lr=config.lr if config.lr is not None else scaled_lr(config.blr, global_batch),
        run_dir=run_dir,
        checkpoints=checkpoints,
        resume_from=resume_from,
    )
