"""`mae visualize`: reconstruction grids from image files, for every checkpoint with a decoder."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mae
from mae.cli import main
from mae.data.preprocess import read_image, resize_and_crop
from mae.engine import PretrainConfig, pretrain
from mae.models import patchify
from mae.util.text import plural
from mae.viz import IMAGENET_MEAN, IMAGENET_STD, visualize
from mae.weights.export import export_model

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


def write_image(path, pixels: np.ndarray):
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two 32x32 RGB images (the model's size: no resampling) with pixels in [0.4, 0.6]."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    return [write_image(folder / f"{i}.png", rng.integers(102, 154, size=(32, 32, 3))) for i in range(2)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **TINY, norm_pix_loss=True).eval()


def test_visible_patches_are_the_input_exactly(model, images):
    rec = visualize(model, images, mask_ratio=0.75, seed=3)
    pixels = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in images])  # [N, H, W, C]
    np.testing.assert_allclose(rec.original, pixels, atol=1e-6, rtol=0)
    assert rec.mask.shape == (2, 16) and rec.mask.sum(axis=1).tolist() == [12, 12]
    removed = np.kron(rec.mask.reshape(2, 4, 4), np.ones((8, 8)))[..., None].repeat(3, -1) == 1
    assert np.array_equal(rec.pasted[~removed], rec.original[~removed])  # bit-exact
    assert np.array_equal(rec.pasted[removed], rec.reconstruction[removed])
    assert np.all(rec.masked[removed] == 0.5)


def test_norm_pix_predictions_take_each_patch_statistics(model, images):
    """A decoder predicting one normalised patch everywhere: mapped back, each removed patch
    has its input patch's mean and standard deviation."""
    standard = torch.linspace(-1, 1, 8 * 8 * 3)
    standard = (standard - standard.mean()) / standard.std()  # mean 0, unbiased std 1
    decoder = mae.create_model("mae_vit_tiny_patch16", **TINY, norm_pix_loss=True).eval()
    decoder.load_state_dict(model.state_dict())
    with torch.no_grad():
        decoder.decoder_pred.weight.zero_()
        decoder.decoder_pred.bias.copy_(standard)
    rec = visualize(decoder, images, mask_ratio=0.75, seed=0)

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def normalised_patches(display):  # [N, H, W, C] in [0, 1] -> [N, L, p*p*C] as the model sees them
        return patchify((torch.from_numpy(display).permute(0, 3, 1, 2) - mean) / std, 8)

    recon, source = normalised_patches(rec.reconstruction), normalised_patches(rec.original)
    assert 0 < rec.reconstruction.min() and rec.reconstruction.max() < 1  # nothing clipped
    removed = torch.from_numpy(rec.mask) == 1
    torch.testing.assert_close(recon.mean(-1)[removed], source.mean(-1)[removed], atol=1e-5, rtol=0)
    torch.testing.assert_close(recon.var(-1)[removed], source.var(-1)[removed] + 1e-6, atol=1e-5, rtol=1e-4)


def test_masks_follow_seed_and_image_index_only(model, images):
    both = visualize(model, images, seed=5).mask
    first = visualize(model, images[:1], seed=5).mask
    second = visualize(model, images[1:], seed=5).mask
    assert np.array_equal(both[0], first[0])
    assert not np.array_equal(both[1], second[0])  # the second image keeps its own index's mask
    assert not np.array_equal(visualize(model, images[:1], seed=6).mask[0], first[0])


def official_full(model, path):
    args = argparse.Namespace(model="mae_vit_custom", input_size=32, norm_pix_loss=True)
    torch.save({"model": model.state_dict(), "args": args, "epoch": 1}, path)
    return ["--num-heads", "4", "--decoder-num-heads", "4"]


@pytest.mark.parametrize("source", ["ours", "run-directory", "official", "hugging-face"])
def test_cli_writes_the_grid_for_every_checkpoint_kind(tmp_path, model, images, source, capsys):
    extra = []
    if source == "ours":
        checkpoint = tmp_path / "model.safetensors"
        mae.save_model(model, checkpoint)
    elif source == "run-directory":
        checkpoint = tmp_path / "run"
        mae.save_model(model, checkpoint / "checkpoints" / "ckpt-000000001" / "model.safetensors")
    elif source == "official":
        checkpoint = tmp_path / "checkpoint-799.pth"
        extra = official_full(model, checkpoint)
    else:
        checkpoint = tmp_path / "hf"
        export_model(model, checkpoint, "hf")
    out = tmp_path / "grid.png"
    argv = ["visualize", "--checkpoint", str(checkpoint), *map(str, images), "--out", str(out), *extra]
    assert main(argv) == 0
    assert "norm-pix predictions mapped back" in capsys.readouterr().out
    with Image.open(out) as png:
        assert png.format == "PNG" and png.height > 200 and png.width > 4 * 100
    # the arrays behind the picture match the model's own output for that noise
    rec = visualize(checkpoint, images, seed=0, num_heads=4, decoder_num_heads=4)
    reference = visualize(model, images, seed=0)
    np.testing.assert_allclose(rec.reconstruction, reference.reconstruction, atol=1e-5, rtol=0)


def test_encoder_only_checkpoint_says_the_decoder_is_needed(tmp_path, model, images, capsys):
    export_model(model, tmp_path / "encoder.pth", "official", encoder_only=True)
    assert main(["visualize", "--checkpoint", str(tmp_path / "encoder.pth"), str(images[0])]) == 2
    err = capsys.readouterr().err
    assert "encoder only" in err and "reconstructions need the MAE decoder" in err


def test_bad_inputs_get_clear_messages(tmp_path, model, images):
    path = tmp_path / "model.safetensors"
    mae.save_model(model, path)
    (tmp_path / "text.png").write_text("not an image")
    write_image(tmp_path / "tiny.png", np.zeros((4, 6, 3)))
    cases = [
        ([tmp_path / "missing.png"], "image .*missing.png does not exist", {}),
        ([tmp_path / "text.png"], "cannot read image .*text.png", {}),
        ([tmp_path / "tiny.png"], "tiny.png is 6x4 pixels, smaller than one 8x8 patch", {}),
        (images, r"mask_ratio must be in \[0, 1\)", {"mask_ratio": 1.0}),
    ]
    for paths, message, kwargs in cases:
        with pytest.raises(ValueError, match=message):
            visualize(path, paths, **kwargs)
    torch.save({"model": {"encoder.conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="unknown checkpoint layout .*mmpretrain"):
        visualize(tmp_path / "other.pth", images)


def test_images_are_resized_to_cover_then_centre_cropped(tmp_path):
    pixels = np.zeros((32, 64, 3))  # 64 wide, 32 high: black quarters left and right
    pixels[:, 16:48] = 255
    wide = write_image(tmp_path / "wide.png", pixels)
    square = read_image(wide, (32, 32))
    assert square.shape == (3, 32, 32) and torch.all(square == 1.0)  # only the white middle is kept
    grey = read_image(wide, (16, 16), in_chans=1)  # scaled by 1/2 first, then cropped
    assert grey.shape == (1, 16, 16) and torch.all(grey[:, :, 2:-2] == 1.0)
    tall = read_image(wide, (32, 8))  # covers 32 high: the 64-wide image keeps its scale
    assert tall.shape == (3, 32, 8) and torch.all(tall == 1.0)


def test_an_rgb_jpeg_is_decoded_before_its_file_closes(tmp_path):
    # a JPEG that needs no conversion used to come back still lazy, its file already closed
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(40, 48, 3)).astype(np.uint8)).save(path)
    with Image.open(path) as photo:
        expected = np.asarray(resize_and_crop(photo.convert("RGB"), (32, 32)), dtype=np.float32) / 255.0
    pixels = read_image(path, (32, 32))
    assert torch.equal(pixels, torch.from_numpy(expected).permute(2, 0, 1))


def test_a_folder_of_images_and_other_picture_formats(tmp_path, model, images, capsys):
    checkpoint = tmp_path / "model.safetensors"
    mae.save_model(model, checkpoint)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(images):
        (folder / ("sub" if i else "") / f"{i}{image.suffix}").write_bytes(image.read_bytes())
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "grid.jpg"
    assert main(["visualize", "--checkpoint", str(checkpoint), str(folder), "--out", str(out)]) == 0
    assert f"{len(images)} images" in capsys.readouterr().out
    with Image.open(out) as picture:
        assert picture.format == "JPEG"
    assert main(["visualize", "--checkpoint", str(checkpoint), str(images[0]), "--out", str(tmp_path / "g.xyz")]) == 2
    assert "unknown picture format 'xyz'; use one of" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["visualize", "--checkpoint", str(checkpoint), str(tmp_path / "empty")]) == 2
    assert "holds no image files" in capsys.readouterr().err


def test_the_command_line_says_what_a_feature_target_grid_shows(tmp_path, images, capsys):
    torch.manual_seed(0)
    hog = mae.create_model("mae_vit_tiny_patch16", **TINY, target="hog")
    checkpoint = tmp_path / "hog.safetensors"
    mae.save_model(hog, checkpoint)
    assert main(["visualize", "--checkpoint", str(checkpoint), str(images[0]), "--out", str(tmp_path / "g.png")]) == 0
    line = capsys.readouterr().out
    assert ": 1 image, random mask" in line
    assert "predicts hog features, not pixels: the grid shows the masked input only" in line


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved: (file name, title, (x label, y label) of each panel shown)."""
    import matplotlib.figure

    saved, real = [], matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):
        labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.axison]
        saved.append((Path(path).name, fig._suptitle.get_text() if fig._suptitle else "", labels))
        return real(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return saved


def test_a_run_of_one_epoch_says_1_epoch_and_its_loss_curves_label_both_axes(tmp_path, drawn, one_thread):
    pretrain(PretrainConfig(model="mae_vit_tiny_patch16", **TINY, synthetic_size=32, batch_size=32, epochs=1,
                            warmup_epochs=0, num_workers=0, preview_images=1, output_dir=str(tmp_path / "run")))
    pictures = {name: (title, labels) for name, title, labels in drawn}
    assert ": after 1 step (1 epoch)\n" in pictures["reconstruction.png"][0]
    assert pictures["loss.png"][1] == [("optimizer step", "training loss"), ("optimizer step", "learning rate")]


def test_plural_counts():
    assert [plural(n, "epoch") for n in (1, 2, 1.0, 0.5, 2 / 3, 1600.0)] == [
        "1 epoch", "2 epochs", "1 epoch", "0.5 epochs", "0.667 epochs", "1600 epochs"]
