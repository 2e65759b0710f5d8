"""Robustness evaluation: the shipped tables, mCE arithmetic, the scoring of each benchmark against a
direct computation, and bad layouts refused before compute."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mae
from mae.cli import main
from mae.data import ImageFolder, Normalize, ResizeCenterCrop
from mae.models.vit import VisionTransformer
from mae.robustness.benchmarks import alexnet_errors, corruption_summary, imagenet_wnids, read_wnids
from mae.weights.format import save_model

ARCH = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4)
R_WNIDS = read_wnids("imagenet_r_wnids.txt")
A_WNIDS = read_wnids("imagenet_a_wnids.txt")
FIFTEEN = ("gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur snow frost "
           "fog brightness contrast elastic_transform pixelate jpeg_compression").split()


def make_folder(root, classes, per_class=2, seed=0):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = ((40 * c + 90 * seed) % 256, (70 * i + 30 * seed) % 256, (200 - 30 * c) % 256)
            Image.new("RGB", (36 + 4 * i, 40), colour).save(root / name / f"{i}.png")
    return root


def classifier(tmp_path, num_classes, favoured=()):
    """A random classifier; the outputs in `favoured` (strongest first) win whenever they are scored."""
    torch.manual_seed(0)
    model = VisionTransformer(**ARCH, num_classes=num_classes, global_pool="avg")
    torch.nn.init.normal_(model.head.weight, std=0.5)
    torch.nn.init.normal_(model.head.bias, std=2.0)
    with torch.no_grad():
        for rank, output in enumerate(favoured):
            model.head.bias[output] = 100.0 - 10 * rank
    path = tmp_path / f"clf{num_classes}.safetensors"
    save_model(model, path)
    return path


def direct_top1(path, folder, crop, columns, labels_of):
    """Top-1 (%) with the logits restricted to `columns` and each class folder's label given."""
    model, data = mae.load_model(path), ImageFolder(folder)
    view = ResizeCenterCrop(32, crop)
    images = torch.stack([view(data.open(i)) for i in range(len(data))])
    with torch.no_grad():
        logits = model(Normalize()(images))[:, columns]
    labels = torch.tensor([labels_of[data.classes[t]] for t in data.labels()])
    return float((logits.argmax(1) == labels).float().mean() * 100)


def test_shipped_class_lists_and_alexnet_table():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids)) and list(wnids) == sorted(wnids)
    for subset in (A_WNIDS, R_WNIDS):
        assert len(subset) == 200 == len(set(subset)) and set(subset) <= set(wnids)
    assert A_WNIDS != R_WNIDS
    errors = alexnet_errors()
    assert sorted(errors) == sorted(FIFTEEN)
    assert all(0.5 < e < 0.95 for e in errors.values())


def test_mce_is_the_mean_of_errors_over_alexnets():
    errors = {c: {s: 10.0 * s for s in range(1, 6)} for c in FIFTEEN}  # mean 30% each
    summary = corruption_summary(errors)
    alexnet = alexnet_errors()
    assert summary["mce_complete"] and summary["mce_corruptions"] == 15
    assert summary["mean_error"] == pytest.approx(30.0)
    assert summary["corruptions"]["fog"]["ce"] == pytest.approx(30.0 / alexnet["fog"])
    assert summary["mce"] == pytest.approx(sum(30.0 / alexnet[c] for c in FIFTEEN) / 15)
    partial = corruption_summary({"fog": {1: 20.0, 2: 40.0}, "my_blur": {s: 50.0 for s in range(1, 6)}})
    assert partial["corruptions"]["fog"]["ce"] is None  # not all five severities: no CE
    assert partial["corruptions"]["my_blur"]["ce"] is None  # not an ImageNet-C corruption
    assert partial["mce"] is None and not partial["mce_complete"]
    assert partial["mean_error"] == pytest.approx((30.0 + 50.0) / 2)


def test_suite_scores_each_benchmark_as_its_authors_do(tmp_path, capsys, one_thread):
    wnids = imagenet_wnids()
    # wnids[7] (not an ImageNet-R class) wins over 1000 outputs, R_WNIDS[0] among R's 200: each
    # benchmark scores 50% only when its outputs and labels are the right ones
    clf = classifier(tmp_path, 1000, favoured=[7, wnids.index(R_WNIDS[0])])
    c_root = tmp_path / "imagenet-c"
    c_classes = [wnids[7], wnids[500]]
    for corruption in ("fog", "my_blur"):
        for severity in range(1, 6):
            make_folder(c_root / corruption / str(severity), c_classes, per_class=1, seed=severity)
    r_classes = [R_WNIDS[0], R_WNIDS[150]]
    r_folder = make_folder(tmp_path / "imagenet-r", r_classes, per_class=3)
    sketch = make_folder(tmp_path / "sketch", [wnids[7], wnids[999]], per_class=3, seed=2)
    out = tmp_path / "robust.json"
    assert main(["eval", "--checkpoint", str(clf), "--imagenet-c", str(c_root), "--imagenet-r", str(r_folder),
                 "--imagenet-sketch", str(sketch), "--num-workers", "0", "--output", str(out)]) == 0
    report = json.loads(out.read_text())["benchmarks"]

    # ImageNet-R: the best of its 200 outputs; labels are positions among them
    r_columns = [wnids.index(w) for w in R_WNIDS]
    expected = direct_top1(clf, r_folder, 0.875, r_columns, {w: R_WNIDS.index(w) for w in r_classes})
    assert report["imagenet_r"]["top1"] == pytest.approx(expected) == 50.0
    assert report["imagenet_r"]["classes_scored"] == 200 and report["imagenet_r"]["images"] == 6
    # Sketch: over all 1000 outputs
    expected = direct_top1(clf, sketch, 0.875, list(range(1000)), {w: wnids.index(w) for w in wnids})
    assert report["imagenet_sketch"]["top1"] == pytest.approx(expected) == 50.0
    # ImageNet-C: each severity folder at crop fraction 1; errors, mean, no CE for a foreign corruption
    fog = report["imagenet_c"]["corruptions"]["fog"]
    for severity in range(1, 6):
        top1 = direct_top1(clf, c_root / "fog" / str(severity), 1.0, list(range(1000)),
                           {w: wnids.index(w) for w in wnids})
        assert fog["errors"][str(severity)] == pytest.approx(100 - top1) == 50.0
    assert fog["ce"] == pytest.approx(fog["mean_error"] / alexnet_errors()["fog"])
    assert report["imagenet_c"]["corruptions"]["my_blur"]["ce"] is None
    assert report["imagenet_c"]["mce_corruptions"] == 1 and not report["imagenet_c"]["mce_complete"]
    assert report["imagenet_c"]["images"] == 20
    markdown = out.with_suffix(".md").read_text()
    assert "| ImageNet-R | 6 | 200 |" in markdown and "| fog |" in markdown
    assert "not comparable with published mCE" in markdown
    assert markdown in capsys.readouterr().out


def test_a_head_trained_on_the_folders_classes_is_scored_directly(tmp_path, one_thread):
    clf = classifier(tmp_path, 3)
    root = tmp_path / "corrupted"
    for severity in range(1, 6):
        make_folder(root / "contrast" / str(severity), ["cat", "dog", "eel"], per_class=1, seed=severity)
    out = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(clf), "--imagenet-c", str(root), "--num-workers", "0",
                 "--output", str(out)]) == 0
    row = json.loads(out.read_text())["benchmarks"]["imagenet_c"]["corruptions"]["contrast"]
    top1 = direct_top1(clf, root / "contrast" / "2", 1.0, [0, 1, 2], {"cat": 0, "dog": 1, "eel": 2})
    assert row["errors"]["2"] == pytest.approx(100 - top1)


@pytest.mark.parametrize("case", ["not_in_a", "bad_severity", "head_mismatch", "with_data", "no_folder"])
def test_bad_benchmark_folders_are_refused_before_compute(tmp_path, capsys, case):
    clf = classifier(tmp_path, 1000 if case != "head_mismatch" else 5)
    wnids = imagenet_wnids()
    not_in_a = next(w for w in wnids if w not in A_WNIDS)
    args = ["eval", "--checkpoint", str(clf), "--num-workers", "0"]
    if case == "not_in_a":
        args += ["--imagenet-a", str(make_folder(tmp_path / "a", [A_WNIDS[0], not_in_a], per_class=1))]
        expected = not_in_a
    elif case == "bad_severity":
        make_folder(tmp_path / "c" / "fog" / "1", [wnids[0]], per_class=1)
        make_folder(tmp_path / "c" / "fog" / "6", [wnids[0]], per_class=1)
        args += ["--imagenet-c", str(tmp_path / "c")]
        expected = "severities 1-5"
    elif case == "head_mismatch":
        args += ["--imagenet-sketch", str(make_folder(tmp_path / "s", ["x", "y"], per_class=1))]
        expected = "5 outputs"
    elif case == "with_data":
        args += ["--imagenet-r", str(tmp_path), "--data", str(tmp_path)]
        expected = "--data"
    else:
        args += ["--imagenet-a", str(tmp_path / "missing")]
        expected = "no such folder"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


# ---------------------------------------------------------------- mae corrupt

CORRUPT = ["--corruptions", "gaussian_noise,impulse_noise,contrast", "--severities", "1", "5", "--size", "32"]


def noisy_folder(root):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name / "sub").mkdir(parents=True)
        Image.fromarray(rng.integers(60, 200, (40, 36, 3), dtype=np.uint8)).save(root / name / "a.jpg")
        Image.fromarray(rng.integers(60, 200, (36, 44, 3), dtype=np.uint8)).save(root / name / "sub" / "b.png")
    return root


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_corrupted_copy_layout_determinism_and_severity(tmp_path):
    pytest.importorskip("imagecorruptions")
    data = noisy_folder(tmp_path / "data")
    assert main(["corrupt", "--data", str(data), "--out", str(tmp_path / "a"), "--workers", "0", *CORRUPT]) == 0
    assert main(["corrupt", "--data", str(data), "--out", str(tmp_path / "b"), "--workers", "2", *CORRUPT]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 3 * 2 * 4 and not list((tmp_path / "a").rglob(".*"))
    assert (tmp_path / "a" / "impulse_noise" / "5" / "dog" / "sub" / "b.png") in [tmp_path / "a" / f for f in files]
    for f in files:  # the same whatever the number of workers
        assert Image.open(tmp_path / "a" / f).size == (32, 32)
        assert np.array_equal(pixels(tmp_path / "a" / f), pixels(tmp_path / "b" / f)), f
    clean = ResizeCenterCrop(32, 224 / 256)(Image.open(data / "cat" / "a.jpg")).permute(1, 2, 0).numpy()
    for name in ("gaussian_noise", "impulse_noise", "contrast"):
        change = [np.abs(pixels(tmp_path / "a" / name / s / "cat" / "a.png") - clean).mean() for s in ("1", "5")]
        assert 0 < change[0] < change[1], name
    # another seed draws other noise
    assert main(["corrupt", "--data", str(data), "--out", str(tmp_path / "c"), "--workers", "0", "--seed", "1",
                 *CORRUPT]) == 0
    noise = Path("gaussian_noise") / "5" / "cat" / "a.png"
    assert not np.array_equal(pixels(tmp_path / "a" / noise), pixels(tmp_path / "c" / noise))


def test_an_interrupted_copy_is_completed_and_scores_with_eval(tmp_path, capsys, one_thread):
    pytest.importorskip("imagecorruptions")
    data, out = noisy_folder(tmp_path / "data"), tmp_path / "out"
    args = ["corrupt", "--data", str(data), "--out", str(out), "--workers", "0", *CORRUPT]
    assert main(args) == 0
    kept, lost = out / "contrast" / "1" / "cat" / "a.png", out / "contrast" / "5" / "dog" / "sub" / "b.png"
    before = kept.stat().st_mtime_ns
    lost.unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "wrote 1 files" in capsys.readouterr().out
    assert lost.is_file() and kept.stat().st_mtime_ns == before
    clf = classifier(tmp_path, 2)
    report = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(clf), "--imagenet-c", str(out), "--num-workers", "0",
                 "--output", str(report)]) == 0
    rows = json.loads(report.read_text())["benchmarks"]["imagenet_c"]["corruptions"]
    assert sorted(rows) == ["contrast", "gaussian_noise", "impulse_noise"]
    assert set(rows["contrast"]["errors"]) == {"1", "5"}


@pytest.mark.parametrize("case", ["unknown", "unlabelled", "severity", "clash"])
def test_bad_corrupt_arguments_are_refused(tmp_path, capsys, case):
    pytest.importorskip("imagecorruptions")
    data = noisy_folder(tmp_path / "data")
    args = ["corrupt", "--data", str(data), "--out", str(tmp_path / "out"), "--workers", "0"]
    if case == "unknown":
        args += ["--corruptions", "fog,rain"]
        expected = "rain"
    elif case == "unlabelled":
        args[2] = str(data / "cat" / "sub")
        expected = "no class subfolders"
    elif case == "severity":
        args += ["--severities", "0", "3"]
        expected = "among 1-5"
    else:
        Image.new("RGB", (40, 40)).save(data / "cat" / "a.png")
        expected = "would both be written as cat/a.png"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
