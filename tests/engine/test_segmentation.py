"""Segmentation transfer: dense features, the pyramid and heads, masks of the built-in data, metrics
as mmsegmentation computes them, sliding windows, the schedule, and `mae segment` end to end."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mae.cli import main
from mae.data.segmentation import SYNTHETIC_CLASSES, SegmentationFolder, SegmentationSamples, SyntheticSegmentation
from mae.data.synthetic import SHAPES, render, render_with_mask
from mae.engine.eval.segmentation import SegmentationMetrics
from mae.engine.loops.segment import segmenter_param_groups, slide_logits
from mae.engine.optim.schedules import poly_lr
from mae.models.segmentation import Segmenter, SimpleFeaturePyramid
from mae.models.vit import VisionTransformer

ARCH = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4)


def test_forward_dense_is_the_patch_tokens_on_their_grid_for_any_size(one_thread):
    torch.manual_seed(0)
    vit = VisionTransformer(**ARCH).eval()
    imgs = torch.randn(2, 3, 40, 56)  # not the built 32 x 32, not square
    with torch.no_grad():
        dense, tokens = vit.forward_dense(imgs), vit.forward_features(imgs)
    assert dense.shape == (2, 64, 5, 7)
    assert torch.equal(dense[:, :, 3, 4], tokens[:, 1 + 3 * 7 + 4])
    with pytest.raises(ValueError, match="divisible"):
        vit.forward_dense(torch.randn(1, 3, 36, 32))


def test_pyramid_has_four_scales_and_segmenters_predict_every_pixel(one_thread):
    maps = SimpleFeaturePyramid(64, 16)(torch.randn(2, 64, 5, 7))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 20, 28), (2, 16, 10, 14), (2, 16, 5, 7), (2, 16, 2, 3)]
    torch.manual_seed(0)
    for head in ("linear", "upernet"):
        model = Segmenter(VisionTransformer(**ARCH), num_classes=5, head=head, channels=16).eval()
        assert model(torch.randn(2, 3, 40, 56)).shape == (2, 5, 40, 56)


def test_builtin_masks_mark_the_shape_with_its_class():
    for index in range(16):
        image, mask, label = render_with_mask(3, index, 48)
        assert np.array_equal(image, render(3, index, 48)[0]) and label == index % len(SHAPES)
        assert set(np.unique(mask)) == {0, 1 + label}
        assert 0.03 < (mask > 0).mean() < 0.6
    assert SYNTHETIC_CLASSES[0] == "background" and SYNTHETIC_CLASSES[1:] == SHAPES


def test_training_samples_are_seeded_crops_with_ignored_padding():
    samples = SegmentationSamples(SyntheticSegmentation(4, 32, 0), crop=32, num_classes=9, ignore_index=255, seed=1)
    image, mask = samples[(0, 2)]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and mask.shape == (32, 32)
    again = samples[(0, 2)]
    assert torch.equal(image, again[0]) and torch.equal(mask, again[1])
    values = set()
    for epoch in range(12):
        values |= set(samples[(epoch, 2)][1].unique().tolist())
    assert values <= {0, 1 + 2 % 8, 255} and 255 in values  # a downscale leaves padding, ignored


def test_metrics_follow_mmsegmentation():
    metrics = SegmentationMetrics(num_classes=4, ignore_index=255)
    metrics.update(torch.tensor([[0, 1, 1], [1, 0, 0]]), torch.tensor([[0, 0, 1], [1, 255, 2]]))
    result = metrics.result()
    # class 0: intersect 1, union 2 + 2 - 1; class 1: 2, 3 + 2 - 2; class 2: 0, 0 + 1; class 3 absent
    assert result["per_class"]["0"]["IoU"] == pytest.approx(100 / 3)
    assert result["per_class"]["1"]["IoU"] == pytest.approx(200 / 3)
    assert result["per_class"]["2"]["IoU"] == 0 and result["per_class"]["3"]["IoU"] is None
    assert result["mIoU"] == pytest.approx(100 / 3)  # (1/3 + 2/3 + 0) / 3
    assert result["mAcc"] == pytest.approx(50.0)  # (1/2 + 1 + 0) / 3
    assert result["aAcc"] == pytest.approx(60.0)  # 3 of 5 labelled pixels


def test_sliding_windows_equal_the_whole_image_for_a_per_pixel_model():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 1)  # each pixel on its own: windows must not change the answer
    for height, width in ((40, 56), (10, 12)):  # larger and smaller than the window
        image = torch.randn(1, 3, height, width)
        with torch.no_grad():
            assert torch.allclose(slide_logits(model, image, crop=16, stride=10, num_classes=4), model(image),
                                  atol=1e-6)


def test_poly_schedule_and_layer_decay_groups():
    assert poly_lr(0, 100, 1e-3, 0.0, 10, 1.0) == pytest.approx(1e-4)
    assert poly_lr(9, 100, 1e-3, 0.0, 10, 1.0) == pytest.approx(1e-3)
    assert poly_lr(55, 100, 1e-3, 0.0, 10, 1.0) == pytest.approx(0.5e-3)
    assert poly_lr(100, 100, 1e-3, 1e-5, 10, 2.0) == pytest.approx(1e-5)
    model = Segmenter(VisionTransformer(**ARCH), num_classes=3, head="linear")
    groups = segmenter_param_groups(model, 0.05, 0.65)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(model.encoder.patch_embed.proj.weight)] == pytest.approx(0.65 ** 3)
    assert scale[id(model.encoder.blocks[1].mlp.fc1.weight)] == pytest.approx(0.65)
    assert scale[id(model.head.classify.weight)] == 1.0
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(scale) == trainable


def ade_folder(root, pairs=3):
    """An ADE20K-layout folder from built-in pairs, mask values shifted up by one (0 = other)."""
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(pairs):
            image, mask, _ = render_with_mask(7 if split == "training" else 8, i, 40)
            Image.fromarray(image).save(root / "images" / split / f"x{i}.jpg")
            Image.fromarray(mask + 1).save(root / "annotations" / split / f"x{i}.png")
    return root


def turned_pair(root, mask_frame, turn=6):
    """One validation pair whose image is stored turned (EXIF orientation `turn`), shown 48 wide and 32
    high: red left (class 1), blue right (class 2); the mask drawn on the picture `shown` or as `stored`."""
    shown = np.zeros((32, 48, 3), np.uint8)
    shown[:, :24], shown[:, 24:] = (255, 0, 0), (0, 0, 255)
    mask = np.where(np.arange(48) < 24, 1, 2).astype(np.uint8)[None].repeat(32, 0)
    stored = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180}[turn]
    exif = Image.Exif()
    exif[0x0112] = turn
    Image.fromarray(shown).transpose(stored).save(root / "images" / "validation" / "phone.png", exif=exif)
    mask = Image.fromarray(mask)
    (mask.transpose(stored) if mask_frame == "stored" else mask).save(root / "annotations" / "validation" / "phone.png")


@pytest.mark.parametrize("mask_frame", ["shown", "stored"])
def test_a_turned_image_comes_upright_with_its_mask_in_the_same_frame(tmp_path, mask_frame):
    data = ade_folder(tmp_path / "ade", pairs=1)
    turned_pair(data, mask_frame)
    pairs = SegmentationFolder(data, "validation")
    image, mask = pairs.pair(pairs.stems.index("phone"))
    pixels = np.asarray(image)
    assert pixels.shape == (32, 48, 3) and mask.shape == (32, 48)
    assert np.all(pixels[mask == 1] == (255, 0, 0)) and np.all(pixels[mask == 2] == (0, 0, 255))
    assert (mask == 1).sum() == (mask == 2).sum() == 32 * 24


RUN = ["--iters", "3", "--batch-size", "2", "--warmup-iters", "1", "--head-channels", "16", "--num-workers", "0",
       "--threads", "1", "--log-every", "1"]


def test_segment_runs_end_to_end_and_is_deterministic(encoder, tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["segment", "--checkpoint", str(encoder), "--synthetic-size", "6", "--synthetic-val-size", "2",
                     "--head", "linear", "--output-dir", str(out), *RUN]) == 0
        runs.append(out)
    results = json.loads((runs[0] / "results.json").read_text())
    assert 0 <= results["mIoU"] <= 100 and set(results["per_class"]) == set(SYNTHETIC_CLASSES)
    assert (runs[0] / "model.safetensors").is_file()
    assert (runs[0] / "metrics.jsonl").read_text().count('"loss"') == 3
    losses = [[json.loads(line).get("loss") for line in (r / "metrics.jsonl").read_text().splitlines()] for r in runs]
    assert losses[0] == losses[1]
    assert results == json.loads((runs[1] / "results.json").read_text())


def test_segment_on_an_ade20k_layout_with_reduce_zero_label(encoder, tmp_path):
    data = ade_folder(tmp_path / "ade")
    out = tmp_path / "run"
    assert main(["segment", "--checkpoint", str(encoder), "--data", str(data), "--num-classes", "9",
                 "--reduce-zero-label", "--output-dir", str(out), *RUN]) == 0
    pairs = SegmentationFolder(data, "validation", reduce_zero_label=True)
    _, mask = pairs.pair(0)
    assert set(np.unique(mask)) <= set(range(9)) | {255}
    assert math.isfinite(json.loads((out / "results.json").read_text())["aAcc"])


def test_bad_data_met_by_a_loader_worker_stops_the_run_cleanly(encoder, tmp_path):
    # raised in a worker: the message without the worker's traceback, and the process ends (its
    # workers ignore SIGTERM, so multiprocessing's exit hook alone would wait for them forever)
    data = ade_folder(tmp_path / "ade", pairs=2)
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(data / "images" / "training" / "turned.png", exif=exif)
    Image.fromarray(np.ones((40, 40), np.uint8)).save(data / "annotations" / "training" / "turned.png")
    run = [*RUN[:RUN.index("--num-workers")], *RUN[RUN.index("--num-workers") + 2:], "--num-workers", "1"]
    done = subprocess.run([sys.executable, "-m", "mae.cli", "segment", "--checkpoint", str(encoder), "--data",
                           str(data), "--num-classes", "10", "--output-dir", str(tmp_path / "run"), *run],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "turned.png has EXIF orientation 3" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", ["unpaired", "no_num_classes", "label_range", "crop", "turned"])
def test_bad_segmentation_input_is_refused(encoder, tmp_path, capsys, case):
    data = ade_folder(tmp_path / "ade", pairs=2)
    args = ["segment", "--checkpoint", str(encoder), "--data", str(data), "--num-classes", "9",
            "--output-dir", str(tmp_path / "run"), *RUN]
    if case == "unpaired":
        (data / "annotations" / "validation" / "x1.png").unlink()
        expected = "x1"
    elif case == "no_num_classes":
        args.remove("--num-classes"), args.remove("9")
        expected = "--num-classes is required"
    elif case == "label_range":  # without --reduce-zero-label the shifted masks reach 3
        args[args.index("--num-classes") + 1] = "3"
        expected = "mask value 3"
    elif case == "turned":  # turned half a turn: the mask fits either frame
        turned_pair(data, "stored", turn=3)
        expected = "phone.png has EXIF orientation 3"
    else:
        args += ["--crop-size", "36"]
        expected = "not divisible by patch_size 8"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
