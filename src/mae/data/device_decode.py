"""`--decode-on device`: the loader workers read each image's bytes and header and draw its crop
box and flip; the training process decodes the batch's JPEGs on the GPU (nvJPEG, through
torchvision.io.decode_jpeg) and crops, flips and normalises it there (`DeviceCrops`).

    dataset, collate, to_model = device_decoding(source, RandomResizedCrop(224), seed, strict, device, mean, std)
    loader = make_loader(dataset, batches, workers, pin_memory=True, collate=collate)
    for batch, labels in loader:
        imgs = to_model(batch)                     # float [N, 3, 224, 224] on the device

The boxes and flips are the CPU path's draws (same generators, same order). A worker ships an
RGB or greyscale JPEG as its bytes (with its EXIF orientation, applied on the device); any
other image (PNG, CMYK JPEG, the built-in dataset) it decodes itself and ships as uint8 pixels.
A JPEG that the device cannot decode stops the run, naming the file.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .device_crops import DeviceCrops
from .images import decode_image, open_image, orientation, oriented_size
from .loader import KeyedImages
from .source import ImageSource
from .transforms import RandomResizedCrop, to_tensor

DEVICE_JPEG_MODES = ("RGB", "L")  # what nvJPEG decodes to RGB or greyscale


class UndecodedBatch(NamedTuple):
    items: list[torch.Tensor]  # JPEG bytes (uint8 [bytes]) or decoded pixels (uint8 [C, H, W])
    orientations: list[int]  # EXIF orientation of each JPEG (1 for decoded pixels: already upright)
    boxes: torch.Tensor  # float64 [N, 4]: left, top, right, bottom in the upright image
    flips: torch.Tensor  # bool [N]
    names: list[str]  # for messages


class UndecodedImages(KeyedImages):
    """KeyedImages with a RandomResizedCrop as transform, whose samples are left for the device to
    decode and crop: ((bytes or pixels, orientation, box, flip, name), label)."""

    def sample(self, i: int, rng: np.random.Generator):
        data, channels = self.source.encoded(i), self.transform.channels
        with (open_image(data) if data is not None else self.source.open(i)) as img:
            box, flip = self.transform.draw(*oriented_size(img), rng)
            if data is not None and img.format == "JPEG" and img.mode in DEVICE_JPEG_MODES:
                item, turn = torch.frombuffer(bytearray(data), dtype=torch.uint8), orientation(img)
            else:
                item, turn = to_tensor(decode_image(img, channels), channels), 1
        return item, turn, box, flip, self.source.name(i)


def collate(samples: Sequence) -> tuple[UndecodedBatch, torch.Tensor]:
    parts, labels = zip(*samples)
    items, turns, boxes, flips, names = zip(*parts)
    return UndecodedBatch(list(items), list(turns), torch.tensor(boxes, dtype=torch.float64),
                          torch.tensor(flips), list(names)), torch.tensor(labels)


def upright(img: torch.Tensor, exif_orientation: int) -> torch.Tensor:
    """[C, H, W] as stored -> as shown, for EXIF orientation 1-8 (as `images.decode_image`)."""
    turns = {
        2: lambda x: x.flip(-1),
        3: lambda x: x.flip(-2, -1),
        4: lambda x: x.flip(-2),
        5: lambda x: x.transpose(-2, -1),
        6: lambda x: torch.rot90(x, -1, (-2, -1)),
        7: lambda x: x.transpose(-2, -1).flip(-2, -1),
        8: lambda x: torch.rot90(x, 1, (-2, -1)),
    }
    return turns[exif_orientation](img) if exif_orientation in turns else img


class DeviceDecode:
    """The training process's half: an UndecodedBatch -> normalised float [N, C, S, S] on `device`.
    `decode_jpeg` takes a list of JPEG byte tensors and returns uint8 [C, H, W] images on `device`."""

    def __init__(self, decode_jpeg, crops: DeviceCrops, device: torch.device):
        self.decode_jpeg, self.crops, self.device = decode_jpeg, crops, device

    def __call__(self, batch: UndecodedBatch) -> torch.Tensor:
        jpegs = [i for i, item in enumerate(batch.items) if item.dim() == 1]
        images = [item.to(self.device, non_blocking=True) if item.dim() == 3 else None for item in batch.items]
        decoded = self._decode([batch.items[i] for i in jpegs], [batch.names[i] for i in jpegs])
        for i, img in zip(jpegs, decoded):
            images[i] = upright(img, batch.orientations[i])
        return self.crops(images, batch.boxes, batch.flips)

    def _decode(self, datas: list[torch.Tensor], names: list[str]) -> list[torch.Tensor]:
        if not datas:
            return []
        try:
            return self.decode_jpeg(datas)
        except RuntimeError:  # find the file to name
            for data, name in zip(datas, names):
                try:
                    self.decode_jpeg([data])
                except RuntimeError as err:
                    raise ValueError(f"cannot decode {name} on {self.device}: {err} (--decode-on device stops at "
                                     "a JPEG it cannot decode; --decode-on cpu skips it with a warning)") from None
            raise


def gpu_jpeg_decoder(device: torch.device, channels: int):
    """torchvision.io.decode_jpeg on `device` (nvJPEG), RGB or greyscale; a ValueError saying what
    is missing where that cannot run."""
    missing = []
    if device.type != "cuda":
        missing.append(f"this run's device is {device}")
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception as err:  # not installed, or built for another torch (fails as it loads)
        missing.append(f"torchvision does not import here ({type(err).__name__}: {err})")
    if missing:
        raise ValueError(f"--decode-on device decodes JPEGs on a CUDA GPU with torchvision.io.decode_jpeg, which "
                         f"needs a CUDA device (--device cuda) and the torchvision built for torch "
                         f"{torch.__version__}: {'; '.join(missing)}. Use --decode-on cpu (the default) here")
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    return lambda datas: decode_jpeg(datas, mode=mode, device=device)


def device_decoding(source: ImageSource, crop: RandomResizedCrop, seed: int, strict: bool, device: torch.device,
                    mean: Sequence[float], std: Sequence[float]):
    """(dataset, collate, to_model) of --decode-on device; refuses (ValueError) where the device
    cannot decode JPEGs, before anything is loaded."""
    decode = gpu_jpeg_decoder(device, crop.channels)
    to_model = DeviceDecode(decode, DeviceCrops(crop, mean, std), device)
    return UndecodedImages(source, crop, seed, strict), collate, to_model
