"""Fine-tuning / linear-probing augmentation and the evaluation transform, on tensors, batched.

Train (the official fine-tuning recipe, timm's create_transform with
`--aa rand-m9-mstd0.5-inc1 --reprob 0.25 --remode pixel`):
    random resized crop (scale 0.08-1, ratio 3/4-4/3, bicubic) -> horizontal flip (p 0.5)
    -> RandAugment (2 ops per image, magnitude 9 +- 0.5, each op applied with p 0.5)
    -> ImageNet mean/std -> random erasing (p 0.25, per-pixel Gaussian noise)
Linear probe: crop and flip only. Eval: resize the short side to size / 0.875 (224 -> 256;
crop fraction 1 above 224, as the official code), bicubic, then centre crop.

Images come in as a list of [C, H, W] tensors of any sizes or one [N, C, H, W] tensor,
uint8 (0-255) or float (0-1), on any device; out comes one normalised float [N, C, S, S]
batch on that device. Every random draw comes from the torch.Generator passed in (on the
CPU), one fixed-size draw per image and step whatever the outcome, so the result is a
function of how the caller seeded it: (seed, epoch, index) for one image in a data worker,
or (seed, epoch, step) for a batch on the accelerator.

How RandAugment maps to timm's `rand-m9-mstd0.5-inc1`, and where it differs:
  * m9: magnitude 9 on timm's 0-10 scale; mstd0.5: per image and op, the magnitude is
    drawn from N(9, 0.5) and clipped to [0, 10]; n=2 ops per image, drawn with
    replacement; each applied with probability 0.5 (timm's default op prob).
  * inc1: the "increasing" op set, where a larger magnitude is always a stronger change:
    AutoContrast, Equalize, Invert, Rotate (30 deg at 10), Posterize (4 -> 0 bits kept),
    Solarize (threshold 256 -> 0), SolarizeAdd (+0 -> +110 below 128), Color / Contrast /
    Brightness / Sharpness (factor 1 +- 0.9), ShearX / ShearY (0.3), TranslateX / Y
    (45% of the side). Signed ops take a random sign.
  * The ops are kornia's batched functions (kornia.enhance.equalize, posterize, solarize,
    sharpness, adjust_contrast_with_mean_subtraction = PIL's Contrast,
    adjust_saturation_with_gray_subtraction = PIL's Color; kornia.geometry warp_affine
    with bicubic sampling and the mean colour as fill), applied per op to the images
    that drew it. kornia.augmentation.RandAugment is not used: it draws one set of ops
    for the whole batch, at a fixed magnitude, always applied, from the global RNG.
  * timm works on uint8 PIL images; here the images stay float between ops (only
    posterize and equalize quantise to 256 levels), the geometric ops sample bicubically
    around pixel centres rather than with PIL's corner convention, and Contrast blends
    with the exact grey mean where PIL rounds it to an integer.
  * Random erasing is written here: kornia.augmentation.RandomErasing fills a constant,
    the recipe's "pixel" mode fills per-pixel N(0, 1) noise (in normalised units). Box
    sampling as timm: area 2%-33%, aspect 0.3-3.3 (log-uniform), up to 10 tries.
  * Resizing is torch's antialiased bicubic (as torchvision on tensors, close to PIL's);
    kornia's resize antialiases with a Gaussian pre-blur instead.
"""

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_LEVEL = 10.0  # timm's magnitude scale
CROP_ATTEMPTS = 10


# ---------------------------------------------------------------- helpers


def as_float_images(images) -> list[torch.Tensor] | torch.Tensor:
    """uint8 0-255 -> float 0-1; float images are taken as 0-1 already."""
    def convert(image):
        return image.float().div(255.0) if image.dtype == torch.uint8 else image.float()

    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
        return convert(images)
    images = list(images)
    for image in images:
        if image.ndim != 3:
            raise ValueError(f"expected each image as [C, H, W], got shape {tuple(image.shape)}")
    return [convert(image) for image in images]


def _image_sizes(images) -> torch.Tensor:
    return torch.tensor([list(image.shape[-2:]) for image in images], dtype=torch.float64)  # [N, 2]


def _uniform(low, high, shape, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _randint_inclusive(high: torch.Tensor, generator) -> torch.Tensor:
    """One uniform integer in [0, high] per entry of `high` (>= 0)."""
    u = torch.rand(high.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * (high + 1)).floor(), high)


def normalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    mean = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean) / std


def resize_bicubic(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[C, H, W] -> [C, h, w], antialiased bicubic, clipped to [0, 1] (bicubic overshoots)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=True)
    return out[0].clamp_(0.0, 1.0)


# ---------------------------------------------------------------- crop and flip


def sample_crop_boxes(sizes: torch.Tensor, scale, ratio, generator) -> torch.Tensor:
    """Random-resized-crop boxes, as torchvision / timm: [N, 2] (H, W) -> [N, 4] (top, left, h, w).

    Up to 10 tries of (area fraction ~ U(scale), log aspect ~ U(log ratio)); the first box
    that fits is taken, else a centre crop with the aspect clamped to `ratio`.
    """
    height, width = sizes[:, :1], sizes[:, 1:]  # [N, 1]
    n = len(sizes)
    area = height * width * _uniform(scale[0], scale[1], (n, CROP_ATTEMPTS), generator)
    aspect = torch.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), (n, CROP_ATTEMPTS), generator))
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)  # [N, tries]
    first = fits.double().argmax(dim=1, keepdim=True)  # index of the first fitting try
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top = _randint_inclusive(height[:, 0] - h, generator)
    left = _randint_inclusive(width[:, 0] - w, generator)

    # fallback: the largest centred box with the aspect ratio clamped into `ratio`
    in_ratio = width[:, 0] / height[:, 0]
    fb_w = torch.where(in_ratio > ratio[1], torch.round(height[:, 0] * ratio[1]), width[:, 0])
    fb_h = torch.where(in_ratio < ratio[0], torch.round(width[:, 0] / ratio[0]), height[:, 0])
    found = fits.any(dim=1)
    h, w = torch.where(found, h, fb_h), torch.where(found, w, fb_w)
    top = torch.where(found, top, ((height[:, 0] - fb_h) / 2).floor())
    left = torch.where(found, left, ((width[:, 0] - fb_w) / 2).floor())
    return torch.stack([top, left, h, w], dim=1).long()


def random_resized_crop(
    images, size: int, generator: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """Crop each image to a random box and resize it to size x size: -> [N, C, S, S]."""
    boxes = sample_crop_boxes(_image_sizes(images), scale, ratio, generator).tolist()
    # one resize per image: the boxes differ in size (and so may the images)
    return torch.stack([
        resize_bicubic(image[:, top:top + h, left:left + w], (size, size))
        for image, (top, left, h, w) in zip(images, boxes)
    ])


def random_horizontal_flip(images: torch.Tensor, generator, p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(len(images), generator=generator) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


# ---------------------------------------------------------------- RandAugment ops
# Each op: (images [n, C, H, W] in [0, 1], level [n] in [0, 10], sign [n] of +-1) -> images.
# level and sign are float64 CPU tensors.


def _factor(level, sign, images):  # enhance ops: 1 +- 0.9 at level 10
    return (1.0 + sign * level / MAX_LEVEL * 0.9).to(images.device, images.dtype)


def _auto_contrast(x, level, sign):
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    spread = high - low
    return torch.where(spread > 0, (x - low) / spread.clamp_min(1e-12), x)


def _posterize(x, level, sign):
    bits = 4 - (level / MAX_LEVEL * 4).floor()  # bits kept: 4 at level 0, 0 at level 10
    return kornia.enhance.posterize(x, bits.to(x.device, torch.int64))


def _solarize(x, level, sign):
    threshold = (256 - (level / MAX_LEVEL * 256).floor()) / 255.0
    return kornia.enhance.solarize(x, threshold.to(x.device, x.dtype))


def _solarize_add(x, level, sign):
    add = ((level / MAX_LEVEL * 110).floor() / 255.0).to(x.device, x.dtype).view(-1, 1, 1, 1)
    return torch.where(x < 128 / 255.0, (x + add).clamp(max=1.0), x)


def _color(x, level, sign):
    return kornia.enhance.adjust_saturation_with_gray_subtraction(x, _factor(level, sign, x))


def _contrast(x, level, sign):
    return kornia.enhance.adjust_contrast_with_mean_subtraction(x, _factor(level, sign, x))


def _brightness(x, level, sign):
    return (x * _factor(level, sign, x).view(-1, 1, 1, 1)).clamp(0.0, 1.0)


def _sharpness(x, level, sign):
    return kornia.enhance.sharpness(x, _factor(level, sign, x))


def _warp(x, matrices: torch.Tensor, fill) -> torch.Tensor:
    """Affine warp (matrices [n, 2, 3] map input pixels to output pixels), bicubic, filled."""
    fill = torch.tensor(fill, device=x.device, dtype=x.dtype)
    out = kornia.geometry.transform.warp_affine(
        x, matrices.to(x.device, x.dtype), tuple(x.shape[-2:]), mode="bicubic",
        padding_mode="fill", fill_value=fill, align_corners=True,
    )
    return out.clamp(0.0, 1.0)


def _identity_plus(n: int, row: int, col: int, values: torch.Tensor) -> torch.Tensor:
    """[n, 2, 3] identity affine matrices with entry (row, col) set to `values` [n]."""
    matrices = torch.zeros(n, 2, 3, dtype=torch.float64)
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, row, col] = values
    return matrices


def _rotate(x, level, sign, fill):
    angle = sign * level / MAX_LEVEL * 30.0  # degrees, counter-clockwise when positive
    height, width = x.shape[-2:]
    centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], dtype=torch.float64).expand(len(x), 2)
    scale = torch.ones(len(x), 2, dtype=torch.float64)
    return _warp(x, kornia.geometry.transform.get_rotation_matrix2d(centre, angle, scale), fill)


# shears and translations about the top-left corner, as PIL's; the sign is random anyway
def _shear_x(x, level, sign, fill):
    return _warp(x, _identity_plus(len(x), 0, 1, sign * level / MAX_LEVEL * 0.3), fill)


def _shear_y(x, level, sign, fill):
    return _warp(x, _identity_plus(len(x), 1, 0, sign * level / MAX_LEVEL * 0.3), fill)


def _translate_x(x, level, sign, fill):
    return _warp(x, _identity_plus(len(x), 0, 2, sign * level / MAX_LEVEL * 0.45 * x.shape[-1]), fill)


def _translate_y(x, level, sign, fill):
    return _warp(x, _identity_plus(len(x), 1, 2, sign * level / MAX_LEVEL * 0.45 * x.shape[-2]), fill)


COLOUR_OPS = {
    "auto_contrast": _auto_contrast,
    "equalize": lambda x, level, sign: kornia.enhance.equalize(x),
    "invert": lambda x, level, sign: 1.0 - x,
    "posterize": _posterize,
    "solarize": _solarize,
    "solarize_add": _solarize_add,
    "color": _color,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
}
GEOMETRIC_OPS = {
    "rotate": _rotate,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
}
# timm's _RAND_INCREASING_TRANSFORMS, in its order
INCREASING_OPS = (
    "auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add",
    "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
)


@dataclass
class RandAugment:
    """timm's RandAugment, per image: `num_ops` ops drawn with replacement from `ops`."""

    num_ops: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.5
    prob: float = 0.5
    ops: tuple[str, ...] = INCREASING_OPS
    fill: tuple[float, ...] = IMAGENET_MEAN  # geometric ops fill with the mean colour

    def __post_init__(self):
        unknown = [op for op in self.ops if op not in COLOUR_OPS and op not in GEOMETRIC_OPS]
        if unknown:
            known = sorted(COLOUR_OPS) + sorted(GEOMETRIC_OPS)
            raise ValueError(f"unknown RandAugment op(s) {unknown}; known: {', '.join(known)}")
        if self.num_ops < 0 or not 0 <= self.magnitude <= MAX_LEVEL or self.magnitude_std < 0:
            raise ValueError(
                f"RandAugment needs num_ops >= 0, magnitude in [0, {MAX_LEVEL:g}] and magnitude_std >= 0, "
                f"got {self.num_ops}, {self.magnitude}, {self.magnitude_std}"
            )

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[N, C, H, W] float in [0, 1] -> same shape, each image with its own ops."""
        n = len(images)
        images = images.clone()
        for _ in range(self.num_ops):
            op_index = torch.randint(0, len(self.ops), (n,), generator=generator)
            applied = torch.rand(n, generator=generator) < self.prob
            noise = torch.randn(n, generator=generator, dtype=torch.float64)
            level = (self.magnitude + self.magnitude_std * noise).clamp(0.0, MAX_LEVEL)
            sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).double()
            for k, name in enumerate(self.ops):
                chosen = ((op_index == k) & applied).nonzero()[:, 0]  # on the CPU: no device sync
                if len(chosen) == 0:
                    continue
                rows = chosen.to(images.device)
                subset = images.index_select(0, rows)
                if name in GEOMETRIC_OPS:
                    subset = GEOMETRIC_OPS[name](subset, level[chosen], sign[chosen], self.fill)
                else:
                    subset = COLOUR_OPS[name](subset, level[chosen], sign[chosen])
                images.index_copy_(0, rows, subset)
        return images


# ---------------------------------------------------------------- random erasing


def random_erasing(
    images: torch.Tensor, generator: torch.Generator, p: float = 0.25,
    scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3),
) -> torch.Tensor:
    """timm's RandomErasing, mode "pixel", one box: [N, C, H, W] normalised -> same shape.

    With probability p an image gets one box (area ~ U(scale) of the image, log aspect
    ~ U(log ratio), first of 10 tries that fits strictly inside) of N(0, 1) noise.
    """
    n, channels, height, width = images.shape
    erase = torch.rand(n, generator=generator) < p
    area = height * width * _uniform(scale[0], scale[1], (n, CROP_ATTEMPTS), generator)
    aspect = torch.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), (n, CROP_ATTEMPTS), generator))
    h = torch.round(torch.sqrt(area * aspect))
    w = torch.round(torch.sqrt(area / aspect))
    fits = (h < height) & (w < width)  # [N, tries]
    first = fits.double().argmax(dim=1, keepdim=True)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top = _randint_inclusive(height - h, generator)
    left = _randint_inclusive(width - w, generator)
    noise_seed = int(torch.randint(0, 2**62, (), generator=generator))

    chosen = (erase & fits.any(dim=1)).nonzero()[:, 0]
    if len(chosen) == 0:
        return images
    device = images.device
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    top, left, h, w = (t[chosen].to(device) for t in (top, left, h, w))
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # [n, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # [n, W]
    box = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # [n, 1, H, W]
    noise_generator = torch.Generator(device=device).manual_seed(noise_seed)
    noise = torch.randn((len(chosen), channels, height, width), generator=noise_generator,
                        device=device, dtype=images.dtype)
    index = chosen.to(device)
    erased = torch.where(box, noise, images.index_select(0, index))
    return images.index_copy(0, index, erased)


# ---------------------------------------------------------------- the transforms


@dataclass
class TrainTransform:
    """Crop, flip, optional RandAugment, normalise, optional random erasing."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rand_augment: RandAugment | None = None
    reprob: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"crop size must be >= 1, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < min <= max, got {self.ratio}")
        for name in ("hflip", "reprob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    def __call__(self, images, generator: torch.Generator) -> torch.Tensor:
        """Images (a list of [C, H, W] or one [N, C, H, W]) -> normalised [N, C, size, size]."""
        images = as_float_images(images)
        x = random_resized_crop(images, self.size, generator, self.scale, self.ratio)  # [N, C, S, S]
        x = random_horizontal_flip(x, generator, self.hflip)
        if self.rand_augment is not None:
            x = self.rand_augment(x, generator)
        x = normalize(x, self.mean, self.std)
        if self.reprob > 0:
            x = random_erasing(x, generator, self.reprob)
        return x


def finetune_train_transform(
    size: int = 224, reprob: float = 0.25, rand_augment: RandAugment | None = None
) -> TrainTransform:
    """The official fine-tuning augmentation (rand-m9-mstd0.5-inc1, reprob 0.25, pixel mode)."""
    return TrainTransform(size=size, rand_augment=rand_augment or RandAugment(), reprob=reprob)


def linprobe_train_transform(size: int = 224) -> TrainTransform:
    """The official linear-probing augmentation: random resized crop and flip only."""
    return TrainTransform(size=size)


@dataclass
class EvalTransform:
    """Resize the short side to int(size / crop_pct) (antialiased bicubic), centre crop, normalise.

    crop_pct None is the official choice: 0.875 up to 224 pixels (224 -> 256), 1 above.
    """

    size: int = 224
    crop_pct: float | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self):
        if self.crop_pct is None:
            self.crop_pct = 224 / 256 if self.size <= 224 else 1.0
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        short = int(self.size / self.crop_pct)
        if height <= width:
            return short, int(short * width / height)
        return int(short * height / width), short

    def __call__(self, images) -> torch.Tensor:
        crops = []
        for image in as_float_images(images):
            image = resize_bicubic(image, self.resized_shape(*image.shape[-2:]))
            top = int(round((image.shape[-2] - self.size) / 2.0))
            left = int(round((image.shape[-1] - self.size) / 2.0))
            crops.append(image[:, top:top + self.size, left:left + self.size])
        return normalize(torch.stack(crops), self.mean, self.std)
