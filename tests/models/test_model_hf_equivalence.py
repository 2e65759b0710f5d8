"""Numerical agreement with the Hugging Face ViTMAE, our reference implementation."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

import mae  # noqa: E402
from mae.weights import layouts as interop  # noqa: E402

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4)


def hf_model(config: dict, dtype=torch.float32):
    """A Hugging Face ViTMAEForPreTraining with the architecture of our config.

    Hugging Face cannot build a non-square model: for one, we build a square model and
    then give its embeddings the non-square grid and tables (weights are loaded after).
    """
    hf_config = interop.hf_config_from_ours(config)
    height, width = (config["img_size"],) * 2 if isinstance(config["img_size"], int) else config["img_size"]
    hf_config["image_size"] = max(height, width)
    cfg = transformers.ViTMAEConfig(**{k: v for k, v in hf_config.items() if k not in ("model_type", "architectures")})
    cfg._attn_implementation = "sdpa"  # the eager path rounds softmax through float32
    model = transformers.ViTMAEForPreTraining(cfg)
    if height != width:
        p = config["patch_size"]
        num_patches = (height // p) * (width // p)
        for module in (model.vit.embeddings.patch_embeddings, model.vit.embeddings):
            module.image_size = (height, width)
        model.vit.embeddings.patch_embeddings.num_patches = num_patches
        model.vit.embeddings.position_embeddings = torch.nn.Parameter(
            torch.zeros(1, 1 + num_patches, config["embed_dim"]), requires_grad=False)
        model.decoder.decoder_pos_embed = torch.nn.Parameter(
            torch.zeros(1, 1 + num_patches, config["decoder_embed_dim"]), requires_grad=False)
    return model.to(dtype).eval()


def hf_forward(model, imgs, noise):
    """Hugging Face's own modules and loss; patchify's flag only lifts its square check."""
    outputs = model.vit(imgs, noise=noise)
    logits = model.decoder(outputs.last_hidden_state, outputs.ids_restore).logits
    target = model.patchify(imgs, interpolate_pos_encoding=True)
    if model.config.norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = ((logits - target) ** 2).mean(dim=-1)
    loss = (loss * outputs.mask).sum() / outputs.mask.sum()
    return loss, logits, outputs.mask, outputs.ids_restore


def assert_agree(ours, theirs, imgs, noise, atol):
    out = ours(imgs, mask_ratio=0.75, noise=noise, return_pred=True)
    loss, logits, mask, ids_restore = hf_forward(theirs, imgs, noise)
    # the training call (head and loss on the removed patches only) computes the same loss
    torch.testing.assert_close(ours(imgs, mask_ratio=0.75, noise=noise).loss, loss, atol=atol, rtol=0)
    assert torch.equal(out.mask, mask.to(out.mask.dtype))
    assert torch.equal(out.ids_restore, ids_restore)
    torch.testing.assert_close(out.pred, logits, atol=atol, rtol=0)
    torch.testing.assert_close(out.loss, loss, atol=atol, rtol=0)


CASES = [
    pytest.param(dict(TINY), id="tiny-square"),
    pytest.param(dict(TINY, img_size=(32, 48)), id="tiny-nonsquare"),
    pytest.param(dict(TINY, in_chans=1, img_size=(24, 16)), id="tiny-gray-nonsquare"),
]


@pytest.mark.parametrize("norm_pix", [False, True])
@pytest.mark.parametrize("config", CASES)
def test_ours_to_hf_agrees(config, norm_pix):
    torch.manual_seed(0)
    ours = mae.create_model("mae_vit_tiny_patch16", **config, norm_pix_loss=norm_pix).eval()
    theirs = hf_model(ours.config)
    theirs.load_state_dict(interop.ours_to_hf(ours.state_dict(), spelling="in_memory"), strict=True)
    h, w = ours.config["img_size"]
    imgs = torch.randn(3, ours.config["in_chans"], h, w)
    noise = torch.rand(3, ours.patch_embed.num_patches)
    with torch.no_grad():
        assert_agree(ours, theirs, imgs, noise, atol=1e-5)


@pytest.mark.parametrize("config", CASES[:2])
def test_hf_to_ours_agrees_in_float64(config):
    torch.manual_seed(1)
    template = mae.create_model("mae_vit_tiny_patch16", **config, norm_pix_loss=True)
    theirs = hf_model(template.config, dtype=torch.float64)
    with torch.no_grad():  # random weights everywhere, including biases and norms
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    ours = mae.create_model("mae_vit_tiny_patch16", **config, norm_pix_loss=True).double().eval()
    ours.load_state_dict(interop.hf_to_ours(theirs.state_dict()), strict=True)
    h, w = ours.config["img_size"]
    imgs = torch.randn(2, 3, h, w, dtype=torch.float64)
    noise = torch.rand(2, ours.patch_embed.num_patches, dtype=torch.float64)
    with torch.no_grad():
        assert_agree(ours, theirs, imgs, noise, atol=1e-12)


def test_published_and_in_memory_spellings_both_read_back():
    ours = mae.create_model("mae_vit_tiny_patch16", **TINY)
    state = ours.state_dict()
    for spelling in ("published", "in_memory"):
        back = interop.hf_to_ours(interop.ours_to_hf(state, spelling=spelling))
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)
    assert "vit.encoder.layer.0.attention.attention.query.weight" in interop.ours_to_hf(state)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_vit_base_agrees(norm_pix):
    torch.manual_seed(0)
    ours = mae.create_model("mae_vit_base_patch16", norm_pix_loss=norm_pix).eval()
    theirs = hf_model(ours.config)
    theirs.load_state_dict(interop.ours_to_hf(ours.state_dict(), spelling="in_memory"), strict=True)
    imgs = torch.randn(2, 3, 224, 224)
    noise = torch.rand(2, 196)
    with torch.no_grad():
        assert_agree(ours, theirs, imgs, noise, atol=1e-5)
