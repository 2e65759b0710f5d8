import pytest
import torch

import mae
from mae.models import MaskedAutoencoder, patchify, unpatchify

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


def tiny(**kw):
    return mae.create_model("mae_vit_tiny_patch16", **{**TINY, **kw})


def test_named_configs_have_the_papers_dimensions():
    expected = {
        "mae_vit_base_patch16": (16, 768, 12, 12),
        "mae_vit_large_patch16": (16, 1024, 24, 16),
        "mae_vit_huge_patch14": (14, 1280, 32, 16),
    }
    for name, (patch, dim, depth, heads) in expected.items():
        config = mae.models.model_config(name)
        assert (config["patch_size"], config["embed_dim"], config["depth"], config["num_heads"]) == (
            patch, dim, depth, heads,
        )
        assert (config["decoder_embed_dim"], config["decoder_depth"], config["decoder_num_heads"]) == (512, 8, 16)
    assert {"mae_vit_tiny_patch16", "mae_vit_small_patch16"} <= set(mae.model_names())


def test_unknown_model_and_option():
    with pytest.raises(ValueError, match="unknown model 'vit_giant'"):
        mae.create_model("vit_giant")
    with pytest.raises(ValueError, match="unknown model option"):
        mae.create_model("mae_vit_tiny_patch16", embed_dims=3)


def test_state_dict_keys_are_the_official_ones():
    model = tiny(depth=1)
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
             "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
             "mlp.fc2.weight", "mlp.fc2.bias"]
    official = (
        ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
        + [f"blocks.0.{k}" for k in block]
        + ["norm.weight", "norm.bias", "mask_token", "decoder_pos_embed",
           "decoder_embed.weight", "decoder_embed.bias"]
        + [f"decoder_blocks.0.{k}" for k in block]
        + ["decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"]
    )
    assert sorted(model.state_dict()) == sorted(official)


def test_initialisation_follows_the_official_model():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_base_patch16", decoder_depth=1, depth=2)
    qkv = model.blocks[0].attn.qkv.weight  # xavier-uniform over the fused [3D, D] weight
    bound = (6 / (qkv.shape[0] + qkv.shape[1])) ** 0.5
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.95 * bound
    assert torch.all(model.blocks[0].attn.qkv.bias == 0)
    proj = model.patch_embed.proj.weight  # like a linear layer over [D, C*p*p]
    bound = (6 / (proj.shape[0] + proj[0].numel())) ** 0.5
    assert proj.abs().max() <= bound and proj.abs().max() > 0.95 * bound
    for token in (model.cls_token, model.mask_token):
        assert token.std().item() == pytest.approx(0.02, rel=0.15)
    assert torch.all(model.norm.weight == 1) and torch.all(model.norm.bias == 0)
    assert model.norm.eps == 1e-6
    assert isinstance(model.blocks[0].mlp.act, torch.nn.GELU) and model.blocks[0].mlp.act.approximate == "none"


@pytest.mark.parametrize("size,chans", [((32, 32), 3), ((16, 40), 1), ((24, 8), 4)])
def test_unpatchify_inverts_patchify(size, chans):
    imgs = torch.randn(2, chans, *size)
    patches = patchify(imgs, 8)
    assert patches.shape == (2, size[0] * size[1] // 64, 64 * chans)
    assert torch.equal(unpatchify(patches, 8, (size[0] // 8, size[1] // 8)), imgs)
    # patch 0 is the top-left square, flattened as (row, col, channel)
    assert torch.equal(patches[0, 0], imgs[0, :, :8, :8].permute(1, 2, 0).flatten())


def test_forward_contract_shapes_and_mask():
    model = tiny()
    out = model(torch.randn(3, 3, 32, 32), mask_ratio=0.75, return_pred=True)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.pred.shape == (3, 16, 8 * 8 * 3)
    assert out.mask.shape == (3, 16) and torch.all(out.mask.sum(1) == 12)
    assert out.ids_restore.shape == (3, 16)
    assert model.forward_features(torch.randn(3, 3, 32, 32)).shape == (3, 17, 64)


def test_loss_ignores_visible_patches():
    model = tiny()
    imgs = torch.randn(2, 3, 32, 32)
    out = model(imgs, mask_ratio=0.5, noise=torch.rand(2, 16), return_pred=True)
    visible = (out.mask == 0).unsqueeze(-1)
    changed = torch.where(visible, out.pred + 100.0, out.pred)
    assert torch.equal(model.forward_loss(imgs, changed, out.mask), model.forward_loss(imgs, out.pred, out.mask))
    removed = (out.mask == 1).unsqueeze(-1)
    assert model.forward_loss(imgs, torch.where(removed, out.pred + 1.0, out.pred), out.mask) > out.loss + 0.5


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_is_mse_over_removed_patches(norm_pix):
    model = tiny(norm_pix_loss=norm_pix)
    imgs = torch.randn(2, 3, 32, 32)
    out = model(imgs, return_pred=True)
    target = patchify(imgs, 8)
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((out.pred - target) ** 2).mean(-1)
    expected = per_patch[out.mask.bool()].mean()
    torch.testing.assert_close(out.loss, expected)


def test_encoder_sees_visible_patches_only():
    model = tiny()
    seen = []
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(torch.randn(2, 3, 32, 32), mask_ratio=0.75)
    assert seen == [torch.Size([2, 1 + 4, 64])]  # cls + 25% of 16 patches, no mask tokens


def test_gradients_reach_trainable_parameters_only():
    model = tiny()
    model(torch.randn(2, 3, 32, 32)).loss.backward()
    for name, p in model.named_parameters():
        if name in ("pos_embed", "decoder_pos_embed"):
            assert p.grad is None
        else:
            assert p.grad is not None, name


def test_mask_ratio_zero_is_allowed():
    out = tiny()(torch.randn(2, 3, 32, 32), mask_ratio=0.0)
    assert torch.all(out.mask == 0)
    assert out.loss.item() == 0.0


def test_runs_at_other_and_non_square_sizes():
    model = tiny()
    out = model(torch.randn(2, 3, 48, 64), mask_ratio=0.75, return_pred=True)
    assert out.pred.shape == (2, 6 * 8, 192) and torch.all(out.mask.sum(1) == 36)
    # tables for another grid are the exact sin-cos of that grid
    reference = MaskedAutoencoder(**{**model.config, "img_size": (48, 64)})
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if "pos_embed" not in k}, strict=False)
    noise = torch.rand(2, 48)
    imgs = torch.randn(2, 3, 48, 64)
    torch.testing.assert_close(model(imgs, noise=noise, return_pred=True).pred,
                               reference(imgs, noise=noise, return_pred=True).pred)


def test_set_img_size_keeps_outputs_of_exact_tables():
    model = tiny()
    imgs, noise = torch.randn(1, 3, 40, 24), torch.rand(1, 15)
    before = model(imgs, noise=noise, return_pred=True).pred
    model.set_img_size((40, 24))
    assert model.pos_embed.shape == (1, 16, 64) and model.config["img_size"] == [40, 24]
    torch.testing.assert_close(model(imgs, noise=noise, return_pred=True).pred, before)


def test_any_channel_count():
    model = tiny(in_chans=1)
    out = model(torch.randn(2, 1, 32, 32), return_pred=True)
    assert out.pred.shape == (2, 16, 64)


@pytest.mark.parametrize(
    "imgs,kwargs,message",
    [
        (torch.randn(1, 3, 30, 32), {}, "not divisible by the patch size 8"),
        (torch.randn(1, 1, 32, 32), {}, "expected 3 image channels, got 1"),
        (torch.randn(3, 32, 32), {}, r"\[N, C, H, W\]"),
        (torch.randn(1, 3, 32, 32), {"mask_ratio": 1.0}, r"mask_ratio must be in \[0, 1\)"),
        (torch.randn(1, 3, 32, 32), {"noise": torch.rand(1, 15)}, "noise must have shape"),
    ],
)
def test_bad_input_is_a_clear_value_error(imgs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny()(imgs, **kwargs)


def test_bad_construction():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        tiny(img_size=30)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        tiny(num_heads=5)


def test_layer_norm_eps_and_mask_ratio_are_model_config():
    model = tiny(layer_norm_eps=1e-12, mask_ratio=0.6)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 + 2 * 1 + 1 and all(m.eps == 1e-12 for m in norms)
    assert model.config["layer_norm_eps"] == 1e-12 and model.config["mask_ratio"] == 0.6
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    out = model(imgs, noise=noise)  # no ratio given: the model's own
    assert out.mask.sum(dim=1).tolist() == [16 - int(16 * 0.4)] * 2
    assert model(imgs, mask_ratio=0.25, noise=noise).mask.sum().item() == 2 * 4
    other = tiny(layer_norm_eps=1e-6)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():  # eps is part of the function
        assert not torch.equal(other.forward_features(imgs), model.forward_features(imgs))
    with pytest.raises(ValueError, match="mask_ratio must be in"):
        tiny(mask_ratio=1.0)
