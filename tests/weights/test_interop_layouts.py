"""Key maps: the names other ecosystems use, read and written."""

import pytest
import torch

import mae
from mae.weights import layouts as interop

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


@pytest.fixture(scope="module")
def state():
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **TINY).state_dict()


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mmpretrain_names(state):
    mm = interop.ours_to_mm(state)
    expected = {
        "backbone.patch_embed.projection.weight": "patch_embed.proj.weight",
        "backbone.cls_token": "cls_token",
        "backbone.pos_embed": "pos_embed",
        "backbone.layers.1.ln1.weight": "blocks.1.norm1.weight",
        "backbone.layers.1.attn.qkv.weight": "blocks.1.attn.qkv.weight",
        "backbone.layers.1.attn.proj.bias": "blocks.1.attn.proj.bias",
        "backbone.layers.1.ln2.bias": "blocks.1.norm2.bias",
        "backbone.layers.1.ffn.layers.0.0.weight": "blocks.1.mlp.fc1.weight",
        "backbone.layers.1.ffn.layers.1.weight": "blocks.1.mlp.fc2.weight",
        "backbone.ln1.weight": "norm.weight",
        "neck.mask_token": "mask_token",
        "neck.decoder_pos_embed": "decoder_pos_embed",
        "neck.decoder_embed.weight": "decoder_embed.weight",
        "neck.decoder_blocks.0.ffn.layers.0.0.bias": "decoder_blocks.0.mlp.fc1.bias",
        "neck.ln1.weight": "decoder_norm.weight",
        "neck.decoder_pred.bias": "decoder_pred.bias",
    }
    for theirs, ours in expected.items():
        assert torch.equal(mm[theirs], state[ours]), theirs
    assert len(mm) == len(state)
    assert interop.detect_layout(mm) == "mmpretrain"
    assert_same(interop.to_ours(mm), state)


def test_mmpretrain_classifier_names():
    clf = mae.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=4,
                                num_classes=3, global_pool="avg").state_dict()
    mm = interop.ours_to_mm(clf)
    assert torch.equal(mm["backbone.ln2.weight"], clf["fc_norm.weight"])  # out_type="avg_featmap"
    assert torch.equal(mm["head.fc.weight"], clf["head.weight"])  # LinearClsHead
    assert_same(interop.mm_to_ours(mm), clf)


def test_mmsegmentation_converter_spellings_read(state):
    """beit2mmseg keeps `norm`; vit2mmseg writes a bare backbone with nn.MultiheadAttention names."""
    encoder, _ = interop.split_decoder(state)
    beit_style = {k.replace("backbone.ln1.", "backbone.norm."): v for k, v in interop.ours_to_mm(encoder).items()}
    assert "backbone.norm.weight" in beit_style
    assert_same(interop.to_ours(beit_style), encoder)

    vit_style = {}
    for key, value in interop.ours_to_mm(encoder).items():
        key = key.removeprefix("backbone.")
        key = key.replace("attn.qkv.", "attn.attn.in_proj_").replace("attn.proj", "attn.attn.out_proj")
        vit_style[key] = value
    assert "layers.0.attn.attn.in_proj_weight" in vit_style
    assert_same(interop.to_ours(vit_style), encoder)


def beit2mmseg(official: dict) -> dict:
    """mmsegmentation's beit2mmseg renaming: blocks only; the rest (decoder, norm) keeps its name,
    and patch_embed.proj is kept beside the new patch_embed.projection."""
    out = {}
    for key, value in official.items():
        if key.startswith("patch_embed"):
            out[key.replace("patch_embed.proj", "patch_embed.projection")] = value
        if key.startswith("blocks"):
            key = key.replace("blocks", "layers")
            for old, new in (("norm", "ln"), ("mlp.fc1", "ffn.layers.0.0"), ("mlp.fc2", "ffn.layers.1")):
                if old in key:
                    key = key.replace(old, new)
                    break
        out[key] = value
    return out


def test_beit2mmseg_output_of_a_full_checkpoint_is_read(state):
    converted = beit2mmseg(state)
    assert {"mask_token", "patch_embed.proj.weight", "patch_embed.projection.weight", "layers.0.ln1.weight",
            "decoder_blocks.0.norm1.weight", "norm.weight"} <= set(converted)
    assert interop.detect_layout(converted) == "mmpretrain"
    assert_same(interop.to_ours(converted), state)
    converted["patch_embed.proj.weight"] = converted["patch_embed.proj.weight"] + 1
    with pytest.raises(ValueError, match="disagrees with another spelling of 'patch_embed.proj.weight'"):
        interop.to_ours(converted)


def test_mmseg_names(state):
    encoder, _ = interop.split_decoder(state)
    seg = interop.ours_to_mmseg(encoder)
    assert torch.equal(seg["patch_embed.projection.weight"], encoder["patch_embed.proj.weight"])
    assert torch.equal(seg["layers.1.attn.qkv.weight"], encoder["blocks.1.attn.qkv.weight"])
    assert seg["layers.1.attn.attn.in_proj_weight"] is seg["layers.1.attn.qkv.weight"]  # stored once
    assert torch.equal(seg["layers.1.attn.attn.out_proj.bias"], encoder["blocks.1.attn.proj.bias"])
    assert torch.equal(seg["ln1.weight"], encoder["norm.weight"])  # MAE / VisionTransformer final_norm
    assert torch.equal(seg["layers.0.gamma_2"], torch.ones(64))
    assert not any(k.startswith("backbone.") or "relative_position" in k for k in seg)
    assert_same(interop.to_ours(seg), encoder)


def test_timm_names_are_ours_without_decoder(state):
    encoder, dropped = interop.split_decoder(state)
    assert sorted(dropped) == sorted(k for k in state if k.startswith(("decoder", "mask_token")))
    vit = mae.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)
    assert encoder.keys() == vit.state_dict().keys()


def test_hf_published_names(state):
    hf = interop.ours_to_hf(state)
    q, k, v = state["blocks.0.attn.qkv.weight"].chunk(3)
    assert torch.equal(hf["vit.encoder.layer.0.attention.attention.query.weight"], q)
    assert torch.equal(hf["vit.encoder.layer.0.attention.attention.key.weight"], k)
    assert torch.equal(hf["vit.encoder.layer.0.attention.attention.value.weight"], v)
    assert torch.equal(hf["decoder.decoder_layers.0.output.dense.bias"], state["decoder_blocks.0.mlp.fc2.bias"])
    assert_same(interop.to_ours(hf), state)


def test_unknown_keys_and_layouts_are_named(state):
    mm = interop.ours_to_mm(state)
    mm["backbone.layers.0.gamma_1"] = torch.full((64,), 0.1)  # a trained BEiT layer scale: not a no-op
    with pytest.raises(ValueError, match="'backbone.layers.0.gamma_1' is not 1.0 everywhere"):
        interop.to_ours(mm)
    mm["backbone.layers.0.gamma_1"] = torch.ones(64)  # neutral, as --to mmseg writes it
    assert_same(interop.to_ours(mm), state)
    mm["backbone.layers.0.rope"] = torch.ones(64)
    with pytest.raises(ValueError, match="unknown mmpretrain key 'backbone.layers.0.rope'"):
        interop.to_ours(mm)
    with pytest.raises(ValueError, match="no mmpretrain name for key 'extra.weight'"):
        interop.ours_to_mm({"extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError) as err:
        interop.to_ours({"encoder.conv.weight": torch.zeros(1)}, "x.pth")
    message = str(err.value)
    assert message.startswith("x.pth: unknown checkpoint layout")
    for layout in ("official MAE", "Hugging Face", "timm", "mmpretrain", "backbone.patch_embed.projection"):
        assert layout in message
