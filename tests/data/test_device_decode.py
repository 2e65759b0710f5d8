"""--decode-on device: workers ship JPEG bytes (or pixels of other images) with the CPU path's
crop draws, the device step decodes, crops and normalises. GPU decoding cannot run here: the
device's decoder is stood in for by Pillow (in these tests only), and its refusal is tested."""

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mae.data.device_decode as device_decode
from helpers import TINY
from mae.cli import main
from mae.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolder, KeyedImages, RandomResizedCrop, TrainBatches, make_loader
from mae.data.device_decode import collate, device_decoding, gpu_jpeg_decoder, upright
from mae.data.images import _UPRIGHT
from mae.engine import PretrainConfig, pretrain
from mae.engine.run.metrics import read_metrics

MEAN = torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, -1, 1, 1)


def decoded_by_pillow(datas: list[torch.Tensor]) -> list[torch.Tensor]:
    """The stand-in for nvJPEG: JPEG bytes -> uint8 [3, H, W] as stored (no EXIF orientation,
    as nvJPEG); a RuntimeError for data it cannot decode, as torchvision raises."""
    out = []
    for data in datas:
        try:
            img = Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")
        except OSError as err:
            raise RuntimeError(f"decode failed: {err}") from None
        out.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
    return out


def photo(seed: int, size=(48, 40)) -> Image.Image:
    """Smooth colours (JPEG keeps them close): the two paths then differ by resampling only."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    freq = rng.uniform(0.05, 0.15, size=(3, 2))
    channels = [np.sin(xx * fx + yy * fy + i) for i, (fx, fy) in enumerate(freq)]
    return Image.fromarray((127.5 * (1 + np.stack(channels, -1))).astype(np.uint8))


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(device_decode, "gpu_jpeg_decoder", lambda device, channels: decoded_by_pillow)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes: RGB JPEGs, one with EXIF orientation 6 (shown turned), a greyscale JPEG,
    a CMYK JPEG and a PNG (the last two decoded by the workers). Small images: the CPU path
    decodes them whole (no draft), so both paths resample the same pixels."""
    root = tmp_path_factory.mktemp("photos")
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(4):
            photo(i + 10 * (label == "b")).save(root / label / f"{i}.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo(20, (40, 56)).save(root / "a" / "turned.jpg", quality=95, exif=exif)
    photo(21).convert("L").save(root / "a" / "grey.jpg", quality=95)
    photo(22).convert("CMYK").save(root / "b" / "cmyk.jpg", quality=95)
    photo(23).save(root / "b" / "lossless.png")
    return ImageFolder(root)


@pytest.mark.parametrize("exif_orientation", range(1, 9))
def test_upright_turns_as_the_cpu_decoding_does(exif_orientation):
    pixels = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(3, 5, 2)  # [H, W, C], not square
    img = Image.fromarray(pixels[..., 0])
    expected = np.array(img.transpose(_UPRIGHT[exif_orientation]) if exif_orientation in _UPRIGHT else img)
    turned = upright(torch.from_numpy(pixels).permute(2, 0, 1), exif_orientation)
    assert np.array_equal(turned[0].numpy(), expected)


def test_the_device_step_crops_what_the_cpu_path_crops(folder, stand_in):
    crop, seed = RandomResizedCrop(32), 3
    dataset, collate_fn, to_model = device_decoding(folder, crop, seed, False, torch.device("cpu"),
                                                    IMAGENET_MEAN, IMAGENET_STD)
    assert collate_fn is collate
    batches = TrainBatches(len(folder), 6, epochs=2, seed=seed)
    cpu = make_loader(KeyedImages(folder, crop, seed), batches, num_workers=0)
    device = make_loader(dataset, batches, num_workers=1, collate=collate)
    shipped = {}
    for (expected, labels), (batch, device_labels) in zip(cpu, device):
        assert torch.equal(labels, device_labels)
        for item, name in zip(batch.items, batch.names):
            shipped[name.rsplit("/", 1)[-1]] = "bytes" if item.dim() == 1 else "pixels"
        pixels = to_model(batch) * STD * 255 + MEAN * 255
        diff = (pixels.round().clamp(0, 255) - expected.float()).abs()
        assert diff.max() <= 4 and diff.mean() < 0.5, (batch.names, diff.max(), diff.mean())
    assert shipped == {**{f"{i}.jpg": "bytes" for i in range(4)}, "turned.jpg": "bytes", "grey.jpg": "bytes",
                       "cmyk.jpg": "pixels", "lossless.png": "pixels"}


def test_a_jpeg_the_device_cannot_decode_stops_naming_it(tmp_path, monkeypatch):
    for i in range(3):
        photo(i).save(tmp_path / f"{i}.jpg")
    bad = (tmp_path / "1.jpg").read_bytes()

    def fails_on_the_bad_one(datas):  # a decoder that rejects one file's data, as nvJPEG may
        if any(data.numpy().tobytes() == bad for data in datas):
            raise RuntimeError("nvjpegDecode failed: 6")
        return decoded_by_pillow(datas)

    monkeypatch.setattr(device_decode, "gpu_jpeg_decoder", lambda device, channels: fails_on_the_bad_one)
    source = ImageFolder(tmp_path)
    dataset, _, to_model = device_decoding(source, RandomResizedCrop(16), 0, False, torch.device("cpu"),
                                           IMAGENET_MEAN, IMAGENET_STD)
    batch, _ = collate([dataset[(0, i)] for i in (0, 2)])
    assert to_model(batch).shape == (2, 3, 16, 16)
    batch, _ = collate([dataset[(0, i)] for i in range(3)])
    with pytest.raises(ValueError,
                       match=rf"cannot decode {tmp_path / '1.jpg'} on cpu: nvjpegDecode failed: 6 "
                             r"\(--decode-on device stops at a JPEG it cannot decode; --decode-on cpu skips"):
        to_model(batch)


def test_decode_on_device_is_refused_without_cuda_or_torchvision(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # an import that fails, whatever is installed
    with pytest.raises(ValueError) as refused:
        gpu_jpeg_decoder(torch.device("cpu"), 3)
    message = str(refused.value)
    assert "needs a CUDA device (--device cuda) and the torchvision built for torch" in message
    assert "this run's device is cpu; torchvision does not import here (ModuleNotFoundError" in message
    assert message.endswith("Use --decode-on cpu (the default) here")
    out = tmp_path / "run"
    assert main(["pretrain", "--decode-on", "device", "--synthetic-size", "16", "--output-dir", str(out)]) == 2
    assert "--decode-on device decodes JPEGs on a CUDA GPU" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="--decode-on device crops with the random resized crop only"):
        PretrainConfig(decode_on="device", augmentation="rrc_jitter")


def test_pretraining_with_the_device_step_follows_the_cpu_path(folder, tmp_path, stand_in):
    run = dict(model="mae_vit_tiny_patch16", **{**TINY, "img_size": 32}, data=str(folder.root), batch_size=4,
               epochs=2, warmup_epochs=1, blr=0.5, num_workers=0, preview_images=1, log_every=1, threads=1)
    losses = {}
    for decode_on in ("cpu", "device"):
        pretrain(PretrainConfig(**run, decode_on=decode_on, output_dir=str(tmp_path / decode_on)))
        losses[decode_on] = [r["loss"] for r in read_metrics(tmp_path / decode_on) if "loss" in r]
    assert len(losses["cpu"]) == len(losses["device"]) == 6  # 12 images, 3 steps an epoch
    assert max(abs(a - b) for a, b in zip(losses["cpu"], losses["device"])) < 2e-3, losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nvjpeg_decodes_and_crops_as_the_cpu_path(folder):
    """On a CUDA machine with torchvision: the real GPU decode (two JPEG decoders differ by a
    few levels at most on these smooth images)."""
    pytest.importorskip("torchvision.io")
    crop, device = RandomResizedCrop(32), torch.device("cuda")
    dataset, _, to_model = device_decoding(folder, crop, 1, False, device, IMAGENET_MEAN, IMAGENET_STD)
    cpu = KeyedImages(folder, crop, 1)
    keys = [(0, i) for i in range(len(folder))]
    batch, _ = collate([dataset[key] for key in keys])
    pixels = to_model(batch).cpu() * STD * 255 + MEAN * 255
    diff = (pixels.round().clamp(0, 255) - torch.stack([cpu[key][0] for key in keys]).float()).abs()
    assert diff.max() <= 12 and diff.mean() < 1.0, (diff.max(), diff.mean())
