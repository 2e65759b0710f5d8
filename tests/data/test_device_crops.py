"""The batched random resized crop + flip + normalise on the device draws the CPU path's boxes and
flips, and its output equals the Pillow path's crop + resize within interpolation tolerance."""

import numpy as np
import pytest
import torch
from PIL import Image

import mae.data.transforms as transforms
from mae.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolder, KeyedImages, RandomResizedCrop, SyntheticShapes
from mae.data.device_crops import DeviceCrops, draw_crops
from mae.util.sizes import to_2tuple

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIZES = [(96, 96), (70, 50), (41, 120), (160, 133)]  # (width, height); crops down- and upscale
MEAN = torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, -1, 1, 1)


def pixels_of(normalised: torch.Tensor) -> torch.Tensor:
    return normalised.cpu() * STD * 255 + MEAN * 255


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """PNG images of the sizes above (no JPEG draft decoding on the CPU path: it decodes whole)."""
    root = tmp_path_factory.mktemp("images")
    shapes = SyntheticShapes(len(SIZES), 128, seed=7)
    for i, size in enumerate(SIZES):
        Image.fromarray(shapes.pixels(i)).resize(size, Image.BICUBIC).save(root / f"{i}.png")
    return ImageFolder(root)


def whole(source, i) -> torch.Tensor:
    with source.open(i) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()  # [3, H, W]


def test_the_boxes_are_those_the_cpu_path_crops(folder, monkeypatch):
    crop, keys = RandomResizedCrop(32), [(e, i) for e in (0, 3) for i in range(len(SIZES))]
    cropped = []
    real = transforms.decode_region
    monkeypatch.setattr(transforms, "decode_region", lambda img, box, *a: cropped.append(box) or real(img, box, *a))
    cpu = KeyedImages(folder, crop, seed=11)
    for key in keys:
        cpu[key]
    boxes, flips = draw_crops(crop, [folder.size_of(i) for _, i in keys], keys, seed=11)
    assert boxes.tolist() == [list(box) for box in cropped]
    assert len(set(map(tuple, boxes.tolist()))) == len(keys)  # distinct draws per (epoch, index)
    assert 0 < int(flips.sum()) < len(keys)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [40, (40, 56)])  # a square, and height x width
def test_differently_sized_images_crop_as_the_pillow_path(folder, device, size):
    crop, keys = RandomResizedCrop(size), [(2, i) for i in range(len(SIZES))]
    cpu = KeyedImages(folder, crop, seed=5)
    expected = torch.stack([cpu[key][0] for key in keys]).float()
    boxes, flips = draw_crops(crop, [folder.size_of(i) for _, i in keys], keys, seed=5)
    images = [whole(folder, i).to(device) for _, i in keys]
    out = DeviceCrops(crop, IMAGENET_MEAN, IMAGENET_STD)(images, boxes, flips)
    assert out.device.type == device and out.dtype == torch.float32 and out.shape == (len(keys), 3, *to_2tuple(size))
    diff = (pixels_of(out).round().clamp(0, 255) - expected).abs()
    assert diff.max() <= 3 and diff.mean() < 0.3, (diff.max(), diff.mean())


def test_a_same_size_uint8_batch_crops_as_the_pillow_path():
    source, crop = SyntheticShapes(12, 64, seed=3), RandomResizedCrop(24)
    keys = [(1, i) for i in range(12)]
    cpu = KeyedImages(source, crop, seed=9)
    expected = torch.stack([cpu[key][0] for key in keys]).float()
    batch = torch.stack([torch.from_numpy(source.pixels(i)).permute(2, 0, 1) for _, i in keys])  # [12, 3, 64, 64]
    boxes, flips = draw_crops(crop, [(64, 64)] * 12, keys, seed=9)
    out = DeviceCrops(crop, IMAGENET_MEAN, IMAGENET_STD)(batch, boxes, flips)
    diff = (pixels_of(out).round().clamp(0, 255) - expected).abs()
    assert diff.max() <= 2 and diff.mean() < 0.3, (diff.max(), diff.mean())


def test_a_flip_mirrors_the_crop():
    batch = torch.randint(0, 256, (3, 3, 50, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[5, 2, 60, 47], [0, 0, 70, 50], [20, 10, 41, 30]], dtype=torch.float64)
    crops = DeviceCrops(RandomResizedCrop(16), IMAGENET_MEAN, IMAGENET_STD)
    plain = crops(batch, boxes, torch.tensor([False, False, False]))
    mixed = crops(batch, boxes, torch.tensor([True, False, True]))
    assert torch.allclose(mixed[[0, 2]], plain[[0, 2]].flip(-1), atol=1e-5)
    assert torch.equal(mixed[1], plain[1])
    assert not torch.allclose(mixed[0], plain[0], atol=1e-2)


def test_normalisation_of_a_flat_image_is_the_mean_and_std_formula():
    value = torch.tensor([30, 128, 250], dtype=torch.uint8)
    batch = value.view(1, 3, 1, 1).expand(2, 3, 20, 30).contiguous()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = DeviceCrops(RandomResizedCrop(8), mean, std)(batch, torch.tensor([[3., 4., 23., 19.]] * 2),
                                                        torch.tensor([False, True]))
    expected = (value.float() / 255 - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-4)


def test_bad_batches_are_refused_with_what_was_expected():
    crops = DeviceCrops(RandomResizedCrop(8), IMAGENET_MEAN, IMAGENET_STD)
    box, flip = torch.tensor([[0., 0., 8., 8.]]), torch.tensor([False])
    with pytest.raises(ValueError, match="device crops take uint8 images .*got torch.float32"):
        crops(torch.zeros(1, 3, 8, 8), box, flip)
    with pytest.raises(ValueError, match=r"the same number of channels, got \[1, 3\]"):
        crops([torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(1, 8, 8, dtype=torch.uint8)], box.repeat(2, 1),
              flip.repeat(2))
