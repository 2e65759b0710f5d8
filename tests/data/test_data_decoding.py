"""One decoding for every command: training, evaluation and visualization see the same pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from mae.data import ImageFolder, KeyedImages, RandomResizedCrop, ResizeCenterCrop
from mae.data.preprocess import read_image

SIZE = 16


def views(path, channels=3):
    """uint8 [C, H, W] as training (full-area crop, no flip), evaluation and visualization see it."""
    folder = ImageFolder(path.parent)
    train = KeyedImages(folder, RandomResizedCrop(SIZE, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0,
                                                  channels=channels))[0][0]
    evaluation = KeyedImages(folder, ResizeCenterCrop(SIZE, 1.0, channels))[0][0]
    shown = (read_image(path, (SIZE, SIZE), channels) * 255).round().to(torch.uint8)
    return {"train": train, "eval": evaluation, "visualize": shown}


def test_16_bit_grey_maps_its_full_range(tmp_path):
    path = tmp_path / "a" / "half.png"
    path.parent.mkdir()
    Image.fromarray(np.full((SIZE, SIZE), 32768, np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    for name, x in views(path).items():
        assert torch.all(x == 128), name  # 32768 / 65535 of white: mid-grey, not white


def test_float_images_map_0_to_1_onto_the_8_bit_range(tmp_path):
    path = tmp_path / "a" / "quarter.tif"
    path.parent.mkdir()
    Image.fromarray(np.full((SIZE, SIZE), 0.25, np.float32)).save(path)
    assert Image.open(path).mode == "F"
    for name, x in views(path, channels=1).items():
        assert torch.all(x == 64), name


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_onto_white_everywhere(tmp_path, mode):
    path = tmp_path / "a" / "clear.png"
    path.parent.mkdir()
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    if mode == "P":
        img = Image.new("P", (SIZE, SIZE), 0)
        img.putpalette([0, 0, 0] * 256)
        img.info["transparency"] = 0
        img.save(path, transparency=0)
    else:
        img.convert(mode).save(path)
    for name, x in views(path).items():
        assert torch.all(x == 255), name  # a transparent logo background is white, never black


@pytest.mark.parametrize("orientation, transpose", [
    (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270), (3, Image.Transpose.ROTATE_180),
])
def test_exif_orientation_is_applied_everywhere(tmp_path, orientation, transpose):
    # shown upright: red top half, blue bottom half; stored turned, with the EXIF tag saying how
    upright = np.zeros((SIZE, SIZE, 3), np.uint8)
    upright[: SIZE // 2] = (255, 0, 0)
    upright[SIZE // 2:] = (0, 0, 255)
    stored = Image.fromarray(upright).transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a" / "phone.png"
    path.parent.mkdir()
    stored.save(path, exif=exif)
    for name, x in views(path).items():
        top, bottom = x[:, 2, SIZE // 2].tolist(), x[:, -3, SIZE // 2].tolist()
        assert top[0] > 200 and top[2] < 50, (name, top)
        assert bottom[2] > 200 and bottom[0] < 50, (name, bottom)


def test_a_turned_jpeg_is_cropped_in_its_upright_frame(tmp_path):
    # 64 wide x 32 high as stored, tall as shown: the crop box must follow the shown frame
    shown = np.zeros((64, 32, 3), np.uint8)
    shown[:32] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "a" / "phone.jpg"
    path.parent.mkdir()
    Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    folder = ImageFolder(path.parent)
    x = KeyedImages(folder, ResizeCenterCrop(8, 1.0))[0][0]  # the centred 32x32 square: half white
    assert x[:, 1].float().mean() > 200 and x[:, -2].float().mean() < 50
