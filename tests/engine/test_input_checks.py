"""Bad flags, files and API arguments: clear errors naming them, before any data is read or
anything is written."""

import json
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

import mae
from helpers import TINY
from mae import cli
from mae.data.class_subsets import read_class_mapping
from mae.engine import PretrainConfig, pretrain
from mae.models import VisionTransformer
from mae.models.classifier import build_classifier
from mae.weights.export import export_model
from mae.weights.format import save_model
from mae.weights.load import load_encoder

TINY_FLAGS = ["--model", "mae_vit_tiny_patch16", "--img-size", "32", "--patch-size", "8", "--embed-dim", "64",
              "--depth", "2", "--num-heads", "4", "--decoder-embed-dim", "32", "--decoder-depth", "1",
              "--decoder-num-heads", "4", "--num-workers", "0"]


def refused(argv, capsys, *expected):
    """Runs `mae ARGV`, which must fail with a message holding every `expected` string."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("command", ["pretrain", "finetune", "linprobe"])
@pytest.mark.parametrize("flag, value", [
    ("--blr", "inf"), ("--lr", "inf"), ("--min-lr", "inf"), ("--weight-decay", "inf"), ("--blr", "nan"),
    ("--warmup-epochs", "nan"), ("--clip-grad", "inf"),
])
def test_numeric_flags_refuse_inf_and_nan(tmp_path, capsys, command, flag, value):
    out = tmp_path / "run"
    refused([command, flag, value, "--output-dir", str(out)], capsys, flag, "finite")
    assert not out.exists()


def test_inf_in_a_yaml_config_is_refused_too(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("blr: .inf\n")
    refused(["pretrain", "--config", str(config), "--output-dir", str(tmp_path / "run")], capsys,
            str(config), "--blr", "finite")


@pytest.mark.parametrize("command", ["pretrain", "finetune", "linprobe"])
@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**70)])
def test_the_seed_is_checked_before_data_is_read_or_the_run_directory_written(tmp_path, capsys, command, seed):
    out = tmp_path / "run"
    refused([command, "--seed", seed, "--data", str(tmp_path / "missing"), "--output-dir", str(out)],
            capsys, "--seed must be an integer in [0, 2**63 - 1]")
    assert not out.exists()


def test_the_largest_seed_is_accepted(tmp_path):
    PretrainConfig(seed=2**63 - 1, output_dir=str(tmp_path))


@pytest.mark.parametrize("argv", [
    ["visualize", "--checkpoint", "nowhere", "x.png", "--seed", "-1"],
    ["bench", "--seed", "-1"],
    ["segment", "--checkpoint", "nowhere", "--data", "nowhere", "--seed", str(2**64)],
])
def test_other_commands_check_the_seed(capsys, argv):
    refused(argv, capsys, "--seed must be an integer")


def test_a_non_utf8_config_file_is_named(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("# réglages\nblr: 0.1\n".encode("latin-1"))
    refused(["pretrain", "--config", str(config)], capsys, f"config file {config} is not UTF-8")


def test_a_non_utf8_class_map_is_named(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("caf\xe9 0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"class mapping file {path} is not UTF-8"):
        read_class_mapping(path, 10)


def test_linprobe_needs_two_images_per_step(tmp_path, capsys):
    out = tmp_path / "run"
    refused(["linprobe", "--batch-size", "1", "--output-dir", str(out)], capsys, "--batch-size", "BatchNorm")
    assert not out.exists()


def test_a_mask_ratio_that_leaves_no_visible_patch_is_refused(tmp_path, capsys):
    model = mae.create_model("mae_vit_tiny_patch16", **dict(TINY, img_size=16))  # 2 x 2 patches
    model(torch.randn(1, 3, 16, 16), mask_ratio=0.75)  # keeps one
    with pytest.raises(ValueError, match="mask_ratio 0.99 leaves no visible patch of the 4"):
        model(torch.randn(1, 3, 16, 16), mask_ratio=0.99)
    out = tmp_path / "run"
    flags = [f if f != "32" else "16" for f in TINY_FLAGS]
    refused(["pretrain", *flags, "--mask-ratio", "0.99", "--output-dir", str(out)], capsys,
            "--mask-ratio leaves no visible patch of the 4", "at most 0.75")
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", [
    (dict(patch_size=0), "patch_size must be an integer >= 1, got 0"),
    (dict(num_heads=0), "num_heads must be an integer >= 1, got 0"),
    (dict(embed_dim=0), "embed_dim must be an integer >= 1, got 0"),
    (dict(depth=-1), "depth must be an integer >= 1, got -1"),
    (dict(decoder_depth=-2), "decoder_depth must be an integer >= 1"),
    (dict(decoder_num_heads=0), "decoder_num_heads must be an integer >= 1"),
    (dict(img_size=0), "img_size must be an integer >= 1"),
    (dict(img_size=-32), "img_size must be an integer >= 1"),
    (dict(img_size=32.0), "img_size must be an integer >= 1 or (height, width) of them, got 32.0"),
    (dict(in_chans=0), "in_chans must be an integer >= 1, got 0"),
    (dict(embed_dim=100, num_heads=3), "embed_dim 100 is not divisible by num_heads 3"),
    (dict(decoder_embed_dim=30), "decoder_embed_dim 30 is not divisible by decoder_num_heads 4"),
    (dict(img_size=36), "img_size 36 is not divisible by patch_size 8"),
    (dict(mlp_ratio=0.0), "mlp_ratio must be a finite number"),
])
def test_create_model_names_the_bad_size(overrides, message):
    with pytest.raises(ValueError) as err:
        mae.create_model("mae_vit_tiny_patch16", **dict(TINY, **overrides))
    assert message in str(err.value)


def test_the_model_says_which_dtype_it_expects():
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    pixels = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    for call in (lambda: model(pixels), lambda: model.forward_features(pixels)):
        with pytest.raises(ValueError, match="expected floating-point images .* got torch.uint8"):
            call()


def test_load_model_rejects_unknown_overrides(encoder):
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['img_szie'\]"):
        mae.load_model(encoder, img_szie=64)
    with pytest.raises(ValueError, match=r"\['num_classes'\] .*MaskedAutoencoder"):
        mae.load_model(encoder, num_classes=3)
    assert mae.load_model(encoder, img_size=64).config["img_size"] == [64, 64]


@pytest.mark.parametrize("name", ["m.pth", "m.pt", "m.safetensors"])
def test_save_model_then_load_model_round_trips(tmp_path, name):
    torch.manual_seed(0)
    for model in (mae.create_model("mae_vit_tiny_patch16", **TINY), VisionTransformer(**TINY_ARCH, num_classes=3)):
        path = tmp_path / name
        save_model(model, path)
        loaded = mae.load_model(path)
        assert type(loaded) is type(model) and loaded.config == model.config
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match="save_model writes .safetensors or a PyTorch file"):
        save_model(model, tmp_path / "m.weights")


TINY_ARCH = {k: TINY[k] for k in ("img_size", "patch_size", "depth", "embed_dim", "num_heads")}


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_weights_checkpoints_and_converted_files_follow_the_umask(tmp_path, umask_027):
    import mae.storage.files as storage_files
    storage_files._umask.cache_clear()
    try:
        model = mae.create_model("mae_vit_tiny_patch16", **TINY)
        save_model(model, tmp_path / "m.safetensors")
        save_model(model, tmp_path / "m.pth")
        exports = [("mae", "ours.safetensors"), ("hf", "hf"), ("official", "o.pth"), ("timm", "t.safetensors")]
        for layout, dst in exports:
            export_model(model, tmp_path / dst, layout)
        pretrain(PretrainConfig(**{k: v for k, v in TINY.items() if k != "img_size"}, model="mae_vit_tiny_patch16",
                                img_size=32, synthetic_size=32, batch_size=16, epochs=1, warmup_epochs=0,
                                num_workers=0, preview_images=1, output_dir=str(tmp_path / "run")))
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert len([p for p in files if p.suffix == ".safetensors"]) >= 6
        assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o640} == {}
        folders = [p for p in (tmp_path / "run").rglob("*") if p.is_dir()]
        assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in folders if mode(p) != 0o750} == {}
    finally:
        storage_files._umask.cache_clear()


def write_run_directory(model, run):
    """A run directory as pretraining leaves it (the newest checkpoint is what loads)."""
    save_model(model, run / "checkpoints" / "ckpt-000000008" / "model.safetensors")
    return run


def test_the_fine_tuning_head_does_not_depend_on_the_checkpoints_layout(tmp_path):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    export_model(model, tmp_path / "enc.safetensors", "mae", encoder_only=True)
    run = write_run_directory(model, tmp_path / "run")
    heads = []
    for source in (tmp_path / "enc.safetensors", run, model):
        torch.manual_seed(1)
        classifier, _ = build_classifier(load_encoder(source), num_classes=5)
        heads.append(classifier.head.weight.detach().clone())
    assert torch.equal(heads[0], heads[1]) and torch.equal(heads[0], heads[2])


@pytest.fixture
def converted_sources(tmp_path):
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    src = tmp_path / "src.safetensors"
    save_model(model, src)
    export_model(model, tmp_path / "hf", "hf")
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    save_file(encoder, tmp_path / "foreign.safetensors")  # timm's own files carry no metadata of ours
    write_run_directory(model, tmp_path / "run")
    return src


@pytest.mark.parametrize("dst, why", [
    ("hf", "is a folder of another layout (it holds config.json)"),
    ("run", "is a folder of another layout (it holds checkpoints)"),
    ("foreign.safetensors", "is not a weights file of ours"),
])
def test_convert_to_ours_refuses_to_overwrite_another_layout(tmp_path, capsys, converted_sources, dst, why):
    before = {p: p.read_bytes() for p in (tmp_path / dst).rglob("*") if p.is_file()} if (tmp_path / dst).is_dir() \
        else {tmp_path / dst: (tmp_path / dst).read_bytes()}
    refused(["convert", str(converted_sources), str(tmp_path / dst), "--to", "mae"], capsys, why)
    after = {p: p.read_bytes() for p in before}
    assert after == before
    mae.load_model(tmp_path / dst)  # still loads as it was


def test_convert_to_ours_may_replace_our_own_file(tmp_path, capsys, converted_sources):
    (tmp_path / "ours").mkdir()
    for dst in (tmp_path / "copy.safetensors", tmp_path / "ours"):
        for _ in range(2):  # the second time over the first one's output
            assert cli.main(["convert", str(converted_sources), str(dst), "--to", "mae"]) == 0
    assert json.loads(json.dumps(mae.load_model(tmp_path / "ours").config)) == mae.load_model(converted_sources).config
