"""Reading image files for a model: resize, centre-crop, normalise.

An image is resized (bicubic, aspect ratio kept) so that it just covers the model's
input size (height, width), then the middle (height, width) is cut out: the shorter side
(relative to the target's shape) fills the model's input and the longer one is cropped
evenly on both sides. Pixels are decoded as for training and evaluation
(`mae.data.decode_image`: EXIF orientation, 16-bit and float ranges, alpha on white),
as RGB, or as grey for single-channel models.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .images import DECODE_ERRORS, decode_image, open_image


def read_image(path, size: tuple[int, int], in_chans: int = 3, min_side: int = 1) -> torch.Tensor:
    """An image file -> [C, H, W] float32 in [0, 1] at `size` = (H, W).

    `min_side`: the smallest side accepted (a model's patch size: an image smaller than one
    patch holds no patch to show).
    """
    path = check_image_path(path)
    if in_chans not in (1, 3):
        raise ValueError(f"images can be read for 1- or 3-channel models, not {in_chans}")
    try:
        with open_image(path) as image:
            image = decode_image(image, in_chans)
    except DECODE_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    width, height = image.size
    if min(width, height) < min_side:
        raise ValueError(
            f"image {path} is {width}x{height} pixels, smaller than one {min_side}x{min_side} patch"
        )
    image = resize_and_crop(image, size)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [H, W] or [H, W, C]
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()  # [C, H, W]


def check_image_path(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {path} does not exist" if not path.exists() else f"image {path} is not a file")
    return path


def resize_and_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to just cover (H, W), keeping the aspect ratio, then cut out the centre."""
    target_h, target_w = size
    width, height = image.size
    scale = max(target_h / height, target_w / width)
    new_w, new_h = max(target_w, round(width * scale)), max(target_h, round(height * scale))
    image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - target_w) // 2, (new_h - target_h) // 2
    return image.crop((left, top, left + target_w, top + target_h))


def load_images(paths, size: tuple[int, int], in_chans: int, mean, std, min_side: int = 1) -> torch.Tensor:
    """Image files -> a normalised batch [N, C, H, W]: (pixels - mean) / std per channel."""
    paths = list(paths)
    if not paths:
        raise ValueError("no images given")
    pixels = torch.stack([read_image(p, size, in_chans, min_side) for p in paths])  # [N, C, H, W]
    mean = torch.tensor(channel_stats(mean, in_chans)).view(1, -1, 1, 1)
    std = torch.tensor(channel_stats(std, in_chans)).view(1, -1, 1, 1)
    return (pixels - mean) / std


def channel_stats(values, in_chans: int) -> list[float]:
    """Per-channel mean or std for `in_chans` channels (the first ones given)."""
    values = [float(v) for v in values]
    if len(values) < in_chans and len(values) != 1:
        raise ValueError(f"need 1 or {in_chans} per-channel values, got {values}")
    return values[:in_chans] if len(values) >= in_chans else values * in_chans
