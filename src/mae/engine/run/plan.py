"""What every training loop derives from its config before it computes: the settings left
out (chosen from the data, or on resume the run's own), device and precision, how the global
batch splits, the learning rate, the run directory (locked for this run alone) and the
checkpoint to resume from (verified, and checked to continue the same run)."""

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import DataWarning
from ...storage.checkpoint_folder import load_training_state
from ...storage.disk import reporting_full_disk, require_free
from ..compute import distributed
from ..compute.precision import PrecisionWarning, resolve_precision
from ..compute.process import set_up_process
from ..config.base import save_config
from ..config.from_data import RecipeWarning, choose_recipe, resumed_settings, schedule_change
from ..optim.scaling import resolve_batch, scaled_lr
from .checkpoints import SET_ASIDE, CheckpointManager, CheckpointWarning
from .lock import lock_run_dir
from .resume_check import check_same_run

# what a run's checks warn about: each names its file, flag or value, so one plain line is enough
RUN_WARNINGS = (DataWarning, RecipeWarning, PrecisionWarning, CheckpointWarning)


def warn_on_main_only(env: distributed.DistEnv) -> None:
    """Keep the other processes from repeating the main one's RUN_WARNINGS."""
    if not env.is_main:
        for category in RUN_WARNINGS:
            warnings.filterwarnings("ignore", category=category)


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the run stopped."""


class LossWindow:
    """The losses of the optimizer steps since the last log line, kept on the device (reading one
    would make the host wait for the device every step) until `read` brings them over."""

    def __init__(self, env: distributed.DistEnv, epoch_steps: int, global_batch: int,
                 checkpoints: CheckpointManager):
        self.env, self.epoch_steps, self.global_batch, self.checkpoints = env, epoch_steps, global_batch, checkpoints
        self.losses: list[torch.Tensor] = []  # scalars on the device
        self.restart_clock()

    def add(self, loss: torch.Tensor) -> None:
        self.losses.append(loss)

    def restart_clock(self) -> None:
        """Start timing anew: images/s counts training time, not checkpoints, probes or pictures."""
        self.started = time.perf_counter()

    def read(self, step: int) -> tuple[list[float], float]:
        """(the losses of steps up to `step`, averaged over processes and checked, images/s), and
        the window emptied; ([], 0.0) when there is nothing to read."""
        if not self.losses:
            return [], 0.0
        values = read_losses(self.losses, self.env, step, self.epoch_steps, self.checkpoints)
        speed = round(len(values) * self.global_batch / (time.perf_counter() - self.started), 1)
        self.losses = []
        self.restart_clock()
        return values, speed


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
                f"Last good checkpoint: {checkpoints.newest_verified() or 'none yet'}. Try --precision "
                "fp32 with --resume auto, or a lower --blr or --clip-grad in a new run (another "
                "--output-dir)."
            )
    return values


@dataclass(frozen=True)
class RunPlan:
    """Read by name (plan.device, plan.base_lr, ...)."""

    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    accum: int  # micro-steps per optimizer step
    global_batch: int  # images per optimizer step over all processes
    base_lr: float  # the peak of the schedule
    run_dir: Path
    checkpoints: CheckpointManager
    resume_from: Path | None
    state: dict | None  # the training state of `resume_from`

    def resumed_state(self, epoch_steps: int, config, data: dict) -> dict | None:
        """The training state of the checkpoint to resume (None for a fresh run), checked to
        continue the same run: same settings (bar those that may change), same data
        (`data_identity`), same global batch and steps per epoch."""
        state = self.state
        if state is None:
            return None
        check_same_run(self.resume_from, state, config, data)
        if (state["global_batch"], state["steps_per_epoch"]) != (self.global_batch, epoch_steps):
            raise ValueError(
                f"cannot resume from {self.resume_from}: it was trained with a global batch of "
                f"{state['global_batch']} and {state['steps_per_epoch']} steps per epoch, this run has "
                f"{self.global_batch} and {epoch_steps}; use the same data and batch size x processes x "
                "accumulation (or --effective-batch)"
            )
        return state

    def start(self, config, env: distributed.DistEnv, epoch_steps: int, total_steps: int,
              model: torch.nn.Module) -> str:
        """Open the run directory: rank 0 locks it, checks there is room for a checkpoint of
        `model`, writes config.yaml (with the derived plan on its first line), clears
        half-written checkpoints and sets aside those newer than the one resumed from.
        Returns that one-line summary."""
        summary = (
            f"{env.world_size} process(es) on {self.device.type}, precision {self.precision}, global batch "
            f"{self.global_batch} ({config.batch_size} x {env.world_size} process(es) x {self.accum} "
            f"accumulation), lr {self.base_lr:.3g}, {epoch_steps} steps per epoch, {total_steps} steps"
        )
        distributed.barrier(env)  # every process has read what it resumes from

        def open_run_dir() -> None:
            # the weights, and about two optimizer moments per trained weight
            needed = (sum(t.nbytes for t in model.state_dict().values())
                      + 2 * sum(p.nbytes for p in model.parameters() if p.requires_grad))
            what = "the run's config and a checkpoint"
            with reporting_full_disk(self.run_dir, needed, what):
                lock_run_dir(self.run_dir)
                require_free(self.run_dir, needed, what)
                save_config(config, self.run_dir / "config.yaml", comment=f"resolved at start: {summary}")
            self.checkpoints.clean_incomplete()
            if self.resume_from is not None and self.resume_from.parent == self.checkpoints.directory:
                for path in self.checkpoints.set_aside_after(self.resume_from):
                    warnings.warn(f"set aside {path.name.removeprefix(SET_ASIDE)} (newer than the checkpoint "
                                  f"resumed from) as {path}", CheckpointWarning, stacklevel=4)

        distributed.main_only(env, open_run_dir)
        return summary


def checked_run_dir(output_dir: str) -> Path:
    """--output-dir as a path: refused when it is a file, or a name that is not UTF-8 (which
    config.yaml and the checkpoints could not record, so the run could never be resumed)."""
    try:
        output_dir.encode("utf-8")
    except UnicodeEncodeError:
        shown = output_dir.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ValueError(f"--output-dir {shown} is not valid UTF-8; choose a UTF-8 name") from None
    run_dir = Path(output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--output-dir {run_dir} is a file, not a directory; choose another --output-dir")
    return run_dir


def plan_run(config, env: distributed.DistEnv, num_images: int, num_classes: int | None = None):
    """(the config with every setting left out filled in, the lines saying how, the plan) of a
    pretraining or downstream config (both have the fields read here) on `num_images` training
    images. The settings left out are the recipe's (`choose_recipe`), or on resume the run's own.

    Refuses a fresh run into a directory that already holds checkpoints: it would mix two
    runs' checkpoints, and `--resume auto` would later continue the wrong one.
    """
    set_up_process(config.threads, config.matmul_backend)
    run_dir = checked_run_dir(config.output_dir)

    def lock_existing() -> None:  # before its checkpoints are read (a new directory: in `start`)
        if run_dir.is_dir():
            lock_run_dir(run_dir)

    distributed.main_only(env, lock_existing)
    checkpoints = CheckpointManager(run_dir / "checkpoints", config.keep_last)
    resume_from = checkpoints.resolve(config.resume)
    if resume_from is None and checkpoints.latest() is not None:
        raise ValueError(
            f"{run_dir} already holds checkpoints of an earlier run (newest: {checkpoints.latest().name}); "
            "continue it with --resume auto, or choose another --output-dir"
        )
    state = load_training_state(resume_from) if resume_from is not None else None
    saved = state.get("config", {}) if state is not None else {}
    config, lines = resumed_settings(config, saved, resume_from)
    config, chosen = choose_recipe(config, num_images, env.world_size, num_classes)
    accum, global_batch = resolve_batch(config.batch_size, config.accum_iter, config.effective_batch, env.world_size)
    base_lr = config.lr if config.lr is not None else scaled_lr(config.blr, global_batch)
    if state is not None:
        chosen += schedule_change(config, saved, state["step"], state["steps_per_epoch"], base_lr)
    plan = RunPlan(
        device=env.device,
        precision=resolve_precision(config.precision, env.device),
        accum=accum,
        global_batch=global_batch,
        base_lr=base_lr,
        run_dir=run_dir,
        checkpoints=checkpoints,
        resume_from=resume_from,
        state=state,
    )
    return config, lines + chosen, plan
