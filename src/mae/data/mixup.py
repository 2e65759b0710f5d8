"""Mixup / CutMix with label smoothing, per batch, as the fine-tuning recipe (timm's batch mode).

For each batch, with probability `prob`: pick CutMix with probability `switch_prob`
(else Mixup), draw lam ~ Beta(alpha, alpha), and mix every sample i with sample N-1-i
(the batch flipped):

    mixup:  x_i = lam * x_i + (1 - lam) * x_{N-1-i}
    cutmix: a box of area ~(1 - lam) of x_i is replaced by the same box of x_{N-1-i};
            lam is then corrected to the area actually kept (the box is clipped at borders)
    target_i = lam * smooth(y_i) + (1 - lam) * smooth(y_{N-1-i}),
    smooth(y) = one_hot(y) * (1 - smoothing) + smoothing / num_classes

Every draw comes from the torch.Generator passed in, so a batch's mixing is a function of
how the caller seeded it (seed, epoch, step).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """[N] class indices -> [N, K]: 1 - smoothing + smoothing/K on the class, smoothing/K elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((len(labels), num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long()[:, None], 1.0 - smoothing + off)


def mix_targets(labels: torch.Tensor, num_classes: int, lam: float, smoothing: float = 0.0) -> torch.Tensor:
    """Soft targets of a batch mixed with its flip: [N] -> [N, num_classes], rows sum to 1."""
    targets = smooth_one_hot(labels, num_classes, smoothing)
    return targets * lam + targets.flip(0) * (1.0 - lam)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c target_c * log softmax(logits)_c."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _beta(alpha: float, generator: torch.Generator) -> float:
    # torch's Beta sampler takes no generator: seed numpy's from this one
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator):
    """A box of side sqrt(1 - lam) times the image's, centred uniformly, clipped at the borders.

    Returns ((top, bottom, left, right), lam corrected to the fraction of the image kept).
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    kept = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return (top, bottom, left, right), kept


@dataclass
class Mixup:
    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1

    def __post_init__(self):
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(
                f"mixup and cutmix alphas must be >= 0, got {self.mixup_alpha}, {self.cutmix_alpha}"
            )
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError("Mixup needs mixup_alpha > 0 or cutmix_alpha > 0")
        for name in ("prob", "switch_prob", "label_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    def sample(self, generator: torch.Generator) -> tuple[float, bool]:
        """(lam, use_cutmix) for one batch; lam = 1 means the batch is not mixed."""
        if _uniform(generator) >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = _uniform(generator) < self.switch_prob
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return _beta(alpha, generator), use_cutmix

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        """[N, C, H, W] images, [N] labels -> (mixed images, [N, num_classes] soft targets, lam)."""
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        lam, use_cutmix = self.sample(generator)
        if lam < 1.0:
            if use_cutmix:
                height, width = images.shape[-2:]
                (top, bottom, left, right), lam = cutmix_box(height, width, lam, generator)
                images = images.clone()
                images[..., top:bottom, left:right] = images.flip(0)[..., top:bottom, left:right]
            else:
                images = images * lam + images.flip(0) * (1.0 - lam)
        return images, mix_targets(labels, self.num_classes, lam, self.label_smoothing), lam
