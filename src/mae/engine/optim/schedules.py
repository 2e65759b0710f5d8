"""Learning-rate schedules, each a function of the step alone (so a resumed run continues it exactly),
and setting the lr of every parameter group.

warmup_cosine (pretraining, fine-tuning, linear probing; t the fractional epoch):
    lr(t) = lr * t / warmup                                   t < warmup
          = min_lr + (lr - min_lr) * (1 + cos(pi * (t - warmup) / (epochs - warmup))) / 2
poly_lr (segmentation, per iteration): linear warm-up, then (1 - progress)^power.
"""

import math


def warmup_cosine(t: float, lr: float, min_lr: float, warmup: float, total: float) -> float:
    """Learning rate at fractional epoch (or step) `t`: linear warm-up, then half-cycle cosine."""
    if t < warmup:
        return lr * t / warmup
    if total <= warmup:
        return lr
    progress = min(1.0, (t - warmup) / (total - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer, lr: float) -> None:
    """Every parameter group's lr: `lr` times its lr_scale (layer-wise decay), or `lr`."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def poly_lr(step: int, total: int, lr: float, min_lr: float, warmup: int, power: float) -> float:
    """Linear warm-up to `lr`, then (1 - progress)^power down to `min_lr` at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + (lr - min_lr) * (1 - progress) ** power
