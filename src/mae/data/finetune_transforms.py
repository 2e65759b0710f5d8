"""Fine-tuning's augmentation on the device, batched: RandAugment, normalisation and random
erasing, as the official recipe (timm's create_transform with `--aa rand-m9-mstd0.5-inc1
--reprob 0.25 --remode pixel`): RandAugment (2 ops per image, magnitude 9 +- 0.5, each op
applied with p 0.5) -> ImageNet mean/std -> random erasing (p 0.25, per-pixel Gaussian noise).
The crop and flip before them are the data loader's (data/transforms.py).

Images come in as one float [N, C, H, W] batch in [0, 1], on any device. Every random draw
comes from the torch.Generator passed in (on the CPU), one fixed-size draw per image and step
whatever the outcome, so the result is a
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
"""

import math
from dataclasses import dataclass

import kornia
import torch

from .transforms import IMAGENET_MEAN, IMAGENET_STD

MAX_LEVEL = 10.0  # timm's magnitude scale
CROP_ATTEMPTS = 10


# ---------------------------------------------------------------- helpers


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
