"""Fine-tuning an encoder for semantic segmentation, and its sliding-window evaluation.

    result = train_segmenter(SegmentConfig(checkpoint="runs/demo", iters=2000, batch_size=16))

Per step: lr from linear warm-up then the poly schedule, a batch of random crops
(rescale, crop, flip, from (seed, epoch, index)), cross-entropy over the pixels that are
not the ignore index, AdamW with layer-wise lr decay over the encoder (the head at the
full lr). Evaluation: each validation image resized so its shorter side is the crop size,
scored by sliding crop-sized windows (logits averaged where windows overlap), the logits
resized to the mask's own resolution, then mIoU / mAcc / aAcc (engine/seg_metrics.py).
One process; the run directory holds config.yaml, metrics.jsonl, model.safetensors and
results.json.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...data import Normalize, TrainBatches, default_mean_std, make_loader, steps_per_epoch
from ...data.loader import SYNTHETIC
from ...data.segmentation import (
    SYNTHETIC_CLASSES,
    SegmentationFolder,
    SegmentationSamples,
    SyntheticSegmentation,
    eval_pair,
)
from ...models.segmentation import Segmenter, build_segmenter
from ...storage.files import write_text_atomic
from ...util.seeding import seed_global_rng
from ...weights.format import write_safetensors
from ..compute import distributed
from ..compute.precision import autocast, grad_scaler, resolve_precision
from ..compute.process import set_up_process
from ..config.base import save_config
from ..config.segment import SegmentConfig
from ..eval.segmentation import SegmentationMetrics
from ..optim.lr_decay import param_groups_lrd
from ..optim.optimizers import adamw, optimizer_step, param_groups
from ..optim.schedules import poly_lr, set_lr
from ..run.metrics import MetricsLogger, Progress
from .classifier import SYNTHETIC_TRAIN_SEED, SYNTHETIC_VAL_SEED, pretrained_encoder


@dataclass
class SegmentResult:
    run_dir: Path
    metrics: dict  # of the last evaluation


def segmenter_param_groups(model: Segmenter, weight_decay: float, layer_decay: float) -> list[dict]:
    """Layer-wise decayed groups over the encoder, plus the head's groups at the full lr."""
    encoder = param_groups_lrd(model.encoder, weight_decay, layer_decay=layer_decay)
    for group in encoder:
        group.pop("param_names")  # torch takes names for every group or for none
    return encoder + param_groups(model.head, weight_decay)


@torch.no_grad()
def slide_logits(model: torch.nn.Module, image: torch.Tensor, crop: int, stride: int, num_classes: int) -> torch.Tensor:
    """[1, 3, H, W] normalised -> [1, K, H, W]: crop-sized windows every `stride` pixels (the last
    flush with the edge), averaged where they overlap; windows past a small image are zero-padded."""
    _, _, height, width = image.shape
    logits = image.new_zeros(1, num_classes, height, width)
    counts = image.new_zeros(1, 1, height, width)
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    for r in range(rows):
        for c in range(cols):
            bottom, right = min(r * stride + crop, height), min(c * stride + crop, width)
            top, left = max(bottom - crop, 0), max(right - crop, 0)
            window = image[:, :, top:bottom, left:right]
            h, w = window.shape[-2:]
            window = F.pad(window, (0, crop - w, 0, crop - h))
            logits[:, :, top:bottom, left:right] += model(window)[:, :, :h, :w].float()
            counts[:, :, top:bottom, left:right] += 1
    return logits / counts


@torch.no_grad()
def evaluate_segmenter(model, source, crop: int, stride: int, num_classes: int, ignore_index: int,
                       normalize: Normalize, device, precision: str, class_names=None) -> dict:
    was_training = model.training
    model.eval()
    metrics = SegmentationMetrics(num_classes, ignore_index)
    try:
        for index in range(len(source)):
            image, mask = eval_pair(source, index, crop, num_classes, ignore_index)
            with autocast(precision, device):
                logits = slide_logits(model, normalize(image[None].to(device)), crop, stride, num_classes)
            logits = F.interpolate(logits, mask.shape, mode="bilinear", align_corners=False)
            metrics.update(logits.argmax(1)[0], mask)
    finally:
        model.train(was_training)
    return metrics.result(class_names)


def _folder_sources(config: SegmentConfig):
    """(train, val) of an ADE20K-layout folder, checked; None for the built-in data."""
    if config.data in (None, SYNTHETIC):
        return None
    if config.num_classes is None:
        raise ValueError(f"--num-classes is required for --data {config.data} (ADE20K: 150 with "
                         "--reduce-zero-label)")
    return tuple(SegmentationFolder(config.data, split, config.reduce_zero_label, config.ignore_index)
                 for split in ("training", "validation"))


def train_segmenter(config: SegmentConfig) -> SegmentResult:
    set_up_process(config.threads, config.matmul_backend)
    device = distributed.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    run_dir = Path(config.output_dir)

    # every check before any compute
    folders = _folder_sources(config)
    num_classes = config.num_classes or len(SYNTHETIC_CLASSES)
    torch.manual_seed(config.seed)  # the head (and, with --random-init, the encoder)
    model, report = build_segmenter(pretrained_encoder(config), num_classes, config.head, config.head_channels,
                                    config.drop_path, config.crop_size, name=config.checkpoint)
    crop = model.encoder.config["img_size"][0]  # a multiple of the patch size, or the build refused it
    stride = config.stride or max(1, crop * 2 // 3)
    if folders is None:
        folders = (SyntheticSegmentation(config.synthetic_size, crop, SYNTHETIC_TRAIN_SEED),
                   SyntheticSegmentation(config.synthetic_val_size, crop, SYNTHETIC_VAL_SEED))
        class_names = SYNTHETIC_CLASSES if num_classes == len(SYNTHETIC_CLASSES) else None
    else:
        class_names = None
    train_source, val_source = folders
    model = model.to(device)

    optimizer = adamw(segmenter_param_groups(model, config.weight_decay, config.layer_decay), config.lr,
                      betas=(0.9, 0.999))
    scaler = grad_scaler(precision, device)
    normalize = Normalize(*default_mean_std(3)).to(device)
    epochs = math.ceil(config.iters / steps_per_epoch(len(train_source), config.batch_size, default_fits=False))
    batches = TrainBatches(len(train_source), config.batch_size, epochs, config.seed)
    samples = SegmentationSamples(train_source, crop, num_classes, config.ignore_index, config.seed)
    loader = make_loader(samples, batches, config.num_workers, pin_memory=device.type == "cuda")

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml", "mae segment")
    logger = MetricsLogger(run_dir)
    progress = Progress(config.iters, 0, True, "segment")
    progress.write(f"encoder: {report.summary()}")
    progress.write(f"data: train {train_source!r}, val {val_source!r}; {num_classes} classes; {config.head} head, "
                   f"crop {crop}, stride {stride}, {sum(p.numel() for p in model.parameters()) / 1e6:.3g}M parameters")

    def evaluate(step: int) -> dict:
        result = evaluate_segmenter(model, val_source, crop, stride, num_classes, config.ignore_index, normalize,
                                    device, precision, class_names)
        logger.log({"step": step, "val_mIoU": result["mIoU"], "val_mAcc": result["mAcc"], "val_aAcc": result["aAcc"]})
        progress.write(f"step {step}: mIoU {result['mIoU']:.2f}%, mAcc {result['mAcc']:.2f}%, "
                       f"aAcc {result['aAcc']:.2f}%")
        return result

    step, window, start, result = 0, [], time.perf_counter(), None
    try:
        model.train()
        for imgs, masks in loader:
            lr = poly_lr(step, config.iters, config.lr, config.min_lr, config.warmup_iters, config.poly_power)
            set_lr(optimizer, lr)
            seed_global_rng(config.seed, step, 0)  # drop path, dropout
            imgs, masks = normalize(imgs.to(device, non_blocking=True)), masks.to(device, non_blocking=True)
            with autocast(precision, device):
                logits = model(imgs)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=config.ignore_index)
            if not torch.isfinite(loss):
                raise ValueError(f"the loss is {loss.item()} at step {step}: lower --lr or use fp32")
            scaler.scale(loss).backward()
            optimizer_step(optimizer, scaler, model.parameters(), config.clip_grad)
            window.append(loss.detach())
            step += 1
            progress.update()
            if step % config.log_every == 0 or step == config.iters:
                value = float(torch.stack(window).mean())
                logger.log({"step": step, "loss": value, "lr": lr,
                            "images_per_s": round(len(window) * config.batch_size / (time.perf_counter() - start), 1)})
                progress.report({"loss": value, "lr": lr})
                window, start = [], time.perf_counter()
            if step == config.iters or (config.eval_every and step % config.eval_every == 0):
                result = evaluate(step)
            if step == config.iters:
                break
    finally:
        progress.close()
        logger.close()
    write_safetensors(model.state_dict(), run_dir / "model.safetensors", "segmenter",
                      {"encoder": model.encoder.config, "num_classes": num_classes, "head": config.head,
                       "head_channels": config.head_channels})
    write_text_atomic(run_dir / "results.json", json.dumps(dict(result, step=step), indent=2) + "\n")
    return SegmentResult(run_dir, result)
