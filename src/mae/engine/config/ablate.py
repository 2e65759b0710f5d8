"""Every setting of `mae ablate`: the base pretraining setting, the axes varied around it (the
paper's Table 1), and the probes."""

from dataclasses import dataclass, field
from typing import ClassVar

from ...data.options import AUGMENTATIONS
from ...models.options import MASK_TYPES, TARGET_NAMES

# the list of values of each axis -> (the pretraining setting it varies, its Table 1 title)
AXES = {
    "mask_ratios": ("mask_ratio", "mask ratio (Figure 5)"),
    "decoder_depths": ("decoder_depth", "(a) decoder depth"),
    "decoder_widths": ("decoder_embed_dim", "(b) decoder width"),
    "mask_tokens": ("encoder_mask_tokens", "(c) mask token"),
    "targets": ("target", "(d) reconstruction target"),
    "augmentations": ("augmentation", "(e) data augmentation"),
    "mask_types": ("mask_type", "(f) mask sampling"),
}


# an axis whose values name its setting's values
SETTING_VALUES = {"mask_tokens": {"decoder": False, "encoder": True}}


def _axis(help_text: str, **extra):
    return field(default=(), metadata=dict(help=help_text + " (none: not varied)", **extra))


@dataclass
class AblateConfig:
    RECIPE_PREFIX: ClassVar[str] = "ablate"  # --config NAME reads configs/ablate_NAME.yaml
    base: str | None = field(default=None, metadata=dict(
        help="the base setting, a `mae pretrain` YAML file or recipe name (e.g. ablate_base): every run is "
        "it with one setting changed "
        "(its epochs are every run's budget)", metavar="FILE.yaml"))
    data: str | None = field(default=None, metadata=dict(
        help="labelled training images of every run (one subfolder per class, or 'synthetic'); default: "
        "the base's", metavar="PATH"))
    knn_val_data: str | None = field(default=None, metadata=dict(
        help="labelled held-out images that the k-NN probe classifies (the training data's classes); "
        "default: the base's, or held-out images of the built-in dataset", metavar="DIR"))
    mask_ratios: tuple[float, ...] = _axis("mask ratios to run", metavar="RATIO")
    decoder_depths: tuple[int, ...] = _axis("decoder depths (blocks) to run", metavar="DEPTH")
    decoder_widths: tuple[int, ...] = _axis("decoder widths to run (multiples of the base's decoder "
                                            "heads)", metavar="WIDTH")
    mask_tokens: tuple[str, ...] = _axis("where the mask tokens go: decoder (the paper's: the encoder sees the "
                                         "visible patches only) or encoder (Table 1(c)'s 'encoder w/ [M]')",
                                         choices=tuple(SETTING_VALUES["mask_tokens"]), metavar="PLACE")
    targets: tuple[str, ...] = _axis("reconstruction targets to run", choices=TARGET_NAMES, metavar="TARGET")
    augmentations: tuple[str, ...] = _axis("pretraining augmentations to run", choices=AUGMENTATIONS,
                                           metavar="AUGMENTATION")
    mask_types: tuple[str, ...] = _axis("mask types to run", choices=MASK_TYPES, metavar="TYPE")
    knn_images: int = field(default=1024, metadata=dict(
        help="training images (evenly spread) the probe compares with, and at most as many held-out ones"))
    finetune_epochs: int = field(default=0, metadata=dict(
        help="also fine-tune every encoder for this many epochs (plain: no mixup, cutmix, RandAugment, "
        "erasing, smoothing or drop path) and report its held-out top-1; needs the built-in dataset or "
        "--data DIR/train with --knn-val-data DIR/val (0: k-NN only)"))
    threads: int | None = field(default=None, metadata=dict(help="torch intra-op CPU threads"))
    output_dir: str = field(default="runs/ablate", metadata=dict(
        help="one run directory per setting, and ablation.{json,md,png}", metavar="DIR"))

    def __post_init__(self):
        if self.knn_images < 1:
            raise ValueError(f"--knn-images must be at least 1, got {self.knn_images}")
        if self.finetune_epochs < 0:
            raise ValueError(f"--finetune-epochs must not be negative, got {self.finetune_epochs}")
