"""The "encoder w/ [M]" variant (paper Table 1(c)): MaskedAutoencoder(encoder_mask_tokens=True)."""

import pytest
import torch

import mae
from helpers import TINY
from mae.benchmarking import mask_token_variant
from mae.engine import PretrainConfig, pretrain
from mae.engine.run.metrics import read_metrics
from mae.weights.export import export_model

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **{**TINY, **kw})


def removed_pixels(model, mask):
    """[N, L] mask -> [N, C, H, W] booleans, True on the removed patches' pixels."""
    return model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, 8 * 8 * 3)).bool()


def test_the_encoder_runs_on_every_patch_and_never_sees_the_removed_pixels():
    model = tiny(encoder_mask_tokens=True)
    seen = []
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    out = model(imgs, 0.75, noise, return_pred=True)
    assert seen[0] == (2, 1 + 16, 64)  # cls + all L patches
    assert out.pred.shape == (2, 16, 8 * 8 * 3) and torch.all(out.mask.sum(1) == 12)
    noisy = torch.where(removed_pixels(model, out.mask), 100 * torch.randn_like(imgs), imgs)
    changed = model(noisy, 0.75, noise, return_pred=True)
    torch.testing.assert_close(changed.pred, out.pred)  # the mask token stands in for them
    kept = torch.where(removed_pixels(model, out.mask), imgs, imgs + 1)
    assert not torch.allclose(model(kept, 0.75, noise, return_pred=True).pred, out.pred)  # visible ones count


def test_the_default_model_is_unchanged_and_keeps_its_mask_token_in_the_decoder():
    model, variant = tiny(), tiny(encoder_mask_tokens=True)
    assert model.config["encoder_mask_tokens"] is False and model.mask_token.shape == (1, 1, 32)
    assert variant.mask_token.shape == (1, 1, 64)  # the encoder's width
    seen = []
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    out = model(imgs, 0.75, noise)
    assert seen[0] == (2, 1 + 4, 64)  # cls + the kept patches only
    # with nothing removed both are the same function of the shared weights
    shared = mask_token_variant(model)
    full, theirs = model(imgs, 0.0, noise, return_pred=True), shared(imgs, 0.0, noise, return_pred=True)
    torch.testing.assert_close(theirs.pred, full.pred, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(shared(imgs, 0.75, noise).loss, out.loss)


def test_gradients_reach_the_mask_token_and_every_block():
    model = tiny(encoder_mask_tokens=True)
    out = model(torch.randn(2, 3, 32, 32), 0.75, torch.rand(2, 16))
    out.loss.backward()
    assert model.mask_token.grad.abs().sum() > 0
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []  # nothing unused (DDP needs none)


def test_it_saves_and_loads_back_and_other_layouts_refuse_it(tmp_path):
    model = tiny(encoder_mask_tokens=True).eval()
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    for name in ("model.safetensors", "model.pth"):
        mae.save_model(model, tmp_path / name)
        loaded = mae.load_model(tmp_path / name)
        assert loaded.config == model.config and loaded.encoder_mask_tokens
        torch.testing.assert_close(loaded(imgs, 0.75, noise).loss, model(imgs, 0.75, noise).loss)
    for layout in ("official", "hf", "mmpretrain"):
        with pytest.raises(ValueError, match=f"the {layout} layout's MAE has its mask token in the decoder.*"
                                             "--encoder-only"):
            export_model(model, tmp_path / layout, layout)
    export_model(model, tmp_path / "encoder", "hf", encoder_only=True)
    encoder = mae.load_model(tmp_path / "encoder")
    torch.testing.assert_close(encoder.forward_features(imgs), model.forward_features(imgs))


def test_a_tiny_pretraining_run_learns_and_resumes_only_with_the_same_setting(tmp_path):
    config = PretrainConfig(model="mae_vit_tiny_patch16", **TINY, synthetic_size=256, epochs=6, warmup_epochs=1,
                            batch_size=32, blr=1e-2, num_workers=0, preview_images=2, log_every=1,
                            encoder_mask_tokens=True, output_dir=str(tmp_path / "run"))
    pretrain(config)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert sum(losses[-8:]) / 8 < 0.85 * sum(losses[:4]) / 4, losses
    assert mae.load_model(tmp_path / "run").encoder_mask_tokens
    from dataclasses import replace

    with pytest.raises(ValueError, match="--encoder-mask-tokens True -> False"):
        pretrain(replace(config, epochs=7, resume="auto", encoder_mask_tokens=False))
