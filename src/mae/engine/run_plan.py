"""What every training loop derives from its config before it reads data or computes:
device and precision, how the global batch splits, the learning rate, the run directory
and the checkpoint to resume from."""

from pathlib import Path
from typing import NamedTuple

import torch

from . import distributed
from .checkpoint import CheckpointManager, load_training_state
from .config import save_config
from .optim import resolve_batch, scaled_lr
from .precision import resolve_precision


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the run stopped."""


def read_losses(window: list[torch.Tensor], env: distributed.DistEnv, step: int, epoch_steps: int,
                checkpoints: CheckpointManager) -> list[float]:
    """The per-step losses of steps (step - len(window), step], averaged over processes, on the
    host: the one place a loop waits for the device. A NaN or infinite one stops the run."""
    if not window:
        return []
    values = distributed.all_reduce_mean(torch.stack(window).float(), env).cpu().tolist()
    first = step - len(window) + 1
    for i, value in enumerate(values):
        if value != value or value in (float("inf"), float("-inf")):
            bad = first + i
            raise TrainingDiverged(
                f"loss is {value} at step {bad} (epoch {(bad - 1) // epoch_steps}); stopping. "
                f"Last good checkpoint: {checkpoints.latest() or 'none yet'}. Try a lower --blr, "
                "--clip-grad, or --precision fp32, then --resume auto."
            )
    return values


class RunPlan(NamedTuple):
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    accum: int  # micro-steps per optimizer step
    global_batch: int  # images per optimizer step over all processes
    base_lr: float  # the peak of the schedule
    run_dir: Path
    checkpoints: CheckpointManager
    resume_from: Path | None

    def resumed_state(self, epoch_steps: int) -> dict | None:
        """The training state of the checkpoint to resume (None for a fresh run), checked to
        continue the same schedule: same global batch and steps per epoch."""
        if self.resume_from is None:
            return None
        state = load_training_state(self.resume_from)
        if (state["global_batch"], state["steps_per_epoch"]) != (self.global_batch, epoch_steps):
            raise ValueError(
                f"cannot resume from {self.resume_from}: it was trained with a global batch of "
                f"{state['global_batch']} and {state['steps_per_epoch']} steps per epoch, this run has "
                f"{self.global_batch} and {epoch_steps}; use the same data and batch size x processes x "
                "accumulation (or --effective-batch)"
            )
        return state

    def start(self, config, env: distributed.DistEnv, epoch_steps: int, total_steps: int) -> str:
        """Open the run directory (rank 0 writes config.yaml, with the derived plan on its first
        line, and clears half-written checkpoints); returns that one-line summary."""
        summary = (
            f"{env.world_size} process(es) on {self.device.type}, precision {self.precision}, global batch "
            f"{self.global_batch} ({config.batch_size} x {env.world_size} process(es) x {self.accum} "
            f"accumulation), lr {self.base_lr:.3g}, {epoch_steps} steps per epoch, {total_steps} steps"
        )
        if env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml", comment=f"resolved at start: {summary}")
            self.checkpoints.clean_incomplete()
        return summary


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
