"""Linear probing, as the official recipe.

    from mae.engine.loops.linprobe import linprobe
    result = linprobe(LinprobeConfig(checkpoint="runs/pretrain", data="~/imagenet", ...))

The encoder is frozen; the cls token (after the encoder's final norm) goes through
BatchNorm1d without affine parameters and a linear head (std 0.01), trained with LARS
(momentum 0.9, weight decay 0) on random-resized-crop + flip images, cross-entropy loss.
Checkpoints hold the classifier with BatchNorm folded into the linear layer (the same
eval-mode logits), so `mae eval` and `mae.load_model` read them like any classifier; the
unfolded head travels in the training state for resuming.
"""

import torch
import torch.nn.functional as F

from ...data.finetune_transforms import normalize
from ...data.transforms import default_mean_std
from ...models.classifier import build_classifier, fold_linprobe_head
from ..config.classifier import LinprobeConfig
from ..optim.lars import LARS
from .classifier import ClassifierTask, DownstreamResult, train_classifier


def build(config: LinprobeConfig, encoder, num_classes: int):
    model, report = build_classifier(encoder, num_classes, "token", drop_path_rate=0.0,
                                     img_size=config.img_size, head="linprobe", name=config.checkpoint)
    return model, report


def optimizer(config: LinprobeConfig, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return LARS(model.head.parameters(), lr=lr, weight_decay=config.weight_decay, momentum=config.momentum)


def augment(config: LinprobeConfig, num_classes: int):
    def apply(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        return normalize(images, *default_mean_std(images.shape[1])), labels  # crop + flip done by the loader

    return apply


LINPROBE = ClassifierTask(name="linprobe", build=build, optimizer=optimizer, augment=augment,
                  loss=F.cross_entropy, export=fold_linprobe_head)


def linprobe(config: LinprobeConfig) -> DownstreamResult:
    """Run (or resume) linear probing as `config` says; under torchrun, as one of the processes."""
    return train_classifier(config, LINPROBE)
