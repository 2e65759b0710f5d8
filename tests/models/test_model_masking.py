import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mae.models.masking import random_masking
from mae.models.options import num_kept


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6),
    length=st.integers(1, 70),
    ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_sample_keeps_exactly_the_official_count(n, length, ratio, seed):
    x = torch.randn(n, length, 3, generator=torch.Generator().manual_seed(seed))
    keep = int(length * (1 - ratio))
    if keep == 0:  # the encoder would see nothing
        with pytest.raises(ValueError, match="leaves no visible patch"):
            random_masking(x, ratio)
        return
    kept, mask, ids_restore = random_masking(x, ratio)
    assert kept.shape == (n, keep, 3)
    assert torch.all((mask == 0).sum(dim=1) == keep)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # ids_restore is a permutation per sample
    assert torch.equal(ids_restore.sort(dim=1).values, torch.arange(length).expand(n, -1))


def test_kept_tokens_are_those_with_smallest_noise_and_mask_marks_the_rest():
    x = torch.arange(10.0).view(1, 10, 1)
    noise = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.0]])
    kept, mask, ids_restore = random_masking(x, 0.6, noise)
    assert kept.flatten().tolist() == [9.0, 1.0, 3.0, 5.0]  # ascending noise order
    assert mask.flatten().tolist() == [1, 0, 1, 0, 1, 0, 1, 1, 1, 0]
    # un-shuffling the kept tokens followed by placeholders restores positions
    full = torch.cat([kept, torch.full((1, 6, 1), -1.0)], dim=1)
    restored = torch.gather(full, 1, ids_restore.unsqueeze(-1))
    visible = restored.flatten()[mask.flatten() == 0]
    assert visible.tolist() == [1.0, 3.0, 5.0, 9.0]


def test_masks_differ_between_samples_and_noise_reproduces_them():
    x = torch.randn(8, 196, 4)
    _, mask, _ = random_masking(x, 0.75)
    assert len({tuple(m.tolist()) for m in mask}) == 8
    noise = torch.rand(8, 196)
    _, a, _ = random_masking(x, 0.75, noise)
    _, b, _ = random_masking(x, 0.75, noise.clone())
    assert torch.equal(a, b)
    # and the mask ratio is what was asked for, on average and per sample
    assert mask.mean().item() == pytest.approx(1 - num_kept(196, 0.75) / 196)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_mask_ratio_out_of_range(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.randn(1, 4, 2), ratio)


def test_noise_of_wrong_shape():
    with pytest.raises(ValueError, match=r"noise must have shape \(N, L\) = \(2, 4\)"):
        random_masking(torch.randn(2, 4, 2), 0.5, torch.rand(2, 5))
