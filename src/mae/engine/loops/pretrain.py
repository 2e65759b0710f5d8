"""MAE pretraining: from a config to a run directory, in one loop you can read top to bottom.

    from mae.engine import PretrainConfig, pretrain
    result = pretrain(PretrainConfig(model="mae_vit_tiny_patch16", img_size=32, patch_size=4,
                                     epochs=10, warmup_epochs=1, output_dir="runs/tiny"))

Each optimizer step: lr from the schedule, mask noise from (seed, step), then for each
accumulation micro-step a forward under autocast and a backward (DDP's gradient sync
only on the last), then clip, step, zero. Losses stay on the device; they are read (and
checked for NaN / inf) only at log steps and before every checkpoint, so the loop never
waits for the device otherwise, and a non-finite loss is reported with its exact step.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import (
    SYNTHETIC,
    ImageSource,
    KeyedImages,
    Normalize,
    RandomResizedCrop,
    ResizeCenterCrop,
    SyntheticShapes,
    TrainBatches,
    build_source,
    check_image_sizes,
    default_mean_std,
    make_loader,
    rendered_side,
    steps_per_epoch,
)
from ...data.augmentations import pretrain_transform
from ...data.class_subsets import check_same_classes
from ...data.device_decode import device_decoding
from ...data.loader import warn_split_folders
from ...models import create_model
from ...models.masking import shape_noise
from ...storage.checkpoint_folder import load_model_state
from ...util.seeding import PREVIEW_STREAM, generator, mask_noise, seed_global_rng
from ...util.sizes import to_2tuple
from ...util.text import format_count, format_size, plural
from ...viz import reconstruct, save_curves, save_reconstruction_png
from ...weights.load import load_weights
from ..compute import distributed, fsdp
from ..compute.compile_plan import plan_compile
from ..compute.precision import autocast, grad_scaler
from ..config.base import config_to_dict
from ..config.from_data import warn_low_lr, warn_short_run
from ..config.pretrain import PretrainConfig
from ..eval.knn import knn_monitor
from ..optim.optimizers import adamw, optimizer_step, param_groups
from ..optim.schedules import set_lr, warmup_cosine
from ..run import sharded_checkpoints as sharded_checkpoint
from ..run.lock import unlock_run_dir
from ..run.metrics import MetricsLogger, Progress, read_metrics
from ..run.plan import LossWindow, TrainingDiverged, plan_run, warn_on_main_only
from ..run.resume_check import data_identity
from ..run.stops import StopOnSignal
from .classifier import SYNTHETIC_VAL_SEED, eval_crop_fraction


@dataclass
class PretrainResult:
    run_dir: Path
    step: int  # optimizer steps completed
    loss: float | None  # mean loss of the last logged steps (None if nothing ran)
    checkpoint: Path | None  # the newest checkpoint


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Run (or resume) pretraining as `config` says; under torchrun, as one of the processes."""
    config.validate()
    env = distributed.setup(config.device)
    try:
        return _pretrain(config, env)
    finally:
        unlock_run_dir(Path(config.output_dir))
        distributed.teardown(env)


def _spread(count: int, total: int) -> list[int]:
    """`count` indices (at most `total`) spread evenly over range(total), first and last included."""
    count = min(count, total)
    return [round(i * (total - 1) / max(1, count - 1)) for i in range(count)]


def _preview_batch(config: PretrainConfig, source, normalize: Normalize, device) -> torch.Tensor:
    """Fixed images for the reconstruction picture: unseen ones for the built-in dataset,
    evenly spread ones otherwise; the whole image, resized (no augmentation)."""
    if config.data in (None, SYNTHETIC):
        source = SyntheticShapes(config.preview_images, rendered_side(config.img_size), seed=config.seed + 1)
    picks = _spread(config.preview_images, len(source))
    view = KeyedImages(source, ResizeCenterCrop(config.img_size, 1.0, config.in_chans), strict=config.strict_data)
    return normalize(torch.stack([view[i][0] for i in picks]).to(device))


def make_knn_loaders(config: PretrainConfig, source: ImageSource, pin_memory: bool) -> list:
    """(training, validation) loaders of whole, resized images for the k-NN monitor; checked here,
    before any compute. The training side is `knn_images` evenly spread training images."""
    if not source.classes:
        raise ValueError(f"--knn-every-epochs needs labelled training data (one subfolder per class); "
                         f"{config.data} has no classes")
    if config.knn_val_data is not None:
        val = build_source(config.knn_val_data, config.strict_data)
        check_same_classes(source.classes, val.classes, f"training data ({config.data})",
                           f"--knn-val-data ({config.knn_val_data})")
    elif config.data in (None, SYNTHETIC):
        val = SyntheticShapes(config.knn_images, rendered_side(config.img_size), SYNTHETIC_VAL_SEED + config.seed)
    else:
        raise ValueError("--knn-every-epochs needs --knn-val-data (a folder with a subfolder per class "
                         "of the training data) unless the training data is the built-in dataset")
    transform = ResizeCenterCrop(config.img_size, eval_crop_fraction(config.img_size), config.in_chans)
    loaders = []
    for part in (source, val):
        picks = _spread(config.knn_images, len(part))
        batches = [[(0, i) for i in picks[first: first + config.batch_size]]
                   for first in range(0, len(picks), config.batch_size)]
        view = KeyedImages(part, transform, strict=config.strict_data)
        loaders.append(make_loader(view, batches, config.num_workers, pin_memory))
    return loaders


def _training_data(config: PretrainConfig, source: ImageSource, device: torch.device):
    """(dataset, collate, to_model): the training images, how the loader batches them, and the
    step that makes a batch the model's input on `device` (--decode-on device: decoded there)."""
    mean, std = default_mean_std(config.in_chans)
    if config.decode_on == "device":
        crop = RandomResizedCrop(config.img_size, config.crop_scale, channels=config.in_chans)
        return device_decoding(source, crop, config.seed, config.strict_data, device, mean, std)
    transform = pretrain_transform(config.augmentation, config.img_size, config.crop_scale, config.in_chans)
    normalize = Normalize(mean, std).to(device)
    return (KeyedImages(source, transform, config.seed, config.strict_data), None,
            lambda imgs: normalize(imgs.to(device, non_blocking=True)))


def _pretrain(config: PretrainConfig, env: distributed.DistEnv) -> PretrainResult:
    # ---- data: every check happens here, before any compute (in every process, so that
    # all of them stop together; only rank 0 shows the warnings)
    warn_on_main_only(env)
    source = build_source(config.data, config.strict_data, config.synthetic_size, rendered_side(config.img_size),
                          config.seed)
    check_image_sizes(source, max(to_2tuple(config.img_size)), config.strict_data)
    data = data_identity(config.data, source)
    warn_split_folders(source, config.data)
    config, recipe_lines, plan = plan_run(config, env, len(source))
    device, precision, accum, global_batch = plan.device, plan.precision, plan.accum, plan.global_batch
    base_lr, run_dir, checkpoints, resume_from = plan.base_lr, plan.run_dir, plan.checkpoints, plan.resume_from
    knn_loaders = make_knn_loaders(config, source, device.type == "cuda") if config.knn_every_epochs else None
    dataset, collate, to_model = _training_data(config, source, device)
    epoch_steps = steps_per_epoch(len(source), config.batch_size, env.world_size, accum)
    total_steps = epoch_steps * config.epochs
    warn_low_lr(config, base_lr, global_batch, total_steps)
    warn_short_run(config, epoch_steps)

    # ---- model, optimizer, and the state to resume from
    def build_model() -> torch.nn.Module:
        return create_model(config.model, **config.model_kwargs()).to(device)

    torch.manual_seed(config.seed)
    raw_model = build_model()
    if config.fsdp:
        fsdp.shard(raw_model, env, precision)
    optimizer = adamw(param_groups(raw_model, config.weight_decay), base_lr, config.betas)
    scaler = grad_scaler(precision, device)
    step, epoch_loss = 0, [0.0, 0]  # [sum, count] over this epoch's steps so far
    state = plan.resumed_state(epoch_steps, config, data)
    if state is not None:
        if "sharded" in state:
            sharded_checkpoint.load(resume_from, raw_model, optimizer, env)
        elif fsdp.is_sharded(raw_model):
            raise ValueError(f"cannot resume {resume_from} with --fsdp on {env.world_size} processes: it "
                             "is a whole checkpoint (written without --fsdp); resume it without --fsdp")
        else:
            load_weights(raw_model, load_model_state(resume_from), str(resume_from))
            optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and scaler.is_enabled():  # empty when saved without fp16
            scaler.load_state_dict(state["scaler"])
        step, epoch_loss = state["step"], list(state["epoch_loss"])

    compiling = plan_compile(config, raw_model, (total_steps - step) * accum, precision, device, env)
    model = torch.compile(raw_model) if compiling.on else raw_model
    model = model if config.fsdp else distributed.wrap(model, env)
    normalize = Normalize(*default_mean_std(config.in_chans)).to(device)
    batches = TrainBatches(len(source), config.batch_size, config.epochs, config.seed,
                           env.world_size, env.rank, accum, start_step=step)
    loader = make_loader(dataset, batches, config.num_workers, pin_memory=device.type == "cuda", collate=collate)
    num_patches = raw_model.patch_embed.num_patches

    # ---- run directory (rank 0 writes, the others only compute)
    summary = plan.start(config, env, epoch_steps, total_steps, raw_model)
    logger = MetricsLogger(run_dir, env.is_main, config.tensorboard,
                           resume_step=step if resume_from is not None else None)
    progress = Progress(total_steps, step, env.is_main, "pretrain")
    params = sum(p.numel() for p in raw_model.parameters() if p.requires_grad)
    progress.write(f"data: {source!r}")
    for line in recipe_lines:
        progress.write(line)
    progress.write(f"model: {config.model} at {format_size(config.img_size)}, {format_count(params)} trainable "
                   f"parameters; {summary}")
    progress.write(f"compile: {compiling.why}")
    if resume_from is not None:
        done = " (the run is already complete; only the pictures are redrawn)" if step >= total_steps else ""
        progress.write(f"resuming from {resume_from} (step {step}){done}")
    if compiling.on and step < total_steps:
        progress.write(compiling.notice())

    window = LossWindow(env, epoch_steps, global_batch, checkpoints)
    last_loss, saved_step = None, None
    lr = base_lr

    def log_window() -> None:
        """Bring the unread losses to the host (averaged over processes), check them, log them."""
        nonlocal epoch_loss, last_loss
        values, speed = window.read(step)
        if not values:
            return
        epoch_loss = [epoch_loss[0] + sum(values), epoch_loss[1] + len(values)]
        last_loss = sum(values) / len(values)
        logger.log({"step": step, "epoch": round(step / epoch_steps, 4), "loss": last_loss, "lr": lr,
                    "images_per_s": speed})
        progress.report({"loss": last_loss, "lr": lr, "img/s": speed})

    def save_checkpoint() -> None:
        nonlocal saved_step
        log_window()  # never save past a loss that was not checked
        if not fsdp.weights_finite(raw_model, env):
            last_good = checkpoints.newest_verified() or "none yet"
            raise TrainingDiverged(f"the weights are no longer finite after step {step}; stopping "
                                   f"without saving. Last good checkpoint: {last_good}.")
        state = {"step": step, "epoch": step / epoch_steps, "epoch_loss": epoch_loss,
                 "global_batch": global_batch, "steps_per_epoch": epoch_steps, "lr": lr,
                 "scaler": scaler.state_dict(), "config": config_to_dict(config), "data": data}
        if config.fsdp:  # every process writes its part
            sharded_checkpoint.save(checkpoints, step, raw_model, optimizer, state, env)
        elif env.is_main:
            checkpoints.save(step, raw_model, {**state, "optimizer": optimizer.state_dict()})
        saved_step = step
        distributed.barrier(env)

    def write_pictures(name: str) -> None:
        whole = fsdp.full_model(raw_model, env, build_model)  # rank 0's whole model, None elsewhere
        if whole is None:
            return
        imgs = _preview_batch(config, source, normalize, device)
        noise = torch.rand(len(imgs), num_patches, generator=generator(config.seed, PREVIEW_STREAM))
        mean, std = default_mean_std(config.in_chans)
        rec = reconstruct(whole, imgs, config.mask_ratio, noise.to(device), mean, std, config.mask_type)
        arch = raw_model.config
        title = (f"ViT width {arch['embed_dim']}, depth {arch['depth']}, patch {arch['patch_size']}, "
                 f"{format_size(config.img_size)}: after {plural(step, 'step')} "
                 f"({plural(step / epoch_steps, 'epoch')})")
        save_reconstruction_png(rec, run_dir / name, title)
        logger.image("reconstruction", rec.grid(), step)
        records = [r for r in read_metrics(run_dir) if "loss" in r]
        if records:
            save_curves(records, run_dir / "loss.png", keys=("loss", "lr"), x_key="step")

    stop = StopOnSignal()
    stop.install()
    try:
        model.train()
        micro = 0
        for imgs, _ in loader:
            if micro == 0:
                lr = warmup_cosine(step / epoch_steps, base_lr, config.min_lr, config.warmup_epochs, config.epochs)
                set_lr(optimizer, lr)
                noise = mask_noise(config.seed, step, global_batch, num_patches)  # [global batch, L]
                noise = shape_noise(config.mask_type, noise, raw_model.grid_size, config.mask_ratio)
                seed_global_rng(config.seed, step, env.rank)
                step_loss = torch.zeros((), device=device)
            first_row = (micro * env.world_size + env.rank) * config.batch_size  # as TrainBatches
            rows = noise[first_row: first_row + config.batch_size].to(device, non_blocking=True)
            imgs = to_model(imgs)
            last_micro = micro == accum - 1
            with distributed.sync_gradients(model, last_micro):
                with autocast(precision, device):
                    loss = model(imgs, mask_ratio=config.mask_ratio, noise=rows).loss
                scaler.scale(loss / accum).backward()
            step_loss += loss.detach().float()
            micro = (micro + 1) % accum
            if not last_micro:
                continue

            optimizer_step(optimizer, scaler, raw_model.parameters(), config.clip_grad)
            window.add(step_loss / accum)
            step += 1
            progress.update()
            epoch_end = step % epoch_steps == 0
            epoch = (step - 1) // epoch_steps  # the epoch this step belonged to

            if step % config.log_every == 0 or epoch_end:
                log_window()
            if epoch_end:
                logger.log({"step": step, "epoch": epoch + 1, "epoch_loss": epoch_loss[0] / max(1, epoch_loss[1])})
                epoch_loss = [0.0, 0]
            if (
                (config.save_every_steps and step % config.save_every_steps == 0)
                or (epoch_end and config.save_every_epochs and (epoch + 1) % config.save_every_epochs == 0)
                or step == total_steps
            ):
                save_checkpoint()
                window.restart_clock()
            if epoch_end and config.knn_every_epochs and (epoch + 1) % config.knn_every_epochs == 0:
                whole = fsdp.full_model(raw_model, env, build_model)
                if whole is not None:
                    with autocast(precision, device):
                        accuracy = knn_monitor(whole, *knn_loaders, normalize, num_classes=source.num_classes)
                    logger.log({"step": step, "epoch": epoch + 1, **accuracy})
                    progress.write(f"epoch {epoch + 1}: k-NN top-1 {accuracy['knn_top1']:.1f}%, "
                                   f"top-5 {accuracy['knn_top5']:.1f}%")
                distributed.barrier(env)
                window.restart_clock()
            if epoch_end and config.preview_every_epochs and (epoch + 1) % config.preview_every_epochs == 0:
                write_pictures(f"reconstruction-epoch{epoch + 1:04d}.png")
                window.restart_clock()
            if step < total_steps and stop.agreed(env, step, config.log_every):
                if saved_step != step:
                    save_checkpoint()
                raise stop.stopped("pretrain", step, total_steps, checkpoints.latest(), run_dir)
        write_pictures("reconstruction.png")
    finally:
        stop.restore()
        progress.close()
        logger.close()
    return PretrainResult(run_dir, step, last_loss, checkpoints.latest())
