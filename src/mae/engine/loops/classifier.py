"""Training a classifier on a pretrained encoder: the loop shared by fine-tuning and linear probing.

    result = train_classifier(config, task)     # task: FINETUNE or LINPROBE (their modules)

A task (fine-tuning or linear probing) says what differs: how the classifier is built (which
parameters train), the optimizer, the augmentation on the device, and the loss. Everything else is one loop:
per optimizer step, lr from the warm-up + cosine schedule, then for each accumulation
micro-step the task's augmentation (drawn from (seed, step, micro-step, rank)), a forward
under autocast and a backward; after every epoch an evaluation (top-1, top-5, loss) on the
validation set, a checkpoint (the last ones kept) and, when top-1 improved, the best model.

Data: `--data DIR` needs DIR/train and DIR/val with the same class subfolders; the
built-in dataset gives `synthetic_size` training images (those pretraining sees) and
`synthetic_val_size` other images for validation. Crop and flip run per image in the
loader workers (seeded from (seed, epoch, index)); the rest runs batched on the device.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ...data import (
    SHAPES,
    SYNTHETIC,
    EvalBatches,
    ImageSource,
    KeyedImages,
    Normalize,
    RandomResizedCrop,
    ResizeCenterCrop,
    SyntheticShapes,
    TrainBatches,
    build_source,
    default_mean_std,
    make_loader,
    rendered_side,
    steps_per_epoch,
)
from ...data.class_subsets import ClassSubset, check_same_classes
from ...data.transforms import STANDARD_CROP
from ...models.vit import VisionTransformer
from ...storage.checkpoint_folder import load_model_state
from ...util.seeding import generator, seed_global_rng
from ...util.sizes import to_2tuple
from ...util.text import format_count
from ...viz import save_curves
from ...weights.format import save_model
from ...weights.load import constructor_kwargs, load_encoder, load_model
from ..compute import distributed
from ..compute.precision import autocast, grad_scaler
from ..config.base import config_to_dict
from ..config.classifier import DownstreamConfig
from ..config.from_data import warn_low_lr, warn_short_run
from ..optim.optimizers import optimizer_step
from ..optim.schedules import set_lr, warmup_cosine
from ..run.lock import unlock_run_dir
from ..run.metrics import MetricsLogger, Progress, read_metrics
from ..run.plan import LossWindow, plan_run, warn_on_main_only
from ..run.resume_check import data_identity
from ..run.stops import StopOnSignal

SYNTHETIC_TRAIN_SEED = 0  # the images `mae pretrain` sees by default
SYNTHETIC_VAL_SEED = 1000  # other images of the same classes
AUGMENT_STREAM = 0xD0A7
BEST_DIR = "best"


@dataclass
class ClassifierTask:
    """What fine-tuning and linear probing do differently."""

    name: str  # "finetune" / "linprobe": progress and messages
    build: Callable  # (config, encoder model, num_classes) -> (classifier, LoadReport)
    optimizer: Callable  # (config, classifier, lr) -> torch optimizer
    # (config, num_classes) -> f(float images [N, C, S, S] in [0, 1], labels, generator)
    #                             -> (normalised images, targets)
    augment: Callable
    loss: Callable  # (logits, targets) -> scalar
    export: Callable  # classifier -> the model written to model.safetensors (eval-equivalent)


@dataclass
class DownstreamResult:
    run_dir: Path
    step: int
    top1: float | None  # of the last evaluation
    best_top1: float | None
    checkpoint: Path | None


# ---------------------------------------------------------------- data


def folder_sources(data: str, strict: bool = False) -> tuple[ImageSource, ImageSource]:
    """(train, val) labelled sources of DATA/train and DATA/val, checked to name the same classes."""
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    missing = [name for name in ("train", "val") if not (root / name).is_dir()]
    if missing:
        raise ValueError(f"--data {root} needs train/ and val/ subfolders of class folders; "
                         f"missing: {', '.join(missing)}")
    train, val = build_source(str(root / "train"), strict), build_source(str(root / "val"), strict)
    for split, source in (("train", train), ("val", val)):
        if not source.classes:
            raise ValueError(f"--data {root / split} has no class subfolders (labels come from them)")
    check_same_classes(train.classes, val.classes, f"training data ({root / 'train'})",
                       f"validation data ({root / 'val'})")
    return train, val


def synthetic_sources(config: DownstreamConfig, img_size) -> tuple[ImageSource, ImageSource]:
    """The built-in dataset: the images pretraining sees for training, others for validation."""
    size = rendered_side(img_size)  # as pretraining renders them
    return (SyntheticShapes(config.synthetic_size, size, SYNTHETIC_TRAIN_SEED),
            SyntheticShapes(config.synthetic_val_size, size, SYNTHETIC_VAL_SEED))


def eval_crop_fraction(img_size) -> float:
    """The official evaluation view: 224 of 256 up to 224 pixels (the longer side), the whole image above."""
    return STANDARD_CROP if max(to_2tuple(img_size)) <= 224 else 1.0


def eval_loader(source: ImageSource, img_size, channels: int, batch_size: int, num_workers: int,
                env: distributed.DistEnv, crop_fraction: float | None = None, strict: bool = False):
    """Resize + centre crop (default: the official evaluation view), batches in index order."""
    crop_fraction = eval_crop_fraction(img_size) if crop_fraction is None else crop_fraction
    view = KeyedImages(source, ResizeCenterCrop(img_size, crop_fraction, channels), strict=strict)
    batches = EvalBatches(len(source), batch_size, env.world_size, env.rank)
    return make_loader(view, batches, num_workers, pin_memory=env.device.type == "cuda")


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_classifier(
    model: torch.nn.Module,
    loader,
    normalize: Normalize,
    device: torch.device,
    precision: str = "fp32",
    subset: ClassSubset | None = None,
    env: distributed.DistEnv | None = None,
) -> dict:
    """Top-1 / top-5 accuracy (%) and mean cross-entropy over every sample of `loader`.

    With `subset`, the logits are first restricted to the subset's head outputs (labels are
    the subset's own class indices). Summed over processes under DDP.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss, count
    try:
        for imgs, labels in loader:
            imgs = normalize(imgs.to(device, non_blocking=True))
            labels = labels.to(device, non_blocking=True)
            with autocast(precision, device):
                logits = model(imgs)
            logits = logits.float()  # [B, K]
            if subset is not None:
                logits, labels = subset.restrict(logits), subset.relabel(labels)
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # [B, top]
            hits = top == labels[:, None]
            sums += torch.stack([
                hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                F.cross_entropy(logits, labels, reduction="sum").double(),
                torch.tensor(float(len(labels)), dtype=torch.float64, device=device),
            ])
    finally:
        model.train(was_training)
    if env is not None:
        sums = distributed.all_reduce_sum(sums, env)
    correct1, correct5, loss, count = sums.tolist()
    if count == 0:
        raise ValueError("no images to evaluate")
    return {"top1": 100 * correct1 / count, "top5": 100 * correct5 / count, "loss": loss / count,
            "count": int(count)}


# ---------------------------------------------------------------- model


def pretrained_encoder(config: DownstreamConfig) -> VisionTransformer:
    """The checkpoint's encoder, or (with --random-init) a freshly initialised model of its
    architecture."""
    if config.checkpoint is None:
        raise ValueError("--checkpoint is required: the pretrained encoder to start from")
    if not config.random_init:
        return load_encoder(config.checkpoint)
    arch = constructor_kwargs(VisionTransformer, dict(load_model(config.checkpoint).config))
    arch.update(num_classes=0)
    torch.manual_seed(config.seed)
    return VisionTransformer(**arch)


def _load_resumed(model: torch.nn.Module, path: Path, state: dict) -> None:
    """Weights of a checkpoint: everything but the head from model.safetensors (saved in its
    exported form), the head as trained from the training state."""
    weights = {k: v for k, v in load_model_state(path).items() if not k.startswith("head.")}
    own = {k for k in model.state_dict() if not k.startswith("head.")}
    if set(weights) != own:
        raise ValueError(f"cannot resume from {path}: its weights do not fit this classifier "
                         f"(differing keys: {sorted(set(weights) ^ own)[:8]})")
    model.load_state_dict(weights, strict=False)
    model.head.load_state_dict(state["head"])


# ---------------------------------------------------------------- the loop


def train_classifier(config: DownstreamConfig, task: ClassifierTask) -> DownstreamResult:
    config.validate()
    env = distributed.setup(config.device)
    try:
        return _train(config, task, env)
    finally:
        unlock_run_dir(Path(config.output_dir))
        distributed.teardown(env)


def _train(config: DownstreamConfig, task: ClassifierTask, env: distributed.DistEnv) -> DownstreamResult:
    # ---- every check before any compute: the data, the head's classes, the encoder
    warn_on_main_only(env)
    synthetic = config.data in (None, SYNTHETIC)
    if synthetic:
        classes, train_images = list(SHAPES), config.synthetic_size
    else:
        train_source, val_source = folder_sources(config.data, config.strict_data)
        classes, train_images = train_source.classes, len(train_source)
    config, recipe_lines, plan = plan_run(config, env, train_images, len(classes))
    device, precision, accum, global_batch = plan.device, plan.precision, plan.accum, plan.global_batch
    base_lr, run_dir, checkpoints, resume_from = plan.base_lr, plan.run_dir, plan.checkpoints, plan.resume_from
    num_classes = config.num_classes or len(classes)
    if num_classes < len(classes):
        raise ValueError(f"--num-classes {num_classes} is fewer than the {len(classes)} classes of "
                         "the training data")
    torch.manual_seed(config.seed)  # the fresh head (and fc_norm)
    raw_model, report = task.build(config, pretrained_encoder(config), num_classes)
    img_size = tuple(raw_model.config["img_size"])  # (height, width)
    if synthetic:
        train_source, val_source = synthetic_sources(config, img_size)
    channels = raw_model.config["in_chans"]
    raw_model = raw_model.to(device)
    data = data_identity(config.data, train_source, val_source)
    epoch_steps = steps_per_epoch(len(train_source), config.batch_size, env.world_size, accum)
    total_steps = epoch_steps * config.epochs
    warn_low_lr(config, base_lr, global_batch, total_steps)
    warn_short_run(config, epoch_steps)

    optimizer = task.optimizer(config, raw_model, base_lr)
    scaler = grad_scaler(precision, device)
    step, best_top1, last_top1, epoch_loss = 0, None, None, 0.0
    state = plan.resumed_state(epoch_steps, config, data)
    if state is not None:
        _load_resumed(raw_model, resume_from, state)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, best_top1, last_top1 = state["step"], state["best_top1"], state["top1"]
        epoch_loss = state.get("epoch_loss", 0.0)  # the summed losses of a stopped epoch's steps

    model = distributed.wrap(raw_model, env)
    normalize = Normalize(*default_mean_std(channels)).to(device)
    augment = task.augment(config, num_classes)
    batches = TrainBatches(len(train_source), config.batch_size, config.epochs, config.seed,
                           env.world_size, env.rank, accum, start_step=step)
    crop = RandomResizedCrop(img_size, config.crop_scale, channels=channels)
    loader = make_loader(KeyedImages(train_source, crop, config.seed, config.strict_data), batches,
                         config.num_workers, pin_memory=device.type == "cuda")
    val_loader = eval_loader(val_source, img_size, channels, config.eval_batch_size or config.batch_size,
                             config.num_workers, env, strict=config.strict_data)

    summary = plan.start(config, env, epoch_steps, total_steps, raw_model)
    logger = MetricsLogger(run_dir, env.is_main, config.tensorboard,
                           resume_step=step if resume_from is not None else None)
    progress = Progress(total_steps, step, env.is_main, task.name)
    trainable = sum(p.numel() for p in raw_model.parameters() if p.requires_grad)
    progress.write(f"encoder: {report.summary()}")
    progress.write(f"data: train {train_source!r}, val {val_source!r}; {num_classes} classes")
    for line in recipe_lines:
        progress.write(line)
    progress.write(f"classifier: {format_count(trainable)} trainable parameters; {summary}")
    if resume_from is not None:
        progress.write(f"resuming from {resume_from} (step {step})")

    window = LossWindow(env, epoch_steps, global_batch, checkpoints)
    epoch_loss = torch.tensor(epoch_loss, device=device)
    lr = base_lr

    def log_window() -> None:
        """Bring the unread losses to the host (averaged over processes), check them, log them."""
        values, speed = window.read(step)
        if not values:
            return
        loss_value = sum(values) / len(values)
        logger.log({"step": step, "epoch": round(step / epoch_steps, 4), "loss": loss_value, "lr": lr,
                    "images_per_s": speed})
        progress.report({"loss": loss_value, "lr": lr})

    def end_of_epoch(epoch: int) -> None:
        nonlocal best_top1, last_top1, epoch_loss
        metrics = evaluate_classifier(model, val_loader, normalize, device, precision, env=env)
        train_loss = float(distributed.all_reduce_mean(epoch_loss / epoch_steps, env))
        epoch_loss = torch.zeros((), device=device)
        last_top1 = metrics["top1"]
        improved = best_top1 is None or last_top1 > best_top1
        best_top1 = last_top1 if improved else best_top1
        record = {"step": step, "epoch": epoch + 1, "train_loss": train_loss, "val_top1": metrics["top1"],
                  "val_top5": metrics["top5"], "val_loss": metrics["loss"], "best_top1": best_top1}
        logger.log(record)
        progress.write(f"epoch {epoch + 1}/{config.epochs}: train loss {train_loss:.4f}, val top-1 "
                       f"{metrics['top1']:.2f}%, top-5 {metrics['top5']:.2f}%, loss {metrics['loss']:.4f} "
                       f"(best top-1 {best_top1:.2f}%)")
        if env.is_main:
            save_curves(read_metrics(run_dir), run_dir / "curves.png", keys=("loss", "val_loss", "val_top1"))
        if env.is_main and improved:
            save_model(task.export(raw_model), run_dir / "checkpoints" / BEST_DIR / "model.safetensors",
                       {"mae.best": f"epoch {epoch + 1}, step {step}, val top-1 {last_top1:.4f}"})
        save_checkpoint()

    def save_checkpoint() -> None:
        log_window()  # never save past a loss that was not checked
        if env.is_main:
            checkpoints.save(step, task.export(raw_model), {
                "step": step, "epoch": step / epoch_steps, "global_batch": global_batch,
                "steps_per_epoch": epoch_steps, "lr": lr, "top1": last_top1, "best_top1": best_top1,
                "epoch_loss": float(epoch_loss), "head": raw_model.head.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "config": config_to_dict(config), "data": data,
            })
        distributed.barrier(env)

    stop = StopOnSignal()
    stop.install()
    try:
        model.train()
        micro = 0
        for imgs, labels in loader:
            if micro == 0:
                lr = warmup_cosine(step / epoch_steps, base_lr, config.min_lr, config.warmup_epochs, config.epochs)
                set_lr(optimizer, lr)
                seed_global_rng(config.seed, step, env.rank)  # drop path
                step_loss = torch.zeros((), device=device)
            draws = generator(config.seed, AUGMENT_STREAM, step, micro * env.world_size + env.rank)
            imgs = imgs.to(device, non_blocking=True).float().div_(255)  # [B, C, S, S] in [0, 1]
            imgs, targets = augment(imgs, labels.to(device, non_blocking=True), draws)
            last_micro = micro == accum - 1
            with distributed.sync_gradients(model, last_micro):
                with autocast(precision, device):
                    logits = model(imgs)
                loss = task.loss(logits.float(), targets)
                scaler.scale(loss / accum).backward()
            step_loss += loss.detach()
            micro = (micro + 1) % accum
            if not last_micro:
                continue

            optimizer_step(optimizer, scaler, raw_model.parameters(), config.clip_grad)
            window.add(step_loss / accum)
            epoch_loss += step_loss / accum
            step += 1
            progress.update()
            epoch_end = step % epoch_steps == 0
            if step % config.log_every == 0 or epoch_end:
                log_window()
            if epoch_end:
                end_of_epoch(step // epoch_steps - 1)
            if step < total_steps and stop.agreed(env, step, config.log_every):
                if not epoch_end:
                    save_checkpoint()
                raise stop.stopped(task.name, step, total_steps, checkpoints.latest(), run_dir)
    finally:
        stop.restore()
        progress.close()
        logger.close()
    return DownstreamResult(run_dir, step, last_top1, best_top1, checkpoints.latest())


