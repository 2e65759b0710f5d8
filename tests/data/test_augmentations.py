import numpy as np
import pytest
import torch
from PIL import Image

from mae.data import RandomResizedCrop, ResizeCenterCrop
from mae.data.augmentations import FixedSizeCrop, JitteredCrop, pretrain_transform
from mae.data.options import AUGMENTATIONS


def _rng(seed):
    return np.random.default_rng(seed)


def _noise_image(width=256, height=240):
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_is_a_function_of_its_generator(name):
    transform = pretrain_transform(name, 32)
    img = _noise_image()
    a, b, c = (transform(img, _rng(seed)) for seed in (1, 1, 2))
    assert a.dtype == torch.uint8 and a.shape == (3, 32, 32)
    assert torch.equal(a, b)
    assert torch.equal(a, c) == (name == "none")  # only "none" ignores the generator


def test_none_is_the_whole_image_and_the_names_build_their_transforms():
    img = _noise_image()
    assert torch.equal(pretrain_transform("none", 32)(img, _rng(0)), ResizeCenterCrop(32, 1.0)(img))
    assert type(pretrain_transform("rrc", 32)) is RandomResizedCrop
    assert isinstance(pretrain_transform("rrc_jitter", 32), JitteredCrop)
    with pytest.raises(ValueError, match="augmentation must be one of none, crop, rrc, rrc_jitter"):
        pretrain_transform("mixup", 32)


def test_the_fixed_size_crop_is_an_unscaled_window_of_seven_eighths_of_the_shorter_side():
    img = _noise_image(72, 64)
    pixels = np.asarray(img).transpose(2, 0, 1)
    for seed in range(6):
        out = FixedSizeCrop(56)(img, _rng(seed)).numpy()
        views = [pixels[:, top:top + 56, left:left + 56] for top in range(9) for left in range(17)]
        assert sum(np.array_equal(out, v) or np.array_equal(out, v[:, :, ::-1]) for v in views) == 1


def test_jitter_changes_colours_within_its_bounds_but_not_the_crop():
    img = Image.new("RGB", (64, 64), (100, 150, 200))
    plain = RandomResizedCrop(16)(img, _rng(3)).float()
    jittered = JitteredCrop(16)(img, _rng(3)).float()
    assert torch.all(plain == plain[:, :1, :1])  # a flat colour stays flat: the crop cannot show
    assert torch.all(jittered == jittered[:, :1, :1])
    assert not torch.equal(plain, jittered)
    assert torch.all(jittered <= 255) and (jittered.mean() / plain.mean()).item() == pytest.approx(1, abs=0.5)
    gray = JitteredCrop(16, channels=1)(img.convert("L"), _rng(3))
    assert gray.shape == (1, 16, 16)


def test_pretraining_with_an_augmentation_and_its_refusal(tmp_path):
    from helpers import TINY
    from mae.engine import PretrainConfig, pretrain

    result = pretrain(PretrainConfig(model="mae_vit_tiny_patch16", **TINY, augmentation="rrc_jitter",
                                     synthetic_size=32, epochs=1, warmup_epochs=0, batch_size=32, num_workers=0,
                                     preview_images=1, output_dir=str(tmp_path / "run")))
    assert result.step == 1
    with pytest.raises(ValueError, match="--augmentation must be one of none, crop, rrc, rrc_jitter"):
        PretrainConfig(augmentation="jitter")
