import io
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from mae.data import (
    SHAPES,
    DataWarning,
    ImageFolder,
    KeyedImages,
    Normalize,
    RandomResizedCrop,
    ResizeCenterCrop,
    SyntheticShapes,
    TarShards,
    build_source,
    check_image_sizes,
)
from mae.data.shards import expand_braces, split_key


def save_image(path, size=(40, 30), mode="RGB", colour=(200, 30, 60), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour[:3])
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path


def test_class_folders_are_labelled_by_sorted_name_and_searched_recursively(tmp_path):
    save_image(tmp_path / "zebra" / "a.png")
    save_image(tmp_path / "apple" / "deep" / "er" / "b.jpg")
    save_image(tmp_path / "apple" / "c.webp")
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    save_image(tmp_path / "apple" / ".hidden.png")
    folder = ImageFolder(tmp_path)
    assert folder.layout == "classes" and folder.classes == ["apple", "zebra"]
    names = {f.name: folder.label(i) for i, f in enumerate(folder.files)}
    assert names == {"b.jpg": 0, "c.webp": 0, "a.png": 1}


def test_flat_folder_is_unlabelled_and_recursive(tmp_path):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "2019" / "b.png")
    folder = ImageFolder(tmp_path)
    assert folder.layout == "flat" and folder.classes == [] and len(folder) == 2
    assert folder.labels() == [-1, -1]


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_every_mode_becomes_the_models_channels(tmp_path, mode):
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    path = save_image(tmp_path / f"x.{fmt.lower()}", mode=mode, fmt=fmt)
    folder = ImageFolder(tmp_path)
    for channels in (3, 1):
        x, label = KeyedImages(folder, ResizeCenterCrop(16, 1.0, channels))[0]
        assert x.dtype == torch.uint8 and x.shape == (channels, 16, 16) and label == -1
    assert path.exists()


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    x, _ = KeyedImages(ImageFolder(tmp_path), ResizeCenterCrop(8, 1.0))[0]
    assert torch.all(x == 255)


def test_missing_empty_and_unreadable_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="holds no image files"):
        ImageFolder(tmp_path / "text")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="no readable images.*a.jpg"):
        ImageFolder(tmp_path / "bad")


def test_corrupt_and_truncated_files_are_skipped_with_a_warning_or_refused_when_strict(tmp_path):
    for i in range(3):
        save_image(tmp_path / f"good{i}.jpg", size=(64, 64))
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    whole = (tmp_path / "good0.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.warns(DataWarning, match=r"skipping 2 unreadable image file\(s\).*cut\.jpg.*garbage\.png"):
        folder = ImageFolder(tmp_path)
    assert len(folder) == 3 and [p for p, _ in folder.skipped] == ["cut.jpg", "garbage.png"]
    with pytest.raises(ValueError, match="2 unreadable.*cut.jpg"):
        ImageFolder(tmp_path, strict=True)


def test_a_file_that_fails_to_decode_later_is_replaced_and_named(tmp_path):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "b.png", colour=(0, 0, 255))
    folder = ImageFolder(tmp_path)
    (tmp_path / "a.png").write_bytes(b"gone bad after the scan")
    data = KeyedImages(folder, ResizeCenterCrop(8, 1.0))
    with pytest.warns(DataWarning, match="cannot decode .*a.png.*using the next image"):
        x, _ = data[0]
    assert torch.equal(x, data[1][0])  # b.png in its place
    with pytest.raises(ValueError, match="cannot decode .*a.png"):
        KeyedImages(folder, ResizeCenterCrop(8, 1.0), strict=True)[0]


def test_images_smaller_than_the_crop_are_reported(tmp_path):
    save_image(tmp_path / "tiny.png", size=(10, 50))
    save_image(tmp_path / "big.png", size=(64, 64))
    folder = ImageFolder(tmp_path)
    with pytest.warns(DataWarning, match=r"1 of 2 images are smaller than the 32-pixel crop.*tiny.png \(10x50\)"):
        assert check_image_sizes(folder, 32) == 1
    with pytest.raises(ValueError, match="smaller than the 32-pixel crop"):
        check_image_sizes(folder, 32, strict=True)


def write_shard(path, samples):
    with tarfile.open(path, "w") as tar:
        for name, payload in samples:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def encoded(colour, fmt="PNG"):
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def test_tar_shards_in_the_webdataset_layout(tmp_path):
    write_shard(tmp_path / "train-00.tar", [
        ("a/s1.png", encoded((255, 0, 0))), ("a/s1.cls", b"2"),
        ("s2.jpg", encoded((0, 255, 0), "JPEG")), ("s2.json", b'{"label": 0}'),
    ])
    write_shard(tmp_path / "train-01.tar", [("s3.png", encoded((0, 0, 255))), ("s3.txt", b"caption")])
    shards = build_source(str(tmp_path / "train-{00..01}.tar"))
    assert isinstance(shards, TarShards) and len(shards) == 3
    assert shards.labels() == [2, 0, -1] and shards.classes == ["0", "1", "2"]
    data = KeyedImages(shards, ResizeCenterCrop(4, 1.0))
    assert data[0][0][:, 0, 0].tolist() == [255, 0, 0]
    assert data[2][0][:, 0, 0].tolist() == [0, 0, 255]
    assert len(build_source(str(tmp_path))) == 3  # a folder of shards
    assert "train-01.tar:s3" in shards.name(2)


def test_shard_specs_and_keys():
    assert expand_braces("x-{08..10}.tar") == ["x-08.tar", "x-09.tar", "x-10.tar"]
    assert split_key("dir/n01_1.seg.png") == ("dir/n01_1", "seg.png")
    with pytest.raises(FileNotFoundError, match="shard file"):
        TarShards("/nonexistent/train-{0..1}.tar")


def test_compressed_shards_are_refused(tmp_path):
    with tarfile.open(tmp_path / "x.tar", "w:gz") as tar:
        info = tarfile.TarInfo("a.png")
        payload = encoded((1, 2, 3))
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="not an uncompressed tar"):
        TarShards(tmp_path / "x.tar")


def test_synthetic_data_is_deterministic_labelled_and_varied():
    a, b = SyntheticShapes(16, 32, seed=3), SyntheticShapes(16, 32, seed=3)
    assert all(np.array_equal(a.pixels(i), b.pixels(i)) for i in range(16))
    assert not np.array_equal(a.pixels(0), SyntheticShapes(16, 32, seed=4).pixels(0))
    assert a.classes == list(SHAPES) and a.labels()[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 0]
    assert len({a.pixels(i).tobytes() for i in range(16)}) == 16
    assert a.pixels(0).std() > 10  # not a flat image


def test_random_resized_crop_is_a_function_of_the_key(tmp_path):
    source = SyntheticShapes(4, 64)
    data = KeyedImages(source, RandomResizedCrop(24), seed=1)
    assert torch.equal(data[(2, 3)][0], data[(2, 3)][0])
    assert not torch.equal(data[(2, 3)][0], data[(3, 3)][0])  # another epoch, another crop
    crop = RandomResizedCrop(24, scale=(0.2, 1.0))
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = crop.box(100, 60, rng)
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 60
        area = (right - left) * (bottom - top) / 6000
        ratio = (right - left) / (bottom - top)
        assert 0.18 <= area <= 1.0 and 0.7 <= ratio <= 1.45 or (right - left, bottom - top) == (80, 60)


def test_draft_decoding_of_large_jpegs_matches_full_decoding(tmp_path):
    y, x = np.mgrid[0:512, 0:512]
    pixels = np.stack([x / 2, y / 2, (x + y) / 4], -1).astype(np.uint8)  # smooth gradients
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    view = ResizeCenterCrop(32, 1.0)
    with Image.open(tmp_path / "big.jpg") as img:
        fast = view(img).float()
    reference = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.BICUBIC), dtype=np.float32)
    assert np.abs(fast.permute(1, 2, 0).numpy() - reference).mean() < 3.0


def test_normalize_matches_the_formula():
    imgs = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    expected = (imgs.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalize(mean, std)(imgs), expected, atol=1e-5)


def test_no_warning_for_clean_data(tmp_path):
    save_image(tmp_path / "a.png", size=(64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_image_sizes(ImageFolder(tmp_path), 32)
