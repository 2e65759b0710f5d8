"""mae.load_model: every accepted source gives a model that computes what the source did."""

import argparse
import json
import warnings

import pytest
import torch

import mae
from helpers import hf_pretraining_model
from mae.models import VisionTransformer
from mae.models.pos_embed import sincos_2d
from mae.weights.infer import InferredSettingWarning

# the zoo's tiny model at a small resolution: head counts can be inferred from the zoo
ZOO_TINY = dict(img_size=32)


def outputs(model, imgs, noise):
    with torch.no_grad():
        return model(imgs, mask_ratio=0.75, noise=noise, return_pred=True)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **ZOO_TINY, norm_pix_loss=True).eval()
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 4)
    return model, imgs, noise


def assert_same_outputs(a, b, imgs, noise):
    out_a, out_b = outputs(a, imgs, noise), outputs(b, imgs, noise)
    assert torch.equal(out_a.pred, out_b.pred)
    assert torch.equal(out_a.loss, out_b.loss)


def test_official_full_pretraining_checkpoint(tmp_path, reference):
    model, imgs, noise = reference
    path = tmp_path / "checkpoint-799.pth"
    args = argparse.Namespace(model="mae_vit_tiny_patch16", input_size=32, norm_pix_loss=True, blr=1.5e-4)
    torch.save({"model": model.state_dict(), "epoch": 799, "args": args,
                "optimizer": {"state": {}, "param_groups": []}, "scaler": {"scale": 1024.0}}, path)
    loaded = mae.load_model(path)
    assert isinstance(loaded, mae.MaskedAutoencoder) and not loaded.training
    assert loaded.norm_pix_loss  # from the checkpoint's args
    assert_same_outputs(model, loaded, imgs, noise)


def test_architecture_inferred_from_weights_alone(reference):
    model, imgs, noise = reference
    loaded = mae.load_model({"model": model.state_dict()}, norm_pix_loss=True)
    assert loaded.config == model.config
    assert_same_outputs(model, loaded, imgs, noise)


def test_overrides_supply_what_weights_cannot_tell():
    torch.manual_seed(0)
    custom = mae.create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, embed_dim=64, depth=2,
                              num_heads=4, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
    imgs, noise = torch.randn(1, 3, 32, 32), torch.rand(1, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InferredSettingWarning)  # everything guessed was given
        loaded = mae.load_model(custom.state_dict(), num_heads=4, decoder_num_heads=4, norm_pix_loss=False)
    assert_same_outputs(custom.eval(), loaded, imgs, noise)


def test_guessed_settings_warn_naming_the_override():
    torch.manual_seed(0)
    custom = mae.create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, embed_dim=96, depth=2,
                              num_heads=4, decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4)
    with pytest.warns(InferredSettingWarning) as caught:
        guessed = mae.load_model({"model": custom.state_dict()})
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3
    assert any(m.startswith("num_heads=1 (one per 64 channels") and "pass num_heads=" in m for m in messages)
    assert any(m.startswith("decoder_num_heads=2 ") and "pass decoder_num_heads=" in m for m in messages)
    assert any(m.startswith("norm_pix_loss=False ") and "pass norm_pix_loss=" in m for m in messages)
    assert guessed.config["num_heads"] == 1  # and that guess changes what the model computes:
    imgs, noise = torch.randn(1, 3, 32, 32), torch.rand(1, 16)
    assert not torch.equal(outputs(guessed, imgs, noise).pred, outputs(custom.eval(), imgs, noise).pred)

    encoder = {k: v for k, v in custom.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    with pytest.warns(InferredSettingWarning) as caught:  # an encoder: its targets do not matter
        mae.load_model(encoder)
    assert [str(w.message).split("=")[0] for w in caught] == ["num_heads"]


def test_mmpretrain_meta_says_norm_pix_and_mask_ratio(reference):
    from mae.weights import layouts as interop

    model, imgs, noise = reference
    cfg = ("model = dict(type='MAE', backbone=dict(type='MAEViT', arch='t', mask_ratio=0.6), "
           "head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16))")
    ckpt = {"state_dict": interop.ours_to_mm(model.state_dict()), "meta": {"cfg": cfg, "epoch": 400}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", InferredSettingWarning)
        loaded = mae.load_model(ckpt)
    assert loaded.norm_pix_loss and loaded.config["mask_ratio"] == 0.6
    assert_same_outputs(model, loaded, imgs, noise)
    with pytest.warns(InferredSettingWarning, match="norm_pix_loss=False"):  # meta without the config
        assert not mae.load_model({"state_dict": ckpt["state_dict"], "meta": {"epoch": 400}}).norm_pix_loss


def test_non_square_weights_without_config_load_with_img_size(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    custom = mae.create_model("mae_vit_tiny_patch16", img_size=(64, 96), patch_size=16, embed_dim=64, depth=2,
                              num_heads=4, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4).eval()
    custom.pos_embed.data.normal_()  # a learned table: no sin-cos pattern to recognise either
    save_file({k: v.contiguous() for k, v in custom.state_dict().items()}, tmp_path / "ns.safetensors")
    with pytest.raises(ValueError, match="cannot infer the patch grid of a 24-position table.*pass img_size"):
        mae.load_model(tmp_path / "ns.safetensors", num_heads=4)
    with pytest.raises(ValueError, match="img_size=\\(64, 64\\) gives 16"):
        mae.load_model(tmp_path / "ns.safetensors", img_size=(64, 64), num_heads=4)
    loaded = mae.load_model(tmp_path / "ns.safetensors", img_size=(64, 96), num_heads=4, decoder_num_heads=4,
                            norm_pix_loss=False)
    assert loaded.grid_size == (4, 6)
    imgs, noise = torch.randn(1, 3, 64, 96), torch.rand(1, 24)
    assert_same_outputs(custom, loaded, imgs, noise)


def test_our_file_and_run_directory(tmp_path, reference):
    model, imgs, noise = reference
    mae.save_model(model, tmp_path / "model.safetensors")
    assert_same_outputs(model, mae.load_model(tmp_path / "model.safetensors"), imgs, noise)

    run = tmp_path / "run"
    old = mae.create_model("mae_vit_tiny_patch16", **ZOO_TINY)
    mae.save_model(old, run / "checkpoints" / "ckpt-000000010" / "model.safetensors")
    mae.save_model(model, run / "checkpoints" / "ckpt-000000020" / "model.safetensors")
    (run / "checkpoints" / ".ckpt-000000030.tmp").mkdir()  # incomplete: ignored
    assert_same_outputs(model, mae.load_model(run), imgs, noise)


def test_official_encoder_only_and_finetuned(reference):
    model, imgs, _ = reference
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    vit = mae.load_model({"model": encoder})
    assert type(vit) is VisionTransformer and vit.num_classes == 0
    torch.testing.assert_close(vit.forward_features(imgs), model.forward_features(imgs), atol=0, rtol=0)

    torch.manual_seed(3)
    reference_clf = VisionTransformer(img_size=32, patch_size=16, embed_dim=192, depth=12, num_heads=3,
                                      num_classes=10, global_pool="avg").eval()
    clf = mae.load_model({"model": reference_clf.state_dict()})
    assert clf.global_pool == "avg" and clf.num_classes == 10
    with torch.no_grad():
        assert torch.equal(clf(imgs), reference_clf(imgs))


def test_hugging_face_folder_and_file(tmp_path, reference):
    pytest.importorskip("transformers")
    model, imgs, noise = reference
    hf = hf_pretraining_model(model.config)
    hf.save_pretrained(tmp_path / "hf")
    loaded = mae.load_model(tmp_path / "hf")
    assert loaded.norm_pix_loss and loaded.config["num_heads"] == 3
    with torch.no_grad():
        theirs = hf(imgs, noise=noise)
    out = outputs(loaded, imgs, noise)
    torch.testing.assert_close(out.pred, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, theirs.loss, atol=1e-5, rtol=0)
    # the folder's model.safetensors alone: read with the folder's config.json, nothing guessed
    with warnings.catch_warnings():
        warnings.simplefilter("error", InferredSettingWarning)
        bare = mae.load_model(tmp_path / "hf" / "model.safetensors")
    assert bare.config == loaded.config
    torch.testing.assert_close(outputs(bare, imgs, noise).pred, out.pred, atol=0, rtol=0)
    # moved out of its folder, the file is guessed at, loudly
    (tmp_path / "alone").mkdir()
    (tmp_path / "hf" / "model.safetensors").rename(tmp_path / "alone" / "model.safetensors")
    with pytest.warns(InferredSettingWarning, match="norm_pix_loss=False"):
        alone = mae.load_model(tmp_path / "alone" / "model.safetensors")
    assert alone.config["num_heads"] == 3  # the zoo's tiny: known, not guessed


def test_sharded_hugging_face_folder(tmp_path, reference):
    pytest.importorskip("transformers")
    model, imgs, noise = reference
    hf = hf_pretraining_model(model.config)
    hf.save_pretrained(tmp_path / "hf", max_shard_size="1MB")
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / "hf" / "model.safetensors").exists()
    with torch.no_grad():
        theirs = hf(imgs, noise=noise)
    for src in (tmp_path / "hf", tmp_path / "hf" / shards[0]):  # the folder, or any one of its shards
        torch.testing.assert_close(outputs(mae.load_model(src), imgs, noise).pred, theirs.logits, atol=1e-5, rtol=0)


def test_other_resolution_resamples_tables_in_2d(reference):
    model, _, _ = reference
    loaded = mae.load_model(model.state_dict(), img_size=(64, 48), norm_pix_loss=True)
    assert loaded.grid_size == (4, 3)
    torch.testing.assert_close(loaded.pos_embed, sincos_2d(192, (4, 3)), atol=0, rtol=0)
    torch.testing.assert_close(loaded.decoder_pos_embed, sincos_2d(128, (4, 3)), atol=0, rtol=0)
    assert loaded(torch.randn(1, 3, 64, 48), return_pred=True).pred.shape == (1, 12, 768)


def test_keys_that_do_not_fit_are_named(reference):
    model, _, _ = reference
    state = dict(model.state_dict())
    del state["blocks.3.norm1.weight"]
    state["blocks.3.extra.weight"] = torch.zeros(1)
    state["decoder_pred.bias"] = torch.zeros(5)
    with pytest.raises(ValueError) as err:
        mae.load_model(state)
    message = str(err.value)
    assert "missing keys: blocks.3.norm1.weight" in message
    assert "unexpected keys: blocks.3.extra.weight" in message
    assert "decoder_pred.bias: checkpoint (5,) vs model (768,)" in message


def test_unknown_layout_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown checkpoint layout.*Hugging Face"):
        mae.load_model({"backbone.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="does not exist"):
        mae.load_model(tmp_path / "nope.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a run directory"):
        mae.load_model(tmp_path / "empty")
