"""Optimisation as the official recipe: batch and lr scaling, parameter groups, AdamW, schedule.

    lr = blr * effective_batch / 256
    lr(t) = lr * t / warmup                                   t < warmup
          = min_lr + (lr - min_lr) * (1 + cos(pi * (t - warmup) / (epochs - warmup))) / 2
with t the fractional epoch (step / steps_per_epoch), updated every optimizer step.
"""

import inspect
import math

import torch


def resolve_batch(batch_size: int, accum_iter: int, effective_batch: int | None, world_size: int) -> tuple[int, int]:
    """(accum_iter, effective batch) for this many processes.

    With `effective_batch` given, accumulation is derived from it and must come out whole.
    """
    per_step = batch_size * world_size
    if effective_batch is None:
        return accum_iter, per_step * accum_iter
    if effective_batch % per_step:
        raise ValueError(
            f"--effective-batch {effective_batch} is not divisible by --batch-size {batch_size} x "
            f"{world_size} process(es) = {per_step}; choose a batch size that divides it"
        )
    derived = effective_batch // per_step
    if accum_iter not in (1, derived):
        raise ValueError(
            f"--accum-iter {accum_iter} contradicts --effective-batch {effective_batch} with "
            f"--batch-size {batch_size} on {world_size} process(es) (which needs {derived}); give one of them"
        )
    return derived, effective_batch


def scaled_lr(blr: float, effective_batch: int) -> float:
    """The linear scaling rule of the paper (Goyal et al.): lr = blr * batch / 256."""
    return blr * effective_batch / 256


def warmup_cosine(t: float, lr: float, min_lr: float, warmup: float, total: float) -> float:
    """Learning rate at fractional epoch (or step) `t`: linear warm-up, then half-cycle cosine."""
    if t < warmup:
        return lr * t / warmup
    if total <= warmup:
        return lr
    progress = min(1.0, (t - warmup) / (total - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float, no_decay: tuple[str, ...] = ()) -> list[dict]:
    """Two groups as the official code: biases and 1-D parameters (norms) get no weight decay.

    Frozen parameters (the fixed sin-cos position tables) are left out. `no_decay` names
    further parameters to exempt. Each group carries "lr_scale" (1.0), which `set_lr` honours.
    """
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name in no_decay:
            plain.append(param)
        else:
            decay.append(param)
    return [
        {"params": plain, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
    ]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def adamw(groups: list[dict], lr: float, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step where this torch build has it for the device."""
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
        except RuntimeError:  # no fused kernel for this device / dtype
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def optimizer_step(optimizer: torch.optim.Optimizer, scaler, parameters, clip_grad: float | None) -> None:
    """The end of a step, once the gradients are accumulated: optional clipping of their norm
    (after unscaling fp16 gradients), the step through the gradient scaler, zeroed grads."""
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
