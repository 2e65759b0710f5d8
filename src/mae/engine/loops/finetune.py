"""End-to-end (or partial) fine-tuning, as the official recipe.

    from mae.engine.loops.finetune import finetune
    result = finetune(FinetuneConfig(checkpoint="runs/pretrain", data="~/imagenet", ...))

The classifier: the pretrained encoder with a fresh linear head (std 2e-5), global average
pooling + fc_norm (or the cls token), drop path. AdamW (0.9, 0.999) over layer-wise
lr-decayed groups (no weight decay on biases, norms, cls_token, pos_embed). Per batch on the
device: RandAugment (rand-m9-mstd0.5-inc1), normalisation, random erasing (0.25, per-pixel
noise), then mixup 0.8 / cutmix 1.0 with label smoothing 0.1 into soft targets; the loss is
the soft-target cross-entropy (plain label-smoothed cross-entropy when mixing is off).
`finetune_blocks=K` trains only the last K blocks, the final norm and the head.
"""

import torch

from ...data.finetune_transforms import RandAugment, normalize, random_erasing
from ...data.mixup import Mixup, smooth_one_hot, soft_target_cross_entropy
from ...data.transforms import default_mean_std
from ...models.classifier import build_classifier, freeze_all_but_last_blocks
from ..config.classifier import FinetuneConfig
from ..optim.lr_decay import param_groups_lrd
from ..optim.optimizers import adamw
from .classifier import ClassifierTask, DownstreamResult, train_classifier


def build(config: FinetuneConfig, encoder, num_classes: int):
    model, report = build_classifier(encoder, num_classes, config.global_pool, config.drop_path,
                                     img_size=config.img_size, head="linear", drop_head=config.drop_head,
                                     name=config.checkpoint)
    if config.finetune_blocks is not None:
        trainable = freeze_all_but_last_blocks(model, config.finetune_blocks)
        report.notes.append(f"partial fine-tuning: {len(trainable)} trainable tensors "
                            f"(last {config.finetune_blocks} blocks, norm, head)")
    return model, report


def optimizer(config: FinetuneConfig, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    groups = param_groups_lrd(model, config.weight_decay, layer_decay=config.layer_decay)
    return adamw(groups, lr, config.betas)


def augment(config: FinetuneConfig, num_classes: int):
    rand_augment = None
    if config.randaug_ops > 0:
        rand_augment = RandAugment(config.randaug_ops, config.randaug_magnitude, config.randaug_magnitude_std)
    mixup = None
    if config.mixup > 0 or config.cutmix > 0:
        mixup = Mixup(num_classes, config.mixup, config.cutmix, config.mixup_prob,
                      config.mixup_switch_prob, config.smoothing)

    def apply(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        """[N, C, S, S] in [0, 1] (already cropped and flipped) -> (normalised images, [N, K] targets)."""
        channels = images.shape[1]
        if rand_augment is not None:
            images = rand_augment(images, generator)
        images = normalize(images, *default_mean_std(channels))
        if config.reprob > 0:
            images = random_erasing(images, generator, config.reprob)
        if mixup is not None:
            images, targets, _ = mixup(images, labels, generator)
            return images, targets
        return images, smooth_one_hot(labels, num_classes, config.smoothing)

    return apply


def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return soft_target_cross_entropy(logits, targets)


FINETUNE = ClassifierTask(name="finetune", build=build, optimizer=optimizer, augment=augment, loss=loss,
                  export=lambda model: model)


def finetune(config: FinetuneConfig) -> DownstreamResult:
    """Run (or resume) fine-tuning as `config` says; under torchrun, as one of the processes."""
    return train_classifier(config, FINETUNE)
