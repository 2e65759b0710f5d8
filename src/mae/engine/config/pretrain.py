"""Every setting of `mae pretrain`, with the official recipe's defaults (ViT-B); the schedule's
settings left out (None) are chosen from the data by `mae.engine.config.from_data`."""

from dataclasses import dataclass
from typing import ClassVar

from ...data.options import AUGMENTATIONS
from ...models.options import MASK_TYPES, check_mask_ratio, check_mask_type, num_kept
from ...models.zoo import CONFIGS, model_names
from ...util.sizes import to_2tuple
from ...util.text import format_size
from ...util.threads import default_workers
from .base import RESUME_HELP, Size, check_seed, flag, optional, require, setting
from .common import device_setting, matmul_backend_setting, precision_setting, threads_setting

DECODE_ON = ("cpu", "device")
ARCH_FIELDS = (
    "patch_size", "embed_dim", "depth", "num_heads",
    "decoder_embed_dim", "decoder_depth", "decoder_num_heads",
)


def check_img_size(img_size: Size, patch: int, whose: str = "") -> None:
    """A ValueError naming --img-size unless each side is positive and divisible by the patch size."""
    sides = to_2tuple(img_size)

    def shown(values) -> str:
        return str(values[0]) if values[0] == values[1] else f"{values[0]} {values[1]}"

    if min(sides) < 1:
        raise ValueError(f"--img-size must be at least 1, got {shown(sides)}")
    if any(side % patch for side in sides):
        fitting = [max(patch, side // patch * patch) for side in sides]
        raise ValueError(f"--img-size {shown(sides)} is not divisible by --patch-size {patch}{whose}; give "
                         f"multiples of {patch} (e.g. --img-size {shown(fitting)})")


@dataclass
class PretrainConfig:
    RECIPE_PREFIX: ClassVar[str] = "pretrain"  # --config NAME reads configs/pretrain_NAME.yaml
    # data
    data: str | None = optional(
        "training images: a folder (one subfolder per class, or flat; searched recursively), "
        "tar shards in the webdataset layout (a .tar, a folder of .tar files, or a pattern "
        "such as 'train-{000000..000146}.tar'), or 'synthetic'; default: the built-in "
        "synthetic dataset", metavar="PATH")
    synthetic_size: int = setting(4096, "number of images of the built-in synthetic dataset")
    strict_data: bool = setting(False, "stop on unreadable, truncated or too-small images instead of "
                             "skipping (or upscaling) them with a warning", resumable=True)
    crop_scale: tuple[float, float] = setting((0.2, 1.0), "area range of the random resized crop, as "
                                           "fractions of the image", metavar=("MIN", "MAX"))
    augmentation: str = setting("rrc", "none (the whole image), crop (a fixed-size random crop: 0.875 of "
                             "the shorter side), rrc (the random resized crop, the paper's) or rrc_jitter "
                             "(the same with colour jitter); all but none flip at random",
                             choices=AUGMENTATIONS)
    decode_on: str = setting("cpu", "where images are decoded and cropped: cpu (Pillow, in the loader workers) or "
                          "device (JPEGs decoded on the GPU by torchvision's nvJPEG, then cropped, flipped and "
                          "normalised there as one batch; needs CUDA and torchvision, and --augmentation rrc)",
                          choices=DECODE_ON, resumable=True)
    num_workers: int = setting(default_workers(), "data loader worker processes per training process "
                               "(0: load in the training process)",
                               default_from="the cores this process may use, less one, at most 8", resumable=True)
    # model
    model: str = setting("mae_vit_base_patch16", "named model: " + ", ".join(model_names()),
                      choices=tuple(model_names()), metavar="NAME")
    img_size: Size = setting(224, "input resolution in pixels: one number (a square) or two (height width), "
                          "each divisible by the patch size")
    in_chans: int = setting(3, "image channels (3: RGB; 1: grayscale)", choices=(1, 3))
    patch_size: int | None = optional("patch size; default: the named model's")
    embed_dim: int | None = optional("encoder width; default: the named model's")
    depth: int | None = optional("encoder blocks; default: the named model's")
    num_heads: int | None = optional("encoder attention heads; default: the named model's")
    decoder_embed_dim: int | None = optional("decoder width; default: the named model's")
    decoder_depth: int | None = optional("decoder blocks; default: the named model's")
    decoder_num_heads: int | None = optional("decoder attention heads; default: the named model's")
    norm_pix_loss: bool = setting(False, "predict each patch normalised by its own mean and variance "
                               "(the paper's best setting)")
    target: str = setting("pixels", "what the decoder predicts for each removed patch: pixels, norm_pix "
                       "(the same as --norm-pix-loss) or hog (histograms of oriented gradients, "
                       "MaskFeat's); others registered with mae.models.targets.register_target",
                       metavar="NAME")
    mask_ratio: float = setting(0.75, "fraction of patches removed, in [0, 1)")
    mask_type: str = setting("random", "how the removed patches are chosen: at random (the paper's), "
                          "in BEiT-style blocks, or one kept of every 2x2 (grid; mask ratio 0.75)",
                          choices=MASK_TYPES)
    encoder_mask_tokens: bool = setting(False, "the paper's 'encoder w/ [M]' (Table 1(c)): the encoder runs on "
                                     "every patch, the removed ones replaced by the mask token, and the "
                                     "decoder gets no mask tokens of its own; slower, and worse in the paper")
    # optimisation
    epochs: int | None = optional("training epochs; default: about 2000 steps' worth, at most the paper's 800",
                                  resumable=True)
    warmup_epochs: float | None = optional("epochs of linear learning-rate warm-up (per iteration); default: "
                                       "5%% of --epochs, the paper's 40 of 800")
    batch_size: int | None = optional("images per process per step (per micro-step with --accum-iter); "
                                  "default: the paper's 64, or less so that an epoch has 8 steps", resumable=True)
    accum_iter: int = setting(1, "gradient accumulation steps per optimizer step", resumable=True)
    effective_batch: int | None = optional(
        "images per optimizer step over all processes; when given, --accum-iter is derived from "
        "it (effective_batch / (batch_size x processes)), which must divide exactly", resumable=True)
    blr: float | None = optional("base learning rate: lr = blr x effective batch / 256; default: the "
                             "paper's 1.5e-4, or more when that is too small to learn in this many steps")
    lr: float | None = optional("absolute learning rate (overrides --blr)")
    min_lr: float = setting(0.0, "learning rate at the end of the cosine schedule")
    weight_decay: float = setting(0.05, "AdamW weight decay (not applied to biases and norms)")
    betas: tuple[float, float] = setting((0.9, 0.95), "AdamW betas", metavar=("BETA1", "BETA2"))
    clip_grad: float | None = optional("clip the gradient norm to this value (default: no clipping)")
    precision: str = precision_setting(resumable=True)
    compile: bool | None = optional("torch.compile the model; default: on when the estimated cold compile "
                                "is at most 5%% of the run's eager time (one step is timed at start), "
                                "kernels cached in ~/.cache/mae/inductor", resumable=True)
    fsdp: bool = setting(False, "shard parameters, gradients and optimizer state over the processes "
                      "(FSDP2 under torchrun; bf16 or fp32) instead of replicating them (DDP); "
                      "checkpoints are then sharded too (one file per process) and resume on any "
                      "number of processes", resumable=True)
    # run
    seed: int = setting(0, "seed of every random draw (init, data order, augmentation, masks)")
    device: str = device_setting(resumable=True)
    threads: int | None = threads_setting(resumable=True)
    matmul_backend: str = matmul_backend_setting(resumable=True)
    output_dir: str = setting("runs/pretrain", "run directory: config.yaml, metrics.jsonl, "
                           "checkpoints/, pictures", metavar="DIR", resumable=True)
    resume: str | None = optional(RESUME_HELP, metavar="auto|PATH", resumable=True)
    save_every_steps: int = setting(0, "also save a checkpoint every N optimizer steps (0: only at "
                                 "epoch ends)", resumable=True)
    save_every_epochs: int = setting(1, "save a checkpoint every N epochs (and always at the end)", resumable=True)
    keep_last: int = setting(3, "checkpoints to keep (older ones are deleted)", resumable=True)
    log_every: int = setting(20, "log metrics every N optimizer steps", resumable=True)
    preview_every_epochs: int = setting(0, "write a reconstruction picture every N epochs (0: only "
                                     "at the end)", resumable=True)
    preview_images: int = setting(8, "images in the reconstruction picture", resumable=True)
    knn_every_epochs: int = setting(0, "measure the k-NN accuracy of the encoder's cls features every "
                                 "N epochs, into metrics.jsonl (0: never); needs labelled data: the "
                                 "built-in dataset, or class subfolders and --knn-val-data", resumable=True)
    knn_val_data: str | None = optional("labelled images (one subfolder per class, the training data's "
                                    "classes) that the k-NN monitor classifies; default for the "
                                    "built-in dataset: held-out synthetic images", metavar="DIR", resumable=True)
    knn_images: int = setting(2048, "training images (evenly spread) and at most as many validation "
                           "images used by the k-NN monitor", resumable=True)
    tensorboard: bool = setting(False, "also log to TensorBoard (OUT/tensorboard: the metrics, and each "
                             "reconstruction picture; needs the 'tensorboard' package)", resumable=True)


    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Static checks; those that need the process count are in `batch_plan`."""
        from ...models.targets import model_target  # the target registry loads torch: only when checked

        if self.model not in CONFIGS:
            raise ValueError(f"{flag('model')}: unknown model {self.model!r}; known: {', '.join(model_names())}")
        try:
            check_mask_ratio(self.mask_ratio)
        except ValueError:
            require(self, False, "mask_ratio", "must be in [0, 1) (1.0 would remove every patch)")
        try:
            model_target(self.target, self.norm_pix_loss)
        except ValueError as err:
            raise ValueError(f"{flag('target')}: {err}") from None
        patch = self.patch_size or CONFIGS[self.model]["patch_size"]
        check_img_size(self.img_size, patch, "" if self.patch_size else f" (the patch size of {self.model})")
        grid = tuple(side // patch for side in to_2tuple(self.img_size))
        try:
            check_mask_type(self.mask_type, self.mask_ratio, grid)
        except ValueError as err:
            raise ValueError(f"{flag('mask_type')} {self.mask_type}: {err}") from None
        patches = grid[0] * grid[1]
        require(self, num_kept(patches, self.mask_ratio) >= 1, "mask_ratio",
             f"leaves no visible patch of the {patches} of a {format_size(self.img_size)} image in "
             f"{patch}-pixel patches (at most {1 - 1 / patches:g})")
        for name in ("accum_iter", "log_every", "keep_last", "preview_images", "synthetic_size",
                     "knn_images"):
            require(self, getattr(self, name) >= 1, name, "must be at least 1")
        for name in ("num_workers", "save_every_steps", "save_every_epochs", "preview_every_epochs",
                     "knn_every_epochs", "min_lr", "weight_decay"):
            require(self, getattr(self, name) >= 0, name, "must not be negative")
        for name in ARCH_FIELDS + ("epochs", "batch_size", "effective_batch", "threads"):
            require(self, getattr(self, name) is None or getattr(self, name) >= 1, name, "must be at least 1")
        require(self, self.blr is None or self.blr > 0, "blr", "must be positive")
        require(self, self.lr is None or self.lr > 0, "lr", "must be positive")
        require(self, self.clip_grad is None or self.clip_grad > 0, "clip_grad", "must be positive")
        require(self, self.warmup_epochs is None or self.warmup_epochs >= 0, "warmup_epochs", "must not be negative")
        require(self, None in (self.warmup_epochs, self.epochs) or self.warmup_epochs <= self.epochs, "warmup_epochs",
             f"must not exceed --epochs {self.epochs}")
        require(self, all(0 <= b < 1 for b in self.betas), "betas", "must both be in [0, 1)")
        require(self, self.augmentation in AUGMENTATIONS, "augmentation", f"must be one of {', '.join(AUGMENTATIONS)}")
        require(self, self.decode_on in DECODE_ON, "decode_on", f"must be one of {', '.join(DECODE_ON)}")
        if self.decode_on == "device" and self.augmentation != "rrc":
            raise ValueError(f"--decode-on device crops with the random resized crop only (--augmentation rrc), "
                             f"not --augmentation {self.augmentation}; use --decode-on cpu for it")
        require(self, 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1, "crop_scale",
                "must satisfy 0 < min <= max <= 1")
        require(self, self.resume is None or self.resume.strip() != "", "resume", "must be 'auto' or a path")
        check_seed(self.seed)

    def model_kwargs(self) -> dict:
        """Constructor overrides for `create_model(self.model, ...)`."""
        kwargs = dict(img_size=self.img_size, in_chans=self.in_chans, norm_pix_loss=self.norm_pix_loss,
                      mask_ratio=self.mask_ratio, target=self.target, encoder_mask_tokens=self.encoder_mask_tokens)
        kwargs.update({k: getattr(self, k) for k in ARCH_FIELDS if getattr(self, k) is not None})
        return kwargs
