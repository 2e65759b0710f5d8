"""Mixup / CutMix: which samples are mixed, how much, and the soft targets."""

import pytest
import torch
import torch.nn.functional as F

from mae.data.mixup import Mixup, mix_targets, smooth_one_hot, soft_target_cross_entropy

K = 6


def batch(n=5, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, K, (n,), generator=g)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def smoothed(labels, smoothing):
    """smooth(y) = (1 - s) one_hot(y) + s / K, written out."""
    return (1 - smoothing) * F.one_hot(labels, K).float() + smoothing / K


def test_mixup_blends_each_sample_with_its_mirror_and_targets_follow():
    x, y = batch()
    mix = Mixup(num_classes=K, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1)
    out, targets, lam = mix(x, y, gen(1))
    assert 0 < lam < 1
    n = len(x)
    for i in range(n):  # sample i is mixed with sample n-1-i
        torch.testing.assert_close(out[i], lam * x[i] + (1 - lam) * x[n - 1 - i])
        torch.testing.assert_close(targets[i], lam * smoothed(y[i], 0.1) + (1 - lam) * smoothed(y[n - 1 - i], 0.1))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(n))
    assert torch.equal(x, batch()[0])  # the input batch is not modified


def test_cutmix_pastes_one_box_from_the_mirror_sample_and_lam_is_the_area_kept():
    x, y = batch(n=4, size=20)
    mix = Mixup(num_classes=K, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    for seed in range(5):
        out, targets, lam = mix(x, y, gen(seed))
        n = len(x)
        from_mirror = (out == x.flip(0)) & (out != x)  # [N, C, H, W]
        assert torch.all((out == x) | (out == x.flip(0)))  # every pixel from one of the two
        # the same box for every sample and channel, a rectangle
        box = from_mirror[0, 0]
        assert torch.equal(from_mirror, box.expand_as(from_mirror))
        rows, cols = box.any(dim=1).nonzero()[:, 0], box.any(dim=0).nonzero()[:, 0]
        if len(rows):
            assert box.sum() == len(rows) * len(cols)
            assert box[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert lam == pytest.approx(1 - box.float().mean().item())
        expected = lam * F.one_hot(y, K).float() + (1 - lam) * F.one_hot(y.flip(0), K).float()
        torch.testing.assert_close(targets, expected)
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(n))


def test_switch_probability_picks_both_modes_and_prob_zero_never_mixes():
    x, y = batch()
    both = Mixup(num_classes=K)  # the recipe: mixup 0.8, cutmix 1.0, switch 0.5, smoothing 0.1
    modes = [both.sample(gen(seed))[1] for seed in range(200)]
    assert 60 < sum(modes) < 140  # cutmix about half the time
    never = Mixup(num_classes=K, prob=0.0)
    out, targets, lam = never(x, y, gen(0))
    assert lam == 1.0 and torch.equal(out, x)
    torch.testing.assert_close(targets, smoothed(y, 0.1))


def test_the_generator_alone_decides_the_mixing():
    x, y = batch()
    mix = Mixup(num_classes=K)
    a, b = mix(x, y, gen(7)), mix(x, y, gen(7))
    assert torch.equal(a[0], b[0]) and a[2] == b[2]
    lams = {mix(x, y, gen(seed))[2] for seed in range(10)}
    assert len(lams) == 10


def test_smoothing_and_soft_target_cross_entropy_match_torch():
    labels = torch.tensor([0, 3, 5])
    targets = smooth_one_hot(labels, K, 0.1)
    assert targets[0, 0] == pytest.approx(1 - 0.1 + 0.1 / K) and targets[0, 1] == pytest.approx(0.1 / K)
    logits = torch.randn(3, K)
    torch.testing.assert_close(soft_target_cross_entropy(logits, targets),
                               F.cross_entropy(logits, labels, label_smoothing=0.1))
    torch.testing.assert_close(mix_targets(labels, K, 1.0, 0.1), targets)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        Mixup(num_classes=K, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="switch_prob must be in"):
        Mixup(num_classes=K, switch_prob=1.5)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        Mixup(num_classes=K)(torch.zeros(3, 3, 4, 4), torch.zeros(2, dtype=torch.long), gen(0))
