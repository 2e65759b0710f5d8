"""`mae eval`: numbers equal a direct computation; class subsets; bad input before compute."""

import json

import pytest
import torch
from PIL import Image

import mae
from mae.cli import main
from mae.data import ImageFolder, Normalize, ResizeCenterCrop
from mae.models.vit import VisionTransformer
from mae.weights.format import save_model

ARCH = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4)


def make_folder(root, classes, per_class=3):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = (40 * c % 256, 70 * i % 256, 200 - 30 * c % 200)
            Image.new("RGB", (36 + 4 * i, 40), colour).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def classifier(tmp_path):
    torch.manual_seed(0)
    model = VisionTransformer(**ARCH, num_classes=6, global_pool="avg")
    torch.nn.init.normal_(model.head.weight, std=0.5)
    path = tmp_path / "clf.safetensors"
    save_model(model, path)
    return path


def direct_logits(path, folder):
    model = mae.load_model(path)
    data = ImageFolder(folder)
    view = ResizeCenterCrop(32, 0.875)
    images = torch.stack([view(data.open(i)) for i in range(len(data))])
    with torch.no_grad():
        return model(Normalize()(images)), torch.tensor(data.labels())


def test_eval_equals_a_direct_computation(classifier, tmp_path, capsys):
    folder = make_folder(tmp_path / "val", [f"c{i}" for i in range(6)])
    out = tmp_path / "result.json"
    assert main(["eval", "--checkpoint", str(classifier), "--data", str(folder), "--num-workers", "0",
                 "--batch-size", "5", "--output", str(out)]) == 0
    logits, labels = direct_logits(classifier, folder)
    result = json.loads(out.read_text())
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean() * 100
    assert result["top1"] == pytest.approx(float((logits.argmax(1) == labels).float().mean() * 100))
    assert result["top5"] == pytest.approx(float(top5))
    assert result["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)
    assert result["count"] == 18


def test_class_subset_is_scored_on_the_mapped_outputs(classifier, tmp_path):
    folder = make_folder(tmp_path / "subset", ["b", "d"])
    mapping = tmp_path / "map.txt"
    mapping.write_text("# folder head_index\nb 1\nd 3\n")
    out = tmp_path / "result.json"
    assert main(["eval", "--checkpoint", str(classifier), "--data", str(folder), "--class-map", str(mapping),
                 "--num-workers", "0", "--output", str(out)]) == 0
    logits, labels = direct_logits(classifier, folder)
    restricted = logits[:, [1, 3]]
    expected = float((restricted.argmax(1) == labels).float().mean() * 100)
    assert json.loads(out.read_text())["top1"] == pytest.approx(expected)


def test_mapping_file_naming_unknown_classes_is_refused(classifier, tmp_path, capsys):
    folder = make_folder(tmp_path / "subset", ["b", "d"], per_class=1)
    mapping = tmp_path / "map.txt"
    mapping.write_text("b 1\nd 3\nzebra 4\n")
    assert main(["eval", "--checkpoint", str(classifier), "--data", str(folder), "--class-map", str(mapping)]) == 2
    assert "zebra" in capsys.readouterr().err
    train = make_folder(tmp_path / "train", [f"c{i}" for i in range(6)], per_class=1)
    mapping.write_text("b\nd\n")  # names alone: looked up among the training classes
    assert main(["eval", "--checkpoint", str(classifier), "--data", str(folder), "--class-map", str(mapping),
                 "--train-classes", str(train)]) == 2
    assert "not among the head's classes: b, d" in capsys.readouterr().err


def test_class_count_that_does_not_match_the_head_is_refused(classifier, tmp_path, capsys):
    folder = make_folder(tmp_path / "val", ["a", "b", "c"], per_class=1)
    assert main(["eval", "--checkpoint", str(classifier), "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "6 outputs" in err and "3 classes" in err and "--class-map" in err


def test_encoder_without_head_is_refused(tmp_path, capsys):
    path = tmp_path / "enc.safetensors"
    save_model(VisionTransformer(**ARCH), path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no classification head" in err and "mae finetune or mae linprobe --checkpoint" in err
    assert "num_classes for a fresh head" not in err  # eval has no such flag


def test_eval_without_data_or_checkpoint_says_what_to_give(classifier, capsys):
    assert main(["eval"]) == 2
    assert "--checkpoint is required: the classifier to score" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(classifier), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "the built-in synthetic dataset (no --data given) has 8 classes" in err and "None" not in err, err
    assert "give --data a folder of the head's classes" in err
