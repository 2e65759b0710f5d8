import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mae
from helpers import TINY
from mae.models.masking import BLOCK_ASPECT, block_mask, random_masking, shape_noise
from mae.models.options import num_kept


def _mask(mask_type, noise, grid, ratio):
    x = torch.zeros(noise.shape[0], noise.shape[1], 1)
    return random_masking(x, ratio, noise, mask_type, grid)[1]  # [N, L], 1 = removed


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 14), cols=st.integers(1, 14), ratio=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1))
def test_block_masks_remove_exactly_the_official_count_as_a_union_of_bounded_blocks(rows, cols, ratio, seed):
    length = rows * cols
    removed = length - num_kept(length, ratio)
    mask, blocks = block_mask((rows, cols), removed, np.random.default_rng(seed))
    assert mask.sum() == removed
    union = np.zeros_like(mask)
    for top, left, h, w in blocks:
        assert BLOCK_ASPECT[0] <= h / w <= BLOCK_ASPECT[1]
        assert 0 <= top and top + h <= rows and 0 <= left and left + w <= cols
        union[top: top + h, left: left + w] = True
    assert np.array_equal(union, mask)


def test_block_masks_are_mostly_large_blocks_not_scattered_patches():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask, blocks = block_mask((14, 14), 147, rng)  # ViT-B at 75%
        big = [b for b in blocks if b[2] * b[3] >= 16]
        covered = np.zeros_like(mask)
        for top, left, h, w in big:
            covered[top: top + h, left: left + w] = True
        assert covered.sum() >= 0.8 * 147


@pytest.mark.parametrize("mask_type", ["random", "block", "grid"])
def test_counts_and_determinism_from_the_noise(mask_type):
    noise = torch.rand(6, 64, generator=torch.Generator().manual_seed(3))
    a = _mask(mask_type, noise, (8, 8), 0.75)
    b = _mask(mask_type, noise.clone(), (8, 8), 0.75)
    assert torch.equal(a, b)
    assert torch.all(a.sum(dim=1) == 64 - num_kept(64, 0.75))
    other = _mask(mask_type, torch.rand(6, 64, generator=torch.Generator().manual_seed(4)), (8, 8), 0.75)
    assert not torch.equal(a, other)
    if mask_type != "grid":  # grid masks take one of four offsets: rows may repeat
        assert len({tuple(m.tolist()) for m in a}) == 6


def test_each_row_is_shaped_alone_so_a_micro_batch_sees_its_rows_of_the_global_mask():
    noise = torch.rand(8, 36)
    whole = shape_noise("block", noise, (6, 6), 0.6)
    assert torch.equal(whole[4:], shape_noise("block", noise[4:], (6, 6), 0.6))


def test_grid_masks_keep_one_patch_of_every_2x2_at_the_offset_of_the_smallest_noise():
    noise = torch.rand(5, 48)
    noise[:, [0, 1, 8, 9]] = torch.tensor([0.5, 0.5, 0.5, 0.5])
    for row, offset in enumerate([0, 1, 8, 9, 1]):  # (0,0), (0,1), (1,0), (1,1)
        noise[row, offset] = 0.01
    kept = 1 - _mask("grid", noise, (6, 8), 0.75).view(5, 6, 8)
    for row, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1), (0, 1)]):
        expected = torch.zeros(6, 8)
        expected[dy::2, dx::2] = 1
        assert torch.equal(kept[row], expected)


def test_shaped_noise_keeps_the_uniform_noise_order_among_kept_patches():
    noise = torch.rand(2, 16)
    shaped = shape_noise("block", noise, (4, 4), 0.5)
    kept = shaped < 1
    assert torch.equal(shaped[kept], noise[kept]) and torch.equal(shaped[~kept], noise[~kept] + 1)


@pytest.mark.parametrize("mask_type, ratio, grid, message", [
    ("grid", 0.5, (8, 8), "mask_ratio must be 0.75"),
    ("grid", 0.75, (7, 8), "even patch grid"),
    ("blocks", 0.75, (8, 8), "mask_type must be one of random, block, grid"),
])
def test_refusals(mask_type, ratio, grid, message):
    with pytest.raises(ValueError, match=message):
        shape_noise(mask_type, torch.rand(1, grid[0] * grid[1]), grid, ratio)


@pytest.mark.parametrize("mask_type", ["block", "grid"])
def test_the_model_masks_as_asked_per_call(mask_type):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **dict(TINY, img_size=64, patch_size=8))
    imgs = torch.randn(3, 3, 64, 64)
    noise = torch.rand(3, 64)
    out = model(imgs, mask_ratio=0.75, noise=noise, mask_type=mask_type)
    assert torch.equal(out.mask, _mask(mask_type, noise, (8, 8), 0.75))
    # the shaped noise given as plain noise draws the same mask: how the training loop uses it
    again = model(imgs, mask_ratio=0.75, noise=shape_noise(mask_type, noise, (8, 8), 0.75))
    assert torch.equal(again.mask, out.mask) and torch.allclose(again.loss, out.loss)
    assert model(imgs, mask_ratio=0.75, mask_type=mask_type).mask.sum(dim=1).tolist() == [48] * 3


def test_pretraining_masks_each_step_from_its_seed_and_step_and_pictures_the_same_kind(tmp_path, monkeypatch):
    from mae.engine import PretrainConfig, pretrain
    from mae.models import MaskedAutoencoder
    from mae.util.seeding import mask_noise

    seen = []
    original = MaskedAutoencoder.forward_encoder

    def recording(self, imgs, mask_ratio, noise=None, mask_type="random"):
        latent, mask, ids_restore = original(self, imgs, mask_ratio, noise, mask_type)
        seen.append(mask.clone())
        return latent, mask, ids_restore

    monkeypatch.setattr(MaskedAutoencoder, "forward_encoder", recording)
    config = PretrainConfig(**dict(model="mae_vit_tiny_patch16", **TINY), mask_type="grid", synthetic_size=32,
                            epochs=1, warmup_epochs=0, batch_size=16, num_workers=0, preview_images=2,
                            output_dir=str(tmp_path / "run"), seed=5,
                            compile=False)  # the compile decision's timed passes would be seen too
    pretrain(config)
    assert len(seen) == 3  # two steps, then the picture
    for step in (0, 1):
        expected = _mask("grid", mask_noise(5, step, 16, 16), (4, 4), 0.75)
        assert torch.equal(seen[step], expected)
    picture = seen[2].view(-1, 4, 4)
    assert all(int((1 - m)[:2, :2].sum()) == 1 and torch.equal(m, m.roll(2, 0)) for m in picture)
    assert (tmp_path / "run" / "reconstruction.png").exists()


def test_cli_refuses_a_grid_mask_at_another_ratio_before_training(tmp_path, capsys):
    from mae import cli

    code = cli.main(["pretrain", "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8",
                     "--mask-type", "grid", "--mask-ratio", "0.6", "--output-dir", str(tmp_path / "run")])
    assert code == 2
    assert "--mask-type grid: grid masking keeps one patch of every 2x2, so mask_ratio must be 0.75" \
        in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_visualize_pictures_the_mask_type(tmp_path, capsys):
    from PIL import Image

    from mae import cli
    from mae.weights.format import save_model

    torch.manual_seed(0)
    save_model(mae.create_model("mae_vit_tiny_patch16", **TINY), tmp_path / "m.safetensors")
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "a.png")
    rec = mae.visualize(tmp_path / "m.safetensors", [tmp_path / "a.png"], mask_type="block", mask_ratio=0.5)
    assert rec.mask.sum() == 8 and rec.mask_type == "block"
    assert cli.main(["visualize", "--checkpoint", str(tmp_path / "m.safetensors"), str(tmp_path / "a.png"),
                     "--mask-type", "grid", "--out", str(tmp_path / "g.png")]) == 0
    assert "grid mask, ratio 0.75" in capsys.readouterr().out and (tmp_path / "g.png").exists()
