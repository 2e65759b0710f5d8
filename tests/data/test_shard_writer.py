"""`mae shards`: an image folder as tar shards with a manifest, resumable, in parallel; the
reader takes the manifest's offsets instead of scanning."""

import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from mae.cli import main
from mae.data import ImageFolder, KeyedImages, RandomResizedCrop, TarShards, TrainBatches, build_source, make_loader
from mae.data.remote_shards import RemoteShards
from mae.data.shard_writer import MANIFEST, write_shards


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 255, (40 + 20 * i, 90, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "src" / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return tmp_path / "src"


def pixels(img):
    with img:
        return np.asarray(img.convert("RGB"))


def test_shards_hold_the_folder_image_for_image(folder, tmp_path):
    manifest = write_shards(folder, tmp_path / "out", shard_size=4)
    assert [s["name"] for s in manifest["shards"]] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert [s["count"] for s in manifest["shards"]] == [4, 4, 2] and manifest["count"] == 10
    source, shards = ImageFolder(folder), build_source(str(tmp_path / "out"))
    assert isinstance(shards, TarShards) and shards.classes == ["cat", "dog"]
    assert shards.labels() == source.labels() == [0] * 5 + [1] * 5
    for i in range(len(source)):  # copied as they are: the same pixels
        assert np.array_equal(pixels(source.open(i)), pixels(shards.open(i))), source.name(i)


def test_short_side_shrinks_never_enlarges_and_stores_jpeg(folder, tmp_path):
    write_shards(folder, tmp_path / "out", shard_size=4, short_side=50, quality=80)
    source, shards = ImageFolder(folder), TarShards(tmp_path / "out")
    for i in range(len(source)):
        with shards.open(i) as img:
            assert img.format == "JPEG"
            width, height = source.size_of(i)
            assert min(img.size) == min(50, width, height), (source.name(i), img.size)


def test_the_reader_takes_the_manifest_without_scanning(folder, tmp_path, monkeypatch):
    write_shards(folder, tmp_path / "out", shard_size=4)
    scanned = TarShards(tmp_path / "out")  # (the manifest is read; a scan gives the same entries)
    (tmp_path / "out" / MANIFEST).rename(tmp_path / "manifest.json")
    assert [e[:3] for e in TarShards(tmp_path / "out").entries] == [e[:3] for e in scanned.entries]
    (tmp_path / "manifest.json").rename(tmp_path / "out" / MANIFEST)

    def no_scan(*args, **kwargs):
        raise AssertionError("scanned a tar")

    monkeypatch.setattr(tarfile, "open", no_scan)
    assert len(TarShards(tmp_path / "out")) == 10


def test_an_interrupted_run_continues_and_ends_with_the_same_bytes(folder, tmp_path):
    first = write_shards(folder, tmp_path / "a", shard_size=3, short_side=50, processes=2)
    out = tmp_path / "b"
    write_shards(folder, out, shard_size=3, short_side=50)
    kept = (out / "train-000000.tar").stat().st_mtime_ns
    (out / "train-000002.tar").unlink()
    (out / MANIFEST).unlink()
    (out / ".train-000003.tar.99.tmp").write_bytes(b"half")  # a killed write
    again = write_shards(folder, out, shard_size=3, short_side=50)
    assert (out / "train-000000.tar").stat().st_mtime_ns == kept  # not rewritten
    assert not list(out.glob(".*.tmp"))
    assert again["digest"] == first["digest"]  # 1 or 2 processes, resumed or not: the same shards
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]


def test_another_plan_into_the_same_folder_is_refused(folder, tmp_path):
    write_shards(folder, tmp_path / "out", shard_size=4)
    with pytest.raises(ValueError, match="holds shards of another plan"):
        write_shards(folder, tmp_path / "out", shard_size=4, short_side=64)


def test_a_shard_of_another_size_than_the_manifest_says_is_named(folder, tmp_path):
    write_shards(folder, tmp_path / "out", shard_size=4)
    shard = tmp_path / "out" / "train-000001.tar"
    shard.write_bytes(shard.read_bytes()[:2048])
    with pytest.raises(ValueError, match="train-000001.tar should have .* bytes as manifest.json says"):
        TarShards(tmp_path / "out")


def test_the_command(folder, tmp_path, capsys):
    assert main(["shards", str(folder), str(tmp_path / "out"), "--shard-size", "6", "--processes", "2"]) == 0
    assert "done: 10 images in 2 shard(s), 2 classes" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["format"] == "mae-shards/1" and manifest["source"] == str(folder.resolve())
    assert main(["shards", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_shards_read_from_a_url_match_the_local_ones(folder, tmp_path):
    write_shards(folder, tmp_path / "out", shard_size=4)
    local, remote = TarShards(tmp_path / "out"), build_source(f"file://{tmp_path / 'out'}/")
    assert isinstance(remote, RemoteShards) and len(remote) == len(local) == 10
    assert remote.classes == local.classes and remote.labels() == local.labels()
    for i in range(len(local)):
        assert np.array_equal(pixels(remote.open(i)), pixels(local.open(i)))
    assert remote.name(3) == f"file://{tmp_path / 'out'}/train-000000.tar:000000003"
    with pytest.raises(ValueError, match="no manifest.json there"):
        RemoteShards(f"file://{folder}")


def test_pretraining_from_a_url_sees_the_same_samples_in_the_same_order(folder, tmp_path):
    write_shards(folder, tmp_path / "out", shard_size=4, short_side=32)
    crop = RandomResizedCrop(16)
    batches = TrainBatches(10, 2, epochs=2, seed=3)
    local = make_loader(KeyedImages(TarShards(tmp_path / "out"), crop, seed=3), batches)
    remote = make_loader(KeyedImages(RemoteShards(f"file://{tmp_path / 'out'}"), crop, seed=3), batches)
    local_batches = list(local)
    for (a, la), (b, lb) in zip(local_batches, remote, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    # resumed mid-epoch (step 3 of 5): the remote reader continues with the exact next batches
    resumed = make_loader(KeyedImages(RemoteShards(f"file://{tmp_path / 'out'}"), crop, seed=3),
                          TrainBatches(10, 2, epochs=2, seed=3, start_step=3))
    for (a, _), (b, _) in zip(local_batches[3:], resumed, strict=True):
        assert torch.equal(a, b)
