"""Every setting of `mae segment`, with the defaults of the MAE paper's ADE20K recipe (UPerNet, ViT-B).

The recipe (the paper's A.4, as BEiT's and mmsegmentation's MAE config): AdamW, lr 1e-4,
weight decay 0.05, layer-wise lr decay 0.65, 1500 iterations of linear warm-up then a
poly schedule (power 1), 160k iterations of batch 16 on 512 x 512 crops, drop path 0.1;
evaluation by sliding 512-pixel windows with stride 341.
"""

from dataclasses import dataclass
from typing import ClassVar

from ...util.threads import default_workers
from .base import check_seed, optional, require, setting
from .common import device_setting, matmul_backend_setting, precision_setting, threads_setting

SEG_HEADS = ("linear", "upernet")


@dataclass
class SegmentConfig:
    RECIPE_PREFIX: ClassVar[str] = "segment"  # --config NAME reads configs/segment_NAME.yaml
    checkpoint: str | None = optional("pretrained encoder: anything `mae finetune --checkpoint` takes", metavar="PATH")
    random_init: bool = setting(False, "take only the architecture from --checkpoint and start from random "
                             "weights (the from-scratch baseline)")
    data: str | None = optional("image / mask pairs in the ADE20K layout (images/{training,validation}/ and "
                            "annotations/{training,validation}/, same stems), or 'synthetic' (default): "
                            "the built-in shapes and their masks", metavar="PATH")
    synthetic_size: int = setting(2048, "training pairs of the built-in dataset")
    synthetic_val_size: int = setting(256, "validation pairs of the built-in dataset (other images)")
    num_classes: int | None = optional("classes of the masks (ADE20K: 150; default for the built-in data: 9, "
                                   "background and the 8 shapes)")
    reduce_zero_label: bool = setting(False, "mask value 0 is 'other' and ignored, k is class k - 1 (ADE20K)")
    ignore_index: int = setting(255, "mask value that is neither trained on nor scored")
    head: str = setting("upernet", "linear: BatchNorm + 1x1 conv on the patch map; upernet: UPerNet on the "
                     "ViTDet simple feature pyramid", choices=SEG_HEADS)
    head_channels: int = setting(512, "channels of the pyramid and the UPerNet head")
    crop_size: int | None = optional("side of the training crops and of the sliding window (default: the "
                                 "checkpoint's input size)")
    stride: int | None = optional("sliding-window stride at evaluation (default: 2/3 of --crop-size, "
                              "341 for 512)")
    iters: int = setting(160000, "optimizer steps")
    warmup_iters: int = setting(1500, "steps of linear warm-up")
    batch_size: int = setting(16, "crops per step")
    lr: float = setting(1e-4, "peak learning rate (of the head; block i below gets layer_decay^(depth-i) of it)")
    min_lr: float = setting(0.0, "learning rate at the end of the poly schedule")
    poly_power: float = setting(1.0, "power of the poly schedule")
    weight_decay: float = setting(0.05, "AdamW weight decay (not on biases, norms, cls_token, pos_embed)")
    layer_decay: float = setting(0.65, "layer-wise lr decay")
    drop_path: float = setting(0.1, "stochastic depth rate of the encoder")
    clip_grad: float | None = optional("clip the gradient norm to this value (default: no clipping)")
    precision: str = precision_setting()
    eval_every: int | None = optional("evaluate every N steps (default: at the end only)")
    log_every: int = setting(50, "log the training loss every N steps")
    seed: int = setting(0, "seed of the head init, data order and augmentation")
    device: str = device_setting()
    threads: int | None = threads_setting()
    matmul_backend: str = matmul_backend_setting()
    num_workers: int = setting(default_workers(), "data loader worker processes (0: load in the training "
                               "process)", default_from="the cores this process may use, less one, at most 8")
    output_dir: str = setting("runs/segment", "run directory: config.yaml, metrics.jsonl, model.safetensors, "
                           "results.json", metavar="DIR")

    def __post_init__(self):
        require(self, self.checkpoint is not None, "checkpoint", "is required: the pretrained encoder")
        for name in ("synthetic_size", "synthetic_val_size", "head_channels", "iters", "batch_size", "log_every"):
            require(self, getattr(self, name) >= 1, name, "must be at least 1")
        for name in ("num_classes", "crop_size", "stride", "eval_every", "threads"):
            require(self, getattr(self, name) is None or getattr(self, name) >= 1, name, "must be at least 1")
        for name in ("warmup_iters", "min_lr", "weight_decay", "num_workers"):
            require(self, getattr(self, name) >= 0, name, "must not be negative")
        require(self, self.warmup_iters < self.iters, "warmup_iters", f"must be below --iters {self.iters}")
        require(self, self.lr > 0, "lr", "must be positive")
        require(self, self.poly_power > 0, "poly_power", "must be positive")
        require(self, 0 < self.layer_decay <= 1, "layer_decay", "must be in (0, 1]")
        require(self, 0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        require(self, self.clip_grad is None or self.clip_grad > 0, "clip_grad", "must be positive")
        require(self, 0 <= self.ignore_index, "ignore_index", "must not be negative")
        check_seed(self.seed)
