"""Non-square images from the command line: `--img-size H W` (one number: a square) for every
command that builds a model from flags, in YAML too, saved in the run config and checked on resume."""

import argparse

import numpy as np
import pytest
from PIL import Image

import mae
from mae import cli
from mae.data.augmentations import FixedSizeCrop
from mae.data.transforms import RandomResizedCrop, ResizeCenterCrop
from mae.engine.config.base import make_config, read_yaml
from mae.engine.config.classifier import EvalConfig, FinetuneConfig, LinprobeConfig
from mae.engine.config.pretrain import PretrainConfig

PARSER = cli.build_parser(cli.available_commands())
SUBPARSERS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
ARCH = ["--model", "mae_vit_tiny_patch16", "--patch-size", "8", "--embed-dim", "64", "--depth", "2",
        "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "4"]
MACHINE = ["--num-workers", "0", "--threads", "1"]


@pytest.mark.parametrize("cls", [PretrainConfig, FinetuneConfig, LinprobeConfig, EvalConfig])
def test_one_number_is_a_square_two_are_height_and_width(cls):
    base = {"checkpoint": "x"} if cls is EvalConfig else {}
    sizes = [make_config(cls, {**base, "img_size": value}).img_size
             for value in (32, "32", (32,), [32, 32], [32, 48], ("48", "32"))]
    assert sizes == [32, 32, 32, 32, (32, 48), (48, 32)]
    with pytest.raises(ValueError, match=r"--img-size\) needs one number \(a square\) or two \(height width\)"):
        make_config(cls, {**base, "img_size": [32, 48, 64]})


def test_sides_not_divisible_by_the_patch_size_are_refused_naming_a_size_that_fits(capsys):
    assert cli.main(["pretrain", *ARCH, "--img-size", "32", "44", "--output-dir", "unused"]) == 2
    assert "--img-size 32 44 is not divisible by --patch-size 8; give multiples of 8 (e.g. --img-size 32 40)" \
        in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--img-size 100 is not divisible by --patch-size 16 \(the patch size "
                                         r"of mae_vit_base_patch16\).*--img-size 96\)"):
        PretrainConfig(img_size=100)


@pytest.mark.parametrize("command", ["pretrain", "finetune", "linprobe", "eval", "bench", "convert"])
def test_help_says_one_number_or_height_and_width(command):
    text = " ".join(SUBPARSERS[command].format_help().split())
    assert "--img-size SIZE [WIDTH]" in text and "one number (a square) or two (height width)" in text, text


@pytest.mark.parametrize("command", ["pretrain", "finetune", "linprobe", "eval", "bench", "convert"])
def test_a_third_number_is_refused_by_the_parser(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--img-size", "32", "48", "64"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"usage: mae {command}" in err, err
    assert "argument --img-size: takes one number (a square) or two (height width), got 3: 32 48 64" in err


@pytest.mark.parametrize("transform", [RandomResizedCrop((32, 48)), ResizeCenterCrop((32, 48)),
                                       ResizeCenterCrop((32, 48), 1.0), FixedSizeCrop((32, 48))])
def test_the_crops_come_out_height_by_width(transform):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert transform(img, np.random.default_rng(1)).shape == (3, 32, 48)


def test_the_centre_crop_of_a_wide_output_keeps_the_images_width():
    """A 40 x 80 image, a 32 x 64 output, the whole view: the image itself, resized (no squaring)."""
    rows = np.repeat(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], 40, axis=0).repeat(3, axis=2)
    out = ResizeCenterCrop((32, 64), 1.0)(Image.fromarray(rows)).numpy()
    assert out[0, :, 0].max() < 10 and out[0, :, -1].min() > 245  # both ends of the ramp are in view


def test_a_non_square_pretraining_run_end_to_end_then_resume_and_probe(tmp_path, capsys):
    out = tmp_path / "pre"
    run = ["pretrain", *ARCH, *MACHINE, "--synthetic-size", "16", "--batch-size", "8", "--preview-images", "2",
           "--output-dir", str(out)]
    assert cli.main([*run, "--img-size", "32", "48", "--epochs", "1"]) == 0
    assert read_yaml(out / "config.yaml")["img_size"] == [32, 48]
    model = mae.load_model(out)
    assert tuple(model.config["img_size"]) == (32, 48) and model.patch_embed.grid_size == (4, 6)
    assert (out / "reconstruction.png").is_file() and "32x48 px" in capsys.readouterr().err

    assert cli.main([*run, "--img-size", "32", "--epochs", "2", "--resume", "auto"]) == 2
    assert "--img-size 32 48 -> 32" in capsys.readouterr().err
    assert cli.main([*run, "--config", str(out / "config.yaml"), "--epochs", "2", "--resume", "auto"]) == 0

    probe = tmp_path / "probe"
    assert cli.main(["linprobe", "--checkpoint", str(out), *MACHINE, "--synthetic-size", "16",
                     "--synthetic-val-size", "8", "--epochs", "1", "--output-dir", str(probe)]) == 0
    assert tuple(mae.load_model(probe).config["img_size"]) == (32, 48)
    assert cli.main(["eval", "--checkpoint", str(probe), "--synthetic-val-size", "8", "--img-size", "48", "32",
                     "--threads", "1", "--num-workers", "0"]) == 0
