"""Datasets (image folder, tar shards, built-in synthetic), transforms, samplers, loader.

    source = build_source("path/to/images")               # or None: the built-in dataset
    data = KeyedImages(source, RandomResizedCrop(224), seed=0)
    loader = make_loader(data, TrainBatches(len(source), 64, epochs=800), num_workers=8)
    for imgs, labels in loader: ...                         # uint8 [N, 3, 224, 224], int64 [N]
"""

from ..util.lazy import lazy_exports

_EXPORTS = {
    "DataWarning": ".images",
    "EvalBatches": ".sampler",
    "IMAGENET_MEAN": ".transforms",
    "IMAGENET_STD": ".transforms",
    "ImageFolder": ".folder",
    "ImageSource": ".source",
    "KeyedImages": ".loader",
    "Normalize": ".transforms",
    "RandomResizedCrop": ".transforms",
    "ResizeCenterCrop": ".transforms",
    "SHAPES": ".synthetic",
    "SYNTHETIC": ".loader",
    "SyntheticShapes": ".synthetic",
    "TarShards": ".shards",
    "TrainBatches": ".sampler",
    "build_source": ".loader",
    "check_image_sizes": ".loader",
    "decode_image": ".images",
    "default_mean_std": ".transforms",
    "epoch_order": ".sampler",
    "image_extensions": ".images",
    "make_loader": ".loader",
    "rendered_side": ".synthetic",
    "steps_per_epoch": ".sampler",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
