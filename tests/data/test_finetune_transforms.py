"""Fine-tuning augmentation and the eval transform: semantics of each step, and randomness."""

import pytest
import torch

from mae.data.finetune_transforms import RandAugment, random_erasing
from mae.data.transforms import IMAGENET_MEAN


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_images(n=6, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=gen(seed))








def test_rand_augment_draws_ops_per_image_with_the_op_probability():
    x = rand_images(n=64)
    out = RandAugment(num_ops=1, prob=0.5, ops=("invert",))(x, gen())
    inverted = torch.tensor([torch.allclose(o, 1 - i) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert torch.all(inverted ^ kept) and 16 < inverted.sum() < 48


def one_op(name, magnitude, x, std=0.0):
    return RandAugment(num_ops=1, prob=1.0, magnitude=magnitude, magnitude_std=std, ops=(name,))(x, gen())


def test_op_magnitudes_follow_timms_increasing_scales():
    x = rand_images()
    # posterize at 9 keeps 4 - int(3.6) = 1 bit: two levels
    levels = one_op("posterize", 9, x).unique()
    torch.testing.assert_close(levels, torch.tensor([0.0, 128 / 255]))
    # solarize: threshold 256 at 0 (nothing inverted), 0 at 10 (everything inverted)
    torch.testing.assert_close(one_op("solarize", 0, x), x)
    torch.testing.assert_close(one_op("solarize", 10, x), 1 - x)
    # solarize-add at 10 adds 110/255 below 128 only
    expected = torch.where(x < 128 / 255, (x + 110 / 255).clamp(max=1), x)
    torch.testing.assert_close(one_op("solarize_add", 10, x), expected)
    # brightness at 10 is a factor of 1.9 or 0.1
    out = one_op("brightness", 10, x)
    for o, i in zip(out, x):
        assert torch.allclose(o, (i * 1.9).clamp(max=1)) or torch.allclose(o, i * 0.1)
    torch.testing.assert_close(one_op("rotate", 0, x), x, atol=1e-5, rtol=0)


def test_translation_moves_by_45_percent_and_fills_with_the_mean_colour():
    x = rand_images(n=8, size=20)
    out = one_op("translate_x", 10, x)  # 0.45 * 20 = 9 pixels, either way
    fill = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    fill = fill.expand(3, 20, 9)
    for o, i in zip(out, x):
        left = torch.allclose(o[..., :11], i[..., 9:], atol=1e-5) and torch.allclose(o[..., 11:], fill, atol=1e-5)
        right = torch.allclose(o[..., 9:], i[..., :11], atol=1e-5) and torch.allclose(o[..., :9], fill, atol=1e-5)
        assert left or right


def test_random_erasing_puts_one_noise_box_in_each_chosen_image():
    x = torch.zeros(40, 3, 20, 20)
    out = random_erasing(x, gen(), p=1.0)
    for image in out:
        changed = (image != 0).any(dim=0)  # [H, W]
        rows, cols = changed.any(dim=1).nonzero()[:, 0], changed.any(dim=0).nonzero()[:, 0]
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert changed.sum() == h * w  # one rectangle
        assert 0.015 < h * w / 400 < 0.36  # area 2%-33% of the image, up to rounding
    assert 0.8 < out[out != 0].std() < 1.2  # N(0, 1) noise
    assert torch.equal(random_erasing(x, gen(), p=0.0), x)
    erased = (random_erasing(x, gen(3), p=0.25) != 0).flatten(1).any(dim=1)
    assert 2 <= erased.sum() <= 20




def test_bad_rand_augment_settings_are_refused():
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        RandAugment(ops=("cutout",))
    with pytest.raises(ValueError, match="magnitude in"):
        RandAugment(magnitude=11)
