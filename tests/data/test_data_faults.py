"""Faulty data: symlink loops, truncated or empty tar shards."""

import io
import os
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from mae.data import DataWarning, ImageFolder, TarShards, build_source


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def finishes(fn, seconds=30):
    """fn()'s result, or a failure when it is still running after `seconds` (a hang)."""
    result = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"still running after {seconds} s"
    return result[0]


def test_symlink_loops_are_walked_once_and_reported(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for i in range(10):
        (data / ("sub" if i % 2 else "") / f"{i}.png").write_bytes(png(i))
    os.symlink("..", data / "sub" / "up")
    os.symlink(".", data / "self")
    with pytest.warns(DataWarning, match=r"2 symlinked folder\(s\).*self \(->.*sub/up \(->"):
        folder = finishes(lambda: ImageFolder(data))
    assert len(folder) == 10 and len(set(folder.files)) == 10


def test_a_class_folder_linked_twice_is_read_once(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(png(1))
    os.symlink("cat", tmp_path / "kitten")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path)
    with pytest.warns(DataWarning, match="kitten"):
        folder = finishes(lambda: ImageFolder(tmp_path))
    assert folder.classes == ["cat", "kitten"] and folder.labels() == [0]


def test_links_to_other_folders_are_followed(tmp_path, recwarn):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.png").write_bytes(png(1))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.png").write_bytes(png(2))
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "more")
    assert len(ImageFolder(tmp_path / "data")) == 2
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


def write_shard(path, names):
    with tarfile.open(path, "w") as tar:
        for i, name in enumerate(names):
            payload = png(i)
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def shards(tmp_path):
    """Three shards of two images each; the caller damages one of them."""
    return [write_shard(tmp_path / f"train-{i}.tar", [f"s{i}a.png", f"s{i}b.png"]) for i in range(3)]


def cut(path, keep: int):
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.mark.parametrize("keep, why", [
    (512 + 30, "truncated: member s1a.png"),  # inside the first image's data
    (1024 + 100, "truncated"),  # inside the second header
    (0, "empty file"),
])
def test_a_damaged_shard_is_named_and_skipped_or_stops_when_strict(tmp_path, shards, keep, why):
    cut(shards[1], keep)
    spec = str(tmp_path / "train-{0..2}.tar")
    with pytest.warns(DataWarning, match=f"skipping 1 of 3 shard.*train-1.tar.*{why}"):
        data = build_source(spec)
    assert isinstance(data, TarShards) and len(data) == 4
    assert all("train-1.tar" not in data.name(i) for i in range(len(data)))
    with pytest.raises(ValueError, match=f"train-1.tar.*{why}.*--strict-data"):
        build_source(spec, strict=True)


def test_a_shard_cut_at_a_member_boundary_is_caught(tmp_path, shards):
    cut(shards[2], 512 + 512 * ((len(png(0)) + 511) // 512))  # header + data of the first image
    with pytest.warns(DataWarning, match="train-2.tar.*end-of-archive"):
        assert len(TarShards(tmp_path)) == 4  # the whole shard is left out


def test_a_zero_byte_shard_is_not_called_compressed(tmp_path, shards):
    cut(shards[0], 0)
    with pytest.raises(ValueError) as err:
        TarShards(shards[0])
    assert "empty file (0 bytes)" in str(err.value) and "recompress" not in str(err.value)


def test_when_every_shard_is_damaged_the_error_lists_them(tmp_path, shards):
    for path in shards:
        cut(path, 700)
    with pytest.raises(ValueError, match="no readable shard.*train-0.tar.*train-2.tar"):
        TarShards(tmp_path)


def test_a_shard_that_is_not_a_tar_is_named(tmp_path, shards):
    shards[1].write_bytes(b"<html>not found</html>" * 40)
    with pytest.warns(DataWarning, match="train-1.tar \\(not a tar file"):
        assert len(TarShards(tmp_path)) == 4


def labelled_folder(root, broken_split):
    """DATA/{train,val}/{a,b}/*.png, one file of `broken_split` cut short."""
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                (folder / f"{i}.png").write_bytes(png(40 * i + (label == "b") * 100))
    broken = root / broken_split / "a" / "0.png"
    broken.write_bytes(broken.read_bytes()[:30])
    return broken


@pytest.mark.parametrize("argv", [["finetune"], ["linprobe"]])
def test_downstream_commands_stop_on_bad_data_under_strict_data(tmp_path, capsys, encoder, argv):
    from mae import cli

    broken = labelled_folder(tmp_path / "data", "val")
    out = tmp_path / "run"
    assert cli.main([*argv, "--checkpoint", str(encoder), "--data", str(tmp_path / "data"), "--strict-data",
                     "--output-dir", str(out), "--num-workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "1 unreadable image file(s)" in err and "a/0.png" in err, err
    assert not (out / "checkpoints").exists()
    assert broken.exists()


def test_eval_stops_on_bad_data_under_strict_data(tmp_path, capsys):
    from mae import cli
    from mae.models import VisionTransformer
    from mae.weights.format import save_model

    labelled_folder(tmp_path / "data", "val")
    save_model(VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=4, num_classes=2),
               tmp_path / "classifier.safetensors")
    argv = ["eval", "--checkpoint", str(tmp_path / "classifier.safetensors"), "--data", str(tmp_path / "data" / "val"),
            "--num-workers", "0"]
    with pytest.warns(DataWarning, match="a/0.png"):
        assert cli.main(argv) == 0  # skipped with a warning
    assert cli.main([*argv, "--strict-data"]) == 2
    assert "a/0.png" in capsys.readouterr().err
