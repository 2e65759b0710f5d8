import numpy as np
import pytest
import torch

import mae
from helpers import TINY
from mae.models import patchify
from mae.models.targets import HOGTarget, get_target, register_target

skimage_feature = pytest.importorskip("skimage.feature")


def _reference_hog(image: np.ndarray, cell: int) -> np.ndarray:
    """scikit-image's HOG of one channel: 9 bins, cells of `cell` pixels, each L2-normalised."""
    return skimage_feature.hog(image, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(1, 1),
                               block_norm="L2", feature_vector=False).reshape(-1)


@pytest.mark.parametrize("patch, cell, values", [(16, 8, "normal"), (8, 8, "levels"), (16, 4, "levels")])
def test_hog_of_each_patch_and_channel_matches_scikit_image(patch, cell, values):
    rng = np.random.default_rng(patch + cell)
    shape = (2, 3, 2 * patch, 3 * patch)  # [N, C, H, W]: 6 patches per image
    # "levels": few grey levels, so many gradients fall exactly on bin edges (0, 45, 90 degrees)
    imgs = rng.standard_normal(shape) if values == "normal" else rng.integers(0, 4, shape).astype(float)
    target = HOGTarget(cell=cell if cell != patch else None)
    hog = target(patchify(torch.from_numpy(imgs), patch), patch, 3)  # [N, L, C * cells * 9]
    assert hog.shape == (2, 6, target.dim(patch, 3)) == (2, 6, 3 * (patch // cell) ** 2 * 9)
    for n in range(2):
        for index in range(6):
            row, col = divmod(index, 3)
            crop = imgs[n, :, row * patch:(row + 1) * patch, col * patch:(col + 1) * patch]
            expected = np.concatenate([_reference_hog(crop[c], cell) for c in range(3)])
            np.testing.assert_allclose(hog[n, index].numpy(), expected, atol=1e-6)


def test_hog_runs_batched_in_the_patches_dtype_and_refuses_cells_that_do_not_tile():
    patches = torch.rand(4, 7, 16 * 16 * 3)
    assert HOGTarget()(patches, 16, 3).shape == (4, 7, 108)  # MaskFeat's 2x2 cells x 9 bins x 3 channels
    assert HOGTarget()(patches[0], 16, 3).dtype == torch.float32
    with pytest.raises(ValueError, match="HOG cells of 6 pixels do not tile 16-pixel patches"):
        HOGTarget(cell=6).dim(16, 3)


def test_norm_pix_target_is_the_official_normalisation_and_the_flag_means_it():
    patches = torch.randn(2, 5, 48) * 3 + 1
    expected = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(get_target("norm_pix")(patches, 4, 3), expected)
    by_flag = mae.create_model("mae_vit_tiny_patch16", **TINY, norm_pix_loss=True)
    by_name = mae.create_model("mae_vit_tiny_patch16", **TINY, target="norm_pix")
    assert by_flag.config == by_name.config and by_name.norm_pix_loss
    with pytest.raises(ValueError, match="norm_pix_loss normalises pixel targets"):
        mae.create_model("mae_vit_tiny_patch16", **TINY, norm_pix_loss=True, target="hog")
    with pytest.raises(ValueError, match="target must be one of pixels, norm_pix, hog"):
        mae.create_model("mae_vit_tiny_patch16", **TINY, target="depth")


def test_a_hog_model_learns_its_target_saves_and_loads_and_pictures_its_masks(tmp_path):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY, target="hog")  # 8-pixel patches: 1 cell
    assert model.decoder_pred.out_features == 27
    imgs = torch.randn(4, 3, 32, 32)
    noise = torch.rand(4, 16)
    out = model(imgs, mask_ratio=0.5, noise=noise, return_pred=True)
    target = HOGTarget()(patchify(imgs, 8), 8, 3)
    removed = out.mask.bool()
    assert torch.allclose(out.loss, ((out.pred - target) ** 2).mean(-1)[removed].mean(), atol=1e-6)
    mae.save_model(model, tmp_path / "hog.safetensors")
    loaded = mae.load_model(tmp_path / "hog.safetensors")
    assert loaded.config["target"] == "hog"
    assert torch.allclose(loaded(imgs, mask_ratio=0.5, noise=noise).loss, out.loss)
    rec = mae.reconstruct(model, imgs, 0.5, noise)
    assert rec.reconstruction is None and len(rec.rows()[0]) == 2 and rec.mask.sum() == 32
    png = mae.viz.save_reconstruction_png(rec, tmp_path / "hog.png")
    assert png.stat().st_size > 0
    with pytest.raises(ValueError, match="export the encoder only"):
        mae.export_model(model, tmp_path / "hf", "hf")


def test_a_registered_target_is_built_by_name(monkeypatch):
    monkeypatch.setattr(mae.models.targets, "TARGETS", dict(mae.models.targets.TARGETS))  # forgotten after the test
    class MeanColour:
        pixels = False

        def dim(self, patch_size, in_chans):
            return in_chans

        def __call__(self, patches, patch_size, in_chans):
            return patches.unflatten(-1, (-1, in_chans)).mean(dim=-2)

    register_target("mean_colour", MeanColour())
    model = mae.create_model("mae_vit_tiny_patch16", **TINY, target="mean_colour")
    assert model.decoder_pred.out_features == 3
    assert model(torch.randn(2, 3, 32, 32)).loss.isfinite()
    with pytest.raises(ValueError, match="a target needs dim"):
        register_target("bad", lambda patches: patches)


def test_pretraining_with_the_hog_target(tmp_path):
    from mae.engine import PretrainConfig, pretrain

    config = PretrainConfig(**dict(model="mae_vit_tiny_patch16", **TINY), target="hog", synthetic_size=32,
                            epochs=1, warmup_epochs=0, batch_size=16, num_workers=0, preview_images=2,
                            output_dir=str(tmp_path / "run"))
    result = pretrain(config)
    assert result.step == 2 and mae.load_model(tmp_path / "run").config["target"] == "hog"
    with pytest.raises(ValueError, match="--target: norm_pix_loss normalises pixel targets"):
        PretrainConfig(target="hog", norm_pix_loss=True)
