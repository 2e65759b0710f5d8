"""`mae convert`: every layout round-trips bit-exactly, and the targets load where they should."""

import json
import warnings

import pytest
import torch

import mae
from helpers import hf_pretraining_model
from mae.cli import main
from mae.weights import layouts as interop
from mae.weights.export import export_model
from mae.weights.infer import InferredSettingWarning

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
VIT = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)
TARGETS = {"mae": "out.safetensors", "official": "out.pth", "hf": "out_hf",
           "timm": "out.safetensors", "mmpretrain": "out.pth", "mmseg": "out.pth"}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY, norm_pix_loss=True).eval()
    path = tmp_path_factory.mktemp("src") / "model.safetensors"
    mae.save_model(model, path)
    return model, path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(1)
    model = mae.VisionTransformer(**VIT, num_classes=5, global_pool="avg").eval()
    path = tmp_path_factory.mktemp("clf") / "model.safetensors"
    mae.save_model(model, path)
    return model, path


def convert(src, dst, layout, *extra):
    assert main(["convert", str(src), str(dst), "--to", layout, *extra]) == 0


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("layout", list(TARGETS))
def test_round_trip_is_bit_exact(tmp_path, pretrained, layout, capsys):
    model, src = pretrained
    there = tmp_path / TARGETS[layout]
    convert(src, there, layout)
    printed = capsys.readouterr().out
    back = tmp_path / "back.safetensors"
    convert(there, back, "mae")
    loaded = mae.load_model(back)
    if layout in ("timm", "mmseg"):  # encoder only: the decoder is dropped, and said so
        assert "dropped: the decoder (20 tensors" in printed
        encoder, _ = interop.split_decoder(model.state_dict())
        assert type(loaded) is mae.VisionTransformer
        assert_same_state(loaded.state_dict(), encoder)
        assert {k: loaded.config[k] for k in VIT} == {k: model.config[k] for k in VIT}
    else:
        assert "dropped: nothing" in printed
        assert_same_state(loaded.state_dict(), model.state_dict())
        assert loaded.config == model.config
    # and back again into the target layout: the same tensors as the first time
    again = tmp_path / ("again" + (TARGETS[layout] if "." in TARGETS[layout] else ""))
    convert(back, again, layout)
    assert_same_state(mae.load_model(again).state_dict(), loaded.state_dict())


@pytest.mark.parametrize("layout", ["official", "timm", "mmpretrain", "mae"])
def test_classifier_keeps_its_logits(tmp_path, classifier, layout):
    model, src = classifier
    there = tmp_path / TARGETS[layout]
    convert(src, there, layout)
    loaded = mae.load_model(there)
    assert loaded.global_pool == "avg" and loaded.num_classes == 5
    imgs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(imgs), model(imgs))


def test_official_layout_is_plain(tmp_path, classifier, pretrained):
    """Other tools load it with weights_only=True; the keys are the official ones."""
    model, src = classifier
    convert(src, tmp_path / "clf.pth", "official")
    obj = torch.load(tmp_path / "clf.pth", weights_only=True)
    assert obj["model"].keys() == model.state_dict().keys()
    assert "fc_norm.weight" in obj["model"] and "norm.weight" not in obj["model"]
    assert obj["args"]["global_pool"] is True and obj["args"]["nb_classes"] == 5

    full, full_src = pretrained
    convert(full_src, tmp_path / "enc.pth", "official", "--encoder-only")
    encoder = torch.load(tmp_path / "enc.pth", weights_only=True)["model"]
    assert encoder.keys() == interop.split_decoder(full.state_dict())[0].keys()
    vit = mae.load_model(tmp_path / "enc.pth")
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(vit.forward_features(imgs), full.forward_features(imgs))


def test_hugging_face_from_pretrained_agrees(tmp_path, pretrained):
    transformers = pytest.importorskip("transformers")
    model, src = pretrained
    convert(src, tmp_path / "hf", "hf")
    theirs, info = transformers.ViTMAEForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.config.norm_pix_loss and theirs.config.layer_norm_eps == 1e-6
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    with torch.no_grad():
        out, ref = theirs.eval()(imgs, noise=noise), model(imgs, noise=noise, return_pred=True)
    torch.testing.assert_close(out.logits, ref.pred, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=0)
    assert torch.equal(out.mask, ref.mask)


def test_hugging_face_encoder_only_is_a_vitmae_model(tmp_path, pretrained, capsys):
    transformers = pytest.importorskip("transformers")
    model, src = pretrained
    convert(src, tmp_path / "hf", "hf", "--encoder-only")
    assert "dropped: the decoder" in capsys.readouterr().out
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["ViTMAEModel"]
    theirs, info = transformers.ViTMAEModel.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                            mask_ratio=0.0)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    imgs = torch.randn(2, 3, 32, 32)
    in_order = torch.arange(16.0).expand(2, 16)  # keep every patch, in patch order
    with torch.no_grad():
        hidden = theirs.eval()(imgs, noise=in_order).last_hidden_state
        torch.testing.assert_close(hidden, model.forward_features(imgs), atol=1e-6, rtol=0)


def test_vit_base_hugging_face_round_trip(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_base_patch16").eval()
    export_model(model, tmp_path / "hf", "hf")
    theirs = transformers.ViTMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    imgs, noise = torch.randn(1, 3, 224, 224), torch.rand(1, 196)
    with torch.no_grad():
        out, ref = theirs(imgs, noise=noise), model(imgs, noise=noise, return_pred=True)
    torch.testing.assert_close(out.logits, ref.pred, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=0)


def test_what_a_target_cannot_hold_is_refused_or_reported(tmp_path, classifier, capsys):
    model, src = classifier
    with pytest.raises(ValueError, match="no global-pool norm"):
        export_model(model, tmp_path / "hf", "hf")
    token = mae.VisionTransformer(**VIT, num_classes=5, global_pool="token")
    report = export_model(token, tmp_path / "hf", "hf")
    assert report.dropped == ["head.weight", "head.bias"] and "head dropped" in report.summary()
    with pytest.raises(ValueError, match="square models only"):
        export_model(mae.create_model("mae_vit_tiny_patch16", **dict(TINY, img_size=(32, 48))), tmp_path / "x", "hf")

    assert main(["convert", str(src), str(tmp_path / "x.safetensors"), "--to", "official"]) == 2
    assert "must end with one of .pth" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "y.pth"), "--to", "hf"]) == 2
    assert "the hf layout is a folder" in capsys.readouterr().err


def test_unknown_source_layout_names_the_known_ones(tmp_path, capsys):
    torch.save({"model": {"encoder.conv.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    assert main(["convert", str(tmp_path / "other.pth"), str(tmp_path / "o.pth"), "--to", "official"]) == 2
    err = capsys.readouterr().err
    assert "unknown checkpoint layout" in err and "Hugging Face" in err and "mmpretrain" in err
    assert not (tmp_path / "o.pth").exists()


def test_head_counts_can_be_supplied_for_official_weights(tmp_path):
    """Head counts are not in the weights: --num-heads makes the written config right."""
    torch.manual_seed(2)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")  # no args, no config
    convert(tmp_path / "official.pth", tmp_path / "hf", "hf", "--num-heads", "4", "--decoder-num-heads", "4")
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (hf_config["num_attention_heads"], hf_config["decoder_num_attention_heads"]) == (4, 4)
    imgs, noise = torch.randn(1, 3, 32, 32), torch.rand(1, 16)
    with torch.no_grad():
        assert torch.equal(mae.load_model(tmp_path / "hf")(imgs, noise=noise, return_pred=True).pred,
                           model(imgs, noise=noise, return_pred=True).pred)


def test_hugging_face_eps_and_mask_ratio_round_trip(tmp_path):
    """A config.json with HF's default eps (1e-12) and mask_ratio 0.6 loads, computes and exports as it says."""
    pytest.importorskip("transformers")
    torch.manual_seed(3)
    config = mae.create_model("mae_vit_tiny_patch16", **TINY).config
    theirs = hf_pretraining_model(config, layer_norm_eps=1e-12, mask_ratio=0.6)
    theirs.save_pretrained(tmp_path / "hf")
    ours = mae.load_model(tmp_path / "hf")
    assert (ours.config["layer_norm_eps"], ours.config["mask_ratio"]) == (1e-12, 0.6)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    with torch.no_grad():
        out, ref = ours(imgs, noise=noise, return_pred=True), theirs(imgs, noise=noise)  # each at its own mask ratio
    assert torch.equal(out.mask, ref.mask)
    torch.testing.assert_close(out.pred, ref.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=0)

    convert(tmp_path / "hf", tmp_path / "again", "hf")
    written = json.loads((tmp_path / "again" / "config.json").read_text())
    assert (written["layer_norm_eps"], written["mask_ratio"]) == (1e-12, 0.6)
    for layout in ("mae", "official", "mmpretrain"):  # the files that carry our config keep both too
        convert(tmp_path / "hf", tmp_path / TARGETS[layout], layout)
        assert mae.load_model(tmp_path / TARGETS[layout]).config == ours.config


def test_convert_lists_what_it_inferred(tmp_path, capsys):
    torch.manual_seed(2)
    model = mae.create_model("mae_vit_tiny_patch16", **dict(TINY, embed_dim=96))
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")  # a width no named model has
    with warnings.catch_warnings():
        warnings.simplefilter("error", InferredSettingWarning)  # said in the report instead
        convert(tmp_path / "official.pth", tmp_path / "a.safetensors", "mae")
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("inferred"))
    for flag in ("num_heads=1 ", "[--num-heads]", "decoder_num_heads=1 ", "[--decoder-num-heads]",
                 "norm_pix_loss=False ", "[--norm-pix-loss]"):
        assert flag in line
    convert(tmp_path / "official.pth", tmp_path / "b.safetensors", "mae", "--num-heads", "4",
            "--decoder-num-heads", "4", "--no-norm-pix-loss")
    assert "inferred" not in capsys.readouterr().out


def test_hf_folder_name_with_a_dot_and_export_at_another_size(tmp_path, pretrained, capsys):
    model, src = pretrained
    convert(src, tmp_path / "hf-vit-mae-1.0", "hf", "--img-size", "48")
    assert json.loads((tmp_path / "hf-vit-mae-1.0" / "config.json").read_text())["image_size"] == 48
    loaded = mae.load_model(tmp_path / "hf-vit-mae-1.0")
    assert loaded.grid_size == (6, 6)
    convert(src, tmp_path / "wide.safetensors", "mae", "--img-size", "32", "64")
    wide = mae.load_model(tmp_path / "wide.safetensors")
    assert wide.grid_size == (4, 8)
    imgs = torch.randn(1, 3, 32, 64)
    with torch.no_grad():  # sin-cos tables are recomputed for the grid: the same function as before
        torch.testing.assert_close(wide.forward_features(imgs), model.forward_features(imgs), atol=1e-6, rtol=0)
    assert main(["convert", str(src), str(tmp_path / "x.pth"), "--to", "official", "--img-size", "48", "x"]) == 2
    assert "--img-size must be an integer, got 'x'" in capsys.readouterr().err
