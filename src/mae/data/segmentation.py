"""Image / mask pairs for semantic segmentation: a folder in the ADE20K layout, or the built-in shapes.

    ADEChallengeData2016/                       (any root with this layout)
      images/training/ADE_train_00000001.jpg    annotations/training/ADE_train_00000001.png
      images/validation/...                     annotations/validation/...

Masks are single-channel PNGs of class indices, paired with the image of the same stem.
`reduce_zero_label` (ADE20K: 0 is "other") maps 0 to the ignore index and k to k - 1, as
mmsegmentation does. Images are decoded as every command decodes them (`decode_image`:
EXIF orientation, bit depth, alpha). A mask is read as stored; for an image stored turned
(an EXIF orientation), the mask may fit the picture as shown (it is used as is) or the
pixels as stored (it is turned with its image); where its size cannot tell which (a
square image, a flip or a half turn), the pair is refused by name.

Training samples (`SegmentationSamples`): a random rescale of the
shorter side to [0.5, 2] x the crop size, a random crop (padded with the ignore index
where the image is smaller), a horizontal flip; drawn from (seed, epoch, index).
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .images import decode_image, image_extensions, orientation, turn_upright
from .synthetic import SHAPES, render_with_mask

SPLITS = ("training", "validation")
SYNTHETIC_CLASSES = ("background",) + SHAPES
_STREAM = 0x5E6


class SyntheticSegmentation:
    """The built-in shapes with their masks: 1 + len(SHAPES) classes, background 0."""

    def __init__(self, num_images: int, size: int, seed: int):
        if num_images < 1 or size < 4:
            raise ValueError(f"synthetic dataset needs num_images >= 1 and size >= 4, got {num_images}, {size}")
        self.num_images, self.size, self.seed = num_images, size, seed
        self.classes = SYNTHETIC_CLASSES
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.num_images

    def pair(self, index: int) -> tuple[Image.Image, np.ndarray]:
        if index not in self._cache:
            image, mask, _ = render_with_mask(self.seed, index, self.size)
            self._cache[index] = image, mask
        image, mask = self._cache[index]
        return Image.fromarray(image), mask

    def name(self, index: int) -> str:
        return f"synthetic(seed={self.seed})#{index}"

    def __repr__(self) -> str:
        return f"SyntheticSegmentation({self.num_images} images, {self.size}px, seed={self.seed})"


class SegmentationFolder:
    """ROOT/images/SPLIT/* paired by stem with ROOT/annotations/SPLIT/*.png."""

    def __init__(self, root: str | Path, split: str, reduce_zero_label: bool = False, ignore_index: int = 255):
        self.root, self.split = Path(root), split
        self.reduce_zero_label, self.ignore_index = reduce_zero_label, ignore_index
        images_dir, masks_dir = self.root / "images" / split, self.root / "annotations" / split
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise ValueError(f"--data {self.root}: no folder {folder.relative_to(self.root)}/ (expected the "
                                 "ADE20K layout: images/{training,validation}/ and annotations/{training,"
                                 "validation}/ with the same file stems)")
        extensions = image_extensions()
        images = {p.stem: p for p in sorted(images_dir.iterdir())
                  if p.suffix.lower() in extensions and not p.name.startswith(".")}
        masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() == ".png"}
        unpaired = sorted(set(images) ^ set(masks))
        if unpaired:
            raise ValueError(f"--data {self.root} ({split}): {len(unpaired)} file(s) without an image or a mask "
                             f"of the same stem: {', '.join(unpaired[:8])}")
        if not images:
            raise ValueError(f"--data {self.root}: images/{split}/ holds no images")
        self.stems = sorted(images)
        self.images, self.masks = [images[s] for s in self.stems], [masks[s] for s in self.stems]

    def __len__(self) -> int:
        return len(self.stems)

    def pair(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The image as shown (decoded RGB) and its mask, in the same frame."""
        path, mask_path = self.images[index], self.masks[index]
        stored = Image.open(path)
        turn, stored_size, image = orientation(stored), stored.size, decode_image(stored, 3)
        mask = np.array(Image.open(mask_path))
        if mask.ndim != 2:
            raise ValueError(f"{mask_path}: a mask must be a single-channel PNG of class indices, "
                             f"got shape {mask.shape}")
        mask_size = (mask.shape[1], mask.shape[0])
        if turn != 1 and mask_size == stored_size == image.size:
            raise ValueError(f"{path} has EXIF orientation {turn}, and the sizes cannot tell whether its mask "
                             f"{mask_path.name} was drawn on the picture as shown or on the pixels as stored: "
                             "store the image upright (PIL.ImageOps.exif_transpose) if the mask follows the "
                             "picture as shown, else remove the image's orientation tag")
        if turn != 1 and mask_size == stored_size:  # drawn on the stored pixels: turned with them
            mask = np.array(turn_upright(Image.fromarray(mask), turn))
        elif mask_size != image.size:
            raise ValueError(f"{mask_path} is {mask_size[0]}x{mask_size[1]} but its image is "
                             f"{image.size[0]}x{image.size[1]}")
        if self.reduce_zero_label:
            mask = mask.astype(np.int64)
            mask = np.where(mask == 0, self.ignore_index, mask - 1)
        return image, mask

    def name(self, index: int) -> str:
        return str(self.images[index])

    def __repr__(self) -> str:
        return f"SegmentationFolder({str(self.root)!r}, {self.split}, {len(self)} pairs)"


def check_labels(mask: torch.Tensor, num_classes: int, ignore_index: int, name: str) -> None:
    bad = mask[(mask != ignore_index) & ((mask < 0) | (mask >= num_classes))]
    if bad.numel():
        raise ValueError(f"{name}: mask value {int(bad[0])} is neither a class in [0, {num_classes}) nor the "
                         f"ignore index {ignore_index} (ADE20K-style masks need --reduce-zero-label)")


def _rgb_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)  # [3, H, W]


class SegmentationSamples(Dataset):
    """Training pairs, keyed (epoch, index) by a TrainBatches sampler: (uint8 [3, S, S], int64 [S, S])."""

    def __init__(self, source, crop: int, num_classes: int, ignore_index: int, seed: int = 0,
                 scale: tuple[float, float] = (0.5, 2.0)):
        self.source, self.crop, self.num_classes, self.ignore_index = source, crop, num_classes, ignore_index
        self.seed, self.scale = seed, scale

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, _STREAM, epoch, index])
        image, mask = self.source.pair(index)
        width, height = image.size
        ratio = rng.uniform(*self.scale) * self.crop / min(width, height)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        image = _rgb_tensor(image.resize(size, Image.BILINEAR))
        mask = torch.from_numpy(np.array(Image.fromarray(np.asarray(mask, dtype=np.int32)).resize(size, Image.NEAREST),
                                         dtype=np.int64))
        check_labels(mask, self.num_classes, self.ignore_index, self.source.name(index))
        s = self.crop
        padded_img = torch.zeros(3, max(s, size[1]), max(s, size[0]), dtype=torch.uint8)
        padded_mask = torch.full(padded_img.shape[1:], self.ignore_index, dtype=torch.int64)
        padded_img[:, :size[1], :size[0]], padded_mask[:size[1], :size[0]] = image, mask
        top = int(rng.integers(padded_img.shape[1] - s + 1))
        left = int(rng.integers(padded_img.shape[2] - s + 1))
        image, mask = padded_img[:, top:top + s, left:left + s], padded_mask[top:top + s, left:left + s]
        if rng.random() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()


def eval_pair(source, index: int, size: int, num_classes: int, ignore_index: int):
    """An evaluation pair: the image resized so its shorter side is `size` (uint8 [3, h, w]) and the
    mask at its own resolution (int64 [H, W]), against which the prediction is scored."""
    image, mask = source.pair(index)
    width, height = image.size
    ratio = size / min(width, height)
    image = _rgb_tensor(image.resize((max(1, round(width * ratio)), max(1, round(height * ratio))), Image.BILINEAR))
    mask = torch.from_numpy(np.asarray(mask, dtype=np.int64))
    check_labels(mask, num_classes, ignore_index, source.name(index))
    return image, mask
