"""Every setting of `mae finetune`, `mae linprobe` and `mae eval`, with the official recipes' defaults.

FinetuneConfig: ViT-B end-to-end fine-tuning (facebookresearch/mae FINETUNE.md).
LinprobeConfig: ViT-B linear probing (the paper's appendix A.2).
Both share the data, schedule and run settings of `DownstreamConfig`.
"""

from dataclasses import dataclass
from typing import ClassVar

from ...util.sizes import to_2tuple
from ...util.threads import default_workers
from .base import RESUME_HELP, Size, check_seed, optional, require, setting
from .common import device_setting, matmul_backend_setting, precision_setting, threads_setting

GLOBAL_POOLS = ("avg", "token")


@dataclass
class DownstreamConfig:
    # what to start from
    checkpoint: str | None = optional(
        "pretrained encoder: a run directory of ours, our .safetensors, an official .pth "
        "(pretrain / encoder-only / fine-tuned), a Hugging Face ViTMAE folder", metavar="PATH")
    random_init: bool = setting(False, "take only the architecture from --checkpoint and start from "
                             "random weights (the from-scratch baseline)")
    drop_head: bool = setting(False, "when the checkpoint has a head for another number of classes, "
                           "train a fresh one instead of stopping")
    # data
    data: str | None = optional(
        "labelled images: a folder with train/ and val/ (one subfolder per class in each), or "
        "'synthetic' (default): the built-in dataset", metavar="PATH")
    synthetic_size: int = setting(4096, "training images of the built-in dataset")
    strict_data: bool = setting(False, "stop on unreadable or truncated images and damaged tar shards "
                             "instead of skipping them with a warning", resumable=True)
    synthetic_val_size: int = setting(1024, "validation images of the built-in dataset (other images "
                                   "than the training ones)")
    num_classes: int | None = optional("outputs of the head (default: the training data's classes)")
    num_workers: int = setting(default_workers(), "data loader worker processes per training process",
                               default_from="the cores this process may use, less one, at most 8", resumable=True)
    # model
    img_size: Size | None = optional("input resolution in pixels: one number (a square) or two (height width), "
                                 "each divisible by the patch size (default: the checkpoint's); the position "
                                 "table is resampled in 2-D")
    # optimisation
    epochs: int | None = optional("training epochs; default: about 1000 steps' worth, at most the paper's "
                              "(100 fine-tuning, 90 linear probing)", resumable=True)
    warmup_epochs: float | None = optional("epochs of linear learning-rate warm-up (per iteration); default: "
                                       "the paper's share of --epochs (5 of 100; 10 of 90)")
    batch_size: int | None = optional("images per process per step (per micro-step with --accum-iter); "
                                  "default: the paper's (32 fine-tuning, 512 linear probing), or less so "
                                  "that an epoch has 8 steps", resumable=True)
    accum_iter: int = setting(1, "gradient accumulation steps per optimizer step", resumable=True)
    effective_batch: int | None = optional(
        "images per optimizer step over all processes; --accum-iter is derived from it", resumable=True)
    blr: float | None = optional("base learning rate: lr = blr x effective batch / 256; default: the "
                             "paper's (5e-4 fine-tuning, 0.1 linear probing), or more when that is too "
                             "small to learn in this many steps")
    lr: float | None = optional("absolute learning rate (overrides --blr)")
    min_lr: float = setting(1e-6, "learning rate at the end of the cosine schedule")
    weight_decay: float = setting(0.05, "weight decay (not on biases, norms, cls_token, pos_embed)")
    clip_grad: float | None = optional("clip the gradient norm to this value (default: no clipping)")
    precision: str = precision_setting(resumable=True)
    # run
    seed: int = setting(0, "seed of every random draw (head init, data order, augmentation, mixup)")
    device: str = device_setting(resumable=True)
    threads: int | None = threads_setting(resumable=True)
    matmul_backend: str = matmul_backend_setting(resumable=True)
    output_dir: str = setting("runs/finetune", "run directory: config.yaml, metrics.jsonl, checkpoints/",
                           metavar="DIR", resumable=True)
    resume: str | None = optional(RESUME_HELP, metavar="auto|PATH", resumable=True)
    keep_last: int = setting(2, "epoch checkpoints to keep (the best one is kept apart)", resumable=True)
    log_every: int = setting(20, "log the training loss every N optimizer steps", resumable=True)
    eval_batch_size: int | None = optional("images per process per evaluation step (default: "
                                       "--batch-size)", resumable=True)
    tensorboard: bool = setting(False, "also log to TensorBoard (OUT/tensorboard; needs the "
                             "'tensorboard' package)")


    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for name in ("accum_iter", "log_every", "keep_last", "synthetic_size", "synthetic_val_size"):
            require(self, getattr(self, name) >= 1, name, "must be at least 1")
        require(self, self.img_size is None or min(to_2tuple(self.img_size)) >= 1, "img_size", "must be at least 1")
        for name in ("epochs", "batch_size", "num_classes", "effective_batch", "threads", "eval_batch_size"):
            require(self, getattr(self, name) is None or getattr(self, name) >= 1, name, "must be at least 1")
        for name in ("num_workers", "min_lr", "weight_decay"):
            require(self, getattr(self, name) >= 0, name, "must not be negative")
        require(self, self.blr is None or self.blr > 0, "blr", "must be positive")
        require(self, self.lr is None or self.lr > 0, "lr", "must be positive")
        require(self, self.clip_grad is None or self.clip_grad > 0, "clip_grad", "must be positive")
        require(self, self.warmup_epochs is None or self.warmup_epochs >= 0, "warmup_epochs", "must not be negative")
        require(self, None in (self.warmup_epochs, self.epochs) or self.warmup_epochs <= self.epochs,
              "warmup_epochs", f"must not exceed --epochs {self.epochs}")
        require(self, self.resume is None or self.resume.strip() != "", "resume", "must be 'auto' or a path")
        check_seed(self.seed)


@dataclass
class FinetuneConfig(DownstreamConfig):
    RECIPE_PREFIX: ClassVar[str] = "finetune"  # --config NAME reads configs/finetune_NAME.yaml
    global_pool: str = setting("avg", "avg: mean of the patch tokens + fc_norm (official fine-tuning); "
                            "token: the cls token + the final norm", choices=GLOBAL_POOLS)
    finetune_blocks: int | None = optional("partial fine-tuning: train only the last K blocks (+ norm "
                                       "and head); default: every block", metavar="K")
    layer_decay: float = setting(0.75, "layer-wise lr decay (0.65 for ViT-B, 0.75 for ViT-L/H)")
    drop_path: float = setting(0.1, "stochastic depth rate (grows linearly over the blocks)")
    betas: tuple[float, float] = setting((0.9, 0.999), "AdamW betas", metavar=("BETA1", "BETA2"))
    randaug_ops: int = setting(2, "RandAugment ops per image (0: off)")
    randaug_magnitude: float = setting(9.0, "RandAugment magnitude (0-10)")
    randaug_magnitude_std: float = setting(0.5, "RandAugment magnitude noise (std)")
    reprob: float = setting(0.25, "random erasing probability (per-pixel noise)")
    mixup: float | None = optional("mixup alpha (0: off); default: the paper's 0.8 with 1000 or more "
                               "training images per class, else 0")
    cutmix: float | None = optional("cutmix alpha (0: off); default: the paper's 1.0 with 1000 or more "
                                "training images per class, else 0")
    mixup_prob: float = setting(1.0, "probability of mixing a batch")
    mixup_switch_prob: float = setting(0.5, "probability of cutmix rather than mixup when both are on")
    smoothing: float = setting(0.1, "label smoothing")
    crop_scale: tuple[float, float] = setting((0.08, 1.0), "area range of the random resized crop, as "
                                           "fractions of the image", metavar=("MIN", "MAX"))

    def validate(self) -> None:
        super().validate()
        require(self, 0 < self.layer_decay <= 1, "layer_decay", "must be in (0, 1]")
        require(self, 0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        require(self, all(0 <= b < 1 for b in self.betas), "betas", "must both be in [0, 1)")
        require(self, self.finetune_blocks is None or self.finetune_blocks >= 0, "finetune_blocks",
              "must not be negative")
        require(self, self.randaug_ops >= 0, "randaug_ops", "must not be negative")
        require(self, 0 <= self.randaug_magnitude <= 10, "randaug_magnitude", "must be in [0, 10]")
        require(self, self.randaug_magnitude_std >= 0, "randaug_magnitude_std", "must not be negative")
        for name in ("mixup", "cutmix"):
            require(self, getattr(self, name) is None or getattr(self, name) >= 0, name, "must not be negative")
        for name in ("reprob", "mixup_prob", "mixup_switch_prob", "smoothing"):
            require(self, 0 <= getattr(self, name) <= 1, name, "must be in [0, 1]")
        require(self, 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1, "crop_scale",
              "must satisfy 0 < min <= max <= 1")


@dataclass
class LinprobeConfig(DownstreamConfig):
    RECIPE_PREFIX: ClassVar[str] = "linprobe"  # --config NAME reads configs/linprobe_NAME.yaml
    min_lr: float = setting(0.0, "learning rate at the end of the cosine schedule")
    weight_decay: float = setting(0.0, "LARS weight decay (the recipe uses none)")
    momentum: float = setting(0.9, "LARS momentum")
    crop_scale: tuple[float, float] = setting((0.08, 1.0), "area range of the random resized crop, as "
                                           "fractions of the image", metavar=("MIN", "MAX"))
    output_dir: str = setting("runs/linprobe", "run directory: config.yaml, metrics.jsonl, checkpoints/",
                           metavar="DIR", resumable=True)

    def validate(self) -> None:
        super().validate()
        require(self, 0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self, self.batch_size is None or self.batch_size >= 2, "batch_size", "must be at least 2: the "
              "linear-probe head's BatchNorm normalises each feature over the images of a step")
        require(self, 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1, "crop_scale",
              "must satisfy 0 < min <= max <= 1")


@dataclass
class EvalConfig:
    checkpoint: str | None = optional("classifier to evaluate: a fine-tune / linprobe run directory, "
                                  "our .safetensors, an official fine-tuned .pth", metavar="PATH")
    data: str | None = optional("labelled images: a folder with one subfolder per class, or "
                            "'synthetic' (the built-in validation images)", metavar="PATH")
    class_map: str | None = optional("score a subset of the head's classes: a file mapping each class "
                                 "folder to a head output ('name index' per line), or to a name "
                                 "among --train-classes", metavar="FILE")
    train_classes: str | None = optional("folder whose subfolders name the head's classes in order (the "
                                     "training set), for a --class-map with names alone", metavar="DIR")
    synthetic_val_size: int = setting(1024, "validation images of the built-in dataset")
    imagenet_c: str | None = optional("robustness: an ImageNet-C layout (corruption/severity/class/), e.g. "
                                  "ImageNet-C itself or `mae corrupt`'s output: top-1 error per "
                                  "corruption and severity, mCE", metavar="DIR")
    imagenet_a: str | None = optional("robustness: ImageNet-A (200 class folders), scored over its 200 "
                                  "classes", metavar="DIR")
    imagenet_r: str | None = optional("robustness: ImageNet-R (200 class folders), scored over its 200 "
                                  "classes", metavar="DIR")
    imagenet_sketch: str | None = optional("robustness: ImageNet-Sketch (1000 class folders)", metavar="DIR")
    img_size: Size | None = optional("input resolution in pixels: one number (a square) or two (height width) "
                                 "(default: the checkpoint's)")
    batch_size: int = setting(128, "images per evaluation step")
    num_workers: int = setting(min(4, default_workers()), "data loader worker processes",
                               default_from="the cores this process may use, less one, at most 4")
    strict_data: bool = setting(False, "stop on unreadable or truncated images instead of skipping them "
                             "with a warning")
    precision: str = precision_setting()
    device: str = device_setting()
    threads: int | None = threads_setting()
    matmul_backend: str = matmul_backend_setting()
    output: str | None = optional("also write the results to this JSON file (robustness: and the "
                              "Markdown report beside it, FILE.md)", metavar="FILE.json")

    def robustness_folders(self) -> dict[str, str]:
        """{benchmark: folder} of the robustness flags given."""
        names = ("imagenet_c", "imagenet_a", "imagenet_r", "imagenet_sketch")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def __post_init__(self):
        if self.checkpoint is None:
            raise ValueError("--checkpoint is required: the classifier to score (a mae finetune or mae linprobe "
                             "run directory, or its weights file)")
        if self.robustness_folders():
            for name in ("data", "class_map", "train_classes"):
                require(self, getattr(self, name) is None, name, "applies to one labelled folder, not to "
                      "the robustness benchmarks (--imagenet-c/-a/-r/-sketch)")
            require(self, not str(self.output).endswith(".md"), "output", "names the JSON file (the "
                  "Markdown report is written beside it as .md)")
        for name in ("batch_size", "synthetic_val_size"):
            require(self, getattr(self, name) >= 1, name, "must be at least 1")
        require(self, self.num_workers >= 0, "num_workers", "must not be negative")
        require(self, self.img_size is None or min(to_2tuple(self.img_size)) >= 1, "img_size", "must be at least 1")
