"""Datasets (image folder, tar shards, built-in synthetic), transforms, samplers, loader.

    source = build_source("path/to/images")               # or None: the built-in dataset
    data = KeyedImages(source, RandomResizedCrop(224), seed=0)
    loader = make_loader(data, TrainBatches(len(source), 64, epochs=800), num_workers=8)
    for imgs, labels in loader: ...                         # uint8 [N, 3, 224, 224], int64 [N]
"""

from .folder import ImageFolder
from .images import DataWarning, decode_image, image_extensions
from .loader import SYNTHETIC, KeyedImages, build_source, check_image_sizes, make_loader
from .sampler import EvalBatches, TrainBatches, epoch_order, steps_per_epoch
from .shards import TarShards
from .source import ImageSource
from .synthetic import SHAPES, SyntheticShapes, rendered_side
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    RandomResizedCrop,
    ResizeCenterCrop,
    default_mean_std,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPES",
    "SYNTHETIC",
    "DataWarning",
    "EvalBatches",
    "ImageFolder",
    "ImageSource",
    "KeyedImages",
    "Normalize",
    "RandomResizedCrop",
    "ResizeCenterCrop",
    "SyntheticShapes",
    "rendered_side",
    "TarShards",
    "TrainBatches",
    "build_source",
    "decode_image",
    "check_image_sizes",
    "default_mean_std",
    "epoch_order",
    "image_extensions",
    "make_loader",
    "steps_per_epoch",
]
