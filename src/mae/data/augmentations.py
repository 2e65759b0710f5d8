"""The pretraining augmentations of the paper's Table 1(e): none, a fixed-size random crop,
the random resized crop (the default), and the random resized crop with colour jitter.

Each is a transform (PIL image, numpy Generator) -> uint8 [C, H, W], like those of
`mae.data.transforms`, and draws only from the generator it is given.
"""

import numpy as np
from PIL import Image, ImageEnhance

from .options import AUGMENTATIONS
from .transforms import STANDARD_CROP, RandomResizedCrop, ResizeCenterCrop, decode_region, fitted_box, to_tensor

FIXED_CROP_FRACTION = STANDARD_CROP  # the fixed crop covers this much of the shorter side
JITTER = 0.4  # brightness, contrast and saturation factors drawn from [1 - JITTER, 1 + JITTER]


class FixedSizeCrop:
    """A box of the output's shape, `FIXED_CROP_FRACTION` of the largest that fits (for a square: of
    the shorter side), at a random position, resized to `size` (a side, or (height, width); a 224
    crop of the image resized to 256), then a horizontal flip with probability 1/2."""

    def __init__(self, size: int | tuple[int, int], channels: int = 3):
        self.size, self.channels = size, channels

    def __call__(self, img: Image.Image, rng: np.random.Generator):
        box_w, box_h = (round(side) for side in fitted_box(*img.size, self.size, FIXED_CROP_FRACTION))
        left = int(rng.integers(0, img.width - box_w + 1))
        top = int(rng.integers(0, img.height - box_h + 1))
        out = decode_region(img, (left, top, left + box_w, top + box_h), self.size, self.channels)
        if rng.random() < 0.5:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(out, self.channels)


class JitteredCrop(RandomResizedCrop):
    """The random resized crop, then brightness, contrast and saturation (in that order) each
    scaled by a factor drawn uniformly from [1 - JITTER, 1 + JITTER] (saturation: RGB only)."""

    def __call__(self, img: Image.Image, rng: np.random.Generator):
        crop = super().__call__(img, rng)  # uint8 [C, H, W]
        out = Image.fromarray(crop.permute(1, 2, 0).squeeze(-1).numpy())
        enhancers = [ImageEnhance.Brightness, ImageEnhance.Contrast]
        enhancers += [ImageEnhance.Color] if self.channels == 3 else []
        for enhancer in enhancers:
            out = enhancer(out).enhance(rng.uniform(1 - JITTER, 1 + JITTER))
        return to_tensor(out, self.channels)


def pretrain_transform(augmentation: str, size: int | tuple[int, int], crop_scale=(0.2, 1.0), channels: int = 3):
    """The named augmentation of Table 1(e) at `size` pixels (crop_scale: the random resized crop's)."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {augmentation!r}")
    if augmentation == "none":
        return ResizeCenterCrop(size, 1.0, channels)
    if augmentation == "crop":
        return FixedSizeCrop(size, channels)
    crop = JitteredCrop if augmentation == "rrc_jitter" else RandomResizedCrop
    return crop(size, crop_scale, channels=channels)
