"""The random resized crop, flip and normalisation of a whole batch in tensor ops, on whatever
device the batch is on: the device-side counterpart of `transforms.RandomResizedCrop`.

    crops = DeviceCrops(RandomResizedCrop(224), IMAGENET_MEAN, IMAGENET_STD)
    boxes, flips = draw_crops(crops.crop, sizes, keys, seed)   # as the CPU path draws them
    imgs = crops(uint8_batch, boxes, flips)                    # float [N, C, 224, 224], normalised

The crop boxes and flips come from the same (seed, epoch, index) generators, in the same order,
as the Pillow path's, so both paths crop the same regions. Each crop is resampled by two
matrices, one per side, holding Pillow's bicubic weights for that box: the kernel widens by the
downscale factor (antialiased, as Pillow's resize) and stops at the image's edges, so the result
equals Pillow's crop + resize up to Pillow's rounding and clipping to 8 bits between its two
passes (which shows only where the kernel overshoots, on sharp detail being enlarged). The flip
is the column matrix reversed. Two batched matmuls then resample every image at once; a list of
differently sized images is padded to one batch, the padding weighing nothing.
"""

from collections.abc import Sequence

import torch

from ..util.sizes import to_2tuple
from .loader import sample_rng
from .transforms import RandomResizedCrop

BICUBIC_A = -0.5  # Pillow's bicubic kernel (Keys' cubic convolution with a = -0.5)


def draw_crops(crop: RandomResizedCrop, sizes: Sequence[tuple[int, int]], keys: Sequence[tuple[int, int]],
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop boxes (float64 [N, 4]: left, top, right, bottom) and flips (bool [N]) of images of
    `sizes` (width, height) for the (epoch, index) `keys`: the draws of the CPU path."""
    draws = [crop.draw(width, height, sample_rng(seed, epoch, index))
             for (width, height), (epoch, index) in zip(sizes, keys, strict=True)]
    boxes = torch.tensor([box for box, _ in draws], dtype=torch.float64).reshape(-1, 4)
    return boxes, torch.tensor([flip for _, flip in draws], dtype=torch.bool)


def bicubic(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    near = ((BICUBIC_A + 2) * x - (BICUBIC_A + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resample_weights(start: torch.Tensor, end: torch.Tensor, extent: torch.Tensor, length: int,
                     out: int) -> torch.Tensor:
    """[N, out, length]: row i weighs the source pixels of output pixel i, resampling the span
    [start, end) ([N] each) of a side `extent` ([N]) pixels long, stored in `length` pixels
    (pixels from `extent` on are padding and weigh 0). Pillow's rule: a kernel centred on the
    output pixel's centre, widened by the downscale factor, cut at the edges, weights summing to 1."""
    scale = (end - start) / out  # [N] source pixels per output pixel
    widen = scale.clamp(min=1)[:, None, None]
    centres = start[:, None] + (torch.arange(out, device=start.device) + 0.5) * scale[:, None]  # [N, out]
    pixels = torch.arange(length, device=start.device) + 0.5  # [length], pixel centres
    weights = bicubic((pixels - centres[..., None]) / widen)  # [N, out, length]
    weights = weights * (pixels < extent[:, None, None])
    return weights / weights.sum(-1, keepdim=True)


def batch_of(images: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 [N, C, H, W] batch, or differently sized [C, H_i, W_i] images zero-padded into
    one, and each image's (width, height) as float32 [N, 2] on the batch's device."""
    if isinstance(images, torch.Tensor):
        n, _, height, width = images.shape
        return images, torch.tensor([[width, height]] * n, dtype=torch.float32, device=images.device)
    channels = {img.shape[0] for img in images}
    if len(channels) != 1:
        raise ValueError(f"images of one batch need the same number of channels, got {sorted(channels)}")
    height, width = max(img.shape[1] for img in images), max(img.shape[2] for img in images)
    batch = images[0].new_zeros(len(images), channels.pop(), height, width)
    for row, img in zip(batch, images):
        row[:, : img.shape[1], : img.shape[2]] = img
    sizes = torch.tensor([[img.shape[2], img.shape[1]] for img in images], dtype=torch.float32,
                         device=batch.device)
    return batch, sizes


class DeviceCrops:
    """`crop`'s random resized crop and flip, then normalisation by mean / std, of a batch on
    its own device: uint8 images (a tensor or a list) -> float32 [N, C, height, width] (the crop's size)."""

    def __init__(self, crop: RandomResizedCrop, mean: Sequence[float], std: Sequence[float]):
        self.crop = crop
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def __call__(self, images: torch.Tensor | Sequence[torch.Tensor], boxes: torch.Tensor,
                 flips: torch.Tensor) -> torch.Tensor:
        batch, sizes = batch_of(images)  # [N, C, H, W] uint8, [N, 2]
        if batch.dtype != torch.uint8:
            raise ValueError(f"device crops take uint8 images (0..255), got {batch.dtype}")
        device, (height, width) = batch.device, to_2tuple(self.crop.size)
        boxes, flips = boxes.to(device, torch.float32), flips.to(device)
        left, top, right, bottom = boxes.unbind(1)
        cols = resample_weights(left, right, sizes[:, 0], batch.shape[3], width)  # [N, width, W]
        rows = resample_weights(top, bottom, sizes[:, 1], batch.shape[2], height)  # [N, height, H]
        cols = torch.where(flips[:, None, None], cols.flip(1), cols)
        pixels = batch.float()
        pixels = pixels @ cols.transpose(1, 2)[:, None]  # [N, C, H, width]
        pixels = rows[:, None] @ pixels  # [N, C, height, width]
        return (pixels - self.mean.to(device)) * self.inv_std.to(device)
