"""Image transforms: the paper's random resized crop + flip, a resize + centre crop, normalisation.

The per-image work runs on the CPU in loader workers and returns uint8 [C, H, W] tensors
(a quarter of the bytes of float32 to move to the device); normalisation to float runs
batched on the device (`Normalize`).

Each random transform takes a numpy Generator, which the dataset seeds from
(seed, epoch, sample index), so an augmentation never depends on worker count or order.
JPEG files are decoded at a reduced scale when the crop allows it (Pillow's draft mode),
and the crop box is passed to the resize, so only the cropped area is resampled.
"""

import math

import numpy as np
import torch
from PIL import Image

from ..util.sizes import to_2tuple
from .images import decode_image, oriented_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)  # the channel means of the above, for 1-channel data
STANDARD_CROP = 224 / 256  # the usual evaluation view: the middle 224 pixels of 256


def default_mean_std(channels: int) -> tuple[tuple, tuple]:
    return (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GRAY_MEAN, GRAY_STD)


def fitted_box(width: float, height: float, size, fraction: float) -> tuple[float, float]:
    """(width, height) of the largest box of the output's shape (`size`: a side, or (height, width))
    inside a width x height image, scaled by `fraction`: for a square, `fraction` of the shorter side."""
    out_h, out_w = to_2tuple(size)
    scale = min(width / out_w, height / out_h) * fraction
    return out_w * scale, out_h * scale


def decode_region(img: Image.Image, box: tuple[float, float, float, float], out, channels: int):
    """Decode `img` (header read only) and resample `box` (left, top, right, bottom, in the
    upright frame of `oriented_size`) to `out` (a side, or (height, width))."""
    # draft picks the largest JPEG DCT reduction (1/2, 1/4, 1/8) that keeps the crop >= `out`;
    # it scales both sides alike, so the box scales the same in the upright frame
    stored_w, stored_h = img.size
    out_h, out_w = to_2tuple(out)
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    reduce = min(crop_w / out_w, crop_h / out_h)
    scale = 1.0
    if reduce >= 2:
        wanted = (math.ceil(stored_w / reduce), math.ceil(stored_h / reduce))
        drafted = img.draft("L" if channels == 1 else "RGB", wanted)  # None for non-JPEG
        if drafted is not None:
            scale = drafted[1][2] / stored_w
    img = decode_image(img, channels)
    box = tuple(v * scale for v in box)
    # reducing_gap: a cheap integer box reduction first for large downscales
    return img.resize((out_w, out_h), Image.BICUBIC, box=box, reducing_gap=3.0)


def to_tensor(img: Image.Image, channels: int) -> torch.Tensor:
    pixels = np.array(img, dtype=np.uint8)  # a writable copy
    if channels == 1:
        pixels = pixels[..., None]
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # [C, H, W] uint8


class RandomResizedCrop:
    """The paper's augmentation: random resized crop (area scale, aspect ratio), bicubic,
    then a horizontal flip with probability `flip`. Same sampling rule as torchvision:
    ten tries for a box that fits, else the largest centred box of a clamped aspect ratio.
    """

    def __init__(self, size: int | tuple[int, int], scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip: float = 0.5,
                 channels: int = 3):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        self.size, self.scale, self.ratio, self.flip, self.channels = size, tuple(scale), tuple(ratio), flip, channels

    def box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return left, top, left + w, top + h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h

    def draw(self, width: int, height: int, rng: np.random.Generator) -> tuple[tuple[int, int, int, int], bool]:
        """The crop box of a width x height image and whether to flip it: all this transform
        draws (`mae.data.device_crops` crops on the device from the same draws)."""
        return self.box(width, height, rng), bool(rng.random() < self.flip)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        box, flipped = self.draw(*oriented_size(img), rng)
        out = decode_region(img, box, self.size, self.channels)
        if flipped:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(out, self.channels)


class ResizeCenterCrop:
    """Deterministic evaluation view: the centred box of the output's shape covering `crop_fraction`
    of the largest that fits (for a square: of the shorter side), resized to `size` (a side, or
    (height, width); 0.875 is the usual 224-of-256 view; 1.0 keeps it all)."""

    def __init__(self, size: int | tuple[int, int], crop_fraction: float = 0.875, channels: int = 3):
        if not 0 < crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.size, self.crop_fraction, self.channels = size, crop_fraction, channels

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        width, height = oriented_size(img)
        box_w, box_h = fitted_box(width, height, self.size, self.crop_fraction)
        left, top = (width - box_w) / 2, (height - box_h) / 2
        out = decode_region(img, (left, top, left + box_w, top + box_h), self.size, self.channels)
        return to_tensor(out, self.channels)


class Normalize(torch.nn.Module):
    """uint8 [N, C, H, W] on any device -> float32 normalised by mean / std, batched."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        self.register_buffer("_mean", torch.tensor(mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("_inv_std", 1 / (torch.tensor(std).view(1, -1, 1, 1) * 255), persistent=False)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return (imgs.float() - self._mean) * self._inv_std
